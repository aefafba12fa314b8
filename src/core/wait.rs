//! Waiting: deadlines, cancellation, the one wait loop every blocking call uses, and sleeping
//! until the other side moves without burning CPU and without lost wake-ups.
//!
//! # Deadlines and cancellation
//!
//! Every blocking call of the core ([`crate::Reader::open`], [`crate::Reader::read`],
//! [`crate::Reader::latest`], [`crate::Writer::frame`], [`crate::Writer::wait_for_room`]) takes a
//! [`Deadline`] (anything that converts: `None` for never, a `Duration`, an `Instant`) and ends
//! early when the [`Cancel`] given in its options is cancelled, or when the cancel's check says
//! so (how the Python layer lets Ctrl+C through, and how the producer stops on SIGINT). They all
//! run the same loop (`wait_for`): try, give up if the deadline passed or the cancel fired,
//! sleep, try again. What counts as "try again" when opening a channel is decided in one place,
//! the `OpenRetry` policy that [`crate::Reader::open`] uses.
//!
//! A consumer with nothing to read sleeps in the kernel on the ring's `head` word (a framed
//! channel's readers on the table's `published`); a producer with no room sleeps on `tail` (a
//! framed channel's producer on the table's `room`). Before sleeping, a side sets its `*_SLEEPING` bit in the
//! `reserved` word ([`crate::control`]); after publishing, the other side looks at that bit and
//! makes the wake-up system call only if it is set. In the common case (nobody asleep) a publish
//! costs a fence and a load, no system call.
//!
//! Why no wake-up is lost (a Dekker-style handshake; `SYNC POINT: sleep`):
//!
//! ```text
//! sleeper                                   waker
//! reserved |= SLEEPING                      word = new value          (the publish)
//! fence(SeqCst)                             fence(SeqCst)
//! if word == seen: wait_word(word, seen)   if reserved & SLEEPING: wake_word(word)
//! reserved &= !SLEEPING
//! ```
//!
//! The two SeqCst fences guarantee that at least one side sees the other's store: either the
//! sleeper sees the new value and does not sleep, or the waker sees the bit and wakes. And
//! `wait_word` itself re-checks `word == seen` atomically in the kernel, so a wake that lands
//! between the sleeper's check and its sleep is not lost either.
//!
//! Only the sleeper clears its bit. A waker that cleared it could be a late one: it saw the
//! bit of an earlier sleep, and clears the bit of the next one, whose sleep then begins after
//! this wake and is never woken by the wakers that follow (they see no bit). With several
//! wakers (the readers of a framed channel giving slots back) that happened: the producer slept
//! through releases until its deadline.
//!
//! Against a producer that never wakes anyone (cpp_py_shmbuf's; no mark in `reserved`) we may not
//! touch `reserved` at all: the sleeper then uses bounded timed waits that back off from
//! 50 µs to 4 ms, so a stream is picked up within a few milliseconds at worst.

use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys;
use crate::sys::liveness::{self, Watch};

/// When a blocking call gives up: at an instant, after a timeout, or never.
///
/// Converts from `Option<Duration>` (`None`: never), `Duration` and `Instant`, so every blocking
/// call takes `read(None)`, `read(Some(d))`, `read(d)` or `read(instant)` alike. A timeout too
/// large to add to the clock means never. A timeout is turned into an instant only when a wait
/// actually has to sleep (its first attempt failed), so a call that succeeds at once never
/// reads the clock: that is the hot path of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deadline(When);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum When {
    Never,
    At(Instant),
    After(Duration),
}

impl Deadline {
    /// No deadline: wait until it happens (or the wait is cancelled).
    pub const NEVER: Deadline = Deadline(When::Never);

    /// At `at`.
    pub fn at(at: Instant) -> Deadline {
        Deadline(When::At(at))
    }

    /// `timeout` from now (counted from the first time a wait has to sleep).
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(When::After(timeout))
    }

    /// The instant, if there is one (a timeout counts from now).
    pub fn instant(self) -> Option<Instant> {
        match self.0 {
            When::Never => None,
            When::At(at) => Some(at),
            When::After(timeout) => Instant::now().checked_add(timeout),
        }
    }

    /// The same deadline as an instant: a timeout starts counting now.
    fn started(self) -> Deadline {
        match self.instant() {
            Some(at) => Deadline::at(at),
            None => Deadline::NEVER,
        }
    }

    /// Time left (`Some(ZERO)` once passed), or `None` for never.
    pub fn remaining(self) -> Option<Duration> {
        match self.0 {
            When::Never => None,
            When::At(at) => Some(at.saturating_duration_since(Instant::now())),
            When::After(timeout) => Some(timeout),
        }
    }

    /// Whether it has passed.
    pub fn passed(self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

impl From<Option<Duration>> for Deadline {
    fn from(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::NEVER, Deadline::after)
    }
}

