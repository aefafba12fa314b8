//! Fork safety: a child made by `fork()` inherits its parent's mappings and descriptors, never
//! its roles.
//!
//! Machine-learning code forks all the time (PyTorch `DataLoader` workers, `multiprocessing`'s
//! fork start method). Three things would then go wrong without this module:
//!
//! 1. **Drops.** A child's copy of a reader, a frame or a writer, dropped when the child exits
//!    (Python runs its finalizers), would release the parent's frames (the producer then
//!    overwrites pixels the parent still reads), free the parent's reader place, or end and
//!    unlink the parent's live stream. So every role remembers the process that took it
//!    ([`Owner`]); in any other process its drop changes nothing shared, and its methods return
//!    [`Error::ForkedChild`](crate::Error::ForkedChild).
//! 2. **Locks.** Roles are open-file-description locks (see `segment`), which belong to the
//!    description, and a child's inherited descriptor shares it: the locks would stay held
//!    while any child lives, so a dead producer would look alive and a closed reader busy.
//!    So every descriptor that may hold role locks is a [`LockFile`], registered here, and a
//!    `pthread_atfork` child handler points each one at `/dev/null` in the child. (Descriptors
//!    are opened under the same lock the handlers take, so none is ever copied unregistered.)
//!    A mapping keeps its description alive too, and a child inherits the mapping: so segments
//!    are mapped through a second description that holds no lock (`segment::map`). The lock
//!    description is then the parent's alone: its locks go when the parent closes them or
//!    dies, whatever its children do.
//! 3. **Lent pixels.** A window lent to a binding (`lend`, Python's `slot.array`) is a shared
//!    mapping the child inherits: the child handler maps zero pages over the child's copy, so
//!    that a child writing through an inherited array reaches no frame.
//!
//! Until a new child runs its handler (microseconds after `fork`, longer when the machine is
//! busy and the child waits to be scheduled), it shares every description: a role given up in
//! that instant is released when the child's handler runs, not before.
//!
//! What a child may do with what it inherited: look at the pixels of frames its parent held
//! when it forked (the mapping is inherited; they stay intact while the parent holds them),
//! and drop everything. To read or write frames itself, it opens its own `Reader` or `Writer`.
//!
//! A child made without `fork()`'s handlers (a raw `clone` system call) is not covered; every
//! standard way to fork (libc's `fork`, Python's `os.fork`, `multiprocessing`) runs them, and
//! `posix_spawn` and `vfork` children run `exec`, which closes our descriptors (`O_CLOEXEC`).

use std::cell::UnsafeCell;
use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

use crate::sys;

/// Forks this process has gone through as a child: 0 in the original process, incremented by
/// the child handler in each child (a copy of the parent's count plus one).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The descriptors that may hold role locks and the windows lent to bindings (see `lend`),
/// behind a spin lock the fork handlers can take (they may not block on a mutex another thread
/// would unlock: the child has only one thread).
struct Registry {
    busy: AtomicBool,
    lists: UnsafeCell<Lists>,
}

struct Lists {
    fds: Vec<RawFd>,
    /// SlotWindow windows (address, length): a child's inherited view of one must not reach the
    /// slot, which its parent goes on publishing through.
    windows: Vec<(usize, usize)>,
}

// SAFETY: `lists` is only touched while `busy` is held (see `Registry::with`, the handlers).
unsafe impl Sync for Registry {}

static REGISTRY: Registry = Registry {
    busy: AtomicBool::new(false),
    lists: UnsafeCell::new(Lists { fds: Vec::new(), windows: Vec::new() }),
};

/// Whether the fork handlers are installed (if not, `Owner` compares process ids).
static HANDLERS: AtomicBool = AtomicBool::new(false);

impl Registry {
    fn acquire(&self) {
        // Acquire: pairs with the Release in `release`, so the list's last change is visible.
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }

