//! `frame-producer` (synthetic 1080p BGR) into `shmframessrc ! fakesink`, against the same
//! producer into a plain Rust `Reader`, in alternating rounds of one run.
//!
//! `make gst-bench` (`cargo bench -p gstshmframes --bench gst_pipeline`) prints, per round and as
//! medians:
//! - lossless full-rate throughput (`--fps 0 --when-full wait`), frames/s, and this process's
//!   CPU per frame (the reader's; for GStreamer, the source and the fakesink);
//! - latency at 30 fps from the frame's capture (`capture_ns`, stamped by the producer before
//!   it renders the frame) to the frame in the consumer's hands: the Rust reader holding it, or
//!   the buffer reaching fakesink (its PTS maps back to `capture_ns` exactly on the system
//!   clock), p50 / p99.
//!
//! Environment: `GST_BENCH_FRAMES` (default 1500), `GST_BENCH_LATENCY_FRAMES` (300),
//! `GST_BENCH_ROUNDS` (3). Needs `frame-producer` built (`make build`) beside this bench.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use shmframes::{Error, Reader, ReaderOptions, Start};

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// target/release/frame-producer, beside target/release/deps/ where this bench runs.
fn producer_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's path");
    let bin =
        exe.parent().and_then(|deps| deps.parent()).expect("target/release").join("frame-producer");
    assert!(bin.exists(), "{} is missing: run `make build` first", bin.display());
    bin
}

struct Producer(Child, String);

impl Producer {
    fn start(tag: &str, args: &[&str]) -> Producer {
        let name = format!("shmframes-gst-bench-{}-{tag}", std::process::id());
        let child = Command::new(producer_binary())
            .args([
                "--name",
                &name,
                "--quiet",
                "--synthetic",
                "--size",
                "1920x1080",
                "--when-full",
                "wait",
            ])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("run frame-producer");
        Producer(child, name)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.1));
    }
}

/// CPU time of this process (user + system), ns.
fn cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What one round measured: frames, seconds from the first frame to the last, CPU ns, and
/// capture-to-consumer latencies (ns) of every frame.
struct Round {
    frames: u64,
    secs: f64,
    cpu_ns: u64,
    latencies: Vec<u64>,
}

fn rust_round(p: &Producer, frames: u64) -> Round {
    let o = ReaderOptions {
        timeout: Duration::from_secs(30),
        lossless: true,
        start: Start::Oldest,
        ..Default::default()
    };
    let mut r = Reader::open(&p.1, &o).expect("the producer's channel");
    let (mut n, mut first, mut latencies) = (0u64, None, Vec::with_capacity(frames as usize));
    let cpu0 = cpu_ns();
    loop {
        match r.read(Duration::from_secs(30)) {
            Ok(Some(f)) => {
                latencies.push(shmframes::monotonic_ns().saturating_sub(f.capture_ns()));
                first.get_or_insert_with(Instant::now);
                n += 1;
            }
            Ok(None) => panic!("no frame for 30 s"),
            Err(Error::EndOfStream { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    assert_eq!(n, frames, "a lossless reader gets every frame");
    Round { frames: n, secs, cpu_ns: cpu_ns() - cpu0, latencies }
}

fn gst_round(p: &Producer, frames: u64) -> Round {
    let desc = format!("shmframessrc channel={} lossless=true timeout=30 ! fakesink name=sink sync=false enable-last-sample=false", p.1);
    let pipeline = gst::parse::launch(&desc)
        .expect("the pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    /// Buffers seen, when the first came, and every buffer's capture-to-fakesink latency.
    type Seen = (u64, Option<Instant>, Vec<u64>);
    let seen: Arc<Mutex<Seen>> =
        Arc::new(Mutex::new((0, None, Vec::with_capacity(frames as usize))));
    let s = seen.clone();
    let pipe = pipeline.clone();
    let pad = pipeline.by_name("sink").expect("fakesink").static_pad("sink").expect("its pad");
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer() {
            let now = shmframes::monotonic_ns();
            // PTS + base time = capture_ns on the monotonic system clock (src/gst/clock.rs).
            let capture = b.pts().map(|p| p.nseconds()).unwrap_or(0)
                + pipe.base_time().map_or(0, |t| t.nseconds());
            let mut s = s.lock().unwrap();
            s.0 += 1;
            s.1.get_or_insert_with(Instant::now);
            s.2.push(now.saturating_sub(capture));
        }
        gst::PadProbeReturn::Ok
    });
    let cpu0 = cpu_ns();
    pipeline.set_state(gst::State::Playing).expect("plays");
    let bus = pipeline.bus().expect("a bus");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS within 120 s");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{} ({:?})", e.error(), e.debug());
    }
    let cpu = cpu_ns() - cpu0;
    pipeline.set_state(gst::State::Null).expect("stops");
    let (n, first, latencies) = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(n, frames, "a lossless source gets every frame");
    Round {
        frames: n,
        secs: first.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        cpu_ns: cpu,
        latencies,
    }
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: keep that short.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let frames = if smoke { 30 } else { env_or("GST_BENCH_FRAMES", 1500) };
    let lat_frames = if smoke { 15 } else { env_or("GST_BENCH_LATENCY_FRAMES", 300) };
    let rounds = if smoke { 1 } else { env_or("GST_BENCH_ROUNDS", 3) };
    gst::init().expect("GStreamer");
    gstshmframes::plugin_register_static().expect("the plugin");

    let mut rate: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    let mut lat: [Vec<u64>; 2] = Default::default();
    let names = ["Rust Reader", "shmframessrc ! fakesink"];
    for round in 0..rounds {
        for (k, name) in names.iter().enumerate() {
            let n = frames.to_string();
            let p = Producer::start(
                &format!("rate{round}{k}"),
                &["--fps", "0", "--frames", &n, "--buffer-frames", "4"],
            );
            let r = if k == 0 { rust_round(&p, frames) } else { gst_round(&p, frames) };
            let fps = r.frames as f64 / r.secs;
            let us = r.cpu_ns as f64 / r.frames as f64 / 1000.0;
            println!("round {round} {name:<24} lossless 1080p: {fps:>7.0} frames/s, CPU {us:>6.1} us/frame");
            rate[k].push(fps);
            cpu[k].push(us);
        }
        for (k, name) in names.iter().enumerate() {
            let n = lat_frames.to_string();
            let p = Producer::start(&format!("lat{round}{k}"), &["--fps", "30", "--frames", &n]);
            let mut r = if k == 0 { rust_round(&p, lat_frames) } else { gst_round(&p, lat_frames) };
            println!(
                "round {round} {name:<24} 30 fps, capture -> consumer: p50 {:>7.1} us, p99 {:>7.1} us",
                pct(&mut r.latencies, 0.5),
                pct(&mut r.latencies, 0.99)
            );
            lat[k].extend(r.latencies);
        }
    }
    println!("\nmedians of {rounds} alternating rounds ({frames} frames lossless, {lat_frames} at 30 fps):");
    for (k, name) in names.iter().enumerate() {
        println!(
            "{name:<24} {:>7.0} frames/s, CPU {:>6.1} us/frame; latency p50 {:.1} us, p99 {:.1} us",
            median(rate[k].clone()),
            median(cpu[k].clone()),
            pct(&mut lat[k], 0.5),
            pct(&mut lat[k], 0.99)
        );
    }
    println!(
        "shmframessrc / Rust Reader: {:.3} of the rate",
        median(rate[1].clone()) / median(rate[0].clone())
    );
}
