//! macOS: segments through `shm_open("/NAME")` (what cpp_py_shmbuf's macOS code opens), roles
//! as `flock`s on lock files in a per-user directory (`posix_shm`), and waits on shared words
//! in the kernel, found at run time so that one binary runs on every version:
//!
//! | macOS | shared wait (`wait_word`, `wake_word`) |
//! |---|---|
//! | 14.4 and later | `os_sync_wait_on_address_with_timeout` / `os_sync_wake_by_address_all`, `OS_SYNC_WAIT_ON_ADDRESS_SHARED` (public API) |
//! | 11 to 14.3 | `__ulock_wait2` / `__ulock_wake`, `UL_COMPARE_AND_WAIT_SHARED` (what libc++'s atomics use) |
//! | 10.12 to 10.15 | `__ulock_wait` (microsecond timeouts) / `__ulock_wake` |
//! | none of them (never seen) | timed sleeps of at most [`FALLBACK_POLL`](crate::timing::FALLBACK_POLL) |
//!
//! Both kernel waits compare the word with the expected value atomically with going to sleep,
//! as a futex does. macOS has no multi-word wait and no robust futex; what stands in for them:
//!
//! | need | macOS |
//! |---|---|
//! | a liveness word the kernel reports | the keeper writes its pid (and low bits of its thread id) into the word and its 64-bit thread id (never reused) into the field beside it ([`own_liveness_words`]) |
//! | a death that wakes a sleeper | kqueue `EVFILT_PROC` with `NOTE_EXIT`/`NOTE_EXEC` on the keeper's pid, read by the watcher thread of [`super::watcher`], which marks `OWNER_DIED` and wakes the sleeper's data word |
//! | a probe ([`owner_found_dead`]) | `proc_pidinfo(pid, PROC_PIDTHREADID64INFO, thread id)`: `ESRCH` when the keeper thread is gone (its process died, exec'd, or the pid is another process now) |
//! | a multi-word wait ([`wait_any`]) | the watcher's registry and one kernel wait on the data word (see [`super::watcher`]) |
//! | Ctrl+C and cancels during that wait | [`wake_local`] pokes the watcher (an `EVFILT_USER` trigger), which wakes registrations whose words changed |
//!
//! Where the watcher cannot start (no kqueue, no thread) or only timed sleeps exist,
//! [`kernel_watches_liveness`] is `false` and [`wait_any`] returns `false`: the channel sleeps
//! on its data word alone, bounded by the periods of [`crate::timing`] after which it probes
//! its peers' locks (see `docs/platforms.md`).

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

pub use super::other_unix::{description_for_mapping, move_keeping_range};
use super::watcher::{self, Events, Ops, Watcher};
use super::WaitWord;

/// `int os_sync_wait_on_address_with_timeout(void *addr, uint64_t value, size_t size,
/// os_sync_wait_on_address_flags_t flags, os_clockid_t clockid, uint64_t timeout_ns)`.
type OsSyncWait = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> libc::c_int;
/// `int os_sync_wake_by_address_all(void *addr, size_t size, os_sync_wake_by_address_flags_t)`.
type OsSyncWake = unsafe extern "C" fn(*mut c_void, usize, u32) -> libc::c_int;
/// `int __ulock_wait2(uint32_t op, void *addr, uint64_t value, uint64_t timeout_ns, uint64_t)`.
type UlockWait2 = unsafe extern "C" fn(u32, *mut c_void, u64, u64, u64) -> libc::c_int;
/// `int __ulock_wait(uint32_t op, void *addr, uint64_t value, uint32_t timeout_us)`.
type UlockWait = unsafe extern "C" fn(u32, *mut c_void, u64, u32) -> libc::c_int;
/// `int __ulock_wake(uint32_t op, void *addr, uint64_t wake_value)`.
type UlockWake = unsafe extern "C" fn(u32, *mut c_void, u64) -> libc::c_int;

