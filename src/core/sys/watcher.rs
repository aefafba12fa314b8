//! A multi-word wait for systems whose kernel sleeps on one word only and reports a process's
//! end through an event queue: macOS (`os_sync_wait_on_address`, kqueue's `EVFILT_PROC`). It
//! gives them what Linux's `futex_waitv` and Windows' `WaitForMultipleObjects` give: a sleep
//! that new data, a peer's death, a cancel and Ctrl+C all end, with no periodic wake-up.
//!
//! A sleeping call ([`Watcher::wait_any`]) *registers* what it waits for, then sleeps in the
//! kernel on its *sleep word*: the data word (a frame published, room given back), which other
//! processes wake. One thread per process, the *watcher*, waits for the kernel's events and
//! turns each into a change the sleeper will see, plus a wake of its sleep word:
//!
//! | event | what the watcher does |
//! |---|---|
//! | a watched keeper's process ended (exit, or exec: the keeper thread is gone either way) | sets `OWNER_DIED` in every registered liveness word that still names it, wakes their sleep words |
//! | a poke ([`Watcher::poke`]): a cancel (`wake_local`), or SIGINT/SIGTERM after the program's handler ran and bumped `SIGNAL_WORD` | wakes the sleep word of every registration one of whose words changed |
//!
//! Why no wake-up is lost (`SYNC POINT: watch`):
//! - The sleeper registers, asks for the end of each keeper's process, checks that each keeper
//!   still runs (its pid *and* its 64-bit thread id, which is never reused: a reused pid is
//!   never mistaken), and only then compares every word with the value it expects. A change
//!   after that comparison finds the registration.
//! - The kernel compares the sleep word only, so a wake that lands between that comparison and
//!   the sleep would be lost: the watcher repeats the wake every [`RETRY`] until the sleeper
//!   removes its registration. That is the only repetition, and it lasts only while a woken
//!   sleeper has not left yet (normally one round: the first wake finds it asleep).
//! - Words are touched by the watcher only under the registry's lock, and only while their
//!   registration exists; the sleeper removes it under that lock before it returns, so no word
//!   is touched after the call that lent it returned.
//!
//! The waits and the events are the platform's (`Ops`, `Events`): macOS gives kqueue and
//! `os_sync`; the tests give Linux's pidfds and futexes, so this logic runs here too.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{WaitWord, Waker, OWNER_DIED, OWNER_MASK};

/// How often a wake that may have landed just before its sleeper slept is repeated, while
/// that sleeper has not left.
pub(crate) const RETRY: Duration = Duration::from_millis(1);

/// The bits of a liveness word that hold the keeper's pid; the bits above, up to
/// `OWNER_MASK`, hold the low bits of its thread id (so a new keeper of the same process
/// writes another value, see [`keeper_word`]).
pub(crate) const PID_BITS: u32 = 17;
const PID_MASK: u32 = (1 << PID_BITS) - 1;

/// The liveness word a keeper writes: its pid, and the low bits of its thread id above it.
/// `None` if the pid does not fit (macOS pids stay below 100,000).
pub(crate) fn keeper_word(pid: u32, tid: u64) -> Option<u32> {
    if pid == 0 || pid > PID_MASK {
        return None;
    }
    Some((pid | ((tid as u32) << PID_BITS)) & OWNER_MASK)
}

/// The keeper's pid in a liveness word.
pub(crate) fn word_pid(v: u32) -> u32 {
    v & PID_MASK
}

