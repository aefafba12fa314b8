//! What a reader reports about a stream: frame rate, delivery latency percentiles and dropped
//! frames, over one-second windows and for the whole run. One implementation for
//! `frame-stats`, `frame-viewer` and `python -m shmframes.view` (`shmframes.Stats`).
//!
//! A reader that joins a running channel first gets the newest frame already published: it is
//! shown, but its age is not delivery latency and its arrival is not the stream's rate. Stats
//! made with [`Stats::since`] the moment the reader attached count such frames apart
//! ([`Stats::before_attach`]) and measure only frames published after it.
//!
//! ```
//! use shmframes::stats::Stats;
//! let mut stats = Stats::new();
//! let now = shmframes::monotonic_ns();
//! stats.record(3, now - 50_000, now, 3); // frame 3, published 50 us ago; the reader lost 0..=2
//! stats.record(4, now - 60_000, now, 0);
//! stats.record(7, now - 70_000, now, 2); // frames 5 and 6 never arrived
//! let w = stats.take_window();
//! assert_eq!((w.frames, stats.dropped()), (3, 5));
//! assert_eq!(w.latency_p50_ns, Some(60_000));
//! ```

use std::fmt;
use std::time::{Duration, Instant};

/// Counters of a stream as one reader sees it.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Frames published before this instant (CLOCK_MONOTONIC ns) are not measured.
    since_ns: u64,
    /// Frames read that were published before `since_ns`.
    before_attach: u64,
    start: Instant,
    window_start: Instant,
    frames: u64,
    window_frames: u64,
    dropped: u64,
    last_seq: Option<u64>,
    /// Latencies (ns) of this window's frames, exact.
    window_latency: Vec<u64>,
    window_max: u64,
    /// Latencies of the whole run, in a log-linear histogram (about 1.5 % resolution).
    histogram: Histogram,
}

/// One window's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Frames in the window.
    pub frames: u64,
    /// Its length.
    pub elapsed: Duration,
    /// Frames per second over it.
    pub fps: f64,
    /// Median publish-to-read latency, if frames carried a publish time.
    pub latency_p50_ns: Option<u64>,
    /// 99th percentile latency.
    pub latency_p99_ns: Option<u64>,
    /// Largest latency.
    pub latency_max_ns: Option<u64>,
    /// Frames dropped since the start (gaps in sequence numbers).
    pub dropped: u64,
    /// Frames since the start.
    pub total: u64,
}

/// The whole run's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Frames read.
    pub frames: u64,
    /// Time since the stats started.
    pub elapsed: Duration,
    /// Frames per second over the run.
    pub fps: f64,
    /// Frames dropped.
    pub dropped: u64,
    /// Latency percentiles p50, p99, p99.9 (ns), if frames carried a publish time.
    pub latency_ns: Option<[u64; 3]>,
    /// Frames read that were published before the reader attached: shown, not measured.
    pub before_attach: u64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

impl Stats {
    /// Empty counters that measure every frame; the clock starts now.
    pub fn new() -> Stats {
        Stats::since(0)
    }

    /// Empty counters for a reader that attached at `attach_ns` (CLOCK_MONOTONIC ns, taken
    /// with [`crate::monotonic_ns`] right after [`Reader::open`](crate::Reader::open)
    /// returned): frames published before it count in [`before_attach`](Stats::before_attach)
    /// and in drops (their sequence numbers), not in frames, rate or latency. The clock starts
    /// now.
    pub fn since(attach_ns: u64) -> Stats {
        let now = Instant::now();
        Stats {
            since_ns: attach_ns,
            before_attach: 0,
            start: now,
            window_start: now,
            frames: 0,
            window_frames: 0,
            dropped: 0,
            last_seq: None,
            window_latency: Vec::new(),
            window_max: 0,
            histogram: Histogram::default(),
        }
    }

    /// Counts a frame: its sequence number, its publish time (`0`: unknown, as for raw frames),
    /// the time it was read (both CLOCK_MONOTONIC ns, see [`crate::monotonic_ns`]) and the
    /// frames the reader lost just before it ([`Frame::lost_before`](crate::Frame::lost_before)).
    ///
    /// Between two frames, the gap in sequence numbers is what was dropped (by the reader or
    /// by the producer); a sequence number that goes back is a new producer (or a raw stream),
    /// which drops nothing. Before a stream's first frame there is no gap to see: what the
    /// reader lost since it attached counts.
    ///
    /// A frame published before the instant of [`Stats::since`] is not measured (see
    /// [`Stats::measures`]): only its sequence number counts, for the gaps after it.
    pub fn record(&mut self, seq: u64, publish_ns: u64, now_ns: u64, lost_before: u64) {
        match self.last_seq {
            Some(last) if seq > last => self.dropped += seq - last - 1,
            Some(_) => {}
            None => self.dropped += lost_before,
        }
        self.last_seq = Some(seq);
        if !self.measures(publish_ns) {
            self.before_attach += 1;
            return;
        }
        self.frames += 1;
        self.window_frames += 1;
        if publish_ns != 0 {
            let latency = now_ns.saturating_sub(publish_ns);
            self.window_latency.push(latency);
            self.window_max = self.window_max.max(latency);
            self.histogram.add(latency);
        }
    }

