//! End-to-end tests of the `frame-producer` binary, read back by the library's Reader and by a
//! plain consumer of the cpp_py_shmbuf layout.

#[path = "../common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Channel, ChildGuard};
use shmframes::{Error, FrameShape, PixelFormat, Reader, ReaderOptions, Start};
use shmframes_tools::pattern::TestPattern;

const BIN: &str = env!("CARGO_BIN_EXE_frame-producer");
const T: Option<Duration> = Some(Duration::from_secs(20));

fn producer(args: &[&str]) -> ChildGuard {
    let child =
        Command::new(BIN).args(args).stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    ChildGuard(Some(child))
}

/// A lossless reader from the oldest frame kept: with `--when-full wait` it gets every frame
/// (a default reader never slows the producer, and may lose frames to a full-speed one).
fn open(name: &str) -> Reader {
    let o = ReaderOptions {
        timeout: Duration::from_secs(20),
        lossless: true,
        start: Start::Oldest,
        ..Default::default()
    };
    Reader::open(name, &o).unwrap()
}

fn wait_exit(mut child: ChildGuard) -> (i32, String) {
    let c = child.0.take().unwrap();
    let out = c.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn rgb_at(f: &shmframes::Frame, x: u32, y: u32) -> [u8; 3] {
    shmframes_tools::pattern::rgb_at(f.shape(), f.pixels(), x, y)
}

/// The pattern's pixels at probe points (bars, castellation, the moving square, the ramp).
fn check_pattern(f: &shmframes::Frame) {
    let s = f.shape();
    let rgb = FrameShape::packed(s.width, s.height, PixelFormat::Rgb24).unwrap();
    let pattern = TestPattern::new(rgb);
    let (size, sx, sy) = pattern.square(f.seq());
    let mut probes: Vec<(u32, u32)> =
        (0..7).map(|i| ((2 * i + 1) * s.width / 14, s.height / 3)).collect();
    probes.push((sx + size / 2, sy + size / 2));
    probes.push((s.width * 3 / 4, s.height * 7 / 8));
    for (x, y) in probes {
        let want = pattern.expected_rgb(f.seq(), x, y);
        let want = if s.format == PixelFormat::Gray8 {
            let mut g = [0u8; 1];
            shmframes_tools::pattern::put_pixel(PixelFormat::Gray8, want, &mut g);
            [g[0]; 3]
        } else {
            want
        };
        assert_eq!(rgb_at(f, x, y), want, "frame {} at ({x},{y})", f.seq());
    }
}

#[test]
fn synthetic_frames_arrive_in_order_with_metadata_and_pixels() {
    for format in ["bgr", "gray", "rgba"] {
        let ch = Channel::new("prod");
        let p = producer(&[
            "--name",
            &ch,
            "--size",
            "320x240",
            "--fps",
            "0",
            "--frames",
            "60",
            "--when-full",
            "wait",
            "--format",
            format,
            "--quiet",
        ]);
        let mut r = open(&ch);
        for seq in 0..60u64 {
            let f = r.read(T).unwrap().expect("frame");
            assert_eq!(f.seq(), seq, "{format}: frames must be consecutive with --when-full wait");
            assert_eq!((f.shape().width, f.shape().height), (320, 240));
            assert_eq!(f.shape().format, format.parse::<PixelFormat>().unwrap());
            assert!(f.capture_ns() > 0 && f.capture_ns() <= f.publish_ns());
            assert!(f.publish_ns() <= shmframes::monotonic_ns());
            check_pattern(&f);
        }
        assert!(matches!(r.read(T), Err(Error::EndOfStream { .. })));
        let (code, err) = wait_exit(p);
        assert_eq!(code, 0, "{err}");
        assert!(!ch.exists(), "segment left behind");
    }
}

#[test]
fn sigterm_and_sigint_end_the_stream_and_remove_the_segment() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let ch = Channel::new("sig");
        let p = producer(&["--name", &ch, "--size", "64x64", "--fps", "50"]);
        let mut r = open(&ch);
        r.read(T).unwrap().expect("a frame before the signal");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(p.pid() as i32, sig) };
        let start = Instant::now();
        let err = loop {
            match r.read(T) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no end of stream after the signal"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::EndOfStream { .. }), "{err}");
        let (code, stderr) = wait_exit(p);
        assert_eq!(code, 0, "signal {sig}: {stderr}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(!ch.exists(), "signal {sig}: segment left behind");
    }
}

