//! Cross-process, end to end: `frame-producer` (synthetic 1080p BGR) into the Rust `Reader`.
//!
//! `cargo bench -p shmframes-tools --bench pipeline` prints:
//! - lossless throughput: frames/s and GB/s with `--fps 0 --when-full wait`, every frame read
//!   and checked for order;
//! - delivery latency at 30 fps: publish (stamped by the producer just before the head store)
//!   to the reader holding the frame, p50 / p99 / p99.9;
//! - CPU used by a reader waiting on an idle channel.
//!
//! Environment: `PIPELINE_FRAMES` (default 3000), `PIPELINE_LATENCY_FRAMES` (default 600).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmframes::{Error, Reader, ReaderOptions};

const BIN: &str = env!("CARGO_BIN_EXE_frame-producer");

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Producer(std::process::Child, String);

impl Producer {
    fn start(tag: &str, args: &[&str]) -> Producer {
        let name = format!("shmframes-bench-{}-{tag}", std::process::id());
        let mut full = vec!["--name", &name, "--quiet", "--size", "1920x1080"];
        full.extend_from_slice(args);
        let child =
            Command::new(BIN).args(&full).stdin(Stdio::null()).spawn().expect("run frame-producer");
        Producer(child, name)
    }
    /// A lossless reader from the oldest frame kept: a `--when-full wait` producer waits for it
    /// (a default reader never slows a producer, and may lose frames to a full-speed one).
    fn reader(&self) -> Reader {
        let o = ReaderOptions {
            timeout: Duration::from_secs(30),
            lossless: true,
            start: shmframes::Start::Oldest,
            ..Default::default()
        };
        Reader::open(&self.1, &o).unwrap()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.1));
    }
}

