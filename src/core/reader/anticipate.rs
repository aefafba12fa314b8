//! Waking before the frame: a busy-poller's latency at a sleeper's cost, for periodic producers.
//!
//! Cameras and most producers publish at a steady rate. A reader that has seen a few frames
//! knows when the next one is due, so instead of sleeping in the kernel until the producer's
//! wake-up (a system call for the producer, a scheduler wake-up for us: tens of microseconds on
//! a VM, more for a Python reader), it
//! 1. sleeps in the kernel, announced as usual (a frame that comes early still wakes it), until
//!    `margin` before the frame is due;
//! 2. then watches the `published` word itself, unannounced (the producer makes no system
//!    call), until the frame arrives or `late` after it was due;
//! 3. and if it has not come by then, sleeps announced with no timer, as without anticipation:
//!    a producer that pauses costs one early wake-up, then none.
//!
//! The margin tunes itself from how each frame arrived: a frame that came while we still slept
//! (the margin was too short for the timer's slack and the producer's jitter) doubles it; a
//! frame we watched for longer than [`TARGET_WATCH_NS`] shrinks it by half the excess. The watch
//! never takes more than [`BUDGET_PERMILLE`] of the period (early margin and late allowance
//! together): a producer whose frames stray farther (a VM's timers, a jittered source) is
//! watched for within that window and caught when it lands there; one whose jitter exceeds the
//! whole budget is not anticipated at all (plain kernel waits, no added latency, no spinning),
//! nor is one that has not been steady for [`STEADY_FRAMES`] frames. A watch that lost its CPU
//! to another process of the machine (two looks [`PREEMPTED_NS`] apart, and the kernel switched
//! us out meanwhile) backs anticipation off for a while: on a busy machine spinning costs a time
//! slice of latency instead of saving a wake-up. A gap the hypervisor made (it took the whole
//! virtual CPU) does not: a sleeping reader would have lost that time too. Nothing here is on
//! the path of a frame that is ready when asked for, but `observe`: a few integer operations
//! per frame. A binding whose own way to its caller goes cold while it sleeps (Python) reads
//! until [`Anticipation::watch_begins`], warms that way up, then reads on.

/// Frames at a steady interval before anticipating the next.
pub(crate) const STEADY_FRAMES: u32 = 4;
/// Most of a period spent watching for one frame, in thousandths (early margin plus late
/// allowance): 1.5 %, so that a Python reader at 30 fps stays within 2 % of a core.
pub(crate) const BUDGET_PERMILLE: u64 = 15;
/// How long a watch for a frame should last, at best: the margin shrinks towards this.
pub(crate) const TARGET_WATCH_NS: u64 = 20_000;
/// The margin's first value and its floor.
const FIRST_MARGIN_NS: u64 = 150_000;
const MIN_MARGIN_NS: u64 = 10_000;
/// The least time a watch goes on after the due time.
const MIN_LATE_NS: u64 = 50_000;
/// Intervals farther than this fraction of the period from it break the steady run.
const STEADY_TOLERANCE_DIV: u64 = 8;
/// A watch that went this long between two looks lost its CPU (to another process, if the
/// kernel switched it out meanwhile; else to the hypervisor).
pub(crate) const PREEMPTED_NS: u64 = 250_000;
/// Frames not anticipated after the first preempted watch; doubled at each further one (up to
/// [`MAX_BACKOFF_FRAMES`]), forgotten after a clean watch.
const FIRST_BACKOFF_FRAMES: u32 = 32;
const MAX_BACKOFF_FRAMES: u32 = 4096;

/// What a sleep should do now (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Sleep in the kernel, announced, with no anticipation.
    Block,
    /// Sleep in the kernel, announced, until this instant (CLOCK_MONOTONIC ns) at most.
    SleepUntil(u64),
    /// Watch the published word until this instant, then block.
    Watch(u64),
}