/// Writes `OWNER_DIED` into a liveness word that still holds `seen` (its owner was found dead).
pub(crate) fn mark_dead(word: &AtomicU32, seen: u32) {
    if seen & OWNER_MASK != 0 && seen & OWNER_DIED == 0 {
        // AcqRel: a waiter that sees the flag sees what the watcher saw.
        let _ = word.compare_exchange(seen, seen | OWNER_DIED, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The kernel's event queue, as the watcher uses it.
pub(crate) trait Events: Send + Sync {
    /// Asks for a notice when process `pid` exits or execs: `Ok(false)` if it is gone already.
    fn watch(&self, pid: u32) -> io::Result<bool>;
    /// Makes a [`next`](Events::next) in progress return. Async-signal-safe.
    fn poke(&self);
    /// Waits for events, at most `timeout` (`None`: until one comes); pushes onto `ended`
    /// the pids whose process ended.
    fn next(&self, ended: &mut Vec<u32>, timeout: Option<Duration>);
}

/// The platform's one-word waits and its probe of a keeper.
pub(crate) struct Ops {
    /// Sleeps while `*word == expected`, at most the timeout, in any process's view of the
    /// word (`true`) or this process's only.
    pub(crate) wait: fn(&AtomicU32, u32, Duration, bool),
    /// Wakes every sleeper on the word (in any process: `true`).
    pub(crate) wake: fn(&AtomicU32, bool),
    /// Whether thread `tid` of process `pid` runs: `Some(false)` only when the kernel says it
    /// does not; `None` when it cannot tell.
    pub(crate) keeper_alive: fn(u32, u64) -> Option<bool>,
}

/// One sleeping call.
struct Registration {
    id: u64,
    /// The word it sleeps on (an address: valid while the registration exists).
    sleep_on: usize,
    shared: bool,
    /// Liveness words: (keeper pid, word address, expected value).
    deaths: Vec<(u32, usize, u32)>,
    /// Every word with its expected value (cancel words included).
    words: Vec<(usize, u32)>,
    /// Woken: its wake is repeated until it leaves.
    woken: bool,
}

#[derive(Default)]
struct Registry {
    sleeps: Vec<Registration>,
    next_id: u64,
    /// Pids whose end was asked for and has not come.
    watched: Vec<u32>,
}

/// The registry and its thread (see the module docs).
pub(crate) struct Watcher {
    events: Box<dyn Events>,
    ops: Ops,
    registry: Mutex<Registry>,
    /// Set by [`poke`](Watcher::poke): the next round compares every registered word.
    poked: AtomicBool,
}

/// The word behind an address of the registry.
///
/// # Safety
/// The address must come from a registration that still exists (its caller's borrow is live).
unsafe fn word<'a>(addr: usize) -> &'a AtomicU32 {
    // SAFETY: the caller's contract.
    unsafe { &*(addr as *const AtomicU32) }
}

impl Watcher {
    /// Starts a watcher thread over `events`; it lives as long as the process.
    pub(crate) fn start(events: Box<dyn Events>, ops: Ops) -> io::Result<&'static Watcher> {
        let w: &'static Watcher = Box::leak(Box::new(Watcher {
            events,
            ops,
            registry: Mutex::new(Registry::default()),
            poked: AtomicBool::new(false),
        }));
        std::thread::Builder::new().name("shmframes-watcher".into()).stack_size(64 * 1024).spawn(
            move || {
                super::block_signals();
                w.run();
            },
        )?;
        Ok(w)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Has the watcher compare every registered word with its expected value and wake those
    /// that changed. Async-signal-safe (an atomic store and the queue's poke).
    pub(crate) fn poke(&self) {
        self.poked.store(true, Ordering::SeqCst);
        self.events.poke();
    }

    fn run(&self) {
        let mut ended = Vec::new();
        loop {
            let retry = self.registry().sleeps.iter().any(|s| s.woken);
            ended.clear();
            self.events.next(&mut ended, retry.then_some(RETRY));
            let poked = self.poked.swap(false, Ordering::SeqCst);
            self.wake_changed(&ended, poked || retry);
        }
    }

    /// Marks the liveness words of the processes in `ended`, and wakes every registration
    /// that is woken already, names one of them, or (when `compare`) has a word that changed.
    fn wake_changed(&self, ended: &[u32], compare: bool) {
        let mut r = self.registry();
        r.watched.retain(|p| !ended.contains(p));
        for s in &mut r.sleeps {
            let mut wake = s.woken;
            for &(pid, addr, expected) in &s.deaths {
                if ended.contains(&pid) {
                    // SAFETY: the registration exists (we hold the lock it is removed under).
                    mark_dead(unsafe { word(addr) }, expected);
                    wake = true;
                }
            }
            if compare && !wake {
                // SAFETY: as above.
                wake = s.words.iter().any(|&(a, e)| unsafe { word(a) }.load(Ordering::SeqCst) != e);
            }
            if wake {
                s.woken = true;
                // SAFETY: as above.
                (self.ops.wake)(unsafe { word(s.sleep_on) }, s.shared);
            }
        }
    }

    /// Sleeps until one of `words` differs from its expected value or is woken, `timeout`
    /// passes, or (for liveness words) its keeper's process ends; callers re-check. `false`
    /// (no sleep) for a set of words it cannot sleep on: more than one shared word.
    pub(crate) fn wait_any(&self, words: &[WaitWord<'_>], timeout: Option<Duration>) -> bool {
        let shared = words.iter().filter(|w| matches!(w.waker, Waker::Shared { .. })).count();
        if shared > 1 {
            return false;
        }
        let Some(sleep_on) = words
            .iter()
            .find(|w| matches!(w.waker, Waker::Shared { .. }))
            .or_else(|| words.iter().find(|w| matches!(w.waker, Waker::Local)))
        else {
            // Only liveness words, or none: nothing anybody wakes. Not used by the channel.
            return false;
        };
        let mut timeout = timeout.unwrap_or(crate::timing::UNBOUNDED_STEP);
        let mut reg = Registration {
            id: 0,
            sleep_on: sleep_on.word.as_ptr() as usize,
            shared: shared == 1,
            deaths: Vec::new(),
            words: words.iter().map(|w| (w.word.as_ptr() as usize, w.expected)).collect(),
            woken: false,
        };
        let mut keepers = Vec::new();
        for w in words {
            if let Waker::Death { node } = w.waker {
                let pid = word_pid(w.expected);
                reg.deaths.push((pid, w.word.as_ptr() as usize, w.expected));
                keepers.push((pid, node, w.word, w.expected));
            }
        }
        // SYNC POINT: watch (registered before the keepers are checked and the words compared;
        // see the module docs).
        let (id, to_watch) = {
            let mut r = self.registry();
            r.next_id += 1;
            reg.id = r.next_id;
            let mut to_watch: Vec<u32> =
                reg.deaths.iter().map(|d| d.0).filter(|p| !r.watched.contains(p)).collect();
            to_watch.sort_unstable();
            to_watch.dedup();
            r.watched.extend(&to_watch);
            r.sleeps.push(reg);
            (r.next_id, to_watch)
        };
        let mut gone = Vec::new();
        for pid in to_watch {
            match self.events.watch(pid) {
                Ok(true) => {}
                Ok(false) => gone.push(pid),
                Err(_) => {
                    // Cannot be watched now: look again in a while (the caller's lock probe).
                    self.registry().watched.retain(|&p| p != pid);
                    timeout = timeout.min(crate::timing::LIVENESS_PERIOD);
                }
            }
        }
        if !gone.is_empty() {
            // Their end will never be reported: every registration naming them learns it now.
            self.wake_changed(&gone, false);
        }
        for (pid, node, word, expected) in keepers {
            // Acquire: pairs with the keeper's Release stores (thread id first, then the word).
            let tid = node.load(Ordering::Acquire);
            if word.load(Ordering::Acquire) == expected
                && (self.ops.keeper_alive)(pid, tid) == Some(false)
            {
                mark_dead(word, expected);
            }
        }
        let changed = words.iter().any(|w| w.word.load(Ordering::SeqCst) != w.expected);
        if !changed {
            (self.ops.wait)(sleep_on.word, sleep_on.expected, timeout, shared == 1);
        }
        self.registry().sleeps.retain(|s| s.id != id);
        true
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    //! The watcher on Linux: pidfds for the processes' ends, futexes for the one-word waits.
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    use std::time::Instant;

    /// pidfds polled with an eventfd for pokes.
    struct PidFds {
        poke: OwnedFd,
        fds: Mutex<Vec<(u32, OwnedFd)>>,
    }

    impl PidFds {
        fn new() -> PidFds {
            // SAFETY: plain eventfd creation.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            assert!(fd >= 0);
            // SAFETY: a descriptor we just made and own.
            PidFds { poke: unsafe { OwnedFd::from_raw_fd(fd) }, fds: Mutex::new(Vec::new()) }
        }
    }

    impl Events for PidFds {
        fn watch(&self, pid: u32) -> io::Result<bool> {
            // SAFETY: pidfd_open takes a pid and flags.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
            if fd < 0 {
                let e = io::Error::last_os_error();
                return if e.raw_os_error() == Some(libc::ESRCH) { Ok(false) } else { Err(e) };
            }
            // SAFETY: a descriptor we just made and own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            self.fds.lock().unwrap().push((pid, fd));
            self.poke();
            Ok(true)
        }
        fn poke(&self) {
            let one = 1u64;
            // SAFETY: writes 8 bytes from our u64 to our eventfd.
            unsafe { libc::write(self.poke.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
        fn next(&self, ended: &mut Vec<u32>, timeout: Option<Duration>) {
            let mut polls =
                vec![libc::pollfd { fd: self.poke.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            let pids: Vec<u32> = {
                let fds = self.fds.lock().unwrap();
                polls.extend(fds.iter().map(|(_, f)| libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }));
                fds.iter().map(|f| f.0).collect()
            };
            let ms = timeout.map_or(-1, |t| t.as_millis().max(1) as i32);
            // SAFETY: polls our own array of descriptors.
            unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
            let mut buf = 0u64;
            // SAFETY: reads 8 bytes into our u64 (non-blocking).
            unsafe { libc::read(self.poke.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
            for (p, pid) in polls[1..].iter().zip(pids) {
                if p.revents != 0 {
                    ended.push(pid);
                }
            }
            self.fds.lock().unwrap().retain(|(p, _)| !ended.contains(p));
        }
    }

    fn futex_wait(w: &AtomicU32, expected: u32, timeout: Duration, _shared: bool) {
        crate::sys::wait_word(w, expected, timeout);
    }
    fn futex_wake(w: &AtomicU32, _shared: bool) {
        crate::sys::wake_word(w);
    }
    fn task_alive(pid: u32, tid: u64) -> Option<bool> {
        Some(std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists())
    }

    fn watcher() -> &'static Watcher {
        let ops = Ops { wait: futex_wait, wake: futex_wake, keeper_alive: task_alive };
        Watcher::start(Box::new(PidFds::new()), ops).unwrap()
    }

    /// A child that sleeps until killed; reaped on drop.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A liveness word naming `pid`'s main thread, and its node.
    fn keeper_of(pid: u32) -> (AtomicU32, AtomicU64) {
        (AtomicU32::new(keeper_word(pid, u64::from(pid)).unwrap()), AtomicU64::new(u64::from(pid)))
    }

    #[test]
    fn a_keepers_death_wakes_the_sleep_and_marks_its_word() {
        let w = watcher();
        let mut child = Child(std::process::Command::new("sleep").arg("60").spawn().unwrap());
        let pid = child.0.id();
        let shared = Arc::new((AtomicU32::new(0), keeper_of(pid)));
        let s = shared.clone();
        let sleeper = std::thread::spawn(move || {
            let (data, (live, node)) = &*s;
            let words = [
                WaitWord { word: data, expected: 0, waker: Waker::Shared { sleeper: 0 } },
                WaitWord {
                    word: live,
                    expected: live.load(Ordering::Relaxed),
                    waker: Waker::Death { node },
                },
            ];
            let start = Instant::now();
            while live.load(Ordering::Acquire) & OWNER_DIED == 0 {
                assert!(w.wait_any(&words, Some(Duration::from_secs(60))));
            }
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        child.0.kill().unwrap();
        let _ = child.0.wait();
        let waited = sleeper.join().unwrap();
        assert!(waited < Duration::from_secs(30), "woken by the timeout only: {waited:?}");
        assert!(w.registry().sleeps.is_empty(), "the sleep left its registration behind");
    }

    #[test]
    fn a_gone_or_replaced_keeper_is_dead_at_once() {
        let w = watcher();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let data = AtomicU32::new(0);
        let (live, node) = keeper_of(pid);
        let seen = live.load(Ordering::Relaxed);
        let words = [
            WaitWord { word: &data, expected: 0, waker: Waker::Shared { sleeper: 0 } },
            WaitWord { word: &live, expected: seen, waker: Waker::Death { node: &node } },
        ];
        let start = Instant::now();
        assert!(w.wait_any(&words, Some(Duration::from_secs(60))));
        assert_eq!(live.load(Ordering::Relaxed), seen | OWNER_DIED);
        // A live process whose keeper thread is not there (a reused pid, or an exec): dead.
        let (live, _) = keeper_of(std::process::id());
        let node = AtomicU64::new(u64::MAX);
        let seen = live.load(Ordering::Relaxed);
        let words = [
            WaitWord { word: &data, expected: 0, waker: Waker::Shared { sleeper: 0 } },
            WaitWord { word: &live, expected: seen, waker: Waker::Death { node: &node } },
        ];
        assert!(w.wait_any(&words, Some(Duration::from_secs(60))));
        assert_eq!(live.load(Ordering::Relaxed), seen | OWNER_DIED);
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn data_wakes_and_pokes_end_the_sleep() {
        let w = watcher();
        let words = Arc::new((AtomicU32::new(0), AtomicU32::new(0), keeper_of(std::process::id())));
        for poke in [false, true] {
            let s = words.clone();
            let sleeper = std::thread::spawn(move || {
                let (data, cancel, (live, node)) = &*s;
                let (d, c) = (data.load(Ordering::Relaxed), cancel.load(Ordering::Relaxed));
                let ws = [
                    WaitWord { word: data, expected: d, waker: Waker::Shared { sleeper: 0 } },
                    WaitWord {
                        word: live,
                        expected: live.load(Ordering::Relaxed),
                        waker: Waker::Death { node },
                    },
                    WaitWord { word: cancel, expected: c, waker: Waker::Local },
                ];
                let start = Instant::now();
                while data.load(Ordering::Acquire) == d && cancel.load(Ordering::Acquire) == c {
                    assert!(w.wait_any(&ws, Some(Duration::from_secs(60))));
                }
                start.elapsed()
            });
            std::thread::sleep(Duration::from_millis(100));
            if poke {
                // A cancel: another word changes, and the watcher is poked (`wake_local`).
                words.1.fetch_add(1, Ordering::SeqCst);
                w.poke();
            } else {
                words.0.fetch_add(1, Ordering::SeqCst);
                crate::sys::wake_word(&words.0);
            }
            let waited = sleeper.join().unwrap();
            assert!(waited < Duration::from_secs(30), "poke {poke}: woken by the timeout only");
        }
        assert_eq!(words.2 .0.load(Ordering::Relaxed) & OWNER_DIED, 0, "a live keeper was marked");
    }

    #[test]
    fn a_wake_before_the_sleep_is_repeated_until_the_sleeper_leaves() {
        // The race of the module docs, forced: the word changes and the watcher wakes while the
        // sleeper is registered but not asleep; its sleep (on the unchanged data word) must
        // still end long before its timeout.
        let w = watcher();
        let data = AtomicU32::new(0);
        let cancel = AtomicU32::new(0);
        let id = {
            let mut r = w.registry();
            r.next_id += 1;
            let id = r.next_id;
            r.sleeps.push(Registration {
                id,
                sleep_on: data.as_ptr() as usize,
                shared: true,
                deaths: Vec::new(),
                words: vec![(data.as_ptr() as usize, 0), (cancel.as_ptr() as usize, 0)],
                woken: false,
            });
            id
        };
        cancel.store(1, Ordering::SeqCst);
        w.poke();
        std::thread::sleep(Duration::from_millis(50)); // the first wake is gone by now
        let start = Instant::now();
        futex_wait(&data, 0, Duration::from_secs(60), true);
        w.registry().sleeps.retain(|s| s.id != id);
        assert!(start.elapsed() < Duration::from_secs(30), "the wake was not repeated");
    }

    #[test]
    fn keeper_words_hold_the_pid_and_tell_keepers_apart() {
        let a = keeper_word(99_999, 7).unwrap();
        let b = keeper_word(99_999, 8).unwrap();
        assert_eq!((word_pid(a), word_pid(b)), (99_999, 99_999));
        assert_ne!(a, b, "two keepers of one process must write different words");
        assert_eq!(a & !OWNER_MASK, 0);
        assert_eq!(keeper_word(1 << 17, 1), None);
        assert_eq!(keeper_word(0, 1), None);
    }
}
