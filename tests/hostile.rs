//! Hostile and broken segments: every field read from shared memory is validated. Bad bytes
//! give a clear error, never a crash, an out-of-bounds read or a hang. These are the failures
//! measured in cpp_py_shmbuf's consumers, each shown absent here.

//! Segments are planted as a foreign producer makes them (`common::plant`): files in /dev/shm,
//! pagefile-backed sections on Windows.

mod common;

use std::time::{Duration, Instant};

use common::Channel;
use proptest::prelude::*;
use shmframes::{Error, FrameShape, PixelFormat, Reader, ReaderOptions};

fn segment(head: u32, tail: u32, capacity: u32, reserved: u32, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    b[0..4].copy_from_slice(&head.to_le_bytes());
    b[4..8].copy_from_slice(&tail.to_le_bytes());
    b[8..12].copy_from_slice(&capacity.to_le_bytes());
    b[12..16].copy_from_slice(&reserved.to_le_bytes());
    b
}

fn raw_opts() -> ReaderOptions {
    ReaderOptions {
        raw: Some(FrameShape::packed(4, 1, PixelFormat::Gray8).unwrap()),
        ..Default::default()
    }
}

/// The channel and what keeps its planted segment (a Windows section lives with its handle).
struct Held(#[allow(dead_code)] Channel, #[allow(dead_code)] common::Planted);

/// Opens a reader on `bytes` planted as a segment. Windows cannot make an empty section:
/// the empty case is then not run (callers skip `None`).
fn try_open(bytes: &[u8], opts: &ReaderOptions) -> Option<(Held, Result<Reader, Error>)> {
    let ch = Channel::new("hostile");
    let planted = common::plant(&ch, bytes)?;
    let r = Reader::open(&ch, opts);
    Some((Held(ch, planted), r))
}

fn open(bytes: &[u8], opts: &ReaderOptions) -> (Held, Result<Reader, Error>) {
    try_open(bytes, opts).expect("a segment of at least one byte")
}

#[test]
fn bad_capacities_are_refused_at_open() {
    let cases = [
        ("capacity 0", segment(0, 0, 0, 0, 80)),
        ("capacity not a power of two", segment(0, 0, 48, 0, 80)),
        // (larger than a page too: a Windows view is whole pages)
        ("capacity larger than the segment", segment(0, 0, 1 << 16, 0, 80)),
        ("capacity 2^32 - 2^31 + ...", segment(0, 0, 0x8000_0000, 0, 80)),
        // (on Windows the view is a page of zeros: refused there for its capacity of 0)
        ("segment smaller than the header", vec![0u8; 10]),
        ("empty segment", vec![]),
    ];
    for (what, bytes) in cases {
        let Some((_ch, r)) = try_open(&bytes, &raw_opts()) else {
            assert!(cfg!(windows) && bytes.is_empty(), "{what}: not planted");
            continue;
        };
        let e = r.err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(matches!(e, Error::Protocol { .. }), "{what}: {e}");
        assert!(e.to_string().contains("protocol"), "{what}: {e}");
    }
}

fn with_message(len_prefix: u32, head: u32) -> Vec<u8> {
    let mut b = segment(head, 0, 64, 0, 80);
    b[16..20].copy_from_slice(&len_prefix.to_le_bytes());
    b
}

#[test]
fn hostile_length_prefixes_error_at_once_instead_of_hanging() {
    for bad in [0x7FFF_FFFFu32, 0xFFFF_FFFE, 0xFFFF_FFFF, 61] {
        let (_ch, r) = open(&with_message(bad, 64), &raw_opts());
        let mut r = r.unwrap();
        let t = Instant::now();
        let e = r.read(Some(Duration::from_secs(30))).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "length {bad:#x}: took {:?}", t.elapsed());
        assert!(matches!(e, Error::Protocol { .. }), "length {bad:#x}: {e}");
        // Sticky: the stream cannot be resynchronised, so it stays an error.
        assert!(matches!(r.read(Some(Duration::ZERO)), Err(Error::Protocol { .. })));
    }
}

#[test]
fn zero_length_message_is_skipped_not_a_stall() {
    // cpp_py_shmbuf's reader treats a zero length as "no message yet" and never advances.
    let mut b = segment(12, 0, 64, 0, 80);
    b[16..20].copy_from_slice(&0u32.to_le_bytes()); // empty message
    b[20..24].copy_from_slice(&4u32.to_le_bytes()); // then a 4-byte frame
    b[24..28].copy_from_slice(b"abcd");
    let (_ch, r) = open(&b, &raw_opts());
    let f = r
        .unwrap()
        .read(Some(Duration::from_secs(5)))
        .unwrap()
        .expect("the frame after the empty message");
    assert_eq!(f.pixels(), b"abcd");
}