    /// Whether a frame published at `publish_ns` is measured: published after the reader
    /// attached, or of unknown publish time (`0`, raw frames: counted, with no latency).
    pub fn measures(&self, publish_ns: u64) -> bool {
        publish_ns == 0 || publish_ns >= self.since_ns
    }

    /// Frames read that were published before the reader attached (shown, not measured).
    pub fn before_attach(&self) -> u64 {
        self.before_attach
    }

    /// Forgets the last sequence number: the next frame starts a new stream (a producer restart).
    pub fn restart(&mut self) {
        self.last_seq = None;
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Frames measured so far (not those published before the reader attached).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Whether the current window is a second old.
    pub fn window_due(&self) -> bool {
        self.window_start.elapsed() >= Duration::from_secs(1)
    }

    /// The current window's figures; starts a new window.
    pub fn take_window(&mut self) -> Window {
        let elapsed = self.window_start.elapsed();
        let lat = &mut self.window_latency;
        lat.sort_unstable();
        let pct =
            |p: f64| (!lat.is_empty()).then(|| lat[((lat.len() - 1) as f64 * p).round() as usize]);
        let w = Window {
            frames: self.window_frames,
            elapsed,
            fps: self.window_frames as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_p50_ns: pct(0.5),
            latency_p99_ns: pct(0.99),
            latency_max_ns: (!lat.is_empty()).then_some(self.window_max),
            dropped: self.dropped,
            total: self.frames,
        };
        self.window_start = Instant::now();
        self.window_frames = 0;
        self.window_latency.clear();
        self.window_max = 0;
        w
    }

    /// The whole run's figures.
    pub fn summary(&self) -> Summary {
        let elapsed = self.start.elapsed();
        let latency_ns = (self.histogram.count > 0).then(|| {
            [
                self.histogram.quantile(0.5),
                self.histogram.quantile(0.99),
                self.histogram.quantile(0.999),
            ]
        });
        Summary {
            frames: self.frames,
            elapsed,
            fps: self.frames as f64 / elapsed.as_secs_f64().max(1e-9),
            dropped: self.dropped,
            latency_ns,
            before_attach: self.before_attach,
        }
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl fmt::Display for Window {
    /// `30.0 fps  latency p50 0.052 ms  p99 0.110 ms  max 0.140 ms  dropped 0  frames 300`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:7.1} fps", self.fps)?;
        if let (Some(p50), Some(p99), Some(max)) =
            (self.latency_p50_ns, self.latency_p99_ns, self.latency_max_ns)
        {
            write!(
                f,
                "  latency p50 {:6.3} ms  p99 {:6.3} ms  max {:6.3} ms",
                ms(p50),
                ms(p99),
                ms(max)
            )?;
        }
        write!(f, "  dropped {}  frames {}", self.dropped, self.total)
    }
}

impl fmt::Display for Summary {
    /// `total: 300 frames in 10.0 s (30.0 fps), dropped 0, latency p50 0.052 ms p99 ... p99.9 ...`
    /// The total counts every frame the reader got; those published before it attached are
    /// said (`(30.0 fps; 1 of them published before attaching, shown, not measured)`), and the
    /// rate and latencies are of the others (as are [`Summary::frames`] and the per-second
    /// [`Window`] lines: the measured frames).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let got = self.frames + self.before_attach;
        write!(f, "total: {got} frames in {secs:.1} s ({:.1} fps", self.fps)?;
        if self.before_attach > 0 {
            write!(
                f,
                "; {} of them published before attaching, shown, not measured",
                self.before_attach
            )?;
        }
        write!(f, "), dropped {}", self.dropped)?;
        if let Some([p50, p99, p999]) = self.latency_ns {
            write!(
                f,
                ", latency p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms",
                ms(p50),
                ms(p99),
                ms(p999)
            )?;
        }
        Ok(())
    }
}

/// A log-linear histogram: values below 64 exactly, then 64 buckets per power of two (each
/// bucket within 1/64 of its value). Fixed size, so a reader running for days does not grow.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    count: u64,
}