/// A minimal consumer written against the cpp_py_shmbuf layout alone (what their C++ and Python
/// consumers do): header fields by offset, `[len][payload]`, tail advanced after each read.
#[test]
fn raw_stream_is_read_by_a_plain_cpp_layout_consumer() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let ch = Channel::new("raw");
    let p = producer(&[
        "--name",
        &ch,
        "--size",
        "64x48",
        "--fps",
        "0",
        "--frames",
        "40",
        "--raw",
        "--when-full",
        "wait",
        "--buffer-frames",
        "3",
        "--quiet",
    ]);
    assert!(common::wait_until(20.0, || ch.exists()));
    let file = std::fs::OpenOptions::new().read(true).write(true).open(ch.path()).unwrap();
    // SAFETY: the test maps the segment to play a foreign consumer; the mapping outlives use.
    let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
    let base = map.as_ptr();
    // SAFETY: offsets 0 and 4 are 4-aligned u32 words inside the page-aligned mapping.
    let (head, tail) =
        unsafe { (&*(base as *const AtomicU32), &*(base.add(4) as *const AtomicU32)) };
    let cap = u32::from_le_bytes(map[8..12].try_into().unwrap());
    let data = |i: u32| map[16 + (i & (cap - 1)) as usize];
    let shape = FrameShape::packed(64, 48, PixelFormat::Bgr24).unwrap();
    let pattern = TestPattern::new(shape);
    let mut expected = vec![0u8; shape.pixel_bytes() as usize];
    let deadline = Instant::now() + Duration::from_secs(30);
    for seq in 0..40u64 {
        let mut t = tail.load(Ordering::Relaxed);
        while head.load(Ordering::Acquire) == t {
            assert!(Instant::now() < deadline, "frame {seq} never came");
            std::thread::sleep(Duration::from_millis(1));
        }
        let len = u32::from_le_bytes([data(t), data(t + 1), data(t + 2), data(t + 3)]);
        assert_eq!(len, 64 * 48 * 3, "their consumers expect exactly w*h*3 bytes");
        let payload: Vec<u8> = (0..len).map(|k| data(t + 4 + k)).collect();
        // The bars (top two thirds, away from the moving square and the text) are exact.
        pattern.render(seq, 0, &mut expected);
        let bars = (shape.stride * shape.height / 2) as usize;
        assert_eq!(&payload[..bars], &expected[..bars], "frame {seq}");
        t = t.wrapping_add(4 + len);
        tail.store(t, Ordering::Release);
    }
    let (code, err) = wait_exit(p);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_producer_stopped_by_a_protocol_error_leaves_nothing_behind() {
    use std::os::unix::fs::FileExt;
    // A raw channel whose tail (the consumer's word) a peer scribbles: the producer stops
    // with a protocol error, and still ends its stream and removes its name.
    let ch = Channel::new("badtail");
    let p = producer(&["--name", &ch, "--size", "64x48", "--fps", "200", "--raw", "--quiet"]);
    assert!(common::wait_until(20.0, || ch.exists()));
    let file = std::fs::OpenOptions::new().read(true).write(true).open(ch.path()).unwrap();
    let mut head = [0u8; 4];
    file.read_exact_at(&mut head, 0).unwrap();
    let bad_tail = u32::from_le_bytes(head).wrapping_add(0x4000_0000);
    file.write_at(&bad_tail.to_le_bytes(), 4).unwrap();
    let (code, err) = wait_exit(p);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("breaks the shared-memory protocol") && err.contains("tail"), "{err}");
    assert!(!ch.exists(), "the segment was left behind");
}

