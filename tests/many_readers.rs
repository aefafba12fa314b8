//! One channel, many readers, across processes: readers of every kind joining, leaving and
//! being killed at random moments while a producer publishes checksummed frames at full rate.
//! Children are this test binary re-run with `SHMFRAMES_CHILD=<role>` (see `common`).

mod common;

use std::time::{Duration, Instant};

use common::{child_role, spawn_child, wait_until, Channel, ChildGuard};
use shmframes::{Error, PixelFormat, Reader, ReaderOptions, Start, Writer, WriterOptions};

const W: u32 = 256;
const H: u32 = 256;

/// What a reader child does, from `SHMFRAMES_MODE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Default delivery: every frame while it keeps up, else it loses the oldest.
    Lossy,
    /// Every frame, in order, from the first one.
    Lossless,
    /// Only `latest()`.
    Latest,
}

impl Mode {
    fn parse(s: &str) -> Mode {
        match s {
            "lossy" => Mode::Lossy,
            "lossless" => Mode::Lossless,
            "latest" => Mode::Latest,
            other => panic!("unknown mode {other}"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Lossy => "lossy",
            Mode::Lossless => "lossless",
            Mode::Latest => "latest",
        }
    }
}

/// The child side. Does nothing in a normal test run.
#[test]
fn child_entry() {
    let Some((role, ch)) = child_role() else { return };
    assert_eq!(role, "reader", "unknown child role {role}");
    let mode = Mode::parse(&std::env::var("SHMFRAMES_MODE").unwrap());
    let limit: Option<u64> = std::env::var("SHMFRAMES_FRAMES").ok().and_then(|v| v.parse().ok());
    let lossless = mode == Mode::Lossless;
    let o = ReaderOptions {
        timeout: Duration::from_secs(20),
        lossless,
        start: Start::Oldest,
        ..Default::default()
    };
    let mut r = match Reader::open(&ch, &o) {
        Ok(r) => r,
        // Spawned just before the producer ended: the stream was over before this one began.
        Err(Error::ChannelNotFound { .. }) if !lossless => return,
        Err(e) => panic!("{} reader: {e}", mode.name()),
    };
    let (mut first, mut last, mut count) = (None::<u64>, None::<u64>, 0u64);
    let mut held: Vec<shmframes::Frame> = Vec::new();
    loop {
        let got = match mode {
            Mode::Latest => r.latest(Duration::from_secs(30)),
            _ => r.read(Duration::from_secs(30)),
        };
        let f = match got {
            Ok(Some(f)) => f,
            Err(Error::EndOfStream { .. }) => break,
            other => panic!("{} reader after {count} frames: {other:?}", mode.name()),
        };
        assert!(
            common::check(f.pixels(), f.seq()),
            "{} reader: frame {} torn",
            mode.name(),
            f.seq()
        );
        if let Some(l) = last {
            assert!(f.seq() > l, "{} reader: frame {} after {l}", mode.name(), f.seq());
            if lossless {
                assert_eq!(f.seq(), l + 1, "the lossless reader lost frames");
            }
        }
        first.get_or_insert(f.seq());
        last = Some(f.seq());
        count += 1;
        // Hold a few frames now and then (released in another order): what a killed reader
        // leaves pinned.
        held.push(f);
        if held.len() > 2 || count % 7 != 0 {
            let k = (count as usize) % held.len();
            held.swap_remove(k);
        }
        if limit.is_some_and(|n| count >= n) {
            break;
        }
    }
    // Every held frame is still intact when released.
    for f in held.drain(..) {
        assert!(common::check(f.pixels(), f.seq()), "a held frame was overwritten");
    }
    if let Ok(path) = std::env::var("SHMFRAMES_REPORT") {
        let line =
            format!("{} {} {} {}\n", first.unwrap_or(0), last.unwrap_or(0), count, r.dropped());
        std::fs::write(path, line).unwrap();
    }
}

fn reader_child(
    ch: &str,
    mode: Mode,
    frames: Option<u64>,
    report: Option<&std::path::Path>,
) -> ChildGuard {
    let mut env = vec![("SHMFRAMES_MODE", mode.name().to_owned())];
    if let Some(n) = frames {
        env.push(("SHMFRAMES_FRAMES", n.to_string()));
    }
    if let Some(p) = report {
        env.push(("SHMFRAMES_REPORT", p.display().to_string()));
    }
    spawn_child("child_entry", "reader", ch, &env)
}

/// `first last count dropped`, as a reader child reported them.
fn read_report(path: &std::path::Path) -> [u64; 4] {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    let v: Vec<u64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
    [v[0], v[1], v[2], v[3]]
}

/// A report file unique to this test, removed on drop.
struct Report(std::path::PathBuf);

impl Report {
    fn new(tag: &str) -> Report {
        Report(std::env::temp_dir().join(format!("shmframes-report-{}-{tag}", std::process::id())))
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A small random generator for the chaos schedule (reproducible from the seed it prints).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = common::mix(self.0);
        self.0 % n
    }
}

/// Publishes for `secs` while readers of every kind join, leave and are SIGKILLed; a lossless
/// reader lives through it all. Checks: every frame any reader sees has a correct checksum
/// (the children assert it); the lossless reader sees every frame in order; the producer never
/// stalls long on a dead reader.
fn run_chaos(secs: u64, label: &str) {
    let ch = Channel::new(label);
    let mut o = WriterOptions::new(W, H, PixelFormat::Gray8).unwrap();
    // Held frames are never overwritten, so the readers' holdings must leave the producer a
    // slot: up to 7 readers hold up to 2 frames each between reads, and 15 buffered frames
    // give at least 16 slots (31 here, from rounding the data area up). With fewer, readers
    // that hold 2 frames each at different places can take every slot: the producer then
    // waits, as documented, until one is released.
    o.buffer_frames = 15;
    o.max_readers = 8;
    let mut w = Writer::create(&ch, &o).unwrap();
    let report = Report::new(label);
    let mut lossless = reader_child(&ch, Mode::Lossless, None, Some(&report.0));
    assert!(wait_until(20.0, || w.readers().attached == 1), "the lossless reader never attached");

    let seed = shmframes::monotonic_ns();
    eprintln!("{label}: seed {seed}");
    let mut rng = Rng(seed);
    let mut others: Vec<ChildGuard> = Vec::new();
    let (mut spawned, mut killed, mut finished) = (0u32, 0u32, 0u32);
    let start = Instant::now();
    let mut next_event = Instant::now();
    let mut seq = 0u64;
    let mut worst_wait = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        let Some(mut slot) = w.frame(Duration::from_secs(20)).unwrap() else {
            panic!("the producer waited 20 s for room; readers: {:#?}", w.reader_list());
        };
        worst_wait = worst_wait.max(t.elapsed());
        common::fill(slot.pixels(), seq);
        slot.set_seq(seq);
        slot.publish();
        seq += 1;
        if Instant::now() >= next_event {
            next_event = Instant::now() + Duration::from_millis(50 + rng.below(400));
            others.retain_mut(|c| match c.0.as_mut().unwrap().try_wait().unwrap() {
                Some(status) => {
                    assert!(status.success(), "a reader child failed: {status}");
                    finished += 1;
                    false
                }
                None => true,
            });
            match rng.below(3) {
                0 if others.len() < 6 => {
                    let mode = [Mode::Lossy, Mode::Lossy, Mode::Latest][rng.below(3) as usize];
                    let frames = (rng.below(2) == 0).then(|| 1 + rng.below(500));
                    others.push(reader_child(&ch, mode, frames, None));
                    spawned += 1;
                }
                1 if !others.is_empty() => {
                    let i = rng.below(others.len() as u64) as usize;
                    others.swap_remove(i).kill9();
                    killed += 1;
                }
                _ => {}
            }
        }
    }
    w.close().unwrap();
    assert!(lossless.0.as_mut().unwrap().wait().unwrap().success(), "the lossless reader failed");
    lossless.0 = None;
    for mut c in others {
        let status = c.0.as_mut().unwrap().wait().unwrap();
        assert!(status.success(), "a reader child failed: {status}");
        c.0 = None;
        finished += 1;
    }
    let [first, last, count, dropped] = read_report(&report.0);
    eprintln!(
        "{label}: {seq} frames in {:.1} s; readers spawned {spawned}, killed {killed}, finished {finished}; \
         longest wait for room {:.1} ms",
        start.elapsed().as_secs_f64(),
        worst_wait.as_secs_f64() * 1e3
    );
    assert_eq!(
        (first, last, count, dropped),
        (0, seq - 1, seq, 0),
        "the lossless reader missed frames"
    );
    // Dead readers are freed within a sweep period (40 ms); the bound is generous for a noisy
    // machine, and what a dead reader would cost without the sweep is forever.
    assert!(worst_wait < Duration::from_secs(2), "the producer stalled {worst_wait:?}");
}

