//! Writer and Reader in one process: frames, leases, latest, end of stream, exclusivity,
//! ownership of names, follow mode.

mod common;

use std::time::{Duration, Instant};

use common::Channel;
use shmframes::{
    Error, FrameShape, PixelFormat, ProducerState, Reader, ReaderOptions, Start, Wake, Writer,
    WriterOptions,
};

const T: Option<Duration> = Some(Duration::from_secs(5));

fn opts(w: u32, h: u32, f: PixelFormat, frames: u32) -> WriterOptions {
    let mut o = WriterOptions::new(w, h, f).unwrap();
    o.buffer_frames = frames;
    o
}

fn reader(name: &str) -> Reader {
    Reader::open(name, &ReaderOptions::default()).unwrap()
}

/// A lossless reader that starts at the oldest frame still kept.
fn lossless(name: &str) -> Reader {
    Reader::open(
        name,
        &ReaderOptions { lossless: true, start: Start::Oldest, ..Default::default() },
    )
    .unwrap()
}

fn publish(w: &mut Writer, value: u8) -> u64 {
    let mut slot = w.try_frame().unwrap().expect("room for a frame");
    slot.pixels().fill(value);
    slot.publish()
}

#[test]
fn frames_carry_metadata_and_pixels() {
    let ch = Channel::new("meta");
    for f in PixelFormat::ALL {
        // Even sizes: the YUV formats share chroma between pixel pairs and row pairs.
        let shape = FrameShape::packed(34, 8, f).unwrap();
        let mut w = Writer::create(&ch, &opts(34, 8, f, 3)).unwrap();
        let mut r = reader(&ch);
        let before = shmframes::monotonic_ns();
        let mut slot = w.try_frame().unwrap().unwrap();
        assert_eq!(slot.pixels().len(), shape.pixel_bytes() as usize);
        for (i, b) in slot.pixels().iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        slot.set_capture_ns(before);
        assert_eq!(slot.publish(), 0);
        let fr = r.read(T).unwrap().unwrap();
        assert_eq!(fr.shape(), shape);
        assert_eq!(fr.seq(), 0);
        assert_eq!(fr.capture_ns(), before);
        assert!(fr.publish_ns() >= before && fr.publish_ns() <= shmframes::monotonic_ns());
        assert!(fr.is_zero_copy() && !fr.is_raw());
        assert_eq!(fr.pixels().as_ptr() as usize % 64, 0, "pixels are 64-byte aligned");
        assert!(fr.pixels().iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        drop(fr);
        drop(r);
        w.close().unwrap();
    }
}

#[test]
fn capacity_holds_requested_frames_wherever_the_end_falls() {
    let ch = Channel::new("cap");
    // 100x10 gray: 1000 pixel bytes, 1088-byte messages that never divide the capacity.
    let mut w = Writer::create(&ch, &opts(100, 10, PixelFormat::Gray8, 5)).unwrap();
    let mut r = reader(&ch);
    let mut seq = 0u64;
    for _lap in 0..50 {
        // Fill with 5 frames (they must all fit while none is released), then read them all.
        for i in 0..5 {
            assert_eq!(publish(&mut w, (seq + i) as u8), seq + i);
        }
        let held: Vec<_> = (0..5).map(|_| r.try_read().unwrap().expect("frame")).collect();
        for (i, f) in held.iter().enumerate() {
            assert_eq!(f.seq(), seq + i as u64);
            assert!(f.pixels().iter().all(|&b| b == (seq + i as u64) as u8));
        }
        drop(held);
        // A step of one frame moves the wrap point each lap.
        publish(&mut w, 0);
        r.try_read().unwrap().unwrap();
        seq += 6;
    }
}

#[test]
fn held_frames_are_never_overwritten_and_a_channel_held_full_drops() {
    let ch = Channel::new("lease");
    let mut w = Writer::create(&ch, &opts(64, 64, PixelFormat::Gray8, 2)).unwrap();
    let slots = w.slots().unwrap() as usize;
    let mut r = reader(&ch);
    let mut held = Vec::new();
    let mut published = 0u32;
    for v in 0..50u8 {
        if let Some(mut s) = w.try_frame().unwrap() {
            s.pixels().fill(v);
            s.publish();
            published += 1;
        }
        if let Ok(Some(f)) = r.try_read() {
            held.push(f);
        }
    }
    // The reader holds every slot: further frames were refused, not written over its frames.
    assert_eq!(held.len(), slots);
    assert_eq!(published as usize, slots, "the producer wrote into a held slot");
    // Waiting for a frame could never end: the reader is told so at once, and the producer sees
    // why it has no room.
    let t = Instant::now();
    assert!(matches!(r.read(T), Err(Error::HoldsEverySlot { .. })));
    assert!(t.elapsed() < Duration::from_secs(4), "the read waited instead of failing");
    assert_eq!((w.readers().held_slots, w.readers().slots), (slots as u32, slots as u32));
    for f in &held {
        let first = f.pixels()[0];
        assert!(f.pixels().iter().all(|&b| b == first), "frame {} was overwritten", f.seq());
    }
    // Release in any order: each released slot is free again at once.
    assert_eq!(r.frames_held(), slots);
    let newest = held.pop().unwrap();
    drop(held.remove(0));
    assert!(w.try_frame().unwrap().is_some(), "the released oldest slot is not free");
    drop(held);
    assert_eq!(r.frames_held(), 1);
    assert!(newest.pixels().iter().all(|&b| b == newest.pixels()[0]));
}

#[test]
fn frames_outlive_the_reader() {
    let ch = Channel::new("outlive");
    let mut o = opts(16, 16, PixelFormat::Rgb24, 2);
    o.max_readers = 1;
    let mut w = Writer::create(&ch, &o).unwrap();
    let mut r = reader(&ch);
    publish(&mut w, 9);
    let f = r.read(T).unwrap().unwrap();
    drop(r);
    // The reader's place stays taken while a frame is held (so nobody can free its bytes)...
    let e = Reader::open(&ch, &ReaderOptions::default()).unwrap_err();
    assert!(matches!(e, Error::ChannelBusy { max_readers: Some(1), .. }), "{e}");
    for v in 10..20 {
        publish(&mut w, v);
    }
    assert!(f.pixels().iter().all(|&b| b == 9));
    drop(f);
    // ...and is free once the last frame is gone.
    let _r2 = reader(&ch);
}

#[test]
fn latest_skips_and_releases_the_backlog() {
    let ch = Channel::new("latest");
    let mut w = Writer::create(&ch, &opts(8, 8, PixelFormat::Bgra32, 8)).unwrap();
    let mut r = reader(&ch);
    for v in 0..6 {
        publish(&mut w, v);
    }
    let f = r.latest(T).unwrap().unwrap();
    assert_eq!(f.seq(), 5);
    assert_eq!(r.frames_held(), 1);
    drop(f);
    assert_eq!(r.frames_held(), 0, "skipped frames are held");
    assert_eq!(r.dropped(), 0, "frames latest() skipped are not lost frames");
    assert!(r.latest(Some(Duration::from_millis(20))).unwrap().is_none());
    publish(&mut w, 7);
    assert_eq!(r.latest(T).unwrap().unwrap().seq(), 6);
}

#[test]
fn frames_lost_before_the_first_read_are_counted_on_the_frame() {
    let ch = Channel::new("lostfirst");
    let mut w = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 2)).unwrap();
    let mut r = reader(&ch); // attached before frame 0: it wants every frame from here
    for v in 0..20 {
        publish(&mut w, v);
    }
    // A lossy reader never slows the producer: the oldest frames were overwritten before the
    // first read. No sequence gap shows that (there is no frame before), so the frame says it.
    let f = r.read(T).unwrap().unwrap();
    assert!(f.seq() > 0, "2 buffered frames cannot keep 20");
    assert_eq!(f.lost_before(), f.seq());
    assert_eq!(r.dropped(), f.seq());
    let first = f.seq();
    drop(f);
    let g = r.read(T).unwrap().unwrap();
    assert_eq!((g.seq(), g.lost_before()), (first + 1, 0));
    let mut stats = shmframes::stats::Stats::new();
    stats.record(first, 0, 0, first);
    stats.record(g.seq(), 0, 0, g.lost_before());
    assert_eq!(stats.dropped(), r.dropped());
}