/// Context switches of every thread of this process so far.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF always exists.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The limit for delivery latency: one process stamps the time, stores a counter and wakes
/// another process asleep on it (a futex in shared memory, no other work), `n` times at
/// `fps`. Returns the wake-to-running latencies in ns.
fn bare_wake_latencies(n: u32, fps: f64) -> Vec<u64> {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    // SAFETY: an anonymous shared mapping of one page, checked below; unmapped at the end.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    // SAFETY: the zeroed page holds an aligned u32 at 0 and an aligned u64 at 8, used only as
    // atomics, in both processes, while mapped.
    let (word, stamp) = unsafe {
        (&*(page as *const AtomicU32), &*((page as *const u8).add(8) as *const AtomicU64))
    };
    let futex = |op: i32, val: u32, timeout: *const libc::timespec| {
        // SAFETY: a shared (not private) futex on the aligned word of the shared page.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, val, timeout, 0usize, 0u32) };
    };
    // SAFETY: the child only sleeps, reads the clock, stores to the page, makes the futex system
    // call and exits: nothing that needs state the other threads of this process hold.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        std::thread::sleep(Duration::from_millis(200)); // let the parent fall asleep
        for i in 1..=n {
            std::thread::sleep(Duration::from_secs_f64(1.0 / fps));
            stamp.store(shmframes::monotonic_ns(), Ordering::Relaxed);
            word.store(i, Ordering::Release);
            futex(libc::FUTEX_WAKE, 1, std::ptr::null());
        }
        // SAFETY: ends the child without running the parent's exit handlers twice.
        unsafe { libc::_exit(0) };
    }
    let ts = libc::timespec { tv_sec: 5, tv_nsec: 0 };
    let mut lat = Vec::with_capacity(n as usize);
    for i in 1..=n {
        while word.load(Ordering::Acquire) < i {
            futex(libc::FUTEX_WAIT, i - 1, &ts);
            // SAFETY: polls our own child without blocking.
            let gone = word.load(Ordering::Acquire) < i
                && unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid;
            assert!(!gone, "the waking process died");
        }
        lat.push(shmframes::monotonic_ns() - stamp.load(Ordering::Relaxed));
    }
    // SAFETY: reaps our child; then the page is no longer used by anyone.
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::munmap(page, 4096);
    }
    lat
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Lossless throughput: `frame-producer --fps 0 --when-full wait` into this process's `Reader`,
/// every frame read in order and one pixel touched.
fn lossless(frames: u64, buffer: &str) {
    let frames_s = frames.to_string();
    let p = Producer::start(
        "tput",
        &["--fps", "0", "--when-full", "wait", "--frames", &frames_s, "--buffer-frames", buffer],
    );
    let mut r = p.reader();
    let first = r.read(Some(Duration::from_secs(30))).unwrap().expect("first frame");
    let bytes = first.pixels().len() as u64;
    drop(first);
    let start = Instant::now();
    let mut n = 1u64;
    let mut sum = 0u64;
    loop {
        match r.read(Some(Duration::from_secs(30))) {
            Ok(Some(f)) => {
                assert_eq!(f.seq(), n, "frame lost or out of order");
                sum = sum.wrapping_add(f.pixels()[f.pixels().len() / 2] as u64);
                n += 1;
            }
            Err(Error::EndOfStream { .. }) => break,
            other => panic!("{other:?}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let fps = (n - 1) as f64 / secs;
    println!(
        "lossless 1080p BGR, producer (--buffer-frames {buffer}) -> Rust Reader: {n} frames, {fps:.0} frames/s, {:.2} GB/s (checksum {sum})",
        fps * bytes as f64 / 1e9
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // a test harness listing benches: nothing to list here
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then run a short smoke
    // pass that proves the bench works, without spending a minute or printing figures as if
    // they were measurements.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = |n: u64| if quick { n.min(30) } else { n };
    let frames = scale(env_or("PIPELINE_FRAMES", 3000));
    for buffer in ["4", "2"] {
        lossless(frames, buffer);
    }

    let lat_frames = scale(env_or("PIPELINE_LATENCY_FRAMES", 600));
    // One frame more than measured: the producer's last frame waits for its process to exit
    // when the woken reader shares its CPU (up to ms), a start-up/shut-down effect, not delivery.
    let lat_s = (lat_frames + 1).to_string();
    let p = Producer::start("lat", &["--fps", "30", "--frames", &lat_s]);
    let mut r = p.reader();
    let attached = shmframes::monotonic_ns();
    let (mut lat, mut read) = (Vec::new(), 0);
    while read < lat_frames {
        let f = r.read(Some(Duration::from_secs(30))).unwrap().expect("a frame within 30 s");
        read += 1;
        // Frames published before we attached measure our start-up, not delivery.
        if f.publish_ns() >= attached {
            lat.push(shmframes::monotonic_ns() - f.publish_ns());
        }
    }
    lat.sort_unstable();
    println!(
        "delivery latency at 30 fps (publish -> reader holds the frame), {} frames: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        *lat.last().unwrap() as f64 / 1000.0
    );
    drop(r);
    drop(p);

    let mut bare = bare_wake_latencies(lat_frames as u32, 30.0);
    bare.sort_unstable();
    println!(
        "limit: a bare futex wake between two processes at 30 Hz, {} wakes: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        bare.len(),
        percentile(&bare, 0.5),
        percentile(&bare, 0.99),
        percentile(&bare, 0.999)
    );

    let p = Producer::start("idle", &["--fps", "0.001"]); // one frame at start, then idle
    let mut r = p.reader();
    let _ = r.read(Some(Duration::from_secs(30)));
    let (c0, s0, t0) = (cpu_seconds(), context_switches(), Instant::now());
    let idle = if quick { Duration::from_millis(300) } else { Duration::from_secs(10) };
    let got = r.read(Some(idle)).unwrap();
    assert!(got.is_none());
    let cpu = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64() * 100.0;
    let switches = context_switches() - s0;
    println!(
        "idle reader waiting {:.1} s on a live channel: {cpu:.3} % of one core, {switches} context switches of this process (1 is the deadline's own wake-up)",
        idle.as_secs_f64()
    );
    if quick {
        println!("(smoke run: `cargo bench -p shmframes-tools --bench pipeline` measures)");
    }
}
