//! Every period and bound the channel's waits use, in one place.
//!
//! None of these is on the hot path: a frame that is ready is handed out without looking at the
//! clock. They decide how fast a wait notices what no kernel wake-up reports (a peer of an older
//! kernel, a foreign producer, a cancel without a word to sleep on) and how often an idle wait
//! re-arms. With kernel-reported liveness (Linux 5.16+) an idle reader or producer makes no
//! wake-ups at all, and most of these periods are never reached.

use std::time::Duration;

/// How often a reader probes its producer's lock byte when the kernel does not watch the
/// producer for it (an unwatched liveness word, a ring): the bound on noticing a death then.
pub const LIVENESS_PERIOD: Duration = Duration::from_millis(80);

/// How often a producer looks for dead readers when some reader is not watched by the kernel
/// (frees their places and the slots they held).
pub const SWEEP_PERIOD: Duration = Duration::from_millis(40);

/// How often a raw channel's producer, waiting for room, checks that its consumer is still
/// attached (a consumer that went away never wakes it).
pub const CONSUMER_CHECK_PERIOD: Duration = Duration::from_secs(1);

/// How often a reader that follows a dead or ended producer looks for its successor.
pub const FOLLOW_PERIOD: Duration = Duration::from_millis(20);

/// How often a waiter with a plain [`Cancel`](crate::Cancel) (no word to sleep on) looks at it.
pub const CANCEL_PERIOD: Duration = Duration::from_millis(50);

/// How often Python's waits run the interpreter's signal check where the wait cannot sleep on
/// the signal hook's word (Ctrl+C within this bound).
pub const SIGNAL_CHECK_PERIOD: Duration = Duration::from_millis(80);

/// The longest single sleep when nothing bounds it (no deadline, no cancel): re-armed after
/// this, which costs one wake-up an hour.
pub const UNBOUNDED_STEP: Duration = Duration::from_secs(3600);

/// Timed waits on peers that wake nobody (cpp_py_shmbuf's producer and consumer): the first
/// step of the back-off ...
pub const BACKOFF_FIRST: Duration = Duration::from_micros(50);
/// ... doubling up to this, so a stream is picked up within a few milliseconds at worst.
pub const BACKOFF_MAX: Duration = Duration::from_millis(4);

/// Opening a channel that is not there yet: the first pause between attempts ...
pub const OPEN_FIRST_PAUSE: Duration = Duration::from_millis(1);
/// ... growing to this.
pub const OPEN_MAX_PAUSE: Duration = Duration::from_millis(20);

/// A segment younger than this may still be set up by its producer: opening it retries
/// instead of calling it broken, and cleaning leftovers spares it.
pub const SETUP_GRACE: Duration = Duration::from_secs(1);

/// Where the system has no wait on a shared word (no futex, no `__ulock`), the longest a timed
/// sleep lasts before the word is looked at again.
pub const FALLBACK_POLL: Duration = Duration::from_millis(2);

/// A hidden temporary segment younger than this may belong to a producer between its
/// exclusive create and its lock (microseconds): cleaning leftovers never removes it.
pub const LEFTOVER_MIN_AGE: Duration = Duration::from_secs(2);
