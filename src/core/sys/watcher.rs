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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::liveness::mark_dead;
use super::{WaitWord, Waker, OWNER_MASK};

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

/// Probes the keeper a liveness word holding `seen` names: `Some(true)` (and the word marked)
/// when the kernel says its thread is gone, `Some(false)` when it runs or the word changed,
/// `None` when the kernel cannot tell (the caller then probes the role's lock).
///
/// The node is read before the word and again after the probe: a pair read while a new keeper
/// of the same process took the entry over (it writes the node first) is never taken for the
/// old keeper's, so a live keeper is not marked for a dead one's thread.
pub(crate) fn keeper_found_dead(
    keeper_alive: fn(u32, u64) -> Option<bool>,
    word: &AtomicU32,
    node: &AtomicU64,
    seen: u32,
) -> Option<bool> {
    // Acquire: pairs with the keeper's Release stores (node first, then the word).
    let tid = node.load(Ordering::Acquire);
    if word.load(Ordering::Acquire) != seen {
        return Some(false); // changed: the caller reads it again
    }
    match keeper_alive(word_pid(seen), tid) {
        Some(false) if node.load(Ordering::Acquire) == tid => {
            mark_dead(word, seen);
            Some(true)
        }
        Some(_) => Some(false),
        None => None,
    }
}

/// The kernel's event queue, as the watcher uses it.
pub(crate) trait Events: Send + Sync {
    /// Asks for a notice when process `pid` exits or execs: `Ok(false)` if it is gone already.
    fn watch(&self, pid: u32) -> io::Result<bool>;
    /// Makes a [`next`](Events::next) in progress return. Async-signal-safe.
    fn poke(&self);
    /// Waits for events, at most `timeout` (`None`: until one comes); pushes onto `ended`
    /// the pids whose process ended (exited, or exec'd).
    fn next(&self, ended: &mut Vec<u32>, timeout: Option<Duration>) -> io::Result<()>;
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
    /// Liveness words: (keeper pid, keeper thread id, word address, expected value).
    deaths: Vec<(u32, u64, usize, u32)>,
    /// Every word with its expected value (cancel words included).
    words: Vec<(usize, u32)>,
    /// Woken: its wake is repeated until it leaves.
    woken: bool,
}

#[derive(Default)]
struct Registry {
    sleeps: Vec<Registration>,
    next_id: u64,
    /// Keepers (pid, thread id) whose process's end was reported while the probe still found
    /// their thread, and until when to probe again: the report may come a moment before the
    /// kernel stops finding an exiting process's threads. Past that moment the report was a
    /// stale one (the pid is another process's now, or an exec started a new keeper).
    suspects: Vec<(u32, u64, std::time::Instant)>,
}

/// How long a keeper whose end was reported is probed again while its thread is still found.
const SUSPECT_FOR: Duration = Duration::from_millis(200);