/// One reader's model of its producer's rhythm.
#[derive(Clone, Debug)]
pub(crate) struct Anticipation {
    enabled: bool,
    /// Publish time of the last frame seen (0: none yet).
    last: u64,
    /// The schedule's estimated time of the last frame, the estimated interval between frames
    /// (ns), and the mean distance of frames from their estimated time.
    expected: u64,
    period: u64,
    jitter: u64,
    /// Intervals in a row within the tolerance of the period.
    steady: u32,
    /// How early before the due time the watch begins (ns).
    margin: u64,
    /// The due time of the frame being anticipated (0: none), when its watch began (0: not
    /// yet), and the due time given up on (the frame was late past the allowance).
    due: u64,
    watch_from: u64,
    given_up: u64,
    /// Frames still to go without anticipating (a watch was preempted), and the next back-off.
    skip: u32,
    backoff: u32,
}

impl Anticipation {
    /// A model that anticipates (`enabled`) or only observes.
    pub(crate) fn new(enabled: bool) -> Anticipation {
        Anticipation {
            enabled,
            last: 0,
            expected: 0,
            period: 0,
            jitter: 0,
            steady: 0,
            margin: FIRST_MARGIN_NS,
            due: 0,
            watch_from: 0,
            given_up: 0,
            skip: 0,
            backoff: FIRST_BACKOFF_FRAMES,
        }
    }

    /// Turns anticipation on or off (what was learned is kept).
    pub(crate) fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// The most a watch may take for one frame, early and late together.
    fn budget(&self) -> u64 {
        self.period * BUDGET_PERMILLE / 1000
    }

    /// Learns from a frame published at `publish_ns` (CLOCK_MONOTONIC), just taken.
    pub(crate) fn observe(&mut self, publish_ns: u64) {
        if publish_ns <= self.last || publish_ns == 0 {
            return; // not newer (or no time): nothing to learn
        }
        if self.due != 0 {
            if self.watch_from != 0 && publish_ns >= self.watch_from {
                // Watched for it: shrink the margin by half of what the watch took too long.
                let watched = publish_ns - self.watch_from;
                if watched > TARGET_WATCH_NS {
                    let excess = (watched - TARGET_WATCH_NS) / 2;
                    self.margin = self.margin.saturating_sub(excess).max(MIN_MARGIN_NS);
                }
            } else if publish_ns < self.due.saturating_sub(self.margin) || self.watch_from == 0 {
                // It came while we still slept: the margin was too short.
                // (At most half the budget: the late allowance needs the other half.)
                self.margin = (self.margin * 2).min((self.budget() / 2).max(MIN_MARGIN_NS));
            }
        }
        self.due = 0;
        self.watch_from = 0;
        self.skip = self.skip.saturating_sub(1);
        // A phase-locked estimate: the producer keeps a schedule (a camera's clock, a timer),
        // so each frame is predicted from the schedule's estimate, not from the last frame's
        // own lateness (which would count every frame's jitter twice).
        if self.last != 0 {
            let interval = publish_ns - self.last;
            let predicted = self.expected + self.period;
            let err = publish_ns as i64 - predicted as i64;
            if self.period != 0 && err.unsigned_abs() <= self.period / STEADY_TOLERANCE_DIV {
                self.steady = self.steady.saturating_add(1);
                // The jitter is how far frames stray from one interval to the next (the
                // schedule's own error while the estimate converges is not the producer's).
                let dev = interval.abs_diff(self.period);
                self.jitter = self.jitter - self.jitter / 8 + dev / 8;
                // Correct the phase by half the error, the period by an eighth.
                self.expected = (predicted as i64 + err / 2) as u64;
                self.period = (self.period as i64 + err / 8) as u64;
            } else {
                self.steady = 0;
                self.jitter = 0;
                self.period = interval;
                self.expected = publish_ns;
            }
        } else {
            self.expected = publish_ns;
        }
        self.last = publish_ns;
    }

    /// The next frame's due time, if it is to be anticipated.
    fn anticipated(&self) -> Option<u64> {
        if !self.enabled || self.steady < STEADY_FRAMES || self.last == 0 || self.skip > 0 {
            return None;
        }
        // A producer straying by more than the whole budget is not worth watching for.
        if self.jitter > self.budget() {
            return None;
        }
        let due = self.expected + self.period;
        (due != self.given_up).then_some(due)
    }

