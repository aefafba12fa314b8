//! The OS layer: every system call of the channel lives under this folder, behind one small
//! interface per service; the channel code (ring, table, reader, writer, wait) names the
//! service, never the system call. A platform is one backend file chosen here by `cfg`.
//!
//! | service | what the channel asks of it | Linux (`linux.rs`) | macOS (`macos.rs`, `posix_shm.rs`) | other Unix (`other_unix.rs`) |
//! |---|---|---|---|---|
//! | named segment | `shm_path`, `create_new`, `open_existing`, `allocate`, `file_id`, `file_uid`, `euid`, `is_out_of_space`, `is_symlink_refused`; on macOS [`posix_shm`] (used by `segment/macos.rs`) | files in `/dev/shm` (what `shm_open("/NAME")` opens) | `shm_open("/NAME")` objects, created `O_EXCL` under the producer's lock file | files in `$TMPDIR/shmframes` |
//! | mapping | `map_window`, `map_zero_pages`, `unmap`, `move_keeping_range`, `page_size`, `description_for_mapping` | `mmap`, `mremap(MREMAP_DONTUNMAP)` | `mmap`; no take-back by moving | `mmap`; no take-back by moving |
//! | wait word | `wait_word`, `wake_word` (shared), `wait_local`, `wake_local` (one process), `wait_any` (several words at once), `WaitWord` | futex without `FUTEX_PRIVATE_FLAG`, `futex_waitv` | `os_sync_wait_on_address` (14.4+) or `__ulock_wait2`, found by `dlsym`; `wait_any` through [`watcher`] (one kernel wait on the data word, a thread that wakes it) | timed sleeps of at most [`FALLBACK_POLL`](crate::timing::FALLBACK_POLL) |
//! | liveness token | [`liveness`]: a keeper owning liveness words the kernel marks at death; `try_lock_byte`, `probe_lock_byte` (a role's lock, dropped by the kernel) | robust-futex list, OFD locks | pid and thread id in the word, kqueue `NOTE_EXIT` read by the [`watcher`], `proc_pidinfo` probes; `flock` on role lock files ([`posix_shm`]) | classic record locks, probed |
//! | clock | `monotonic_ns`, `precise_timers` | `CLOCK_MONOTONIC`, `PR_SET_TIMERSLACK` | `CLOCK_MONOTONIC` | `CLOCK_MONOTONIC` |
//! | process | `at_fork`, `disown_fd`, `processes_using`, `process_name`, `involuntary_switches` (Linux), signal hook (`SIGNAL_WORD`, `hook_signals`, `block_signals`: `signals.rs` on Linux and macOS) | `pthread_atfork`, `/proc` | `pthread_atfork`, `proc_name`; users from the lock files | `pthread_atfork`; nobody named |
//!
//! Guarantees every backend keeps (the channel relies on them, see `docs/protocol.md`):
//! - `wait_word(word, expected, timeout)` returns at once if `*word != expected` (checked
//!   atomically with going to sleep where the system can), and otherwise after a wake, a
//!   signal or `timeout`; callers always re-check, so an early return is never wrong.
//! - `wake_word(word)` wakes every waiter on the word in any process; it may be a no-op only
//!   where `wait_word` is a bounded timed sleep.
//! - `wait_any` returns `false` without sleeping where the system has no multi-word wait:
//!   callers then sleep on their data word alone, bounded by a period of [`crate::timing`].
//! - A lock byte taken with `try_lock_byte` is released by the kernel when its holder dies,
//!   however it dies.
//!
//! Windows (`windows.rs`) answers each service with named kernel objects: sections for
//! segments, an auto-reset event per (word, sleeper) for wakes (hence [`Waker::Shared`]'s
//! `sleeper` and [`wake_sleepers`]' mask, which the Unix backends ignore), a mutex per liveness
//! word owned by the role's keeper, role locks as mutexes held by one thread of the process;
//! see `docs/windows.md`.
//!
//! `unix.rs` holds what all Unix systems share (opening without following symlinks,
//! CLOCK_MONOTONIC, file identities, record locks, mappings, fork hygiene). The other-Unix
//! backend, `posix_shm` (macOS's segments and lock files) and `watcher` (macOS's multi-word
//! wait, driven by pidfds in its tests) are also compiled and unit-tested on Linux, so they
//! cannot rot unnoticed; `make apple` builds the macOS backend itself. Every
//! kernel object and shared word per platform: `docs/platforms.md`.