/// Removes a registration when the sleep that made it ends, however it ends.
struct Registered<'w> {
    watcher: &'w Watcher,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.watcher.registry().sleeps.retain(|s| s.id != self.id);
    }
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
            let retry = {
                let r = self.registry();
                r.sleeps.iter().any(|s| s.woken) || !r.suspects.is_empty()
            };
            ended.clear();
            if self.events.next(&mut ended, retry.then_some(RETRY)).is_err() {
                // The queue failed (closed behind our back?): do not spin on it.
                std::thread::sleep(crate::timing::FALLBACK_POLL);
            }
            let poked = self.poked.swap(false, Ordering::SeqCst);
            self.wake_changed(&ended, poked || retry);
        }
    }

    /// Marks the liveness words of the keepers of processes in `ended` (and of earlier
    /// suspects) whose threads the kernel no longer finds, and wakes every registration that is
    /// woken already, names one of them, or (when `compare`) has a word that changed.
    fn wake_changed(&self, ended: &[u32], compare: bool) {
        let now = std::time::Instant::now();
        let mut guard = self.registry();
        let r = &mut *guard;
        r.suspects.retain(|s| s.2 > now);
        for s in &mut r.sleeps {
            let mut wake = s.woken;
            for &(pid, tid, addr, expected) in &s.deaths {
                let suspect = r.suspects.iter().any(|x| x.0 == pid && x.1 == tid);
                if !ended.contains(&pid) && !suspect {
                    continue;
                }
                // Only a keeper thread the kernel does not find is dead (see `suspects`).
                if (self.ops.keeper_alive)(pid, tid) == Some(true) {
                    if !suspect {
                        r.suspects.push((pid, tid, now + SUSPECT_FOR));
                    }
                    continue;
                }
                // SAFETY: the registration exists (we hold the lock it is removed under).
                mark_dead(unsafe { word(addr) }, expected);
                wake = true;
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

    /// Processes whose end will never be reported (gone before a sleep asked): every
    /// registration naming them learns it now, and the watcher thread, poked, repeats the wakes
    /// of those not asleep yet.
    fn learned_gone(&self, gone: &[u32]) {
        self.wake_changed(gone, false);
        self.events.poke();
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
        for w in words {
            if let Waker::Death { node } = w.waker {
                // Acquire: pairs with the keeper's Release stores (node first, then the word).
                let tid = node.load(Ordering::Acquire);
                reg.deaths.push((word_pid(w.expected), tid, w.word.as_ptr() as usize, w.expected));
            }
        }
        let pids: Vec<u32> = reg.deaths.iter().map(|d| d.0).collect();
        // SYNC POINT: watch (registered before the ends are asked for, the keepers probed and
        // the words compared; see the module docs).
        let _registered = {
            let mut r = self.registry();
            r.next_id += 1;
            reg.id = r.next_id;
            r.sleeps.push(reg);
            Registered { watcher: self, id: r.next_id }
        };
        // Every sleep asks for its own keepers' ends (kqueue keeps one entry per pid, so this
        // is cheap): a pid another sleep asked for may have died, or been reused, since.
        let mut gone = Vec::new();
        for &pid in &pids {
            match self.events.watch(pid) {
                Ok(true) => {}
                Ok(false) => gone.push(pid),
                // Cannot be watched: look again in a while (the caller probes the lock).
                Err(_) => timeout = timeout.min(crate::timing::LIVENESS_PERIOD),
            }
        }
        if !gone.is_empty() {
            self.learned_gone(&gone);
        }
        for w in words {
            if let Waker::Death { node } = w.waker {
                if keeper_found_dead(self.ops.keeper_alive, w.word, node, w.expected).is_none() {
                    timeout = timeout.min(crate::timing::LIVENESS_PERIOD);
                }
            }
        }
        let changed = words.iter().any(|w| w.word.load(Ordering::SeqCst) != w.expected);
        if !changed {
            (self.ops.wait)(sleep_on.word, sleep_on.expected, timeout, shared == 1);
        }
        true
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    //! The watcher on Linux: pidfds for the processes' ends, futexes for the one-word waits.
    use super::*;
    use crate::sys::OWNER_DIED;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
            if self.fds.lock().unwrap().iter().any(|f| f.0 == pid) {
                return Ok(true); // one entry per pid, as kqueue keeps
            }
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
        fn next(&self, ended: &mut Vec<u32>, timeout: Option<Duration>) -> io::Result<()> {
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
            Ok(())
        }
    }

    fn futex_wait(w: &AtomicU32, expected: u32, timeout: Duration, _shared: bool) {
        crate::sys::wait_word(w, expected, timeout);
    }
    fn futex_wake(w: &AtomicU32, _shared: bool) {
        crate::sys::wake_word(w);
    }
    /// A thread runs if /proc has it and it is no zombie (an exited process not reaped yet,
    /// which macOS's probe no longer finds either).
    fn task_alive(pid: u32, tid: u64) -> Option<bool> {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
            return Some(false);
        };
        let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
        Some(!matches!(state, Some("Z" | "X")))
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

    /// The pid of a process that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
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
        let pid = dead_pid();
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
        let reg = registered(w, &data, &cancel, 0, 0);
        cancel.store(1, Ordering::SeqCst);
        w.poke();
        std::thread::sleep(Duration::from_millis(50)); // the first wake is gone by now
        let start = Instant::now();
        futex_wait(&data, 0, Duration::from_secs(60), true);
        drop(reg);
        assert!(start.elapsed() < Duration::from_secs(30), "the wake was not repeated");
    }

    /// Registers a sleep on `data` watching `live` (keeper `pid`, thread `tid`) by hand, as
    /// `wait_any` does before its last check; removed when the returned guard drops.
    fn registered<'w>(
        w: &'w Watcher,
        data: &AtomicU32,
        live: &AtomicU32,
        pid: u32,
        tid: u64,
    ) -> Registered<'w> {
        let seen = live.load(Ordering::Relaxed);
        let mut r = w.registry();
        r.next_id += 1;
        let id = r.next_id;
        r.sleeps.push(Registration {
            id,
            sleep_on: data.as_ptr() as usize,
            shared: true,
            deaths: vec![(pid, tid, live.as_ptr() as usize, seen)],
            words: vec![(data.as_ptr() as usize, 0), (live.as_ptr() as usize, seen)],
            woken: false,
        });
        Registered { watcher: w, id }
    }

    #[test]
    fn a_death_found_by_another_sleep_wakes_this_one_even_before_it_sleeps() {
        // Sleep B is registered and past its last check; sleep A (another thread) finds the
        // keeper gone when it asks for its end, while the watcher thread waits with no timeout.
        // B must be woken although it was not asleep yet when A marked the word.
        let w = watcher();
        let pid = dead_pid();
        let data = AtomicU32::new(0);
        let (live, _) = keeper_of(pid);
        let seen = live.load(Ordering::Relaxed);
        let b = registered(w, &data, &live, pid, u64::from(pid));
        std::thread::sleep(Duration::from_millis(50)); // the watcher thread is in poll(-1)
        w.learned_gone(&[pid]); // A's path, on A's thread
        assert_eq!(live.load(Ordering::Relaxed), seen | OWNER_DIED);
        std::thread::sleep(Duration::from_millis(50)); // B reaches its sleep after that wake
        let start = Instant::now();
        futex_wait(&data, 0, Duration::from_secs(60), true);
        drop(b);
        assert!(start.elapsed() < Duration::from_secs(30), "the wake was not repeated");
    }

    #[test]
    fn a_stale_end_does_not_mark_a_live_keeper() {
        // An end reported for a pid whose keeper runs (the pid reused, or an exec that started
        // a new keeper): the word is left alone.
        let w = watcher();
        let data = AtomicU32::new(0);
        let me = std::process::id();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u64;
        let live = AtomicU32::new(keeper_word(me, tid).unwrap());
        let seen = live.load(Ordering::Relaxed);
        let reg = registered(w, &data, &live, me, tid);
        w.wake_changed(&[me], false);
        drop(reg);
        assert_eq!(live.load(Ordering::Relaxed), seen, "a live keeper was marked dead");
        // The probe agrees.
        assert_eq!(keeper_found_dead(task_alive, &live, &AtomicU64::new(tid), seen), Some(false));
        assert_eq!(live.load(Ordering::Relaxed), seen);
    }

    #[test]
    fn an_end_reported_before_the_thread_is_gone_is_probed_again() {
        // The report may come a moment before the kernel stops finding the exiting keeper's
        // thread: the watcher probes again (every RETRY, for SUSPECT_FOR) and marks it then.
        let w = watcher();
        let child = Child(std::process::Command::new("sleep").arg("60").spawn().unwrap());
        let pid = child.0.id();
        let data = AtomicU32::new(0);
        let live = AtomicU32::new(keeper_word(pid, u64::from(pid)).unwrap());
        let seen = live.load(Ordering::Relaxed);
        let reg = registered(w, &data, &live, pid, u64::from(pid));
        w.wake_changed(&[pid], false); // reported while it still runs: a suspect, not marked
        assert_eq!(live.load(Ordering::Relaxed), seen);
        w.poke(); // the watcher thread now probes it every RETRY
        drop(child); // killed and reaped
        let start = Instant::now();
        while live.load(Ordering::Acquire) == seen && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(reg);
        assert_eq!(live.load(Ordering::Relaxed), seen | OWNER_DIED, "never probed again");
    }

    #[test]
    fn a_probe_racing_a_new_keeper_of_the_entry_does_not_mark_it() {
        // The old keeper's thread is gone, but while the probe asked, a new keeper of the same
        // process took the entry over (node first) and wrote the same word value: not marked.
        static NODE: AtomicU64 = AtomicU64::new(7);
        fn gone_while_taken_over(_pid: u32, _tid: u64) -> Option<bool> {
            NODE.store(8, Ordering::Release);
            Some(false)
        }
        let live = AtomicU32::new(keeper_word(std::process::id(), 7).unwrap());
        let seen = live.load(Ordering::Relaxed);
        assert_eq!(keeper_found_dead(gone_while_taken_over, &live, &NODE, seen), Some(false));
        assert_eq!(live.load(Ordering::Relaxed), seen);
        // Without the take-over the same answer marks it; an unknown answer is passed on.
        assert_eq!(keeper_found_dead(|_, _| Some(false), &live, &NODE, seen), Some(true));
        assert_eq!(live.load(Ordering::Relaxed), seen | OWNER_DIED);
        assert_eq!(keeper_found_dead(|_, _| None, &live, &NODE, seen), Some(false), "changed word");
        let fresh = AtomicU32::new(seen);
        assert_eq!(keeper_found_dead(|_, _| None, &fresh, &NODE, seen), None);
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