impl From<Duration> for Deadline {
    fn from(timeout: Duration) -> Deadline {
        Deadline::after(timeout)
    }
}

impl From<Instant> for Deadline {
    fn from(at: Instant) -> Deadline {
        Deadline::at(at)
    }
}

/// A way to end blocking calls early, from another thread or from a check the waiter runs.
///
/// Clones share one state: give a clone to the reader or writer (`ReaderOptions::cancel`,
/// `WriterOptions::cancel`) and keep one to call [`cancel`](Cancel::cancel). A blocking call that
/// sees it returns [`Error::Interrupted`] within one [`period`](Cancel::period) (50 ms unless a
/// check sets another), so a waiter with a cancel wakes once per period while it waits; without
/// one it sleeps undisturbed.
///
/// ```
/// use std::time::Duration;
/// use shmframes::wait::Cancel;
/// let cancel = Cancel::new();
/// let stopper = cancel.clone();
/// std::thread::spawn(move || stopper.cancel()).join().unwrap();
/// // Given to a Reader (`ReaderOptions::cancel`), a read blocked in another thread would now
/// // end with `Error::Interrupted`; a cancellable sleep ends at once:
/// assert!(cancel.is_cancelled());
/// assert!(!cancel.sleep_until(Duration::from_secs(10).into()));
/// ```
#[derive(Clone)]
pub struct Cancel(Arc<CancelInner>);

struct CancelInner {
    cancelled: AtomicBool,
    period: Duration,
    check: Option<Box<dyn Fn() -> bool + Send + Sync>>,
    /// Bumped (and woken) by [`Cancel::cancel`]: a wait that sleeps on several words at once
    /// sleeps on this one too, so a cancel needs no polling.
    wake: AtomicU32,
    /// A word that changes whenever the check may have turned true ([`Cancel::with_check_woken`]).
    check_word: Option<&'static AtomicU32>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.0.cancelled.load(Ordering::Relaxed))
            .field("period", &self.0.period)
            .field("check", &self.0.check.is_some())
            .finish()
    }
}

impl Default for Cancel {
    fn default() -> Cancel {
        Cancel::new()
    }
}

impl Cancel {
    /// How often a waiter with a plain cancel looks at it.
    pub const DEFAULT_PERIOD: Duration = crate::timing::CANCEL_PERIOD;

    /// A cancel that fires when [`cancel`](Cancel::cancel) is called.
    pub fn new() -> Cancel {
        Cancel::build(Self::DEFAULT_PERIOD, None, None)
    }

    fn build(
        period: Duration,
        check: Option<Box<dyn Fn() -> bool + Send + Sync>>,
        check_word: Option<&'static AtomicU32>,
    ) -> Cancel {
        let period = period.max(Duration::from_millis(1));
        Cancel(Arc::new(CancelInner {
            cancelled: AtomicBool::new(false),
            period,
            check,
            wake: AtomicU32::new(0),
            check_word,
        }))
    }