    /// When the watch for the next frame begins (CLOCK_MONOTONIC ns), if it is anticipated.
    /// Changes nothing: a caller may warm its own path up (Python) before reading on.
    pub(crate) fn watch_begins(&self) -> Option<u64> {
        self.anticipated().map(|due| due.saturating_sub(self.margin))
    }

    /// What to do at `now` while no frame is there.
    pub(crate) fn plan(&mut self, now: u64) -> Plan {
        let Some(due) = self.anticipated() else { return Plan::Block };
        // The late allowance covers the producer's own jitter, within half the budget; the
        // margin is capped at half the budget when it grows, so the two together stay within
        // it. (Were the allowance tied to the margin, a margin grown by late timer wake-ups
        // would block anticipation for good: the margin only shrinks while watching.)
        let late = (2 * self.jitter).max(MIN_LATE_NS).min(self.budget() / 2);
        self.due = due;
        let watch_from = due.saturating_sub(self.margin);
        if now < watch_from {
            Plan::SleepUntil(watch_from)
        } else if now < due + late {
            if self.watch_from == 0 {
                self.watch_from = now;
            }
            Plan::Watch(due + late)
        } else {
            self.given_up();
            Plan::Block
        }
    }

    /// How a watch went: the longest time between two of its looks, and whether the kernel
    /// gave our CPU to another task meanwhile (`None`: cannot tell). A watch that lost its CPU
    /// to another process for a time slice (a busy machine) stops anticipation for a while,
    /// longer each time it happens again; a clean one forgets the back-off. A gap no other task
    /// caused (the hypervisor took the virtual CPU) is not ours to avoid: a sleeping reader would
    /// have lost that time too.
    pub(crate) fn watched(&mut self, longest_gap_ns: u64, gave_way: Option<bool>) {
        if longest_gap_ns >= PREEMPTED_NS && gave_way != Some(false) {
            self.skip = self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF_FRAMES);
        } else {
            self.backoff = FIRST_BACKOFF_FRAMES;
        }
    }

    /// The frame did not come within the allowance: stop anticipating until frames flow again
    /// (a paused producer costs one early wake-up, then none).
    pub(crate) fn given_up(&mut self) {
        // Only this frame's watch is given up: a frame merely late goes on being anticipated
        // (its `observe` tells whether the schedule holds), while a producer that fell silent
        // is never watched for again until frames come (`plan` blocks for this due time).
        self.given_up = self.due;
        self.due = 0;
        self.watch_from = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn steady(a: &mut Anticipation, from: u64, n: u64, period: u64) -> u64 {
        let mut t = from;
        for _ in 0..n {
            a.observe(t);
            t += period;
        }
        t - period
    }

    #[test]
    fn a_steady_producer_is_anticipated_and_the_margin_tunes_itself() {
        let mut a = Anticipation::new(true);
        let period = 33 * MS;
        assert_eq!(a.plan(1), Plan::Block, "nothing seen yet");
        let last = steady(&mut a, 1_000 * MS, 6, period);
        let due = last + period;
        // Long before the frame: sleep until the margin before it (as announced).
        assert_eq!(a.watch_begins(), Some(due - FIRST_MARGIN_NS));
        assert_eq!(a.plan(last + MS), Plan::SleepUntil(due - FIRST_MARGIN_NS));
        // Within the margin: watch, until the late allowance after it.
        let Plan::Watch(until) = a.plan(due - 100_000) else { panic!("no watch") };
        assert!(until > due && until - due <= a.budget());
        // The frame came 100 us into the watch: the margin shrinks.
        a.observe(due);
        assert!(a.margin < FIRST_MARGIN_NS, "margin {}", a.margin);
        // A frame that comes while we sleep grows it again.
        let m = a.margin;
        let due = due + period;
        assert!(matches!(a.plan(due - 10 * MS), Plan::SleepUntil(_)));
        a.observe(due - 5 * MS + 5 * MS); // woke us from the kernel sleep (no watch began)
        assert!(a.margin > m, "margin {} after {}", a.margin, m);
    }

    #[test]
    fn a_jittered_schedule_is_followed_not_its_last_frame() {
        // Frames +-300 us around a 33.3 ms schedule: each is predicted within the jitter, not
        // within twice it, and the producer counts as steady.
        let mut a = Anticipation::new(true);
        let period = 33_333_333u64;
        let noise = |i: u64| (i * 7919 % 601) as i64 * 1_000 - 300_000; // -300..+300 us
        let at = |i: u64| (1_000 * MS + i * period) as i64 + noise(i);
        for i in 0..40 {
            a.observe(at(i) as u64);
        }
        assert!(a.steady >= STEADY_FRAMES, "steady {}", a.steady);
        let due = a.expected + a.period;
        let err = (due as i64 - (1_000 * MS + 40 * period) as i64).abs();
        assert!(err < 400_000, "predicted {err} ns off the schedule");
    }

    #[test]
    fn a_late_frame_is_given_up_once_and_then_nothing_spins() {
        let mut a = Anticipation::new(true);
        let period = 33 * MS;
        let last = steady(&mut a, 5 * MS, 6, period);
        let due = last + period;
        assert!(matches!(a.plan(due), Plan::Watch(_)));
        // Past the allowance: block, and keep blocking while the producer stays silent.
        assert_eq!(a.plan(due + 5 * MS), Plan::Block);
        assert_eq!(a.plan(due + 50 * MS), Plan::Block);
        assert_eq!(a.plan(due + 5_000 * MS), Plan::Block);
        // Frames flow again: after a steady run it anticipates again.
        let last = steady(&mut a, due + 10_000 * MS, 6, period);
        assert!(matches!(a.plan(last + MS), Plan::SleepUntil(_)));
    }

    #[test]
    fn a_preempted_watch_stops_anticipation_for_a_while_longer_each_time() {
        let mut a = Anticipation::new(true);
        let period = 33 * MS;
        let mut last = steady(&mut a, MS, 6, period);
        assert!(matches!(a.plan(last + MS), Plan::SleepUntil(_)));
        let mut skipped = Vec::new();
        for _ in 0..2 {
            a.watched(PREEMPTED_NS, Some(true)); // lost the CPU to another task while watching
            let mut n = 0;
            loop {
                last += period;
                a.observe(last);
                if a.plan(last + MS) != Plan::Block {
                    break;
                }
                n += 1;
            }
            skipped.push(n);
        }
        assert_eq!(skipped[0] + 1, FIRST_BACKOFF_FRAMES as usize, "{skipped:?}");
        assert_eq!(skipped[1] + 1, 2 * FIRST_BACKOFF_FRAMES as usize, "{skipped:?}");
        // A clean watch forgets it: the next preemption backs off for the first length again.
        a.watched(10_000, Some(false));
        a.watched(PREEMPTED_NS, None); // cannot tell who took the CPU: as if another task
        assert_eq!(a.skip, FIRST_BACKOFF_FRAMES);
        // A long gap no other task caused (the hypervisor's): no back-off.
        let mut b = Anticipation::new(true);
        let last = steady(&mut b, MS, 6, period);
        b.watched(10 * PREEMPTED_NS, Some(false));
        assert!(matches!(b.plan(last + MS), Plan::SleepUntil(_)), "backed off for a stolen CPU");
    }

    #[test]
    fn irregular_or_disabled_producers_are_never_anticipated() {
        // +-2 ms of jitter at 30 fps: outside the steady tolerance or over the budget.
        let mut a = Anticipation::new(true);
        let mut t = 7 * MS;
        for i in 0..50u64 {
            a.observe(t);
            t += 33 * MS + if i % 2 == 0 { 4 * MS } else { 0 };
        }
        for now in [t, t + 10 * MS, t + 30 * MS, t + 33 * MS] {
            assert_eq!(a.plan(now), Plan::Block);
        }
        assert_eq!(a.watch_begins(), None);
        let mut off = Anticipation::new(false);
        let last = steady(&mut off, MS, 10, 33 * MS);
        assert_eq!(off.plan(last + MS), Plan::Block);
        assert_eq!(off.watch_begins(), None);
        // Bursts (aperiodic): never steady.
        let mut b = Anticipation::new(true);
        for t in [1, 2, 50, 51, 400, 401, 402, 1_000].map(|x| x * MS) {
            b.observe(t);
        }
        assert_eq!(b.plan(1_001 * MS), Plan::Block);
    }
}
