//! Latency against CPU of a blocked reader: waking just before the frame (`Wake::Anticipate`,
//! the default) against waking on the producer's wake-up (`Wake::Publish`), alternating in one
//! run, at 30 and 60 fps and with a producer jittered by +-2 ms.
//!
//!     cargo bench -p shmframes --bench wake            (about 2 minutes)
//!     cargo bench -p shmframes --bench wake -- 480 3   (frames per round, rounds)
//!
//! The producer is a thread publishing 1080p BGR frames (one row drawn ahead) on a timer, on
//! time (`precise_timers`); the reader
//! is a thread of the same process in a blocking `read`. Latency is publish -> `read` returned
//! (CLOCK_MONOTONIC); CPU is the reader thread's own CPU time over the round's wall time.

use std::time::{Duration, Instant};

use shmframes::{PixelFormat, Reader, ReaderOptions, Start, Wake, Writer, WriterOptions};

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Round {
    p50_us: f64,
    p99_us: f64,
    cpu_pct: f64,
}

/// One round: `frames` frames at `fps`, each published up to `jitter_ms` early or late.
fn round(name: &str, wake: Wake, fps: f64, jitter_ms: f64, frames: usize) -> Round {
    let opts = WriterOptions::new(1920, 1080, PixelFormat::Bgr24).unwrap();
    let mut w = Writer::create(name, &opts).unwrap();
    let ro = ReaderOptions {
        timeout: Duration::from_secs(5),
        start: Start::Newest,
        ..Default::default()
    };
    let mut r = Reader::open(name, &ro).unwrap();
    r.set_wake(wake);
    let warmup = 15;
    let total = frames + warmup;
    let reader = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(total);
        let (mut cpu0, mut t0) = (0, Instant::now());
        for i in 0..total {
            if i == warmup {
                cpu0 = thread_cpu_ns();
                t0 = Instant::now();
            }
            let f = r.read(Some(Duration::from_secs(5))).unwrap().expect("a frame");
            let now = shmframes::monotonic_ns();
            if i >= warmup {
                lat.push(now - f.publish_ns());
            }
        }
        let cpu = (thread_cpu_ns() - cpu0) as f64 / t0.elapsed().as_nanos() as f64 * 100.0;
        lat.sort_unstable();
        Round {
            p50_us: pct(&lat, 0.5) as f64 / 1e3,
            p99_us: pct(&lat, 0.99) as f64 / 1e3,
            cpu_pct: cpu,
        }
    });
    let period = Duration::from_secs_f64(1.0 / fps);
    // Each frame is drawn ahead and published on its tick, which comes on time (as
    // frame-producer does).
    shmframes::precise_timers();
    let start = Instant::now();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..total as u32 + 2 {
        let mut at = start + period * i;
        if jitter_ms > 0.0 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let j = ((rng % 2001) as f64 / 1000.0 - 1.0) * jitter_ms; // -jitter..+jitter ms
            at = if j >= 0.0 {
                at + Duration::from_secs_f64(j / 1e3)
            } else {
                at.checked_sub(Duration::from_secs_f64(-j / 1e3)).unwrap_or(at)
            };
        }
        let mut slot = w.try_frame().unwrap().expect("room");
        slot.pixels()[..5760].fill(i as u8);
        if let Some(d) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        slot.publish();
    }
    let res = reader.join().unwrap();
    drop(w);
    res
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let frames: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(240);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let name = format!("bench-wake-{}", std::process::id());
    println!("wake: {frames} frames per round after 15 of warm-up, {rounds} rounds, alternating");
    println!("| producer | wake | p50 us | p99 us | reader CPU % |");
    println!("|---|---|---|---|---|");
    for (label, fps, jitter) in
        [("30 fps", 30.0, 0.0), ("60 fps", 60.0, 0.0), ("30 fps +-2 ms", 30.0, 2.0)]
    {
        let mut results: Vec<(Wake, Round)> = Vec::new();
        for k in 0..rounds {
            let order = if k % 2 == 0 {
                [Wake::Anticipate, Wake::Publish]
            } else {
                [Wake::Publish, Wake::Anticipate]
            };
            for wake in order {
                results.push((wake, round(&name, wake, fps, jitter, frames)));
            }
        }
        for wake in [Wake::Anticipate, Wake::Publish] {
            for (_, r) in results.iter().filter(|(w, _)| *w == wake) {
                println!(
                    "| {label} | {wake:?} | {:.1} | {:.1} | {:.2} |",
                    r.p50_us, r.p99_us, r.cpu_pct
                );
            }
        }
    }
}