const OS_SYNC_SHARED: u32 = 1; // OS_SYNC_WAIT_ON_ADDRESS_SHARED, OS_SYNC_WAKE_BY_ADDRESS_SHARED
const OS_CLOCK_MACH_ABSOLUTE_TIME: u32 = 32;
const UL_COMPARE_AND_WAIT: u32 = 1;
const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
const ULF_WAKE_ALL: u32 = 0x100;
const ULF_NO_ERRNO: u32 = 0x0100_0000;

/// The wait this system has (see the module docs).
#[derive(Clone, Copy)]
enum Waits {
    OsSync(OsSyncWait, OsSyncWake),
    Ulock2(UlockWait2, UlockWake),
    Ulock(UlockWait, UlockWake),
    Sleep,
}

/// Looks a symbol up in the libraries already loaded (libSystem).
fn symbol(name: &std::ffi::CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Which wait this system has, found with `dlsym` (see the module docs).
fn find_waits() -> Waits {
    // SAFETY: (each transmute) the symbol, when libSystem exports it, is the function whose C
    // signature the type above spells out.
    unsafe {
        if let (Some(w), Some(k)) = (
            symbol(c"os_sync_wait_on_address_with_timeout"),
            symbol(c"os_sync_wake_by_address_all"),
        ) {
            return Waits::OsSync(
                std::mem::transmute::<*mut c_void, OsSyncWait>(w),
                std::mem::transmute::<*mut c_void, OsSyncWake>(k),
            );
        }
        if let Some(k) = symbol(c"__ulock_wake") {
            let k = std::mem::transmute::<*mut c_void, UlockWake>(k);
            if let Some(w) = symbol(c"__ulock_wait2") {
                return Waits::Ulock2(std::mem::transmute::<*mut c_void, UlockWait2>(w), k);
            }
            if let Some(w) = symbol(c"__ulock_wait") {
                return Waits::Ulock(std::mem::transmute::<*mut c_void, UlockWait>(w), k);
            }
        }
    }
    Waits::Sleep
}

/// The wait found, kept in atomics rather than a `OnceLock`: read from the signal hook (which
/// must not run `dlsym` or block on an initialisation), and never stuck in a fork child.
/// `KIND` 0: not looked up yet; 1-4: the variant; the two pointers are written before it.
static KIND: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
static WAIT_FN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static WAKE_FN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The wait this system has, looked up on first use (racing threads find the same).
fn waits() -> Waits {
    if let Some(w) = known_waits() {
        return w;
    }
    let w = find_waits();
    let (kind, wait, wake) = match w {
        Waits::OsSync(w, k) => (1, w as usize, k as usize),
        Waits::Ulock2(w, k) => (2, w as usize, k as usize),
        Waits::Ulock(w, k) => (3, w as usize, k as usize),
        Waits::Sleep => (4, 0, 0),
    };
    WAIT_FN.store(wait, Ordering::Relaxed);
    WAKE_FN.store(wake, Ordering::Relaxed);
    // Release: the pointers are there before the kind says so.
    KIND.store(kind, Ordering::Release);
    w
}

/// The wait, if it was looked up already (async-signal-safe: atomic loads only).
fn known_waits() -> Option<Waits> {
    let kind = KIND.load(Ordering::Acquire);
    let (wait, wake) = (WAIT_FN.load(Ordering::Relaxed), WAKE_FN.load(Ordering::Relaxed));
    // SAFETY: (each transmute) the pointers were stored from functions of exactly these types
    // by `waits`, before the kind that names them (Release/Acquire).
    unsafe {
        match kind {
            1 => Some(Waits::OsSync(
                std::mem::transmute::<usize, OsSyncWait>(wait),
                std::mem::transmute::<usize, OsSyncWake>(wake),
            )),
            2 => Some(Waits::Ulock2(
                std::mem::transmute::<usize, UlockWait2>(wait),
                std::mem::transmute::<usize, UlockWake>(wake),
            )),
            3 => Some(Waits::Ulock(
                std::mem::transmute::<usize, UlockWait>(wait),
                std::mem::transmute::<usize, UlockWake>(wake),
            )),
            4 => Some(Waits::Sleep),
            _ => None,
        }
    }
}

/// Sleeps while `*word == expected`, at most `timeout`, in any process's view of the word
/// (`shared`) or this process's only.
fn wait(word: &AtomicU32, expected: u32, timeout: Duration, shared: bool) {
    if timeout.is_zero() {
        return;
    }
    let addr = word.as_ptr().cast::<c_void>();
    let ns = timeout.as_nanos().clamp(1, u64::MAX as u128) as u64;
    // SAFETY: (every arm) the address is an aligned, live u32 (an atomic the caller holds a
    // reference to); the kernel compares it with `expected` before sleeping and uses it as a
    // key only. The shared variants key the wait on the physical page, so a wake from another
    // process mapping the same object reaches us.
    unsafe {
        match waits() {
            Waits::OsSync(w, _) => {
                let flags = if shared { OS_SYNC_SHARED } else { 0 };
                w(addr, u64::from(expected), 4, flags, OS_CLOCK_MACH_ABSOLUTE_TIME, ns);
            }
            Waits::Ulock2(w, _) => {
                let op = if shared { UL_COMPARE_AND_WAIT_SHARED } else { UL_COMPARE_AND_WAIT };
                w(op | ULF_NO_ERRNO, addr, u64::from(expected), ns, 0);
            }
            Waits::Ulock(w, _) => {
                let op = if shared { UL_COMPARE_AND_WAIT_SHARED } else { UL_COMPARE_AND_WAIT };
                // 0 would be "no timeout": at least 1 us, at most u32::MAX us (71 minutes).
                let us = (ns / 1000).clamp(1, u64::from(u32::MAX)) as u32;
                w(op | ULF_NO_ERRNO, addr, u64::from(expected), us);
            }
            Waits::Sleep => {
                if word.load(Ordering::Acquire) == expected {
                    std::thread::sleep(timeout.min(crate::timing::FALLBACK_POLL));
                }
            }
        }
    }
}

/// Wakes every waiter on `word`.
fn wake(word: &AtomicU32, shared: bool) {
    let addr = word.as_ptr().cast::<c_void>();
    // Nobody sleeps before the wait was looked up (every sleep looks it up first): nothing to
    // wake. Not `waits()`: the signal hook calls this, and may not run `dlsym`.
    let Some(waits) = known_waits() else { return };
    // SAFETY: (every arm) the address is only a key for the kernel.
    unsafe {
        match waits {
            Waits::OsSync(_, k) => {
                k(addr, 4, if shared { OS_SYNC_SHARED } else { 0 });
            }
            Waits::Ulock2(_, k) | Waits::Ulock(_, k) => {
                let op = if shared { UL_COMPARE_AND_WAIT_SHARED } else { UL_COMPARE_AND_WAIT };
                k(op | ULF_WAKE_ALL | ULF_NO_ERRNO, addr, 0);
            }
            Waits::Sleep => {}
        }
    }
}

/// Sleeps while `*word == expected`, for at most `timeout` (the word may be shared with other
/// processes). Returns early on a wake-up, a changed value or the timeout; callers re-check.
pub fn wait_word(word: &AtomicU32, expected: u32, timeout: Duration) {
    wait(word, expected, timeout, true);
}

/// Wakes every waiter sleeping on `word`, in any process.
pub fn wake_word(word: &AtomicU32) {
    wake(word, true);
}

/// Sleeps on a word of this process only while it equals `expected` (re-armed by callers).
pub fn wait_local(word: &AtomicU32, expected: u32) {
    wait(word, expected, crate::timing::UNBOUNDED_STEP, false);
}

/// Wakes every waiter on a word of this process only, and has the watcher wake the multi-word
/// waits holding it (a cancel, [`SIGNAL_WORD`](super::SIGNAL_WORD)). Async-signal-safe: the
/// signal hook calls it.
pub fn wake_local(word: &AtomicU32) {
    wake(word, false);
    if let Some(w) = started_watcher() {
        w.poke();
    }
}

// ---------------------------------------------------------------------------------------------
// Liveness and the multi-word wait

/// `PROC_PIDTHREADID64INFO` (`sys/proc_info.h`): a thread of a process by its 64-bit id.
const PROC_PIDTHREADID64INFO: libc::c_int = 15;
/// The ident of the watcher's `EVFILT_USER` event (pokes).
const POKE: usize = 1;

/// The kqueue of this process's watcher: `EVFILT_PROC` for keepers' ends, `EVFILT_USER` for
/// pokes. Not inherited by a fork child (kqueues never are).
struct Kqueue(OwnedFd);

impl Kqueue {
    fn new() -> io::Result<Kqueue> {
        // SAFETY: plain kqueue creation.
        let fd = unsafe { libc::kqueue() };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just made and own.
        let kq = Kqueue(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: plain fcntl on our own descriptor (kqueue() takes no flags).
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        kq.change(POKE, libc::EVFILT_USER, libc::EV_ADD | libc::EV_CLEAR, 0)?;
        Ok(kq)
    }

    /// Applies one change to the queue.
    fn change(&self, ident: usize, filter: i16, flags: u16, fflags: u32) -> io::Result<()> {
        let ev =
            libc::kevent { ident, filter, flags, fflags, data: 0, udata: std::ptr::null_mut() };
        // SAFETY: one change read from our struct; no events asked back (so none written).
        let rc = unsafe {
            libc::kevent(self.0.as_raw_fd(), &ev, 1, std::ptr::null_mut(), 0, std::ptr::null())
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl Events for Kqueue {
    fn watch(&self, pid: u32) -> io::Result<bool> {
        let flags = libc::NOTE_EXIT | libc::NOTE_EXEC;
        match self.change(pid as usize, libc::EVFILT_PROC, libc::EV_ADD, flags) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn poke(&self) {
        // A system call and no lock: async-signal-safe.
        let _ = self.change(POKE, libc::EVFILT_USER, 0, libc::NOTE_TRIGGER);
    }

    fn next(&self, ended: &mut Vec<u32>, timeout: Option<Duration>) -> io::Result<()> {
        // SAFETY: kevent is a plain C struct; all zeroes is a valid value.
        let mut evs: [libc::kevent; 16] = unsafe { std::mem::zeroed() };
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: no changes; up to `evs.len()` events written into our array; `ts_ptr` is null
        // or our timespec.
        let n = unsafe {
            libc::kevent(
                self.0.as_raw_fd(),
                std::ptr::null(),
                0,
                evs.as_mut_ptr(),
                evs.len() as libc::c_int,
                ts_ptr,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        for ev in evs.iter().take(n as usize) {
            if ev.filter == libc::EVFILT_PROC
                && ev.fflags & (libc::NOTE_EXIT | libc::NOTE_EXEC) != 0
            {
                ended.push(ev.ident as u32);
            }
        }
        Ok(())
    }
}

/// Whether thread `tid` of process `pid` runs (see [`Ops::keeper_alive`]).
fn keeper_alive(pid: u32, tid: u64) -> Option<bool> {
    let Ok(pid) = libc::c_int::try_from(pid) else { return Some(false) };
    // SAFETY: proc_threadinfo is a plain C struct; all zeroes is a valid value.
    let mut info: libc::proc_threadinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_threadinfo>() as libc::c_int;
    // SAFETY: writes at most `size` bytes into our struct.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            PROC_PIDTHREADID64INFO,
            tid,
            (&mut info as *mut libc::proc_threadinfo).cast(),
            size,
        )
    };
    if n == size {
        return Some(true);
    }
    // ESRCH: no such process, or no such thread in it. Anything else (a sandbox's EPERM): unknown.
    (io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)).then_some(false)
}

const OPS: Ops = Ops { wait, wake, keeper_alive };

/// The process's watcher (null: not started, or it could not start), and the pid that
/// started it: a fork child has a copy of both but neither its thread nor its kqueue.
static WATCHER: std::sync::atomic::AtomicPtr<Watcher> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
static WATCHER_PID: AtomicU32 = AtomicU32::new(0);
/// Whether a start was tried; its lock is only ever tried (`try_lock`), never waited for, so
/// a fork child of a moment when another thread held it is not stuck (it runs without).
static STARTING: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// This process's pid (async-signal-safe).
fn my_pid() -> u32 {
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    unsafe { libc::getpid() as u32 }
}

/// The watcher, started on first use; `None` where it cannot run (and in a fork child).
fn watcher() -> Option<&'static Watcher> {
    if let Some(w) = started_watcher() {
        return Some(w);
    }
    if matches!(waits(), Waits::Sleep) {
        return None;
    }
    let Ok(mut tried) = STARTING.try_lock() else { return None };
    if !*tried {
        *tried = true;
        if let Ok(w) = Kqueue::new().and_then(|kq| Watcher::start(Box::new(kq), OPS)) {
            WATCHER_PID.store(my_pid(), Ordering::Relaxed);
            // Release: the pid is there before the pointer says started.
            WATCHER.store((w as *const Watcher).cast_mut(), Ordering::Release);
        }
    }
    drop(tried);
    started_watcher()
}

/// The watcher if it was started (by this process), without starting it: async-signal-safe.
fn started_watcher() -> Option<&'static Watcher> {
    let w = WATCHER.load(Ordering::Acquire);
    if w.is_null() || WATCHER_PID.load(Ordering::Relaxed) != my_pid() {
        return None;
    }
    // SAFETY: a leaked, never freed watcher (`Watcher::start`).
    Some(unsafe { &*w })
}

/// Whether deaths are reported and multi-word waits exist: when the watcher runs.
pub fn kernel_watches_liveness() -> bool {
    watcher().is_some()
}

/// Sleeps until one of `words` differs from its expected value or is woken, `timeout` passes
/// or (for liveness words) the keeper's process ends; callers re-check. `false` without
/// sleeping where the watcher cannot run.
pub fn wait_any(words: &[WaitWord<'_>], timeout: Option<Duration>) -> bool {
    watcher().is_some_and(|w| w.wait_any(words, timeout))
}

/// Nothing to let go of: the words are cleared by the keeper when its role ends.
pub struct OwnedWords;

/// Makes the calling thread (a keeper) the owner of `words`: writes its 64-bit thread id into
/// each word's node field, then its pid (with low bits of that id) into the word. `None` where
/// the pid does not fit in a word.
///
/// # Safety
/// The words and nodes must stay mapped, used by no other keeper, until the returned value is
/// dropped.
pub unsafe fn own_liveness_words(
    words: &[super::liveness::Watched],
    _node_offset: isize,
) -> Option<OwnedWords> {
    let mut tid = 0u64;
    // SAFETY: a null thread means the calling one; writes our u64.
    if unsafe { libc::pthread_threadid_np(0 as libc::pthread_t, &mut tid) } != 0 {
        return None;
    }
    let value = watcher::keeper_word(std::process::id(), tid)?;
    for w in words {
        // SAFETY: the node is an aligned 8-byte field and the word an atomic in the live
        // mapping (the caller's contract). Release, node first: a reader that sees the word's
        // value sees this keeper's thread id beside it.
        unsafe {
            (*w.node.cast::<AtomicU64>()).store(tid, Ordering::Release);
            (*w.word).store(value, Ordering::Release);
        }
    }
    Some(OwnedWords)
}

/// Probes the keeper of a liveness word that says alive (`seen`): `Some(true)` (and the word
/// marked) when its thread is gone, `None` when the kernel will not say (the caller probes the
/// role's lock). One system call.
pub fn owner_found_dead(word: &AtomicU32, node: &AtomicU64, seen: u32) -> Option<bool> {
    watcher::keeper_found_dead(keeper_alive, word, node, seen)
}

/// A process's command name (`proc_name`), empty if it cannot be read.
pub fn process_name(pid: u32) -> String {
    let mut buf = [0u8; 256];
    let Ok(pid) = libc::c_int::try_from(pid) else { return String::new() };
    // SAFETY: proc_name writes at most `buf.len()` bytes into our buffer.
    let n = unsafe { libc::proc_name(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    if n <= 0 {
        return String::new();
    }
    String::from_utf8_lossy(&buf[..n as usize]).into_owned()
}