#[test]
fn impossible_head_and_tail_are_errors() {
    for (what, head, tail) in
        [("head far ahead", 1000u32, 0u32), ("tail after head", 0, 8), ("partial prefix", 2, 0)]
    {
        let (_ch, r) = open(&segment(head, tail, 64, 0, 80), &raw_opts());
        let e = r.unwrap().read(Some(Duration::from_secs(5))).unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{what}: {e}");
    }
}

/// Frame headers that do not add up are refused, in a ring marked as an (older) framed
/// channel of ours.
#[test]
fn inconsistent_frame_headers_are_refused() {
    let reserved =
        shmframes::control::MARK | (shmframes::control::VERSION << 8) | shmframes::control::FRAMED;
    let mut frame = vec![0u8; 108 + 16];
    let shape = FrameShape::packed(4, 4, PixelFormat::Gray8).unwrap();
    shmframes::frame::FrameHeader {
        kind: shmframes::frame::MessageKind::Frame,
        shape: Some(shape),
        seq: 0,
        capture_ns: 0,
        publish_ns: 0,
    }
    .encode(&mut frame);
    let pokes: [(&str, usize, u32); 4] = [
        ("width", 8, 1000),
        ("pixel bytes", 48, 17),
        ("format", 20, 42),
        ("magic", 0, 0x1234_5678),
    ];
    for (what, off, val) in pokes {
        let mut f = frame.clone();
        f[off..off + 4].copy_from_slice(&val.to_le_bytes());
        let mut b = segment(4 + f.len() as u32, 0, 256, reserved, 16 + 256);
        b[16..20].copy_from_slice(&(f.len() as u32).to_le_bytes());
        b[20..20 + f.len()].copy_from_slice(&f);
        let (_ch, r) = open(&b, &ReaderOptions::default());
        let mut r = r.unwrap();
        let e = r.read(Some(Duration::from_secs(5))).unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{what}: {e}");
    }
}

