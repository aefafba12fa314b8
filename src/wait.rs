//! Sleeping until the other side moves, without burning CPU and without lost wake-ups.
//!
//! A consumer with nothing to read sleeps in the kernel on the ring's `head` word; a producer
//! with no room sleeps on `tail`. Before sleeping, a side sets its `*_SLEEPING` bit in the
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
//! if word == seen: futex_wait(word, seen)   if reserved & SLEEPING: clear it, futex_wake(word)
//! ```
//!
//! The two SeqCst fences guarantee that at least one side sees the other's store: either the
//! sleeper sees the new value and does not sleep, or the waker sees the bit and wakes. And
//! `futex_wait` itself re-checks `word == seen` atomically in the kernel, so a wake that lands
//! between the sleeper's check and its sleep is not lost either.
//!
//! Against a producer that never wakes anyone (cpp_py_shmbuf's; no mark in `reserved`) we may not
//! touch `reserved` at all: the sleeper then uses bounded timed waits that back off from
//! 50 µs to 4 ms, so a stream is picked up within a few milliseconds at worst.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

use crate::sys;

/// Sleeps on `word` while it equals `seen`, announcing the sleep with `flag` in `reserved`.
/// Does not sleep if any bit of `stop` is set in `reserved` (e.g. `CLOSED`: a producer that
/// closes sets it with an RMW, which is ordered with ours, so one of us sees the other).
/// Returns after a wake-up, a change, a signal or `timeout`; the caller re-checks.
pub(crate) fn sleep_announced(word: &AtomicU32, seen: u32, reserved: &AtomicU32, flag: u32, stop: u32, timeout: Duration) {
    let before = reserved.fetch_or(flag, Ordering::Relaxed);
    // SYNC POINT: sleep (SeqCst fence; pairs with the fence in `wake_if_sleeping`).
    fence(Ordering::SeqCst);
    if before & stop == 0 && word.load(Ordering::Relaxed) == seen {
        sys::futex_wait(word, seen, timeout);
    }
    reserved.fetch_and(!flag, Ordering::Relaxed);
}

/// Called by the side that just published a new value of `word`: wakes the other side if its
/// `flag` says it sleeps.
pub(crate) fn wake_if_sleeping(word: &AtomicU32, reserved: &AtomicU32, flag: u32) {
    // SYNC POINT: sleep (SeqCst fence; pairs with the fence in `sleep_announced`).
    fence(Ordering::SeqCst);
    if reserved.load(Ordering::Relaxed) & flag != 0 {
        reserved.fetch_and(!flag, Ordering::Relaxed);
        sys::futex_wake(word);
    }
}

/// Sleeps on `word` while it equals `seen`, unannounced (nobody will wake us): a bounded timed
/// wait for peers that do not know our protocol. `backoff` grows from call to call.
pub(crate) fn sleep_unannounced(word: &AtomicU32, seen: u32, backoff: &mut Backoff, timeout: Duration) {
    let step = backoff.next().min(timeout);
    if word.load(Ordering::Acquire) == seen {
        sys::futex_wait(word, seen, step);
    }
}

/// Exponential back-off for timed waits, reset whenever data flows.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    current: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_micros(50);
    const MAX: Duration = Duration::from_millis(4);

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