#[test]
fn end_of_stream_after_the_last_frame() {
    let ch = Channel::new("eos");
    let mut w = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 2)).unwrap();
    let mut r = reader(&ch);
    publish(&mut w, 1);
    publish(&mut w, 2);
    w.close().unwrap();
    assert!(!ch.exists(), "closing the writer removes the name");
    assert_eq!(r.read(T).unwrap().unwrap().seq(), 0);
    assert_eq!(r.read(T).unwrap().unwrap().seq(), 1);
    assert!(matches!(r.read(T), Err(Error::EndOfStream { .. })));
    assert_eq!(r.producer_state(), ProducerState::Ended);
    assert!(matches!(r.read(T), Err(Error::EndOfStream { .. })), "end of stream is sticky");
}

#[test]
fn end_of_stream_after_a_backlog_with_every_slot_published() {
    let ch = Channel::new("eosfull");
    let mut w = Writer::create(&ch, &opts(64, 64, PixelFormat::Gray8, 1)).unwrap();
    let mut r = lossless(&ch);
    while w.write(&[7; 64 * 64], None, Duration::ZERO).unwrap() {}
    w.close().unwrap();
    let mut frames = 0;
    let err = loop {
        match r.read(T) {
            Ok(Some(f)) => {
                assert_eq!(f.seq(), frames);
                frames += 1
            }
            Ok(None) => panic!("timed out instead of ending"),
            Err(e) => break e,
        }
    };
    assert!(frames >= 2, "{frames} frames");
    assert!(matches!(err, Error::EndOfStream { .. }), "{err}");
}

