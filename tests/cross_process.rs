//! Producer and consumer in different processes (children of this test binary, re-run with
//! `SHMFRAMES_CHILD=<role>`): volume, death of either side, restarts, exclusivity, and the
//! failures measured in cpp_py_shmbuf.

mod common;

use std::time::{Duration, Instant};

use common::{child_role, spawn_child, wait_until, Channel};
use shmframes::{
    Error, FrameShape, PixelFormat, ProducerState, Reader, ReaderOptions, Writer, WriterOptions,
};

const FRAME_W: u32 = 512;
const FRAME_H: u32 = 512;

fn env_u64(key: &str) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The child side. Does nothing in a normal test run.
#[test]
fn child_entry() {
    let Some((role, ch)) = child_role() else { return };
    match role.as_str() {
        // Lossless framed stream of `SHMFRAMES_FRAMES` checksummed frames, then end of stream.
        "writer_stream" => {
            let mut o = WriterOptions::new(FRAME_W, FRAME_H, PixelFormat::Gray8).unwrap();
            o.buffer_frames = 4;
            let mut w = Writer::create(&ch, &o).unwrap();
            // A waiting writer waits for lossless readers, not for readers to come.
            assert!(common::wait_until(20.0, || w.reader_attached()));
            for seq in 0..env_u64("SHMFRAMES_FRAMES") {
                let mut slot = w.frame(None).unwrap().unwrap();
                common::fill(slot.pixels(), seq);
                slot.publish();
            }
            w.close().unwrap();
        }
        // Frames as fast as possible, dropping when full, until killed.
        "writer_forever" => {
            let mut o = WriterOptions::new(64, 64, PixelFormat::Bgr24).unwrap();
            o.buffer_frames = 3;
            let mut w = Writer::create(&ch, &o).unwrap();
            let tag = env_u64("SHMFRAMES_TAG");
            loop {
                if let Some(mut slot) = w.try_frame().unwrap() {
                    let seq = slot.seq();
                    common::fill(slot.pixels(), seq ^ (tag << 40));
                    slot.publish();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        // Raw (header-less) frames that often split at the ring's end.
        "writer_raw" => {
            let mut o = WriterOptions::new(1000, 100, PixelFormat::Bgr24).unwrap();
            o.buffer_frames = 3;
            o.raw = true;
            let mut w = Writer::create(&ch, &o).unwrap();
            for seq in 0..env_u64("SHMFRAMES_FRAMES") {
                let mut slot = w.frame(None).unwrap().unwrap();
                common::fill(slot.pixels(), seq);
                slot.publish();
            }
            // Raw mode has no end-of-stream message (their consumers would take it for a
            // frame); keep the segment until the reader has read everything.
            while w.readers().lossless_lag.unwrap_or(0) > 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            w.close().unwrap();
        }
        // Wait for a reader, let it fall asleep on the idle channel, then publish one frame.
        "writer_idle_then_one" => {
            let mut w =
                Writer::create(&ch, &WriterOptions::new(64, 64, PixelFormat::Gray8).unwrap())
                    .unwrap();
            assert!(common::wait_until(20.0, || w.reader_attached()));
            std::thread::sleep(Duration::from_millis(300));
            let mut slot = w.try_frame().unwrap().unwrap();
            common::fill(slot.pixels(), 0);
            slot.publish();
            // The reader still reads it after the stream ends.
            w.close().unwrap();
        }
        // Attach, hold two frames, then wait to be killed.
        "reader_hold" => {
            let o = ReaderOptions {
                timeout: Duration::from_secs(10),
                start: shmframes::Start::Oldest,
                ..Default::default()
            };
            let mut r = Reader::open(&ch, &o).unwrap();
            let a = r.read(Some(Duration::from_secs(10))).unwrap().unwrap();
            let b = r.read(Some(Duration::from_secs(10))).unwrap().unwrap();
            println!("holding {} {}", a.seq(), b.seq());
            std::thread::sleep(Duration::from_secs(600));
        }
        // Attach, read one frame, exit normally.
        "reader_exit" => {
            let mut r = Reader::open(
                &ch,
                &ReaderOptions { timeout: Duration::from_secs(10), ..Default::default() },
            )
            .unwrap();
            r.read(Some(Duration::from_secs(10))).unwrap().unwrap();
        }
        other => panic!("unknown child role {other}"),
    }
}

/// A lossless reader from the oldest frame kept: it sees every frame of a waiting producer.
fn open_reader(ch: &str, follow: bool) -> Reader {
    let o = ReaderOptions {
        timeout: Duration::from_secs(20),
        follow,
        lossless: true,
        start: shmframes::Start::Oldest,
        ..Default::default()
    };
    Reader::open(ch, &o).unwrap()
}

#[test]
fn ten_gib_between_processes_lossless_and_checked() {
    let total: u64 = std::env::var("SHMFRAMES_STRESS_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 1 } else { 10 })
        << 30;
    let frames = total.div_ceil((FRAME_W * FRAME_H) as u64);
    let ch = Channel::new("xp10g");
    let _child = spawn_child(
        "child_entry",
        "writer_stream",
        &ch,
        &[("SHMFRAMES_FRAMES", frames.to_string())],
    );
    let mut r = open_reader(&ch, false);
    let start = Instant::now();
    let mut seq = 0u64;
    loop {
        match r.read(Some(Duration::from_secs(30))) {
            Ok(Some(f)) => {
                assert_eq!(f.seq(), seq, "frame lost or duplicated");
                assert!(common::check(f.pixels(), seq), "frame {seq} torn");
                seq += 1;
            }
            Err(Error::EndOfStream { .. }) => break,
            other => panic!("after {seq} frames: {other:?}"),
        }
    }
    assert_eq!(seq, frames);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{frames} frames, {:.2} GiB in {secs:.1} s ({:.2} GiB/s, fill + check included)",
        (frames * (FRAME_W * FRAME_H) as u64) as f64 / (1u64 << 30) as f64,
        (frames * (FRAME_W * FRAME_H) as u64) as f64 / (1u64 << 30) as f64 / secs
    );
}

#[test]
fn raw_split_frames_between_processes() {
    let ch = Channel::new("xpraw");
    let frames = 2000u64;
    let _child =
        spawn_child("child_entry", "writer_raw", &ch, &[("SHMFRAMES_FRAMES", frames.to_string())]);
    let shape = FrameShape::packed(1000, 100, PixelFormat::Bgr24).unwrap();
    let o =
        ReaderOptions { timeout: Duration::from_secs(20), raw: Some(shape), ..Default::default() };
    let mut r = Reader::open(&ch, &o).unwrap();
    let mut copied = 0;
    for seq in 0..frames {
        let f = r.read(Some(Duration::from_secs(30))).unwrap().expect("raw frame");
        assert!(common::check(f.pixels(), seq), "raw frame {seq} torn");
        copied += usize::from(!f.is_zero_copy());
    }
    assert!(copied > 0, "no frame split at the ring's end: the test lost its point");
}

/// SIGKILL at random points, mid-frame included, 20 times: never a torn frame, and
/// `ProducerGone` (generous bound: 1 s; the design checks every 80 ms).
#[test]
fn killed_producer_is_noticed_and_never_tears_a_frame() {
    for round in 0..20u64 {
        let ch = Channel::new("kill");
        let mut child = spawn_child(
            "child_entry",
            "writer_forever",
            &ch,
            &[("SHMFRAMES_TAG", round.to_string())],
        );
        let mut r = open_reader(&ch, false);
        let mut frames = 0u64;
        let kill_after = 20 + common::mix(round) % 200;
        let gone_at;
        let killed_at;
        loop {
            if frames == kill_after {
                child.kill9();
                killed_at = Instant::now();
                break;
            }
            let f = r.read(Some(Duration::from_secs(10))).unwrap().expect("frame");
            assert!(
                common::check(f.pixels(), f.seq() ^ (round << 40)),
                "round {round}: frame {} torn",
                f.seq()
            );
            frames += 1;
        }
        loop {
            match r.read(Some(Duration::from_secs(10))) {
                Ok(Some(f)) => {
                    assert!(common::check(f.pixels(), f.seq() ^ (round << 40)), "torn after kill")
                }
                Ok(None) => panic!("round {round}: producer death not noticed in 10 s"),
                Err(Error::ProducerGone { .. }) => {
                    gone_at = Instant::now();
                    break;
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        let noticed = gone_at - killed_at;
        eprintln!("round {round}: death noticed after {:.1} ms", noticed.as_secs_f64() * 1e3);
        assert!(noticed < Duration::from_secs(1), "noticed only after {noticed:?}");
        assert_eq!(r.producer_state(), ProducerState::Gone);
    }
}

#[test]
fn follow_mode_survives_a_killed_producer() {
    let ch = Channel::new("xpfollow");
    let mut a = spawn_child("child_entry", "writer_forever", &ch, &[("SHMFRAMES_TAG", "1".into())]);
    let mut r = open_reader(&ch, true);
    let f = r.read(Some(Duration::from_secs(10))).unwrap().unwrap();
    assert!(common::check(f.pixels(), f.seq() ^ (1 << 40)));
    drop(f);
    a.kill9();
    // The stale segment is still under the name; the new producer replaces it.
    let _b = spawn_child("child_entry", "writer_forever", &ch, &[("SHMFRAMES_TAG", "2".into())]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "never switched to the restarted producer");
        if let Some(f) = r.read(Some(Duration::from_millis(200))).unwrap() {
            if common::check(f.pixels(), f.seq() ^ (2 << 40)) {
                break; // a frame of the second producer
            }
            assert!(common::check(f.pixels(), f.seq() ^ (1 << 40)), "torn frame");
        }
    }
    assert_eq!(r.producer_state(), ProducerState::Live);
}

#[test]
fn killed_reader_holding_frames_frees_its_place_and_slots() {
    let ch = Channel::new("xphold");
    let mut o = WriterOptions::new(64, 64, PixelFormat::Gray8).unwrap();
    o.buffer_frames = 2;
    o.max_readers = 1;
    let mut w = Writer::create(&ch, &o).unwrap();
    for v in 0..3u8 {
        let mut s = w.try_frame().unwrap().unwrap();
        s.pixels().fill(v);
        s.publish();
    }
    let mut child = spawn_child("child_entry", "reader_hold", &ch, &[]);
    let holding = || shmframes::readers_of(&ch).is_ok_and(|rs| rs.len() == 1 && rs[0].held == 2);
    assert!(
        wait_until(20.0, holding),
        "the child never held two frames: {:?}",
        shmframes::readers_of(&ch)
    );
    assert_eq!(shmframes::readers_of(&ch).unwrap()[0].pid, child.pid());
    // While it holds its place, another reader is refused, across processes too, naming it.
    let e = Reader::open(&ch, &ReaderOptions::default()).unwrap_err();
    assert!(matches!(e, Error::ChannelBusy { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("[{}]", child.pid())),
        "the other reader is not named: {e}"
    );
    child.kill9();
    // Its place is free at once (the kernel dropped its lock)...
    let mut r = Reader::open(&ch, &ReaderOptions::default())
        .expect("the dead reader's place was not freed");
    // ...and so are its slots: the producer fills every slot without waiting.
    let slots = w.slots().unwrap();
    for v in 0..2 * slots {
        let mut s = w
            .frame(Some(Duration::from_secs(1)))
            .unwrap()
            .expect("a slot stayed pinned by the dead reader");
        s.pixels().fill(v as u8);
        s.publish();
    }
    let f = r.read(Some(Duration::from_secs(5))).unwrap().unwrap();
    assert!(f.pixels().iter().all(|&b| b == f.pixels()[0]));
    assert_eq!(w.readers().attached, 1);
}

/// cpp_py_shmbuf's Python reader registers the segment with multiprocessing's resource
/// tracker, which unlinks the producer's live segment when the reader exits. Ours never does.
#[test]
fn reader_exit_leaves_the_producers_segment_alone() {
    let ch = Channel::new("xpexit");
    let mut w =
        Writer::create(&ch, &WriterOptions::new(8, 8, PixelFormat::Gray8).unwrap()).unwrap();
    let mut s = w.try_frame().unwrap().unwrap();
    s.pixels().fill(1);
    s.publish();
    let child = spawn_child("child_entry", "reader_exit", &ch, &[]);
    assert!(child.wait().success());
    assert!(ch.exists(), "the reader's exit removed the live segment");
    assert!(!w.reader_attached());
}

#[test]
fn idle_reader_sleeps_and_wakes_on_the_first_frame() {
    // A reader waiting on an idle channel is woken by the producer's publish in another process.
    let ch = Channel::new("xpidle");
    let _child = spawn_child("child_entry", "writer_idle_then_one", &ch, &[]);
    let mut r = open_reader(&ch, false);
    let f = r.read(Some(Duration::from_secs(20))).unwrap().unwrap();
    assert!(common::check(f.pixels(), 0));
    drop(f);
    assert!(matches!(r.read(Some(Duration::from_secs(20))), Err(Error::EndOfStream { .. })));
}
