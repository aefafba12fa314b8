//! Windows has no `fork()`: a role's owner is always the process that took it. (A child made
//! by `CreateProcess` inherits no handle of ours: every one is created non-inheritable; and
//! `multiprocessing`'s spawn starts a fresh interpreter, which opens its own `Reader`.)

/// The process that took a role (always this one on Windows).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner {
    pid: u32,
}

impl Owner {
    /// This process.
    pub(crate) fn current() -> Owner {
        Owner { pid: std::process::id() }
    }

    /// Always: there are no fork children.
    pub(crate) fn is_here(&self) -> bool {
        true
    }

    /// The owning process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

/// Nothing to do: no child inherits a lent window.
pub(crate) fn remember_window(_addr: std::ptr::NonNull<u8>, _len: usize) {}

/// Nothing to do (see [`remember_window`]).
pub(crate) fn forget_window(_addr: std::ptr::NonNull<u8>) {}
