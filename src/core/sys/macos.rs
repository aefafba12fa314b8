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
//! as a futex does. There is no multi-word wait and no robust futex: [`wait_any`] returns
//! `false` and [`kernel_watches_liveness`] `false`, so the channel sleeps on its data word
//! alone, bounded by the periods of [`crate::timing`] after which it probes its peers' locks
//! (see `docs/platforms.md`).

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub use super::other_unix::{
    block_signals, description_for_mapping, hook_signals, kernel_watches_liveness,
    move_keeping_range, own_liveness_words, owner_found_dead, wait_any, SIGNAL_WORD,
};

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

fn waits() -> Waits {
    static WAITS: OnceLock<Waits> = OnceLock::new();
    *WAITS.get_or_init(|| {
        // SAFETY: (each transmute) the symbol, when libSystem exports it, is the function whose
        // C signature the type above spells out.
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
    })
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
    // SAFETY: (every arm) the address is only a key for the kernel.
    unsafe {
        match waits() {
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

/// Wakes every waiter on a word of this process only.
pub fn wake_local(word: &AtomicU32) {
    wake(word, false);
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