#[test]
fn blocking_read_is_woken_by_publish() {
    let ch = Channel::new("wake");
    let mut w = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 2)).unwrap();
    let name = ch.0.clone();
    let t = std::thread::spawn(move || {
        let mut r = reader(&name);
        let start = Instant::now();
        let f = r.read(Some(Duration::from_secs(20))).unwrap().expect("woken with a frame");
        (f.seq(), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    publish(&mut w, 3);
    let (seq, waited) = t.join().unwrap();
    assert_eq!(seq, 0);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[test]
fn writer_waits_for_room_when_asked() {
    let ch = Channel::new("wait");
    let mut w = Writer::create(&ch, &opts(32, 32, PixelFormat::Gray8, 1)).unwrap();
    let name = ch.0.clone();
    let reader_thread = std::thread::spawn(move || {
        let mut r = lossless(&name);
        let mut seqs = Vec::new();
        while let Ok(Some(f)) = r.read(T) {
            assert!(f.pixels().iter().all(|&b| b == f.seq() as u8));
            seqs.push(f.seq());
        }
        seqs
    });
    let pix = |v: u8| vec![v; 32 * 32];
    assert!(common::wait_until(20.0, || w.reader_attached()));
    for i in 0..200u64 {
        assert!(w.write(&pix(i as u8), None, None).unwrap(), "lossless write timed out");
    }
    w.close().unwrap();
    let seqs = reader_thread.join().unwrap();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
}

#[test]
fn write_times_out_when_a_lossless_reader_does_not_read() {
    let ch = Channel::new("wto");
    let mut w = Writer::create(&ch, &opts(32, 32, PixelFormat::Gray8, 1)).unwrap();
    let px = vec![0u8; 1024];
    // Nobody reads: a writer never waits for nobody.
    for _ in 0..20 {
        assert!(w.write(&px, None, Some(Duration::ZERO)).unwrap());
    }
    let r = lossless(&ch);
    while w.write(&px, None, Some(Duration::ZERO)).unwrap() {}
    assert!(!w.write(&px, None, Some(Duration::from_millis(30))).unwrap());
    assert!(matches!(w.write(&px[1..], None, None), Err(Error::WrongFrameSize { .. })));
    // A live source (try_frame) does not wait for the lossless reader: the reader loses its
    // oldest frame, and counts it.
    let mut r = r;
    let last =
        w.try_frame().unwrap().expect("a live source never waits for a lossless reader").publish();
    let mut seqs = Vec::new();
    while let Some(f) = r.try_read().unwrap() {
        seqs.push(f.seq());
    }
    assert_eq!(r.dropped(), 1);
    assert_eq!(*seqs.last().unwrap(), last);
    assert!(seqs.windows(2).all(|p| p[1] == p[0] + 1), "{seqs:?}");
}

#[test]
fn readers_take_places_up_to_the_limit_and_a_raw_channel_has_one() {
    let ch = Channel::new("busy");
    let mut o = opts(8, 8, PixelFormat::Gray8, 2);
    o.max_readers = 2;
    let _w = Writer::create(&ch, &o).unwrap();
    let r1 = reader(&ch);
    let _r2 = reader(&ch);
    let e = Reader::open(&ch, &ReaderOptions::default()).unwrap_err();
    assert!(matches!(e, Error::ChannelBusy { max_readers: Some(2), .. }), "{e}");
    assert!(e.to_string().contains("--max-readers"), "{e}");
    // The readers are named from the table (both in this process), not the producer.
    assert!(
        e.to_string().contains(&format!(
            "(readers: this process[{0}], this process[{0}])",
            std::process::id()
        )),
        "{e}"
    );
    drop(r1);
    let _r3 = reader(&ch);

    let raw = Channel::new("busyraw");
    let mut o = opts(8, 8, PixelFormat::Bgr24, 2);
    o.raw = true;
    let _w = Writer::create(&raw, &o).unwrap();
    let shape = Some(o.shape);
    let r1 = Reader::open(&raw, &ReaderOptions { raw: shape, ..Default::default() }).unwrap();
    let e = Reader::open(&raw, &ReaderOptions { raw: shape, ..Default::default() }).unwrap_err();
    assert!(matches!(e, Error::ChannelBusy { max_readers: None, .. }), "{e}");
    assert!(e.to_string().contains("single-consumer"), "{e}");
    assert!(e.to_string().contains("another reader in this process"), "{e}");
    drop(r1);
    let _r2 = Reader::open(&raw, &ReaderOptions { raw: shape, ..Default::default() }).unwrap();
}

#[test]
#[cfg(unix)] // reads or writes the segment file in /dev/shm
fn live_name_is_never_taken_over_and_stale_is_replaced() {
    let ch = Channel::new("own");
    let w = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 2)).unwrap();
    let e = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 2)).unwrap_err();
    assert!(matches!(e, Error::ProducerAlive { .. }), "{e}");
    // A stale leftover (a segment nobody holds: here a copy of the live one's bytes).
    let bytes = std::fs::read(ch.path()).unwrap();
    drop(w);
    std::fs::write(ch.path(), &bytes).unwrap();
    let w2 = Writer::create(&ch, &opts(4, 4, PixelFormat::Rgb24, 2)).unwrap();
    assert_eq!(w2.shape().width, 4);
    drop(w2);
    assert!(!ch.exists());
}