#[test]
fn an_absent_reader_on_one_channel_never_stalls_another() {
    let a = Channel::new("multiA");
    let b = Channel::new("multiB");
    let p = producer(&[
        "--name",
        &a,
        "--name",
        &b,
        "--size",
        "64x64",
        "--fps",
        "200",
        "--frames",
        "400",
        "--when-full",
        "wait",
        "--quiet",
    ]);
    let mut r = open(&a);
    let mut last = None;
    let mut count = 0;
    loop {
        match r.read(T) {
            Ok(Some(f)) => {
                if let Some(l) = last {
                    assert!(f.seq() > l);
                }
                last = Some(f.seq());
                count += 1;
            }
            Err(Error::EndOfStream { .. }) => break,
            other => panic!("{other:?}"),
        }
    }
    // Channel B, with no reader and a 4-frame ring, filled up at once; channel A got the stream.
    assert!(count >= 300, "channel A got only {count} frames");
    let (code, err) = wait_exit(p);
    assert_eq!(code, 0, "{err}");
}

/// The child side of the tests below (this test binary re-run with `SHMFRAMES_CHILD`): a
/// lossless reader that takes two frames, holds them and waits to be killed.
#[test]
fn child_entry() {
    let Some((role, ch)) = common::child_role() else { return };
    assert_eq!(role, "reader_holds", "unknown child role {role}");
    let mut r = open(&ch);
    let _a = r.read(T).unwrap().expect("a frame");
    let _b = r.read(T).unwrap().expect("a frame");
    std::thread::sleep(Duration::from_secs(600));
}

/// Issue 16, point 2: `--name A --name B --when-full wait`, and A's lossless reader is SIGKILLed
/// while it holds frames (and waits for it to read on). B goes on at once: the dead reader is
/// not waited for.
#[test]
fn a_killed_reader_on_one_channel_never_stalls_another() {
    let a = Channel::new("killA");
    let b = Channel::new("killB");
    let _p = producer(&[
        "--name",
        &a,
        "--name",
        &b,
        "--size",
        "64x64",
        "--fps",
        "0",
        "--buffer-frames",
        "2",
        "--when-full",
        "wait",
        "--quiet",
    ]);
    assert!(common::wait_until(20.0, || a.exists() && b.exists()));
    let mut on_b =
        Reader::open(&b, &ReaderOptions { timeout: Duration::from_secs(20), ..Default::default() })
            .unwrap();
    let mut holder = common::spawn_child("child_entry", "reader_holds", &a, &[]);
    // Once the producer counts A's reader (its status refreshes every second), it waits for it,
    // and B stops.
    let stalled = common::wait_until(20.0, || {
        while on_b.try_read().unwrap().is_some() {}
        std::thread::sleep(Duration::from_millis(300));
        on_b.try_read().unwrap().is_none()
    });
    assert!(stalled, "B never waited for A's lossless reader: the test lost its point");
    holder.kill9();
    let t = Instant::now();
    let f = on_b.read(Some(Duration::from_secs(10))).unwrap();
    assert!(f.is_some(), "B got nothing for 10 s after A's reader died");
    assert!(t.elapsed() < Duration::from_secs(2), "B resumed only after {:?}", t.elapsed());
}