    /// A cancel that also fires when `check` returns `true`; waiters run `check` at least every
    /// `period` (at most one period late), and whenever they wake. `check` runs on the waiting
    /// thread: keep it short (a flag set by a signal handler, Python's `PyErr_CheckSignals`).
    pub fn with_check(
        period: Duration,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Cancel {
        Cancel::build(period, Some(Box::new(check)), None)
    }

    /// A cancel whose `check` can only turn true after `word` changes: whoever makes it true
    /// (a signal handler, say) then bumps `word` and calls
    /// [`wake_check_word`](Cancel::wake_check_word) with it. Waits
    /// that sleep on several words at once (Linux 5.16+: a framed channel's reads and the
    /// producer's waits for room) sleep on `word` too and run `check` only when it changes:
    /// no periodic wake-ups. Other waits poll `check` every `period`, as
    /// [`with_check`](Cancel::with_check) does. [`on_signals`](Cancel::on_signals) is this,
    /// with the word its signal hook bumps.
    pub fn with_check_woken(
        word: &'static AtomicU32,
        period: Duration,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Cancel {
        Cancel::build(period, Some(Box::new(check)), Some(word))
    }

    /// A cancel for signal handlers that record a signal for later (Python's do: the handler
    /// runs at the next `PyErr_CheckSignals`): `check` says whether one is pending. SIGINT and
    /// SIGTERM are routed through a hook that runs the handler installed when the wait began
    /// and then wakes the wait, so a multi-word wait sleeps with no periodic wake-up and is
    /// woken even by a signal that lands just before it sleeps; other waits poll every
    /// `period`.
    pub fn on_signals(
        period: Duration,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Cancel {
        Cancel::with_check_woken(&sys::SIGNAL_WORD, period, move || {
            // Hook before checking: a signal after the hook wakes the sleep; one before it is
            // pending for the check.
            sys::hook_signals();
            check()
        })
    }

    /// Wakes the waits of cancels made with [`with_check_woken`](Cancel::with_check_woken)
    /// on `word`: call it after changing `word`. Async-signal-safe on Linux and macOS (a
    /// private futex wake; a poke of the thread that wakes macOS's multi-word waits).
    pub fn wake_check_word(word: &AtomicU32) {
        sys::wake_local(word);
    }

    /// Ends every wait using this cancel (now and later): at once where the wait sleeps on
    /// several words, else within one period.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Release);
        // Release: a waiter that sees the new value sees `cancelled` too.
        self.0.wake.fetch_add(1, Ordering::Release);
        sys::wake_local(&self.0.wake);
    }

    /// The cancel's words as they are now, read before a wait's attempt: a cancel (or a
    /// woken check) after this changes one of them, and a sleep on them does not begin.
    fn marks(&self) -> Marks<'_> {
        fn mark(w: &AtomicU32) -> sys::WaitWord<'_> {
            sys::WaitWord { word: w, expected: w.load(Ordering::Acquire), waker: sys::Waker::Local }
        }
        let mut m = Marks { words: [mark(&self.0.wake); MAX_CANCEL_WORDS], n: 1 };
        if let Some(w) = self.0.check_word {
            m.words[1] = mark(w);
            m.n = 2;
        }
        m
    }

    /// Whether a wait must wake every period to run the check (no word tells when it changes).
    fn polls(&self) -> bool {
        self.0.check.is_some() && self.0.check_word.is_none()
    }

    /// Whether it was cancelled, or its check says stop now. A check's answer holds for that
    /// wait only: Python's Ctrl+C check says stop once per signal, and the reader stays usable
    /// after the `KeyboardInterrupt` is handled.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
            || self.0.check.as_ref().is_some_and(|check| check())
    }

    /// How long a waiter may sleep before looking again.
    pub fn period(&self) -> Duration {
        self.0.period
    }

    /// Polls `busy` every `step` while it says `true`, until it says `false` (returns `true`)
    /// or the cancel fires (returns `false`). For conditions no futex can wait on, such as
    /// "a reader attached".
    pub fn sleep_while(&self, mut busy: impl FnMut() -> bool, step: Duration) -> bool {
        while busy() {
            if !self.sleep_until(Deadline::after(step)) {
                return false;
            }
        }
        true
    }

    /// Sleeps until `deadline` unless cancelled first (the same loop as every blocking call,
    /// with nothing to wait for). Returns whether the deadline was reached (`false`: cancelled).
    pub fn sleep_until(&self, deadline: Deadline) -> bool {
        /// Nothing ever happens: the loop only sleeps, checks the cancel and the deadline.
        struct Nothing;
        impl Waitable for Nothing {
            type Output = ();
            fn attempt(&mut self) -> Result<Option<()>> {
                Ok(None)
            }
            fn sleep(&mut self, max: Duration, wake: &[sys::WaitWord<'_>]) {
                if !sys::wait_any(wake, Some(max)) {
                    std::thread::sleep(max);
                }
            }
            fn sleeps_on_words(&self) -> bool {
                sys::kernel_watches_liveness()
            }
            fn channel(&self) -> &str {
                ""
            }
        }
        wait_for(&mut Nothing, deadline, Some(self)).is_ok()
    }
}

/// A cancel's words and their values before an attempt (see `Cancel::marks`).
struct Marks<'c> {
    words: [sys::WaitWord<'c>; MAX_CANCEL_WORDS],
    n: usize,
}