/// cpp_py_shmbuf's producer takes no lock, so a segment without our mark might be live: it is
/// never replaced, and the error says what to do.
#[test]
#[cfg(unix)] // reads or writes the segment file in /dev/shm
fn a_segment_we_did_not_make_is_never_replaced() {
    let ch = Channel::new("foreign");
    let mut foreign = vec![0u8; 16 + 64];
    foreign[8..12].copy_from_slice(&64u32.to_le_bytes());
    std::fs::write(ch.path(), &foreign).unwrap();
    let e = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 1)).unwrap_err();
    assert!(matches!(e, Error::NameTaken { .. }), "{e}");
    assert!(e.to_string().contains("cpp_py_shmbuf"), "{e}");
    assert_eq!(std::fs::read(ch.path()).unwrap(), foreign, "the foreign segment was touched");
}

/// A consumer that knows nothing of wake-ups (cpp_py_shmbuf's) frees room without waking us:
/// a lossless writer must notice by polling, within milliseconds, not sleep for seconds.
#[test]
#[cfg(unix)] // reads or writes the segment file in /dev/shm
fn lossless_writer_keeps_pace_with_a_consumer_that_never_wakes_it() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let ch = Channel::new("plainwait");
    let mut o = opts(32, 8, PixelFormat::Bgr24, 1);
    o.raw = true;
    let mut w = Writer::create(&ch, &o).unwrap();
    let path = ch.path();
    let consumer = std::thread::spawn(move || {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        // SAFETY: the test maps the segment to play a foreign consumer; the map outlives use.
        let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
        // SAFETY: 4-aligned u32 words at offsets 0 and 4 of the page-aligned mapping.
        let (head, tail) = unsafe {
            (&*(map.as_ptr() as *const AtomicU32), &*(map.as_ptr().add(4) as *const AtomicU32))
        };
        let mut n = 0;
        while n < 30 {
            let t = tail.load(Ordering::Relaxed);
            if head.load(Ordering::Acquire) != t {
                std::thread::sleep(Duration::from_millis(2)); // a slow-ish plain consumer
                tail.store(t.wrapping_add(4 + 32 * 8 * 3), Ordering::Release);
                n += 1;
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    let start = Instant::now();
    for i in 0..30u8 {
        assert!(w.write(&vec![i; 32 * 8 * 3], None, Some(Duration::from_secs(20))).unwrap());
    }
    consumer.join().unwrap();
    // 30 frames at ~2 ms each; the bug this guards against slept a second per frame.
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[test]
fn missing_channel_is_a_clear_error_and_can_be_waited_for() {
    let ch = Channel::new("missing");
    let e = Reader::open(&ch, &ReaderOptions::default()).unwrap_err();
    assert!(matches!(e, Error::ChannelNotFound { .. }), "{e}");
    assert!(e.to_string().contains("start the producer"), "{e}");
    let name = ch.0.clone();
    let t = std::thread::spawn(move || {
        let o = ReaderOptions { timeout: Duration::from_secs(20), ..Default::default() };
        Reader::open(&name, &o).map(|mut r| r.read(T).unwrap().unwrap().seq())
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut w = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 2)).unwrap();
    publish(&mut w, 1);
    assert_eq!(t.join().unwrap().unwrap(), 0);
    let o = ReaderOptions { timeout: Duration::from_millis(30), ..Default::default() };
    let e = Reader::open("shmframes-test-never-there", &o).unwrap_err();
    assert!(e.to_string().contains("after waiting"), "{e}");
}

#[test]
fn follow_mode_switches_to_a_restarted_producer() {
    let ch = Channel::new("follow");
    let mut w = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 2)).unwrap();
    let o = ReaderOptions { follow: true, ..Default::default() };
    let mut r = Reader::open(&ch, &o).unwrap();
    publish(&mut w, 1);
    assert_eq!(r.read(T).unwrap().unwrap().pixels()[0], 1);
    w.close().unwrap();
    // Ended: follow mode reports timeouts, not errors, until a new producer comes.
    assert!(r.read(Some(Duration::from_millis(50))).unwrap().is_none());
    assert_eq!(r.producer_state(), ProducerState::Ended);
    let mut w2 = Writer::create(&ch, &opts(8, 8, PixelFormat::Rgb24, 2)).unwrap();
    publish(&mut w2, 2);
    let f = r.read(T).unwrap().expect("frame from the restarted producer");
    assert_eq!(f.shape().format, PixelFormat::Rgb24);
    assert_eq!(f.pixels()[0], 2);
    assert_eq!(r.producer_state(), ProducerState::Live);
}

#[test]
fn raw_mode_round_trip_and_split_frames() {
    let ch = Channel::new("raw");
    let mut o = opts(10, 10, PixelFormat::Bgr24, 3);
    o.raw = true;
    let mut w = Writer::create(&ch, &o).unwrap();
    let shape = FrameShape::packed(10, 10, PixelFormat::Bgr24).unwrap();
    let mut r =
        Reader::open(&ch, &ReaderOptions { raw: Some(shape), ..Default::default() }).unwrap();
    let (mut split, mut inplace) = (0, 0);
    for i in 0..40u8 {
        publish(&mut w, i);
        let f = r.read(T).unwrap().unwrap();
        assert!(f.is_raw());
        assert_eq!(f.seq(), i as u64);
        assert!(f.pixels().iter().all(|&b| b == i), "frame {i}");
        if f.is_zero_copy() {
            inplace += 1
        } else {
            split += 1
        }
    }
    assert!(split > 0 && inplace > 0, "split {split}, in place {inplace}");
    // Without the shape, a raw stream is a clear error.
    drop(r);
    publish(&mut w, 1);
    let mut r = reader(&ch);
    let e = r.read(T).unwrap_err();
    assert!(matches!(e, Error::RawWithoutShape { .. }), "{e}");
    // With a wrong shape, a clear error naming both sizes.
    drop(r);
    let wrong = FrameShape::packed(10, 11, PixelFormat::Bgr24).unwrap();
    let mut r =
        Reader::open(&ch, &ReaderOptions { raw: Some(wrong), ..Default::default() }).unwrap();
    let e = r.read(T).unwrap_err();
    assert!(matches!(e, Error::RawSizeMismatch { got: 300, expected: 330, .. }), "{e}");
}

/// Our raw stream, read by an independent, minimal reader of the cpp_py_shmbuf layout (what
/// their C++ and Python consumers do): header fields by offset, `[len][payload]` messages.
#[test]
#[cfg(unix)] // reads or writes the segment file in /dev/shm
fn raw_stream_reads_with_a_plain_cpp_layout_reader() {
    let ch = Channel::new("plain");
    let mut o = opts(7, 5, PixelFormat::Bgr24, 3);
    o.raw = true;
    let mut w = Writer::create(&ch, &o).unwrap();
    for i in 0..3u8 {
        publish(&mut w, 10 + i);
    }
    let seg = std::fs::read(ch.path()).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(seg[o..o + 4].try_into().unwrap());
    let (head, mut tail, cap) = (u32_at(0), u32_at(4), u32_at(8));
    assert_eq!(seg.len(), 16 + cap as usize);
    let byte = |i: u32| seg[16 + (i & (cap - 1)) as usize];
    let mut payloads = Vec::new();
    while tail != head {
        let len = u32::from_le_bytes([byte(tail), byte(tail + 1), byte(tail + 2), byte(tail + 3)]);
        let p: Vec<u8> = (0..len).map(|k| byte(tail + 4 + k)).collect();
        tail += 4 + len;
        payloads.push(p);
    }
    assert_eq!(payloads.len(), 3);
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(p.len(), 7 * 5 * 3, "their consumers expect exactly w*h*3 bytes");
        assert!(p.iter().all(|&b| b == 10 + i as u8));
    }
}

#[test]
fn bad_configurations_are_refused() {
    assert!(WriterOptions::new(0, 10, PixelFormat::Bgr24).is_err());
    let mut o = WriterOptions::new(1920, 1080, PixelFormat::Rgba32).unwrap();
    o.buffer_frames = 1000;
    let e = Writer::create("shmframes-test-too-big", &o).unwrap_err();
    assert!(e.to_string().contains("buffer fewer frames"), "{e}");
    o.buffer_frames = 0;
    assert!(Writer::create("shmframes-test-zero", &o).is_err());
    let e =
        Writer::create("a/b", &WriterOptions::new(8, 8, PixelFormat::Gray8).unwrap()).unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    // Modes: permission bits keeping the owner's read and write, nothing else (no setuid,
    // setgid, sticky or file-type bits), and nothing is created for a bad one.
    for bad in [0o7777, 0o4600, 0o1666, 0, 0o100000, 0o100600, 0o400, 0o200] {
        let ch = Channel::new("mode");
        let mut o = WriterOptions::new(8, 8, PixelFormat::Gray8).unwrap();
        o.mode = bad;
        let e = Writer::create(&ch, &o).unwrap_err();
        assert!(matches!(e, Error::BadMode { mode } if mode == bad), "{bad:#o}: {e}");
        assert!(e.to_string().contains("0o600"), "{e}");
        assert!(!ch.exists(), "{bad:#o}: a segment was created");
    }
}

#[test]
#[cfg(unix)] // reads or writes the segment file in /dev/shm
fn segments_are_private_to_their_user_by_default() {
    use std::os::unix::fs::PermissionsExt;
    let ch = Channel::new("mode");
    let _w = Writer::create(&ch, &opts(8, 8, PixelFormat::Gray8, 1)).unwrap();
    let mode = std::fs::metadata(ch.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// A reader that keeps up, holding only the frame it is on: frames cycle through two slots
/// (cache-hot) instead of all of them.
#[test]
fn frames_reuse_two_slots_while_readers_keep_up() {
    for (buffer, holds, readers) in [(2u32, true, 1), (2, false, 1), (4, true, 3), (1, false, 2)] {
        let ch = Channel::new("hot");
        // 1000x100 gray: 100,224-byte slots; the data area is rounded up to hold more.
        let mut w = Writer::create(&ch, &opts(1000, 100, PixelFormat::Gray8, buffer)).unwrap();
        let mut rs: Vec<Reader> = (0..readers).map(|_| reader(&ch)).collect();
        let mut addresses = std::collections::BTreeSet::new();
        let mut held = Vec::new();
        for i in 0..60u64 {
            let mut slot = w.frame(T).unwrap().expect("room");
            slot.pixels().fill(i as u8);
            slot.publish();
            if holds {
                held.clear(); // the readers move on: they hold the newest frame only
            }
            for r in &mut rs {
                let f = r.read(T).unwrap().unwrap();
                assert_eq!(f.seq(), i);
                assert!(f.pixels().iter().all(|&b| b == i as u8), "frame {i} torn");
                addresses.insert(f.segment_offset().expect("in place"));
                if holds {
                    held.push(f);
                }
            }
        }
        assert!(
            addresses.len() <= 2,
            "buffer {buffer}, holding {holds}: frames used {} slots",
            addresses.len()
        );
        assert!(buffer < 2 || w.slots().unwrap() > 2, "the channel has more slots than were used");
        assert!(rs.iter().all(|r| r.dropped() == 0));
    }
}

/// Two readers view the same frame in the same bytes, and the segment does not grow with the
/// number of readers a channel allows beyond its 64-byte entries.
#[test]
#[cfg(unix)] // reads or writes the segment file in /dev/shm
fn one_copy_whatever_the_number_of_readers() {
    let ch = Channel::new("onecopy");
    let mut w = Writer::create(&ch, &opts(640, 480, PixelFormat::Bgr24, 4)).unwrap();
    let (mut a, mut b) = (reader(&ch), reader(&ch));
    publish(&mut w, 5);
    let (fa, fb) = (a.read(T).unwrap().unwrap(), b.read(T).unwrap().unwrap());
    assert!(fa.is_zero_copy() && fb.is_zero_copy());
    let at = fa.segment_offset().unwrap();
    assert_eq!(Some(at), fb.segment_offset(), "two readers got two copies");
    // The bytes there, read from the segment file, are the frame's.
    use std::os::unix::fs::FileExt;
    let mut from_file = vec![0u8; fa.pixels().len()];
    std::fs::File::open(ch.path()).unwrap().read_exact_at(&mut from_file, at as u64).unwrap();
    assert_eq!(from_file, fa.pixels());
    assert_eq!(from_file, fb.pixels());
    let size = |max_readers: u32| {
        let c = Channel::new("size");
        let mut o = opts(640, 480, PixelFormat::Bgr24, 4);
        o.max_readers = max_readers;
        let w = Writer::create(&c, &o).unwrap();
        let len = std::fs::metadata(c.path()).unwrap().len();
        (len, 16 + w.capacity() as u64)
    };
    let (one, data) = size(1);
    let (thirty_two, _) = size(32);
    assert_eq!(thirty_two - one, 31 * 64, "each reader place costs one 64-byte entry");
    assert!(one - data < 512, "the table is small: {} bytes", one - data);
}

/// Nobody missed what nobody read: a reader that attaches late starts at the newest frame and
/// has lost nothing; a lossless one can start at the oldest frame still kept.
#[test]
fn late_joiners_start_at_the_newest_frame() {
    let ch = Channel::new("late");
    let mut w = Writer::create(&ch, &opts(32, 32, PixelFormat::Gray8, 3)).unwrap();
    for v in 0..50 {
        assert!(w.try_frame().unwrap().is_some_and(|mut s| {
            s.pixels().fill(v);
            s.publish();
            true
        }));
    }
    assert!(!w.reader_attached());
    let mut r = reader(&ch);
    assert_eq!(r.read(T).unwrap().unwrap().seq(), 49);
    assert_eq!(r.dropped(), 0);
    let mut old = lossless(&ch);
    let first = old.read(T).unwrap().unwrap().seq();
    let slots = w.slots().unwrap() as u64;
    assert!(first < 49 && first >= 50 - slots, "oldest kept: {first} of 50 in {slots} slots");
    assert_eq!(w.readers().attached, 2);
    assert_eq!(w.readers().lossless_lag, Some(49 - first));
}

/// A slow default reader loses its oldest frames and counts them; it never slows the
/// producer or a lossless reader beside it, which gets every frame in order.
#[test]
fn a_slow_reader_never_slows_another() {
    let ch = Channel::new("slow");
    let mut w = Writer::create(&ch, &opts(64, 64, PixelFormat::Gray8, 3)).unwrap();
    let mut fast = lossless(&ch);
    let mut slow = reader(&ch);
    let mut fast_seen = Vec::new();
    let mut slow_seen = Vec::new();
    for i in 0..100u64 {
        assert!(
            w.write(&[i as u8; 64 * 64], None, Duration::ZERO).unwrap(),
            "frame {i} waited for the slow reader"
        );
        let f = fast.read(T).unwrap().unwrap();
        assert!(f.pixels().iter().all(|&b| b == i as u8));
        fast_seen.push(f.seq());
        if i % 10 == 9 {
            // The slow reader holds one frame while it "works".
            if let Some(f) = slow.try_read().unwrap() {
                assert!(f.pixels().iter().all(|&b| b == f.seq() as u8));
                slow_seen.push(f.seq());
            }
        }
    }
    assert_eq!(fast_seen, (0..100).collect::<Vec<_>>());
    assert_eq!(fast.dropped(), 0);
    assert!(slow.dropped() > 50, "dropped {}", slow.dropped());
    assert_eq!(slow.dropped() + slow_seen.len() as u64, slow_seen.last().unwrap() + 1);
}

/// Every frame, also from another thread's release, in any order.
#[test]
fn frames_released_from_other_threads_free_their_slots() {
    let ch = Channel::new("threads");
    let mut w = Writer::create(&ch, &opts(32, 32, PixelFormat::Gray8, 2)).unwrap();
    let mut r = lossless(&ch);
    for round in 0..20u8 {
        let mut frames = Vec::new();
        while let Some(mut s) = w.frame(Duration::ZERO).unwrap() {
            s.pixels().fill(round);
            s.publish();
            frames.push(r.read(T).unwrap().unwrap());
        }
        assert!(!frames.is_empty());
        std::thread::spawn(move || {
            while let Some(f) = frames.pop() {
                assert!(f.pixels().iter().all(|&b| b == round));
            }
        })
        .join()
        .unwrap();
        assert_eq!(r.frames_held(), 0);
    }
}

#[test]
#[cfg(unix)] // lending is not implemented on Windows yet (docs/windows.md)
fn an_open_slots_pixels_are_taken_back_so_a_stale_view_changes_no_frame() {
    let ch = Channel::new("opened");
    let mut w = Writer::create(&ch, &opts(64, 64, PixelFormat::Gray8, 2)).unwrap();
    let mut r = lossless(&ch);
    let mut stale: Vec<&mut [u8]> = Vec::new();
    for v in 1..=20u8 {
        let opened = w.open_slot(T).unwrap().expect("room");
        let px = w.slot_pixels(&opened).unwrap().expect("a framed channel lends its slots");
        // SAFETY: the lent range is mapped while `px.owner` lives, which we keep (leaked) for
        // the test's length, as a script keeps a numpy view.
        let pixels = unsafe { std::slice::from_raw_parts_mut(px.ptr.as_ptr(), px.len) };
        std::mem::forget(px.owner);
        pixels.fill(v);
        assert_eq!(w.publish_slot(opened, None, None).unwrap(), v as u64 - 1);
        assert!(pixels.iter().all(|&b| b == 0), "after publish the view still shows the slot");
        stale.push(pixels);
        // Every stale view scribbles: none may reach this frame or a later one.
        for s in &mut stale {
            s.fill(0xEE);
        }
        let f = r.read(T).unwrap().unwrap();
        assert!(f.pixels().iter().all(|&b| b == v), "frame {v} was changed through a stale view");
    }
    // One open slot at a time: a newer one discards the older, which is then gone.
    let first = w.open_slot(T).unwrap().unwrap();
    let second = w.open_slot(T).unwrap().unwrap();
    assert!(matches!(w.publish_slot(first, None, None), Err(Error::SlotGone { .. })));
    w.discard_slot(second);
    assert!(
        r.read(Some(Duration::from_millis(50))).unwrap().is_none(),
        "a discarded frame was published"
    );
    // A raw channel lends no window (its frames may wrap): the caller writes instead.
    let raw = Channel::new("openslotraw");
    let mut o = opts(8, 8, PixelFormat::Gray8, 2);
    o.raw = true;
    let mut w = Writer::create(&raw, &o).unwrap();
    let opened = w.open_slot(T).unwrap().unwrap();
    assert!(w.slot_pixels(&opened).unwrap().is_none());
    w.discard_slot(opened);
}

/// A steady producer (a thread on a 25 fps timer), read by a default reader (waking before
/// the frame) and by one that waits for the producer's wake-up: both get every frame, in order.
/// The default one comes to anticipate (`watch_begins`), the other never does.
#[test]
fn a_steady_producer_is_anticipated_by_default_and_both_wakes_lose_nothing() {
    for wake in [Wake::Anticipate, Wake::Publish] {
        let ch = Channel::new("wake");
        let mut w = Writer::create(&ch.0, &opts(64, 48, PixelFormat::Bgr24, 4)).unwrap();
        let mut r = lossless(&ch.0);
        assert_eq!(r.wake(), Wake::Anticipate, "the default");
        r.set_wake(wake);
        let frames = 50u64;
        let producer = std::thread::spawn(move || {
            shmframes::precise_timers();
            let period = Duration::from_millis(40);
            let start = Instant::now();
            for i in 0..frames {
                let mut slot = w.frame(T).unwrap().expect("room (a lossless reader keeps up)");
                slot.pixels().fill(i as u8);
                if let Some(d) = (start + period * i as u32).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(d);
                }
                slot.publish();
            }
            w
        });
        let mut anticipated = 0;
        for i in 0..frames {
            anticipated += usize::from(r.watch_begins().is_some());
            let f = r.read(T).unwrap().expect("a frame within 5 s");
            assert_eq!((f.seq(), f.pixels()[0]), (i, i as u8), "{wake:?}");
        }
        drop(producer.join().unwrap());
        match wake {
            // Steady runs of 4 intervals within 5 ms of 40 ms and a jitter under 600 us, once
            // in 50 frames: generous on a loaded machine.
            Wake::Anticipate => assert!(anticipated > 0, "never anticipated a 100 fps producer"),
            _ => assert_eq!(anticipated, 0, "{wake:?} anticipated"),
        }
    }
}