#[test]
fn image_source_scales_keeps_aspect_and_loops_a_folder() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let ch = Channel::new("img");
    let sample = format!("{root}/assets/sample.jpg");
    // More frames than the ring holds, so the producer waits for the reader (no race with its exit).
    let p = producer(&[
        "--name",
        &ch,
        "--image",
        &sample,
        "--size",
        "640x480",
        "--frames",
        "12",
        "--fps",
        "0",
        "--when-full",
        "wait",
        "--format",
        "rgb",
        "--quiet",
    ]);
    let mut r = open(&ch);
    let f = r.read(T).unwrap().unwrap();
    // 1920x1080 into 640x480 keeps 16:9: 640x360 with black bars of 60 rows above and below.
    assert_eq!(rgb_at(&f, 320, 10), [0, 0, 0], "letterbox bar");
    assert_eq!(rgb_at(&f, 320, 470), [0, 0, 0], "letterbox bar");
    // The yellow disc at (1400, 400) of the original lands near (467, 60 + 133).
    let [r_, g, b] = rgb_at(&f, 467, 193);
    assert!(r_ > 200 && g > 160 && b < 90, "expected the yellow disc, got {:?}", [r_, g, b]);
    drop(f);
    while let Ok(Some(_)) = r.read(T) {}
    assert_eq!(wait_exit(p).0, 0);

    let ch = Channel::new("slides");
    let slides = format!("{root}/assets/slides");
    let p = producer(&[
        "--name",
        &ch,
        "--image",
        &slides,
        "--size",
        "320x180",
        "--frames",
        "40",
        "--fps",
        "0",
        "--when-full",
        "wait",
        "--quiet",
    ]);
    let mut r = open(&ch);
    let mut frames = Vec::new();
    while let Ok(Some(f)) = r.read(T) {
        frames.push(f.pixels().to_vec());
    }
    assert_eq!(frames.len(), 40);
    assert_ne!(frames[0], frames[1]);
    assert_ne!(frames[1], frames[2]);
    assert_eq!(frames[0], frames[3], "the folder loops");
    assert_eq!(wait_exit(p).0, 0);
}

#[test]
fn a_second_producer_on_a_live_name_is_refused() {
    let ch = Channel::new("twice");
    let first = producer(&["--name", &ch, "--size", "32x32", "--fps", "10", "--quiet"]);
    assert!(common::wait_until(20.0, || ch.exists()));
    let (code, err) = wait_exit(producer(&["--name", &ch, "--size", "32x32", "--quiet"]));
    assert_ne!(code, 0);
    assert!(err.contains("already has a live producer"), "{err}");
    assert!(
        err.contains(&format!("frame-producer[{}]", first.pid())),
        "the owner is not named: {err}"
    );
    drop(first);
}

/// Every user mistake: one clear error line, a non-zero exit, no segment left behind.
#[test]
fn bad_arguments_give_one_clear_line() {
    let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/no-such-file.png").to_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--size", "0x0"], "must be at least 1"),
        (vec!["--size", "1920"], "WIDTHxHEIGHT"),
        (vec!["--size", "axb"], "not a whole number"),
        (vec!["--format", "yuv"], "invalid value 'yuv'"),
        (vec!["--fps", "-1"], "not a frame rate"),
        (vec!["--fps", "fast"], "not a number"),
        (vec!["--size", "16384x16384", "--format", "rgba"], "bytes a ring can carry per frame"),
        (vec!["--size", "1920x1080", "--raw", "--buffer-frames", "400"], "buffer fewer frames"),
        (vec!["--buffer-frames", "32"], "at most 31"),
        (vec!["--buffer-frames", "0"], "--buffer-frames"),
        (vec!["--camera", "7"], "--synthetic"),
        (vec!["--camera", "0", "--synthetic"], "cannot be used with"),
        (vec!["--image", &missing], "no-such-file.png"),
        (vec!["--name", "a/b"], "invalid channel name"),
        (vec!["--mode", "99"], "octal"),
        (vec!["--bogus"], "unexpected argument"),
    ];
    for (args, needle) in cases {
        let mut full = vec!["--quiet"];
        let named = Channel::new("bad");
        if !args.contains(&"--name") {
            full.extend(["--name", &named]);
        }
        full.extend(args.iter().copied());
        let (code, err) = wait_exit(producer(&full));
        assert_ne!(code, 0, "{args:?} succeeded");
        let first = err.lines().next().unwrap_or("");
        assert!(first.contains("error"), "{args:?}: first line is not the error: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} does not mention {needle:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!named.exists(), "{args:?} left a segment");
    }
}