impl Marks<'_> {
    fn words(&self) -> &[sys::WaitWord<'_>] {
        &self.words[..self.n]
    }
}

/// Most words a cancel adds to a sleep.
pub(crate) const MAX_CANCEL_WORDS: usize = 2;

use crate::timing::UNBOUNDED_STEP;

/// Something a blocking call waits for: tried, then slept on, until it happens.
pub(crate) trait Waitable {
    /// What the wait yields.
    type Output;
    /// One attempt: `Ok(Some)` when done, `Ok(None)` to sleep and try again, `Err` to stop.
    fn attempt(&mut self) -> Result<Option<Self::Output>>;
    /// Sleeps at most `max` (or less, when woken); the next attempt re-checks. A sleep that
    /// waits on several words at once also wakes when one of `wake` changes (a cancel); see
    /// [`sleeps_on_words`](Waitable::sleeps_on_words).
    fn sleep(&mut self, max: Duration, wake: &[sys::WaitWord<'_>]);
    /// Whether [`sleep`](Waitable::sleep) wakes when a `wake` word changes: then a cancel
    /// needs no periodic wake-up.
    fn sleeps_on_words(&self) -> bool {
        false
    }
    /// The channel, for [`Error::Interrupted`].
    fn channel(&self) -> &str;
}

/// The one wait loop: attempt; if not done, give up at the deadline (`Ok(None)`) or on
/// cancellation (`Err(Interrupted)`); else sleep (bounded by the deadline and the cancel's
/// period) and attempt again. An attempt that succeeds wins over a cancel seen at the same time.
pub(crate) fn wait_for<W: Waitable>(
    w: &mut W,
    deadline: Deadline,
    cancel: Option<&Cancel>,
) -> Result<Option<W::Output>> {
    let mut deadline = deadline;
    loop {
        // The cancel's words, read before the attempt and the check: a cancel or a signal
        // after this changes one, and the sleep below does not begin (no lost wake-up).
        let marks = cancel.map(Cancel::marks);
        if let Some(done) = w.attempt()? {
            return Ok(Some(done));
        }
        if cancel.is_some_and(Cancel::is_cancelled) {
            return Err(Error::Interrupted { name: w.channel().to_owned() });
        }
        deadline = deadline.started();
        let mut max = match deadline.remaining() {
            Some(Duration::ZERO) => return Ok(None),
            Some(left) => left,
            None => UNBOUNDED_STEP,
        };
        if let Some(c) = cancel {
            if c.polls() || !w.sleeps_on_words() {
                max = max.min(c.period());
            }
        }
        w.sleep(max, marks.as_ref().map_or(&[], Marks::words));
    }
}

/// Sleeps on `word` while it equals `seen`, announcing the sleep with `flag` in `reserved`.
/// Does not sleep if any bit of `stop` is set in `reserved` (e.g. `CLOSED`: a producer that
/// closes sets it with an RMW, which is ordered with ours, so one of us sees the other).
/// Returns after a wake-up, a change, a signal or `timeout`; the caller re-checks.
pub(crate) fn sleep_announced(
    word: &AtomicU32,
    seen: u32,
    reserved: &AtomicU32,
    flag: u32,
    stop: u32,
    timeout: Duration,
) {
    let before = reserved.fetch_or(flag, Ordering::Relaxed);
    // SYNC POINT: sleep (SeqCst fence; pairs with the fence in `wake_if_sleeping`).
    fence(Ordering::SeqCst);
    if before & stop == 0 && word.load(Ordering::Relaxed) == seen {
        sys::wait_word(word, seen, timeout);
    }
    reserved.fetch_and(!flag, Ordering::Relaxed);
}

/// Called by the side that just published a new value of `word`: wakes the other side if its
/// `flag` says it sleeps.
pub(crate) fn wake_if_sleeping(word: &AtomicU32, reserved: &AtomicU32, flag: u32) {
    // SYNC POINT: sleep (SeqCst fence; pairs with the fence in `sleep_announced`).
    fence(Ordering::SeqCst);
    if reserved.load(Ordering::Relaxed) & flag != 0 {
        // The sleeper clears its own bit (see the module docs for why a waker must not).
        sys::wake_word(word);
    }
}

/// Most words one sleep waits on: the data word, the liveness word of every reader a producer
/// waits for, and a cancel's words.
const MAX_SLEEP_WORDS: usize = 1 + crate::table::MAX_READERS as usize + MAX_CANCEL_WORDS;

/// The one sleep of every announced wait of a framed channel: until `data` leaves `seen` (a
/// frame published, a slot given back), one of the `peers` dies, a `wake` word changes (a
/// cancel) or `max` passes. With kernel-reported liveness it is one kernel wait on all the
/// words, so an idle waiter makes no wake-ups and a SIGKILLed peer wakes it at once. A peer
/// nobody watches (an old kernel, polling asked for) bounds the sleep by `unwatched_period`,
/// after which the caller probes that peer's lock byte; without a multi-word wait the sleep is
/// a timed one on `data` alone, bounded the same way. A peer already dead: no sleep (the next
/// attempt reports it). The caller announces the sleep (and re-checks `data`) first. `sleeper`
/// tells this sleeper on `data` apart from others (see [`sys::Waker::Shared`]).
pub(crate) fn sleep_watching<'w>(
    data: &'w AtomicU32,
    seen: u32,
    sleeper: u32,
    peers: impl IntoIterator<Item = liveness::LiveWord<'w>>,
    wake: &[sys::WaitWord<'_>],
    max: Duration,
    unwatched_period: Duration,
) {
    let placeholder =
        sys::WaitWord { word: data, expected: seen, waker: sys::Waker::Shared { sleeper } };
    let mut words = [placeholder; MAX_SLEEP_WORDS];
    let mut n = 1;
    let mut unwatched = false;
    for live in peers {
        match liveness::watch(live) {
            Watch::Armed(w) if n < words.len() - MAX_CANCEL_WORDS => {
                words[n] = w;
                n += 1;
            }
            Watch::Armed(_) | Watch::Unwatched => unwatched = true,
            Watch::Dead => return,
        }
    }
    for w in wake.iter().take(MAX_CANCEL_WORDS) {
        words[n] = *w;
        n += 1;
    }
    let timeout = if unwatched { max.min(unwatched_period) } else { max };
    if !sys::wait_any(&words[..n], Some(timeout)) {
        sys::wait_word(data, seen, max.min(unwatched_period));
    }
}

/// Sleeps on `word` while it equals `seen`, unannounced (nobody will wake us): a bounded timed
/// wait for peers that do not know our protocol. `backoff` grows from call to call.
pub(crate) fn sleep_unannounced(
    word: &AtomicU32,
    seen: u32,
    backoff: &mut Backoff,
    timeout: Duration,
) {
    let step = backoff.next().min(timeout);
    if word.load(Ordering::Acquire) == seen {
        sys::wait_word(word, seen, step);
    }
}

/// Exponential back-off for timed waits, reset whenever data flows.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    current: Duration,
}

impl Backoff {
    const FIRST: Duration = crate::timing::BACKOFF_FIRST;
    const MAX: Duration = crate::timing::BACKOFF_MAX;

