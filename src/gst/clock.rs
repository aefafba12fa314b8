//! Capture times on the pipeline clock.
//!
//! A frame's `capture_ns` is `CLOCK_MONOTONIC`. A buffer's PTS is running time: the pipeline
//! clock's time minus the element's base time. So
//!
//! ```text
//! pts        = capture_ns + offset - base_time      (shmframessrc)
//! capture_ns = pts_running_time + base_time - offset   (shmframessink)
//! offset     = pipeline clock now - CLOCK_MONOTONIC now
//! ```
//!
//! GStreamer's own system clock (the pipeline clock unless an element provides another, such as
//! an audio sink) is `CLOCK_MONOTONIC` itself by default, so `offset` is 0 and the mapping is
//! exact. For any other clock (its subclasses too: network, NTP and PTP clocks keep the
//! monotonic type but run on another machine's time) `offset` is sampled at each frame, the
//! monotonic clock read on both sides of the pipeline clock: exact to within those reads
//! (microseconds), and it follows a clock that drifts.

use gst::prelude::*;

/// `pipeline clock - CLOCK_MONOTONIC`, in ns.
pub fn offset(clock: &gst::Clock) -> i128 {
    // The system clock itself, not a subclass (GstNetClientClock, GstPtpClock...).
    if clock.type_() == gst::SystemClock::static_type() {
        if let Some(system) = clock.downcast_ref::<gst::SystemClock>() {
            if system.clock_type() == gst::ClockType::Monotonic {
                return 0;
            }
        }
    }
    let before = shmframes::monotonic_ns() as i128;
    let now = clock.time().nseconds() as i128;
    let after = shmframes::monotonic_ns() as i128;
    now - (before + after) / 2
}

/// The running time of a frame captured at `capture_ns`; frames captured before the pipeline
/// started (before `base_time`) run at 0.
pub fn running_time(
    capture_ns: u64,
    clock: &gst::Clock,
    base_time: gst::ClockTime,
) -> gst::ClockTime {
    let t = capture_ns as i128 + offset(clock) - base_time.nseconds() as i128;
    gst::ClockTime::from_nseconds(t.clamp(0, i64::MAX as i128) as u64)
}

/// The `CLOCK_MONOTONIC` time of running time `running`.
pub fn capture_ns(running: gst::ClockTime, clock: &gst::Clock, base_time: gst::ClockTime) -> u64 {
    let t = running.nseconds() as i128 + base_time.nseconds() as i128 - offset(clock);
    t.clamp(0, u64::MAX as i128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_monotonic_and_maps_exactly() {
        gst::init().unwrap();
        let clock = gst::SystemClock::obtain();
        assert_eq!(offset(&clock), 0);
        let base = clock.time();
        let capture = shmframes::monotonic_ns() + 5_000_000;
        let rt = running_time(capture, &clock, base);
        assert_eq!(capture_ns(rt, &clock, base), capture);
        // Before the base time: running time 0.
        assert_eq!(running_time(base.nseconds() - 1, &clock, base), gst::ClockTime::ZERO);
    }

    #[test]
    fn another_clock_maps_through_a_sampled_offset() {
        gst::init().unwrap();
        // A realtime system clock is another clock, offset by the epoch.
        let realtime: gst::Clock = gst::glib::Object::builder::<gst::SystemClock>()
            .property("clock-type", gst::ClockType::Realtime)
            .build()
            .upcast();
        let off = offset(&realtime);
        assert!(
            off > 50 * 365 * 86_400 * 1_000_000_000,
            "realtime is decades ahead of monotonic: {off}"
        );
        let base = realtime.time();
        let capture = shmframes::monotonic_ns();
        let rt = running_time(capture, &realtime, base);
        let back = capture_ns(rt, &realtime, base);
        // Two samplings of the offset: within a millisecond of each other on any machine.
        assert!(back.abs_diff(capture) < 1_000_000, "{back} vs {capture}");
    }
}