/// A live framed channel whose reader table or slots a peer scribbles on: every reader gets a
/// protocol error naming what is wrong, never a crash or a hang.
#[test]
fn scribbled_reader_tables_and_slots_are_refused() {
    use shmframes::{Writer, WriterOptions};
    let ch = Channel::new("table");
    let mut w =
        Writer::create(&ch, &WriterOptions::new(8, 8, PixelFormat::Gray8).unwrap()).unwrap();
    let table_at = (16 + w.capacity() as u64).div_ceil(64) * 64;
    let peer = common::Scribbler::open(&ch);
    let word = |off: u64| peer.word(off);
    let poke = |off: u64, v: u32| peer.poke(off, &v.to_le_bytes());
    // Table geometry: a bad magic, slots, slot size, reader count.
    for (what, off, bad) in
        [("magic", 0, 0x1234_5678u32), ("slots", 8, 1000), ("slot size", 12, 8), ("readers", 16, 0)]
    {
        let keep = word(table_at + off);
        poke(table_at + off, bad);
        let e = Reader::open(&ch, &ReaderOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{what}: {e}");
        assert!(e.to_string().contains("reader table"), "{what}: {e}");
        poke(table_at + off, keep);
    }
    // A published slot whose header lies.
    let mut r = Reader::open(&ch, &ReaderOptions::default()).unwrap();
    let mut slot = w.try_frame().unwrap().unwrap();
    slot.pixels().fill(1);
    slot.publish();
    let f = r.read(Some(Duration::from_secs(5))).unwrap().unwrap();
    let pixels_at = f.segment_offset().unwrap() as u64;
    drop(f);
    let header_at = pixels_at - 108;
    for (what, off, bad) in [
        ("width", 8u64, 1000u32),
        ("pixel bytes", 48, 17),
        ("kind", 4, 0x0002_0001),
        ("length", 0, 0),
    ] {
        let at = if what == "length" { header_at - 4 } else { header_at + off };
        let keep = word(at);
        poke(at, bad);
        let mut r = Reader::open(&ch, &ReaderOptions::default()).unwrap();
        let e = r.read(Some(Duration::from_secs(5))).unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{what}: {e}");
        poke(at, keep);
    }
    // Publication numbers and counts out of range: no frame, no hang.
    let count_at = table_at + 64;
    peer.poke(count_at, &u64::MAX.to_le_bytes());
    peer.poke(table_at + 128, &(u64::MAX - 5).to_le_bytes());
    let mut r = Reader::open(&ch, &ReaderOptions::default()).unwrap();
    let t = Instant::now();
    assert!(r.read(Some(Duration::from_millis(100))).unwrap().is_none());
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn unknown_extension_version_is_a_clear_error() {
    let reserved = (0x5346 << 16) | (9 << 8);
    let (_ch, r) = open(&segment(0, 0, 64, reserved, 80), &ReaderOptions::default());
    let e = r.unwrap_err();
    assert!(e.to_string().contains("version 9"), "{e}");
}

#[cfg(unix)] // (Windows has no links among named sections)
#[test]
fn symlinks_are_not_followed() {
    let ch = Channel::new("link");
    let target = std::env::temp_dir().join(format!("shmframes-link-target-{}", std::process::id()));
    std::fs::write(&target, segment(0, 0, 64, 0, 80)).unwrap();
    std::os::unix::fs::symlink(&target, ch.path()).unwrap();
    let e = Reader::open(&ch, &raw_opts()).unwrap_err();
    let _ = std::fs::remove_file(&target);
    assert!(matches!(e, Error::SymbolicLink { .. }), "{e}");
    assert!(
        e.to_string().contains("is a symbolic link") && e.to_string().contains("rm /dev/shm/"),
        "{e}"
    );
    // A producer is refused the name too, with the same words (it never replaces a link).
    let e = shmframes::Writer::create(
        &ch,
        &shmframes::WriterOptions::new(4, 1, PixelFormat::Gray8).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::SymbolicLink { .. }), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Arbitrary bytes as a segment: opening and reading never panics or hangs.
    #[test]
    fn arbitrary_segments_never_crash_or_hang(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        mark in any::<bool>(),
        cap_log in 3u32..9,
    ) {
        let mut b = bytes;
        if b.len() >= 16 {
            // Make most cases get past the capacity check, so the messages are exercised too.
            let cap = (1u32 << cap_log).min(b.len() as u32 - 16).max(8);
            if cap.is_power_of_two() && 16 + cap as usize <= b.len() {
                b[8..12].copy_from_slice(&cap.to_le_bytes());
            }
            if mark {
                b[12..16].copy_from_slice(&shmframes::control::initial(true).to_le_bytes());
            }
        }
        let Some((_ch, r)) = try_open(&b, &raw_opts()) else { return Ok(()) };
        if let Ok(mut r) = r {
            let t = Instant::now();
            for _ in 0..20 {
                match r.read(Some(Duration::ZERO)) {
                    Ok(Some(f)) => { let _ = f.pixels().iter().map(|&x| x as u64).sum::<u64>(); }
                    Ok(None) | Err(_) => break,
                }
            }
            prop_assert!(t.elapsed() < Duration::from_secs(5));
        }
    }
}

#[test]
fn a_protocol_error_is_raised_when_following_too() {
    let ch = Channel::new("followbad");
    let mut o = shmframes::WriterOptions::new(4, 1, PixelFormat::Gray8).unwrap();
    o.raw = true;
    let mut w = shmframes::Writer::create(&ch, &o).unwrap();
    let opts = ReaderOptions { follow: true, ..raw_opts() };
    let mut r = Reader::open(&ch, &opts).unwrap();
    assert!(w.write(&[1, 2, 3, 4], None, Some(Duration::ZERO)).unwrap());
    // The unread message's length prefix, scribbled by a peer while the producer lives.
    common::Scribbler::open(&ch).poke(16, &0x7FFF_FFFFu32.to_le_bytes());
    let e = r.read(Some(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(r.read(Some(Duration::ZERO)).is_err(), "a broken stream stays broken");
}

#[test]
fn an_invalid_segment_is_reported_however_long_the_wait() {
    // A foreign producer may be writing its header: an invalid segment is retried for a
    // moment, then reported, even to a reader willing to wait a minute (or to follow).
    let (_ch, r) = {
        let ch = Channel::new("badopen");
        let planted = common::plant(&ch, &segment(0, 0, 48, 0, 80)).unwrap();
        let started = Instant::now();
        let opts = ReaderOptions { timeout: Duration::from_secs(60), follow: true, ..raw_opts() };
        let r = Reader::open(&ch, &opts);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "reported after {:?}",
            started.elapsed()
        );
        (Held(ch, planted), r)
    };
    let e = r.expect_err("an invalid segment was accepted");
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
}