const SUB: u32 = 64;

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { counts: vec![0; (SUB * 60) as usize], count: 0 }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram").field("count", &self.count).finish()
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let magnitude = 63 - v.leading_zeros(); // >= 6
        let shift = magnitude - 6;
        let sub = (v >> shift) as u32 - SUB; // 0..64
        ((magnitude - 5) * SUB + sub) as usize
    }

    /// The smallest value of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u32;
        if i < SUB {
            return i as u64;
        }
        let magnitude = i / SUB + 5;
        let sub = (i % SUB + SUB) as u64;
        sub << (magnitude - 6)
    }

    fn add(&mut self, v: u64) {
        let i = Self::index(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.count += 1;
    }

    fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.count - 1) as f64 * q).round() as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Self::value(i);
            }
        }
        Self::value(self.counts.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_forward_gaps_and_restarts_drop_nothing() {
        let mut s = Stats::new();
        for seq in [0, 1, 2, 5, 6, 0, 1, 9] {
            s.record(seq, 0, 0, 0);
        }
        // 2 -> 5 drops 2; 6 -> 0 is a new producer; 1 -> 9 drops 7.
        assert_eq!(s.dropped(), 9);
        s.restart();
        s.record(100, 0, 0, 0);
        assert_eq!(s.dropped(), 9);
        assert_eq!(s.frames(), 9);
    }

    #[test]
    fn what_a_reader_lost_counts_only_before_its_first_frame() {
        let mut s = Stats::new();
        s.record(4, 0, 0, 4); // the reader lost frames 0..=3 before its first read
        s.record(9, 0, 0, 4); // gap 5..=8: the gap counts (the producer may have dropped one too)
        assert_eq!(s.dropped(), 8);
        s.restart();
        s.record(2, 0, 0, 2); // a new producer: its first two frames were lost
        assert_eq!(s.dropped(), 10);
    }

    #[test]
    fn window_percentiles_are_exact_and_reset() {
        let mut s = Stats::new();
        for i in 1..=100u64 {
            s.record(i, 1_000, 1_000 + i * 1_000, 0);
        }
        s.record(101, 0, 5, 0); // a raw frame: counted, no latency
        let w = s.take_window();
        assert_eq!(w.frames, 101);
        assert_eq!(w.latency_p50_ns, Some(51_000)); // rank round(99 * 0.5) = 50 -> 51 us
        assert_eq!(w.latency_p99_ns, Some(99_000));
        assert_eq!(w.latency_max_ns, Some(100_000));
        let text = w.to_string();
        assert!(text.contains("p50  0.051 ms") && text.contains("frames 101"), "{text}");
        let empty = s.take_window();
        assert_eq!((empty.frames, empty.latency_p50_ns), (0, None));
        assert!(!empty.to_string().contains("latency"));
    }

    #[test]
    fn summary_percentiles_are_within_the_histogram_resolution() {
        let mut s = Stats::new();
        for i in 1..=10_000u64 {
            s.record(i, 1, 1 + i * 997, 0); // latencies 997 ns .. 9.97 ms
        }
        let [p50, p99, p999] = s.summary().latency_ns.unwrap();
        for (got, want) in [(p50, 5_000 * 997), (p99, 9_900 * 997), (p999, 9_990 * 997)] {
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.02, "{got} vs {want}");
        }
        assert!(s.summary().to_string().contains("total: 10000 frames"));
    }

    #[test]
    fn frames_published_before_attaching_are_not_measured() {
        // Attached at t = 10 s to a 1 fps producer: the newest frame (published at 9.5 s) is
        // read at once, then two fresh ones, each read 50 us after its publish.
        let attach = 10_000_000_000;
        let mut s = Stats::since(attach);
        s.record(9, attach - 500_000_000, attach + 1_000, 0);
        assert!(!s.measures(attach - 1) && s.measures(attach) && s.measures(0));
        s.record(10, attach + 500_000_000, attach + 500_050_000, 0);
        s.record(12, attach + 1_500_000_000, attach + 1_500_050_000, 0); // 11 dropped
        assert_eq!((s.frames(), s.before_attach(), s.dropped()), (2, 1, 1));
        let w = s.take_window();
        assert_eq!((w.frames, w.latency_max_ns), (2, Some(50_000)));
        let sum = s.summary();
        assert_eq!(sum.before_attach, 1);
        assert!(sum.latency_ns.unwrap()[1] < 60_000, "{sum:?}");
        let line = sum.to_string();
        assert!(line.contains("total: 3 frames"), "{line}"); // 2 measured + 1 before attaching
        assert!(line.contains("1 of them published before attaching"), "{line}");
        // Stats::new() measures everything (the old behaviour).
        let mut all = Stats::new();
        all.record(1, 5, 10, 0);
        assert_eq!((all.frames(), all.before_attach()), (1, 0));
    }

    #[test]
    fn histogram_buckets_are_monotonic_and_cover_u64() {
        let mut last = 0;
        for v in (0..200_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i >= last || v > 200_000);
            last = i;
            assert!(Histogram::value(i) <= v);
        }
        let mut h = Histogram::default();
        h.add(u64::MAX);
        assert!(h.quantile(0.5) > 0);
    }
}