#[test]
fn readers_join_leave_and_die_while_a_lossless_reader_loses_nothing() {
    let secs =
        std::env::var("SHMFRAMES_CHAOS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    run_chaos(secs, "chaos");
}

/// The 10-minute soak with three readers (lossless, lossy, latest), checksummed frames at full
/// rate, memory sampled: `make soak` (SOAK_SECS to change).
#[test]
#[ignore = "a 10-minute soak; run it on purpose"]
fn soak() {
    let secs =
        std::env::var("SHMFRAMES_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(600u64);
    let ch = Channel::new("soak");
    let mut o = WriterOptions::new(W, H, PixelFormat::Gray8).unwrap();
    o.buffer_frames = 4;
    let mut w = Writer::create(&ch, &o).unwrap();
    let reports =
        [Report::new("soak-lossless"), Report::new("soak-lossy"), Report::new("soak-latest")];
    let mut readers: Vec<ChildGuard> = [Mode::Lossless, Mode::Lossy, Mode::Latest]
        .iter()
        .zip(&reports)
        .map(|(&m, r)| reader_child(&ch, m, None, Some(&r.0)))
        .collect();
    assert!(wait_until(20.0, || w.readers().attached == 3));
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = Instant::now();
    let mut seq = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let mut slot = w.frame(Duration::from_secs(30)).unwrap().expect("room");
        common::fill(slot.pixels(), seq);
        slot.set_seq(seq);
        slot.publish();
        seq += 1;
        if Instant::now() >= next_sample {
            let rss: Vec<u64> = readers.iter().map(|c| rss_kib(c.pid())).collect();
            samples.push((start.elapsed().as_secs(), rss_kib(std::process::id()), rss));
            next_sample += Duration::from_secs(60);
        }
    }
    w.close().unwrap();
    for c in &mut readers {
        assert!(c.0.as_mut().unwrap().wait().unwrap().success(), "a reader failed");
        c.0 = None;
    }
    let dt = start.elapsed().as_secs_f64();
    eprintln!(
        "soak: {seq} frames in {dt:.0} s ({:.0} frames/s, {:.2} GiB/s)",
        seq as f64 / dt,
        (seq * (W * H) as u64) as f64 / dt / (1u64 << 30) as f64
    );
    for (r, m) in reports.iter().zip(["lossless", "lossy", "latest"]) {
        let [first, last, count, dropped] = read_report(&r.0);
        eprintln!("soak: {m:8} reader: frames {first}..={last}, {count} read, {dropped} dropped");
    }
    for (t, producer, readers) in &samples {
        eprintln!("soak: at {t:4} s  producer RSS {producer} KiB  readers RSS {readers:?} KiB");
    }
    let [first, last, count, dropped] = read_report(&reports[0].0);
    assert_eq!(
        (first, last, count, dropped),
        (0, seq - 1, seq, 0),
        "the lossless reader missed frames"
    );
    let (a, b) = (samples.first().unwrap(), samples.last().unwrap());
    assert!(b.1 <= a.1 + 8 * 1024, "producer memory grew: {a:?} -> {b:?}");
    for i in 0..3 {
        assert!(b.2[i] <= a.2[i] + 8 * 1024, "reader {i} memory grew: {a:?} -> {b:?}");
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
