//! Signals, on Linux and macOS: SIGINT and SIGTERM routed through a hook that runs the
//! program's own handler (Python's, say) and then bumps and wakes [`SIGNAL_WORD`], so a wait
//! that sleeps on that word too (with its data word) wakes for Ctrl+C at once, with no
//! polling; and [`block_signals`] for the threads that must never take one (keepers, the
//! macOS watcher). The wake is the platform's `wake_local`: a private futex wake on Linux, a
//! poke of the watcher on macOS (both async-signal-safe: atomics and one system call).

use std::sync::atomic::AtomicU32;

use super::wake_local;

/// This thread's `errno`.
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno slot; no preconditions.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::__errno_location()
    }
    // SAFETY: as above.
    #[cfg(target_os = "macos")]
    unsafe {
        libc::__error()
    }
}

/// Blocks every signal in the calling thread, so that process-wide signals (Ctrl+C) go to the
/// program's own threads.
pub fn block_signals() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask changes this thread's mask only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Bumped, and woken, each time SIGINT or SIGTERM arrives, after the handler that
/// [`hook_signals`] found installed ran: a wait can sleep on it (with its other words) and
/// wake for a signal that arrived at any moment, even just before the sleep, without polling.
pub static SIGNAL_WORD: AtomicU32 = AtomicU32::new(0);

const HOOKED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// A handler `on_signal` chains to: written once into a free entry of [`PREVIOUS`], then
/// published by storing its index + 1 in [`CURRENT`], so the signal handler always reads a
/// handler with its own flags.
struct Previous {
    handler: std::sync::atomic::AtomicUsize,
    flags: std::sync::atomic::AtomicI32,
}
/// Handlers chained to, per hooked signal. A program that replaces its handler more often than
/// this is no longer hooked (its waits then poll).
const MAX_REHOOKS: usize = 16;
#[allow(clippy::declare_interior_mutable_const)]
const NO_PREVIOUS: Previous = Previous {
    handler: std::sync::atomic::AtomicUsize::new(0),
    flags: std::sync::atomic::AtomicI32::new(0),
};
#[allow(clippy::declare_interior_mutable_const)]
const NO_PREVIOUS_ROW: [Previous; MAX_REHOOKS] = [NO_PREVIOUS; MAX_REHOOKS];
static PREVIOUS: [[Previous; MAX_REHOOKS]; 2] = [NO_PREVIOUS_ROW; 2];
/// Per hooked signal: 1 + the index in [`PREVIOUS`] of the handler chained to now, 0: none.
/// Entries are taken in order, so it is also the number of entries used.
static CURRENT: [std::sync::atomic::AtomicUsize; 2] =
    [std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0)];
/// Serialises [`hook_signals`] between threads.
static HOOKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    use std::sync::atomic::Ordering;
    // SAFETY: errno is this thread's; saved and restored around our system call, as a signal
    // handler must.
    let errno = unsafe { *errno_location() };
    if let Some(i) = HOOKED.iter().position(|&s| s == sig) {
        // Acquire: pairs with the Release in `hook_signals`; the entry was complete before.
        let current = CURRENT[i].load(Ordering::Acquire);
        if current > 0 {
            let prev = &PREVIOUS[i][current - 1];
            let (handler, flags) =
                (prev.handler.load(Ordering::Relaxed), prev.flags.load(Ordering::Relaxed));
            if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
                // SAFETY: `handler` is the handler function that was installed for `sig` when
                // `hook_signals` replaced it with ours, called as its own flags say it expects.
                unsafe {
                    if flags & libc::SA_SIGINFO != 0 {
                        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                            std::mem::transmute(handler);
                        f(sig, info, ctx);
                    } else {
                        let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                        f(sig);
                    }
                }
            }
        }
    }
    // After the handler: a waiter woken by this sees what the handler recorded.
    SIGNAL_WORD.fetch_add(1, Ordering::SeqCst);
    wake_local(&SIGNAL_WORD);
    // SAFETY: as above.
    unsafe { *errno_location() = errno };
}

/// Routes SIGINT and SIGTERM through a hook that runs the handler installed now (Python's,
/// say) and then bumps [`SIGNAL_WORD`]. Signals left at their default or ignored are left
/// alone. Idempotent and cheap (one `sigaction` query per signal); call it before each check
/// of the signal state, so that a handler installed later is hooked too.
pub fn hook_signals() {
    use std::sync::atomic::Ordering;
    let _one_at_a_time = HOOKING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (i, &sig) in HOOKED.iter().enumerate() {
        // SAFETY: a zeroed sigaction is a valid value of this plain C struct.
        let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: sigaction with a null new action only reads the current one into `cur`.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut cur) } != 0 {
            continue;
        }
        let handler = cur.sa_sigaction;
        if handler == on_signal as *const () as usize
            || handler == libc::SIG_DFL
            || handler == libc::SIG_IGN
        {
            continue;
        }
        let used = CURRENT[i].load(Ordering::Relaxed);
        if used == MAX_REHOOKS {
            continue;
        }
        let entry = &PREVIOUS[i][used];
        entry.handler.store(handler, Ordering::Relaxed);
        entry.flags.store(cur.sa_flags, Ordering::Relaxed);
        // Release: the entry is complete before a handler that reads the index reads it.
        CURRENT[i].store(used + 1, Ordering::Release);
        let mut ours = cur;
        ours.sa_sigaction = on_signal as *const () as usize;
        ours.sa_flags = cur.sa_flags | libc::SA_SIGINFO;
        // SAFETY: installs `on_signal`, which is async-signal-safe (atomics, `wake_local`, and
        // the previous handler, which was already running in signal context) and chains to the
        // handler it replaces; the mask and other flags are the previous handler's.
        unsafe { libc::sigaction(sig, &ours, std::ptr::null_mut()) };
    }
}
