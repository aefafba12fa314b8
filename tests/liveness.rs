//! Liveness the kernel reports (see `src/core/liveness.rs`): an idle reader makes no wake-ups,
//! and a peer killed with SIGKILL wakes whoever waits on it, across processes and PID
//! namespaces; the polling fallback (`SHMFRAMES_LIVENESS=poll`) still notices, by polling.
//!
//! Children are this test binary re-run with `SHMFRAMES_CHILD=<role>` (see `common`). The
//! bounds are generous (a noisy shared machine); the measured times are printed, and
//! `benches/liveness.py` measures them properly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{child_role, spawn_child, wait_until, Channel, ChildGuard};
use shmframes::{Error, PixelFormat, Reader, ReaderOptions, Start, Writer, WriterOptions};

/// The child side. Does nothing in a normal test run.
#[test]
fn child_entry() {
    let Some((role, ch)) = child_role() else { return };
    match role.as_str() {
        // Publish one frame, then live without publishing until killed.
        "writer_one_then_idle" => {
            let mut w =
                Writer::create(&ch, &WriterOptions::new(64, 64, PixelFormat::Gray8).unwrap())
                    .unwrap();
            let mut slot = w.try_frame().unwrap().unwrap();
            slot.pixels().fill(7);
            slot.publish();
            std::thread::sleep(Duration::from_secs(600));
        }
        // Read the first frame, then block in `read(None)`; print how it ended, and when.
        "reader_blocked" => {
            let o = ReaderOptions {
                timeout: Duration::from_secs(20),
                start: Start::Oldest,
                ..Default::default()
            };
            let mut r = Reader::open(&ch, &o).unwrap();
            let first = r.read(Some(Duration::from_secs(20))).unwrap().expect("the first frame");
            drop(first);
            println!("blocked");
            let outcome = match r.read(None) {
                Err(Error::ProducerGone { .. }) => "gone",
                Err(Error::EndOfStream { .. }) => "ended",
                Ok(_) => "frame",
                Err(_) => "error",
            };
            println!("{outcome} {}", shmframes::monotonic_ns());
        }
        // A lossless reader that attaches and never reads: a waiting producer waits for it.
        "reader_stalled" => {
            let o = ReaderOptions {
                timeout: Duration::from_secs(20),
                lossless: true,
                start: Start::Oldest,
                ..Default::default()
            };
            let _r = Reader::open(&ch, &o).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        }
        // Three frames; once the reader holds the first two, take the third's slot (the one
        // frame it has not read) and die writing into it.
        "writer_dies_writing" => {
            let mut o = WriterOptions::new(64, 64, PixelFormat::Gray8).unwrap();
            o.buffer_frames = 1;
            let mut w = Writer::create(&ch, &o).unwrap();
            assert_eq!(w.slots(), Some(3), "the test needs exactly three slots");
            assert!(wait_until(20.0, || w.readers().attached == 1));
            for v in 0..3u8 {
                let mut s = w.try_frame().unwrap().unwrap();
                s.pixels().fill(v);
                s.publish();
            }
            assert!(wait_until(20.0, || w.reader_list().first().is_some_and(|r| r.held == 2)));
            let mut slot = w.try_frame().unwrap().expect("the unread frame's slot");
            slot.pixels().fill(9);
            println!("writing");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Context switches (voluntary and not) of every thread of process `pid` so far.
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            status
                .lines()
                .filter(|l| {
                    l.starts_with("voluntary_ctxt_switches")
                        || l.starts_with("nonvoluntary_ctxt_switches")
                })
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// A child whose stdout we read line by line.
struct Piped {
    child: ChildGuard,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

fn blocked_reader(ch: &str, env: &[(&str, String)]) -> Piped {
    let mut b = piped_child("reader_blocked", ch, env);
    b.expect_line("blocked");
    b
}

impl Piped {
    /// The rest of the first line that contains `word`, from `word` on (the test harness may
    /// have printed its own text before it on the same line).
    fn expect_line(&mut self, word: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(at) = line.find(word) {
                return line[at..].to_owned();
            }
        }
        panic!("the reader child ended without printing {word:?}");
    }
}

/// A child of this test binary playing `role` on `ch`, its stdout piped to us.
fn piped_child(role: &str, ch: &str, env: &[(&str, String)]) -> Piped {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("SHMFRAMES_CHILD", role)
        .env("SHMFRAMES_CHANNEL", ch)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    Piped { child: ChildGuard(Some(child)), lines }
}

/// Watches an idle reader for `window`, then kills the producer; returns the reader's context
/// switches in the window and how long it took to report the death.
fn idle_then_kill(
    mut producer: ChildGuard,
    ch: &Channel,
    env: &[(&str, String)],
    window: Duration,
) -> (u64, Duration) {
    let mut reader = blocked_reader(ch, env);
    // Let it settle into its sleep.
    std::thread::sleep(Duration::from_millis(300));
    let pid = reader.child.pid();
    let before = context_switches(pid);
    std::thread::sleep(window);
    let switches = context_switches(pid) - before;
    let killed_ns = shmframes::monotonic_ns();
    producer.kill9();
    let line = reader.expect_line("gone");
    let gone_ns: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(reader.child.wait().success());
    (switches, Duration::from_nanos(gone_ns.saturating_sub(killed_ns)))
}

#[test]
fn an_idle_reader_sleeps_without_wake_ups_and_a_killed_producer_wakes_it() {
    let ch = Channel::new("idle");
    let producer = spawn_child("child_entry", "writer_one_then_idle", &ch, &[]);
    assert!(wait_until(20.0, || ch.exists()));
    let (switches, noticed) = idle_then_kill(producer, &ch, &[], Duration::from_secs(2));
    eprintln!(
        "kernel-watched: {switches} context switches in 2 s idle; death noticed after {:.2} ms",
        noticed.as_secs_f64() * 1e3
    );
    // Counted from /proc on Linux only (Windows: `make test-windows` counts nothing yet).
    if cfg!(target_os = "linux") {
        assert_eq!(switches, 0, "an idle reader woke up");
    }
    assert!(noticed < Duration::from_secs(1), "noticed only after {noticed:?}");
}

#[test]
#[cfg(unix)] // the fallback is Unix's (SHMFRAMES_LIVENESS=poll)
fn the_polling_fallback_still_notices_a_killed_producer() {
    let ch = Channel::new("poll");
    let poll = [("SHMFRAMES_LIVENESS", "poll".to_owned())];
    let producer = spawn_child("child_entry", "writer_one_then_idle", &ch, &poll);
    assert!(wait_until(20.0, || ch.exists()));
    let (switches, noticed) = idle_then_kill(producer, &ch, &poll, Duration::from_secs(2));
    eprintln!(
        "polling: {switches} context switches in 2 s idle; death noticed after {:.2} ms",
        noticed.as_secs_f64() * 1e3
    );
    // The fallback really ran: it wakes to poll (about 25 times in 2 s).
    assert!(switches >= 5, "only {switches} wake-ups: the fallback path did not run");
    assert!(noticed < Duration::from_secs(1), "noticed only after {noticed:?}");
}

/// The producer in a PID namespace of its own (two containers sharing /dev/shm): its keeper's
/// thread id means nothing to the reader, and the kernel still marks its death.
#[test]
#[cfg(target_os = "linux")]
fn a_producer_in_another_pid_namespace_is_watched_too() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: unshare --pid needs root (CI runs as root)");
        return;
    }
    let ch = Channel::new("pidns");
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("SHMFRAMES_CHILD", "writer_one_then_idle")
        .env("SHMFRAMES_CHANNEL", &*ch)
        .stdout(Stdio::null())
        .spawn()
        .expect("unshare (util-linux)");
    let producer = ChildGuard(Some(child));
    assert!(wait_until(20.0, || ch.exists()), "the namespaced producer never created its channel");
    // Killing unshare kills the namespace's first process (--kill-child): the producer.
    let (switches, noticed) = idle_then_kill(producer, &ch, &[], Duration::from_secs(1));
    eprintln!("other PID namespace: {switches} context switches in 1 s idle; death noticed after {:.2} ms", noticed.as_secs_f64() * 1e3);
    // Counted from /proc on Linux only (Windows: `make test-windows` counts nothing yet).
    if cfg!(target_os = "linux") {
        assert_eq!(switches, 0, "an idle reader woke up");
    }
    assert!(noticed < Duration::from_secs(1), "noticed only after {noticed:?}");
}

/// A producer waiting for room (a lossless reader that does not read) is woken by that
/// reader's death and frees its place.
#[test]
fn a_producer_waiting_for_room_is_woken_by_a_killed_reader() {
    // (Windows has no polling fallback: its deaths are always abandoned mutexes.)
    for poll in [false, cfg!(unix)] {
        if poll {
            // The fallback is chosen once per process: run it in a child of its own.
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "a_producer_waiting_for_room_is_woken_by_a_killed_reader",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SHMFRAMES_LIVENESS", "poll")
                .env("SHMFRAMES_ROOM_ONCE", "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "polling fallback: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprint!(
                "{}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .filter(|l| l.contains("noticed"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            eprintln!();
            continue;
        }
        let ch = Channel::new("room");
        let mut o = WriterOptions::new(64, 64, PixelFormat::Gray8).unwrap();
        o.buffer_frames = 1;
        let mut w = Writer::create(&ch, &o).unwrap();
        let mut reader = spawn_child("child_entry", "reader_stalled", &ch, &[]);
        assert!(wait_until(20.0, || w.readers().attached == 1));
        // Fill every slot: the lossless reader has read none of them.
        let mut filled = 0;
        while let Some(mut s) = w.frame(Some(Duration::ZERO)).unwrap() {
            s.pixels().fill(1);
            s.publish();
            filled += 1;
        }
        assert_eq!(filled, w.slots().unwrap());
        let mut child = reader.0.take().expect("the reader runs");
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let at = Instant::now();
            let _ = child.kill(); // SIGKILL; TerminateProcess on Windows
            let _ = child.wait();
            at
        });
        let got = w.frame(Some(Duration::from_secs(20))).unwrap();
        let done = Instant::now();
        let killed = killer.join().unwrap();
        reader.kill9();
        assert!(got.is_some(), "the producer never got room after its reader died");
        let noticed = done - killed;
        let mode = if std::env::var_os("SHMFRAMES_LIVENESS").is_some() {
            "polling"
        } else {
            "kernel-watched"
        };
        eprintln!(
            "{mode}: the waiting producer noticed its reader's death after {:.2} ms",
            noticed.as_secs_f64() * 1e3
        );
        assert!(noticed < Duration::from_secs(1), "noticed only after {noticed:?}");
        drop(got);
        assert_eq!(w.readers().attached, 0, "the dead reader's place was not freed");
        if std::env::var_os("SHMFRAMES_ROOM_ONCE").is_some() {
            return;
        }
    }
}

/// A producer killed while writing into the slot of the one frame a reader had not read: the
/// reader reports it gone at once (that frame will never come), rather than waiting for it
/// until its deadline.
#[test]
fn a_producer_killed_mid_write_is_reported_not_waited_for() {
    let ch = Channel::new("midwrite");
    let mut producer = piped_child("writer_dies_writing", &ch, &[]);
    let o = ReaderOptions {
        timeout: Duration::from_secs(20),
        start: Start::Oldest,
        ..Default::default()
    };
    let mut r = Reader::open(&ch, &o).unwrap();
    let a = r.read(Some(Duration::from_secs(20))).unwrap().expect("frame 0");
    let b = r.read(Some(Duration::from_secs(20))).unwrap().expect("frame 1");
    // The producer takes the third frame's slot (we hold the other two), then is killed.
    producer.expect_line("writing");
    assert_eq!(r.lag(), Some(1));
    producer.child.kill9();
    let t = Instant::now();
    let got = r.read(Some(Duration::from_secs(10)));
    assert!(matches!(got, Err(Error::ProducerGone { .. })), "{got:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "reported only after {:?}", t.elapsed());
    assert!(
        a.pixels().iter().all(|&p| p == 0) && b.pixels().iter().all(|&p| p == 1),
        "held frames changed"
    );
}

/// A terminal state is sticky (issue 27): after the producer's SIGKILL, `producer_state` says
/// gone without a read, and every later `read`, `try_read` and `latest` raises `ProducerGone`
/// at once, however long its timeout (a retry loop must not hang). A following reader goes on
/// to the next producer instead.
#[test]
fn a_dead_producer_is_reported_by_every_later_call_at_once() {
    let ch = Channel::new("sticky");
    let mut producer = spawn_child("child_entry", "writer_one_then_idle", &ch, &[]);
    let o = ReaderOptions {
        timeout: Duration::from_secs(20),
        start: Start::Oldest,
        ..Default::default()
    };
    let mut r = Reader::open(&ch, &o).unwrap();
    drop(r.read(Some(Duration::from_secs(20))).unwrap().expect("the first frame"));
    assert_eq!(r.producer_state(), shmframes::ProducerState::Live);
    producer.kill9();
    let t = Instant::now();
    assert!(
        wait_until(5.0, || r.producer_state() == shmframes::ProducerState::Gone),
        "producer_state never said gone without a read"
    );
    println!("producer_state gone {:?} after the kill", t.elapsed());
    for i in 0..3 {
        let t = Instant::now();
        let got = r.read(Some(Duration::from_secs(1)));
        assert!(matches!(got, Err(Error::ProducerGone { .. })), "read {i}: {got:?}");
        // Generous (a noisy machine): the point is "not after the 1 s timeout".
        assert!(t.elapsed() < Duration::from_millis(500), "read {i} took {:?}", t.elapsed());
    }
    let t = Instant::now();
    assert!(matches!(r.latest(None), Err(Error::ProducerGone { .. })));
    assert!(matches!(r.try_read(), Err(Error::ProducerGone { .. })));
    assert!(t.elapsed() < Duration::from_millis(500), "latest took {:?}", t.elapsed());
}