    fn release(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// Runs `f` on the lists, with the spin lock held (and so never during a fork). `f` must
    /// not panic (it pushes, removes and makes one system call).
    fn with<R>(&self, f: impl FnOnce(&mut Lists) -> R) -> R {
        self.acquire();
        // SAFETY: `busy` is ours until `release`: nobody else touches the lists meanwhile.
        let r = f(unsafe { &mut *self.lists.get() });
        self.release();
        r
    }
}

extern "C" fn before_fork() {
    // Holding the list across the fork: no descriptor is half registered or half closed in
    // the child's copy.
    REGISTRY.acquire();
}

extern "C" fn after_fork_in_parent() {
    REGISTRY.release();
}

extern "C" fn after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `before_fork` took `busy` in the thread that forked, which is this one now (the
    // child has no other thread), so the lists are ours. Only system calls follow.
    let lists = unsafe { &*REGISTRY.lists.get() };
    for &fd in &lists.fds {
        sys::disown_fd(fd);
    }
    for &(addr, len) in &lists.windows {
        // The child's copy of a lent window becomes zero pages: what a child writes through an
        // inherited `slot.array` reaches nothing. (A failure leaves it mapped: nothing better
        // can be done in a fork handler.)
        if let Some(addr) = std::ptr::NonNull::new(addr as *mut u8) {
            // SAFETY: the window is a mapping of ours (registered while lent), which in the
            // child nothing but stale arrays refer to.
            let _ = unsafe { sys::map_zero_pages(addr, len) };
        }
    }
    REGISTRY.release();
}

fn install_handlers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // It can fail only for lack of memory; a child would then keep its parent's locks
        // (roles look alive longer) but still never act on them (`Owner::is_here` then
        // compares process ids).
        if sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child).is_ok() {
            HANDLERS.store(true, Ordering::Relaxed);
        }
    });
}

/// The process that took a role: its drops and calls act on shared state only there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner {
    pid: u32,
    generation: u64,
}

impl Owner {
    /// This process.
    pub(crate) fn current() -> Owner {
        install_handlers();
        Owner { pid: std::process::id(), generation: GENERATION.load(Ordering::Relaxed) }
    }

    /// Whether this is still the process that took the role (not a fork child). One atomic
    /// load (a system call only if the fork handlers could not be installed): called on every
    /// read and every frame's release.
    pub(crate) fn is_here(&self) -> bool {
        GENERATION.load(Ordering::Relaxed) == self.generation
            && (HANDLERS.load(Ordering::Relaxed) || std::process::id() == self.pid)
    }

    /// The owning process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

/// A descriptor that may hold role locks: registered so that a fork child lets go of it (see
/// the module docs). Closed, and unregistered, atomically with respect to forks.
#[derive(Debug)]
pub(crate) struct LockFile {
    file: ManuallyDrop<File>,
}

impl LockFile {
    /// Opens a file (with `open`) and registers it, as one step with respect to forks: a
    /// child forked meanwhile would keep an unregistered copy, and with it our locks.
    pub(crate) fn open(open: impl FnOnce() -> std::io::Result<File>) -> std::io::Result<LockFile> {
        install_handlers();
        let file = REGISTRY.with(|lists| {
            let file = open()?;
            lists.fds.push(file.as_raw_fd());
            Ok::<File, std::io::Error>(file)
        })?;
        Ok(LockFile { file: ManuallyDrop::new(file) })
    }
}

/// Registers a window lent to a binding (see `lend`) until [`forget_window`]: a fork child's
/// copy of it becomes zero pages.
pub(crate) fn remember_window(addr: std::ptr::NonNull<u8>, len: usize) {
    install_handlers();
    REGISTRY.with(|lists| lists.windows.push((addr.as_ptr() as usize, len)));
}

/// Unregisters a window [`remember_window`] registered.
pub(crate) fn forget_window(addr: std::ptr::NonNull<u8>) {
    REGISTRY.with(|lists| {
        if let Some(i) = lists.windows.iter().position(|&(a, _)| a == addr.as_ptr() as usize) {
            lists.windows.swap_remove(i);
        }
    });
}

impl std::ops::Deref for LockFile {
    type Target = File;
    fn deref(&self) -> &File {
        &self.file
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let fd = self.file.as_raw_fd();
        REGISTRY.with(|lists| {
            if let Some(i) = lists.fds.iter().position(|&f| f == fd) {
                lists.fds.swap_remove(i);
            }
            // Closed under the lock: a fork cannot copy the descriptor once it is unregistered
            // (the child would keep the description, and our locks, alive).
            // SAFETY: dropped once, here; `self.file` is never used again.
            unsafe { ManuallyDrop::drop(&mut self.file) };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_are_registered_for_their_life() {
        let f = LockFile::open(|| File::open("/dev/null")).unwrap();
        let fd = f.as_raw_fd();
        assert!(REGISTRY.with(|lists| lists.fds.contains(&fd)));
        drop(f);
        assert!(!REGISTRY.with(|lists| lists.fds.contains(&fd)));
        assert!(Owner::current().is_here());
    }
}