/// What a lock probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds the lock.
    Free,
    /// Somebody holds it; the pid when the kernel reports one.
    Held(Option<u32>),
}

/// `OWNER_WAITERS` in a liveness word: someone sleeps on it (on Linux the kernel wakes them
/// when the owner dies). Linux's robust-futex values, so that liveness words read the same on
/// every platform.
pub const OWNER_WAITERS: u32 = 0x8000_0000;
/// `OWNER_DIED` in a liveness word: the owner was found dead (by the kernel on Linux, by the
/// first waiter to see its mutex abandoned on Windows).
pub const OWNER_DIED: u32 = 0x4000_0000;
/// The owner's thread id in a liveness word.
pub const OWNER_MASK: u32 = 0x3FFF_FFFF;

/// Who wakes a word a wait sleeps on, and so what a backend sleeps on for it.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos", windows)), allow(dead_code))]
pub enum Waker<'a> {
    /// A thread of this process ([`wake_local`]): a private futex, a parked thread.
    Local,
    /// Any process mapping the word ([`wake_word`], [`wake_sleepers`]). `sleeper` tells apart
    /// the sleepers of a word several may sleep on (reader entry r on `published`: bit r of
    /// `wake_sleepers`' mask), 0 on a word with one sleeper. Linux and macOS ignore it (the
    /// kernel keys waits on the word); Windows wakes each sleeper through an event of its own.
    Shared {
        /// Which of the word's sleepers this is.
        #[cfg_attr(not(windows), allow(dead_code))]
        sleeper: u32,
    },
    /// The word's owner's death: a liveness word (see [`liveness`]), with the 8-byte field
    /// beside it (its keeper's robust-list node on Linux, its thread id on macOS).
    Death {
        /// The field beside the word.
        #[cfg_attr(not(target_os = "macos"), allow(dead_code))]
        node: &'a std::sync::atomic::AtomicU64,
    },
}

/// One word of a multi-word wait (`wait_any`): sleep while `*word == expected`.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos", windows)), allow(dead_code))]
pub struct WaitWord<'a> {
    /// The word.
    pub word: &'a std::sync::atomic::AtomicU32,
    /// The value it had when the caller decided to sleep.
    pub expected: u32,
    /// Who wakes it.
    pub waker: Waker<'a>,
}

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

pub(crate) mod liveness;

#[cfg(any(target_os = "linux", target_os = "macos"))]
mod signals;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub use signals::{block_signals, hook_signals, SIGNAL_WORD};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

// Shared-memory objects by name and role lock files (macOS's segments), built on every Unix:
// its tests run on Linux against the real `shm_open`.
#[cfg(unix)]
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) mod posix_shm;

#[cfg(all(unix, not(target_os = "linux")))]
#[cfg_attr(target_os = "macos", allow(dead_code))]
mod other_unix;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
pub use other_unix::*;

// The multi-word wait of macOS; its logic is tested on Linux with pidfds.
#[cfg(any(target_os = "macos", all(test, target_os = "linux")))]
mod watcher;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::*;

#[cfg(all(test, target_os = "linux"))]
#[allow(dead_code)]
mod other_unix;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// Wakes the sleepers on `word` whose bits `mask` has (see [`Waker::Shared`]): where the
/// kernel keys waits on the word, all of them.
#[cfg(unix)]
pub fn wake_sleepers(word: &std::sync::atomic::AtomicU32, _mask: u32) {
    wake_word(word);
}

/// A thread's involuntary switches are counted where `linux.rs` says so; elsewhere unknown.
#[cfg(not(target_os = "linux"))]
pub fn involuntary_switches() -> Option<u64> {
    None
}

/// Timed sleeps end when asked only where `linux.rs` says so (timer slack); elsewhere the
/// system's own timer precision holds.
#[cfg(not(target_os = "linux"))]
pub fn precise_timers() -> bool {
    false
}

#[cfg(not(any(unix, windows)))]
compile_error!(
    "shmframes supports Linux, macOS, Windows and (with timed waits) other Unix systems"
);