    pub(crate) fn new() -> Backoff {
        Backoff { current: Self::FIRST }
    }
    pub(crate) fn reset(&mut self) {
        self.current = Self::FIRST;
    }
    fn next(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(Self::MAX);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn announced_sleep_is_woken_and_flag_cleared() {
        let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let w = words.clone();
        let sleeper = std::thread::spawn(move || {
            let start = Instant::now();
            while w[0].load(Ordering::Acquire) == 0 {
                sleep_announced(&w[0], 0, &w[1], 1, 0, Duration::from_secs(10));
            }
            start.elapsed()
        });
        // Wait until the sleeper has announced itself, then publish and wake.
        while words[1].load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        words[0].store(1, Ordering::Release);
        wake_if_sleeping(&words[0], &words[1], 1);
        let waited = sleeper.join().unwrap();
        assert!(waited < Duration::from_secs(5), "woken only by timeout: {waited:?}");
        assert_eq!(words[1].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn no_syscall_flag_means_no_wake_needed() {
        let word = AtomicU32::new(5);
        let reserved = AtomicU32::new(0);
        wake_if_sleeping(&word, &reserved, 1); // must not block or fail
        assert_eq!(reserved.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn changed_word_does_not_sleep() {
        let word = AtomicU32::new(7);
        let reserved = AtomicU32::new(0);
        let t = Instant::now();
        sleep_announced(&word, 6, &reserved, 1, 0, Duration::from_secs(30));
        // A stop bit already set: no sleep even though the word did not change.
        let stopped = AtomicU32::new(2);
        sleep_announced(&word, 7, &stopped, 1, 2, Duration::from_secs(30));
        let mut b = Backoff::new();
        sleep_unannounced(&word, 6, &mut b, Duration::from_secs(30));
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn deadlines_convert_and_pass() {
        assert_eq!(Deadline::from(None), Deadline::NEVER);
        assert_eq!(Deadline::NEVER.remaining(), None);
        assert!(!Deadline::NEVER.passed());
        assert!(Deadline::from(Some(Duration::ZERO)).passed());
        assert!(
            Deadline::from(Duration::MAX).instant().is_none(),
            "an unrepresentable timeout is never"
        );
        let d = Deadline::from(Duration::from_secs(100));
        assert!(d.remaining().unwrap() > Duration::from_secs(50));
        assert!(
            Cancel::new().sleep_until(Duration::from_millis(1).into()),
            "an uncancelled sleep reaches its deadline"
        );
    }

    struct Counter {
        attempts: u32,
        done_at: u32,
        slept: Vec<Duration>,
    }

    impl Waitable for Counter {
        type Output = u32;
        fn attempt(&mut self) -> Result<Option<u32>> {
            self.attempts += 1;
            Ok((self.attempts >= self.done_at).then_some(self.attempts))
        }
        fn sleep(&mut self, max: Duration, _wake: &[sys::WaitWord<'_>]) {
            self.slept.push(max);
        }
        fn channel(&self) -> &str {
            "test"
        }
    }

    #[test]
    fn the_wait_loop_attempts_sleeps_and_gives_up() {
        let mut c = Counter { attempts: 0, done_at: 3, slept: vec![] };
        assert_eq!(wait_for(&mut c, Deadline::NEVER, None).unwrap(), Some(3));
        assert_eq!(c.slept, vec![UNBOUNDED_STEP; 2]);

        let mut c = Counter { attempts: 0, done_at: u32::MAX, slept: vec![] };
        assert_eq!(wait_for(&mut c, Duration::ZERO.into(), None).unwrap(), None);
        assert_eq!(c.attempts, 1, "a passed deadline still makes one attempt");

        // A cancel bounds each sleep by its period, and ends the wait once fired.
        let cancel = Cancel::new();
        let mut c = Counter { attempts: 0, done_at: 2, slept: vec![] };
        assert_eq!(wait_for(&mut c, Deadline::NEVER, Some(&cancel)).unwrap(), Some(2));
        assert_eq!(c.slept, vec![Cancel::DEFAULT_PERIOD]);
        cancel.cancel();
        let mut c = Counter { attempts: 0, done_at: u32::MAX, slept: vec![] };
        assert!(matches!(
            wait_for(&mut c, Deadline::NEVER, Some(&cancel)),
            Err(Error::Interrupted { .. })
        ));
        // ... but what is ready is still handed out.
        let mut c = Counter { attempts: 0, done_at: 1, slept: vec![] };
        assert_eq!(wait_for(&mut c, Deadline::NEVER, Some(&cancel)).unwrap(), Some(1));
    }

    #[test]
    fn a_check_ends_one_wait_and_sets_the_period() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        // Says stop on its third call only (a signal that arrived once).
        let cancel = Cancel::with_check(Duration::from_millis(7), move || {
            seen.fetch_add(1, Ordering::Relaxed) == 2
        });
        assert_eq!(cancel.period(), Duration::from_millis(7));
        let mut c = Counter { attempts: 0, done_at: u32::MAX, slept: vec![] };
        assert!(matches!(
            wait_for(&mut c, Deadline::NEVER, Some(&cancel)),
            Err(Error::Interrupted { .. })
        ));
        assert_eq!(c.slept, vec![Duration::from_millis(7); 2]);
        // The next wait goes on: the check said stop once.
        let mut c = Counter { attempts: 0, done_at: 3, slept: vec![] };
        assert_eq!(wait_for(&mut c, Deadline::NEVER, Some(&cancel)).unwrap(), Some(3));
        cancel.cancel();
        assert!(!cancel.sleep_until(Deadline::NEVER));
    }

    #[test]
    fn backoff_grows_to_cap() {
        let mut b = Backoff::new();
        let steps: Vec<_> = (0..12).map(|_| b.next()).collect();
        assert_eq!(steps[0], Backoff::FIRST);
        assert!(steps.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*steps.last().unwrap(), Backoff::MAX);
        b.reset();
        assert_eq!(b.next(), Backoff::FIRST);
    }
}
