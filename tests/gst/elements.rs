//! `shmframessrc` and `shmframessink` in real GStreamer pipelines, in this process: zero copy,
//! held buffers, capture times, renegotiation, waits that end at once, end of stream and the
//! errors a user sees. (The pipelines across processes, encoders and the network are in
//! `tests/python/test_gst.py`.)

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use shmframes::{Error, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};

/// What a handoff callback collects, shared with the test thread.
type Shared<T> = Arc<Mutex<Vec<T>>>;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstshmframes::plugin_register_static().expect("the plugin registers");
    });
}

/// A channel name unique to this test; its segment is removed when the test ends, pass or fail.
struct Channel(String);

impl Channel {
    fn new(tag: &str) -> Channel {
        Channel(format!("gst-elements-{}-{tag}", std::process::id()))
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

/// A pipeline that is stopped when dropped, pass or fail.
struct Pipeline(gst::Pipeline);

impl Pipeline {
    fn launch(desc: &str) -> Pipeline {
        init();
        let p = gst::parse::launch(desc)
            .unwrap_or_else(|e| panic!("{desc}: {e}"))
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        Pipeline(p)
    }

    fn play(&self) {
        self.0.set_state(gst::State::Playing).expect("the pipeline plays");
    }

    /// Buffers reaching `fakesink name=sink signal-handoffs=true`, given to `f` with the pad's caps.
    fn on_buffer(&self, f: impl Fn(&gst::Buffer, gst_video::VideoInfo) + Send + Sync + 'static) {
        let sink = self.0.by_name("sink").expect("a fakesink named sink");
        sink.connect("handoff", false, move |args| {
            let buffer = args[1].get::<gst::Buffer>().expect("a buffer");
            let pad = args[2].get::<gst::Pad>().expect("a pad");
            let info =
                gst_video::VideoInfo::from_caps(&pad.current_caps().expect("caps before buffers"))
                    .expect("video caps");
            f(&buffer, info);
            None
        });
    }

    /// The next error or EOS on the bus within `secs` (`None`: neither).
    fn next_end(&self, secs: f64) -> Option<Result<(), String>> {
        let bus = self.0.bus().expect("a bus");
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds((secs * 1000.0) as u64),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )?;
        Some(match msg.view() {
            gst::MessageView::Error(e) => Err(format!("{} ({:?})", e.error(), e.debug())),
            _ => Ok(()),
        })
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Where the segment of `name` is mapped in this process (every mapping of it).
fn segment_mappings(name: &str) -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let path = format!("/dev/shm/{name}");
    maps.lines()
        .filter(|l| l.ends_with(&path))
        .map(|l| {
            let range = l.split_whitespace().next().expect("a range");
            let (a, b) = range.split_once('-').expect("start-end");
            (usize::from_str_radix(a, 16).expect("hex"), usize::from_str_radix(b, 16).expect("hex"))
        })
        .collect()
}

fn writer(name: &str, w: u32, h: u32, format: PixelFormat, buffer_frames: u32) -> Writer {
    let mut opts = WriterOptions::new(w, h, format).expect("a shape");
    opts.buffer_frames = buffer_frames;
    Writer::create(name, &opts).expect("the channel is created")
}

/// Publishes a frame whose every byte is `seq % 251`, waiting up to 5 s for room.
fn publish(w: &mut Writer, capture_ns: Option<u64>) -> u64 {
    let seq = w.next_seq();
    let mut slot = w.frame(Duration::from_secs(5)).expect("no error").expect("room within 5 s");
    slot.pixels().fill((seq % 251) as u8);
    if let Some(ns) = capture_ns {
        slot.set_capture_ns(ns);
    }
    slot.publish()
}

/// Waits until the pipeline's source has attached to `w`'s channel (it opens it from its
/// streaming thread, once playing).
fn attached(w: &Writer) {
    assert!(wait_until(10.0, || w.reader_attached()), "shmframessrc did not attach within 10 s");
}

fn wait_until(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// The child side of the tests that kill a producer: with `SHMFRAMES_GST_CHILD=WxH` set, a
/// producer of `WxH` gray frames on `SHMFRAMES_GST_CHANNEL`, one every 10 ms, until it is
/// killed (or for 60 s: never a stray process). Does nothing in a normal test run.
#[test]
fn child_entry() {
    let (Ok(size), Ok(name)) =
        (std::env::var("SHMFRAMES_GST_CHILD"), std::env::var("SHMFRAMES_GST_CHANNEL"))
    else {
        return;
    };
    let (w, h) = shmframes::format::parse_size(&size).expect("WxH");
    let mut writer = writer(&name, w, h, PixelFormat::Gray8, 4);
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if let Some(mut slot) = writer.try_frame().expect("no error") {
            slot.pixels().fill(7);
            slot.publish();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A producer in a child process (see `child_entry`), killed with SIGKILL when dropped.
struct Producer(Child);

impl Producer {
    fn start(name: &str, w: u32, h: u32) -> Producer {
        let child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
            .env("SHMFRAMES_GST_CHILD", format!("{w}x{h}"))
            .env("SHMFRAMES_GST_CHANNEL", name)
            .stdout(Stdio::null())
            .spawn()
            .expect("the producer starts");
        Producer(child)
    }

    /// SIGKILL: it dies without ending the stream.
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The errors posted on `p`'s bus within `secs`, as `(when, element, message)`.
fn errors_within(p: &Pipeline, secs: f64) -> Vec<(Duration, String, String)> {
    let start = Instant::now();
    let bus = p.0.bus().expect("a bus");
    let end = start + Duration::from_secs_f64(secs);
    let mut errors = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &[gst::MessageType::Error],
        ) else {
            break;
        };
        if let gst::MessageView::Error(e) = msg.view() {
            let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
            errors.push((start.elapsed(), src, format!("{} ({:?})", e.error(), e.debug())));
        }
    }
    errors
}

#[test]
fn a_killed_producer_is_one_error_and_the_source_stops() {
    let ch = Channel::new("killed");
    let producer = Producer::start(&ch.0, 64, 48);
    let p = Pipeline::launch(&format!("shmframessrc name=src channel={} ! fakesink name=sink signal-handoffs=true sync=false enable-last-sample=false", ch.0));
    let n = Arc::new(Mutex::new(0u32));
    let n2 = n.clone();
    p.on_buffer(move |_, _| *n2.lock().unwrap() += 1);
    p.play();
    assert!(wait_until(20.0, || *n.lock().unwrap() >= 3), "frames flow before the kill");
    producer.kill();
    let errors = errors_within(&p, 4.0);
    let ours: Vec<_> = errors.iter().filter(|(_, _, m)| m.contains("producer")).collect();
    assert_eq!(ours.len(), 1, "one error that names the producer: {errors:?}");
    let (when, src, msg) = ours[0];
    assert!(src == "src" && msg.contains(&ch.0), "{errors:?}");
    assert!(msg.contains("follow=true"), "the hint in this element's terms: {msg}");
    assert!(*when < Duration::from_secs(3), "the error came {when:?} after the kill");
    // Flushed and played again (which restarts its streaming thread), the source does not post
    // it again: the reader reports the death at every read now, and the source stays stopped.
    let before = *n.lock().unwrap();
    let src = p.0.by_name("src").expect("the source");
    assert!(src.send_event(gst::event::FlushStart::new()), "flush start");
    assert!(src.send_event(gst::event::FlushStop::new(true)), "flush stop");
    p.0.set_state(gst::State::Paused).expect("pauses");
    p.play();
    let again = errors_within(&p, 1.0);
    assert!(!again.iter().any(|(_, _, m)| m.contains("producer")), "posted again: {again:?}");
    assert_eq!(*n.lock().unwrap(), before, "no buffer after the death");
}

#[test]
fn with_follow_a_killed_producer_is_replaced_without_an_error() {
    let ch = Channel::new("killed-follow");
    let first = Producer::start(&ch.0, 64, 48);
    let p = Pipeline::launch(&format!("shmframessrc channel={} follow=true ! fakesink name=sink signal-handoffs=true sync=false enable-last-sample=false", ch.0));
    let widths: Shared<u32> = Arc::default();
    let w2 = widths.clone();
    p.on_buffer(move |_, info| w2.lock().unwrap().push(info.width()));
    p.play();
    assert!(wait_until(20.0, || widths.lock().unwrap().len() >= 3), "frames flow before the kill");
    first.kill();
    // A moment without a producer, then another of another size under the same name.
    std::thread::sleep(Duration::from_millis(300));
    let _second = Producer::start(&ch.0, 32, 24);
    assert!(
        wait_until(20.0, || widths.lock().unwrap().last() == Some(&32)),
        "the new producer's frames arrive (widths {:?})",
        widths.lock().unwrap().iter().collect::<std::collections::BTreeSet<_>>()
    );
    let errors = errors_within(&p, 0.5);
    assert!(errors.is_empty(), "no error while following: {errors:?}");
}

#[test]
fn the_plugin_date_and_the_format_list_come_from_the_build_and_the_format_table() {
    init();
    // (A statically registered plugin has no date: gst-inspect-1.0 shows the built one's, see
    // tests/python/test_gst.py.)
    let date = env!("SHMFRAMES_GST_RELEASE_DATE");
    let b = date.as_bytes();
    assert!(
        b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && date.replace('-', "").parse::<u32>().is_ok(),
        "YYYY-MM-DD: {date}"
    );
    let src = gst::ElementFactory::make("shmframessrc").build().expect("shmframessrc");
    let blurb =
        src.find_property("raw-format").expect("raw-format").blurb().unwrap_or("").to_owned();
    for info in shmframes::format::FORMATS {
        assert!(blurb.contains(info.name), "{} missing from {blurb:?}", info.name);
    }
}

#[test]
fn buffers_are_frames_in_the_segment_and_held_ones_are_never_overwritten() {
    let ch = Channel::new("zero-copy");
    let mut w = writer(&ch.0, 320, 240, PixelFormat::Bgr24, 4);
    let p = Pipeline::launch(&format!("shmframessrc channel={} lossless=true ! fakesink name=sink signal-handoffs=true sync=false enable-last-sample=false", ch.0));
    // The first three buffers are kept (as a queue or a slow encoder would keep them; the
    // sink keeps no last sample, which would hold one more); the
    // others are checked and let go.
    let held: Arc<Mutex<Vec<gst::Buffer>>> = Arc::default();
    let seen: Shared<(u64, usize, bool)> = Arc::default();
    let (h, s) = (held.clone(), seen.clone());
    p.on_buffer(move |buffer, _| {
        let map = buffer.map_readable().expect("readable");
        let whole = map.iter().all(|&b| b == (buffer.offset() % 251) as u8);
        s.lock().unwrap().push((buffer.offset(), map.as_ptr() as usize, whole));
        drop(map);
        let mut h = h.lock().unwrap();
        if h.len() < 3 {
            h.push(buffer.clone());
        }
    });
    p.play();
    attached(&w);
    const FRAMES: usize = 40;
    for _ in 0..FRAMES {
        publish(&mut w, None);
    }
    assert!(
        wait_until(10.0, || seen.lock().unwrap().len() == FRAMES),
        "{} of {FRAMES} buffers arrived",
        seen.lock().unwrap().len()
    );

    let maps = segment_mappings(&ch.0);
    let inside = |ptr: usize| maps.iter().any(|&(a, b)| (a..b).contains(&ptr));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        (0..FRAMES as u64).collect::<Vec<_>>(),
        "every frame, in order"
    );
    for &(seq, ptr, whole) in seen.iter() {
        assert!(
            inside(ptr),
            "buffer {seq} at {ptr:#x} is not in the segment's mappings {maps:x?}: it was copied"
        );
        assert!(whole, "buffer {seq} did not hold its frame");
    }
    // 37 frames went through the two free slots while three were held: the held ones are intact.
    for b in held.lock().unwrap().iter() {
        let map = b.map_readable().expect("readable");
        assert!(
            map.iter().all(|&x| x == (b.offset() % 251) as u8),
            "held buffer {} was overwritten",
            b.offset()
        );
    }
    assert_eq!(
        w.readers().held_slots,
        3,
        "the reader still holds the three frames GStreamer keeps"
    );
    held.lock().unwrap().clear();
    assert!(wait_until(2.0, || w.readers().held_slots == 0), "freed buffers release their frames");
}

#[test]
fn pts_is_the_capture_time_on_the_pipeline_clock() {
    let ch = Channel::new("pts");
    let mut w = writer(&ch.0, 64, 48, PixelFormat::Gray8, 4);
    let p = Pipeline::launch(&format!("shmframessrc name=src channel={} lossless=true ! fakesink name=sink signal-handoffs=true sync=false enable-last-sample=false", ch.0));
    let got: Shared<(u64, Option<gst::ClockTime>, Option<gst::ClockTime>, bool)> = Arc::default();
    let (g, pipe) = (got.clone(), p.0.clone());
    p.on_buffer(move |b, _| {
        g.lock().unwrap().push((
            b.offset(),
            b.pts(),
            pipe.base_time(),
            b.flags().contains(gst::BufferFlags::DISCONT),
        ))
    });
    p.play();
    attached(&w);
    let mut captured = HashMap::new();
    for _ in 0..10 {
        // Captured 20 ms before it is published, 10 ms apart.
        let ns = shmframes::monotonic_ns() - 20_000_000;
        captured.insert(publish(&mut w, Some(ns)), ns);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(wait_until(5.0, || got.lock().unwrap().len() == 10));
    let clock = p.0.clock().expect("a clock");
    assert_eq!(
        clock.downcast_ref::<gst::SystemClock>().map(|c| c.clock_type()),
        Some(gst::ClockType::Monotonic),
        "the pipeline runs on the monotonic system clock"
    );
    let mut last = gst::ClockTime::ZERO;
    for &(seq, pts, base, _) in got.lock().unwrap().iter() {
        let (pts, base) = (pts.expect("a PTS"), base.expect("a base time"));
        let want = captured[&seq].saturating_sub(base.nseconds());
        assert_eq!(pts.nseconds(), want, "frame {seq}: PTS is capture_ns - base_time, exactly");
        assert!(pts >= last, "PTS never goes back");
        last = pts;
    }
    // The reported latency covers the 20 ms between capture and push.
    let mut q = gst::query::Latency::new();
    assert!(p
        .0
        .by_name("src")
        .expect("the source")
        .static_pad("src")
        .expect("its pad")
        .query(&mut q));
    let (live, min, _) = q.result();
    assert!(live);
    assert!(min >= gst::ClockTime::from_mseconds(20), "latency {min} < the frames' 20 ms age");
}

#[test]
fn a_followed_producer_with_another_shape_renegotiates() {
    let ch = Channel::new("follow");
    let mut a = writer(&ch.0, 320, 240, PixelFormat::Bgr24, 2);
    let p = Pipeline::launch(&format!("shmframessrc channel={} follow=true ! fakesink name=sink signal-handoffs=true sync=false enable-last-sample=false", ch.0));
    let shapes: Shared<(u32, u32, gst_video::VideoFormat, usize)> = Arc::default();
    let s = shapes.clone();
    p.on_buffer(move |b, info| {
        let meta = b.meta::<gst_video::VideoMeta>().expect("a VideoMeta");
        assert_eq!(
            (meta.width(), meta.height(), meta.format()),
            (info.width(), info.height(), info.format()),
            "caps describe the buffer"
        );
        s.lock().unwrap().push((info.width(), info.height(), info.format(), b.size()));
    });
    p.play();
    assert!(wait_until(10.0, || {
        publish(&mut a, None);
        !shapes.lock().unwrap().is_empty()
    }));
    a.close().expect("ends");
    let mut b = writer(&ch.0, 160, 120, PixelFormat::Gray8, 2);
    assert!(
        wait_until(10.0, || {
            publish(&mut b, None);
            shapes.lock().unwrap().last().is_some_and(|s| s.0 == 160)
        }),
        "the new producer's frames arrive"
    );
    let shapes = shapes.lock().unwrap();
    assert_eq!(
        shapes.first().map(|s| (s.0, s.1, s.2, s.3)),
        Some((320, 240, gst_video::VideoFormat::Bgr, 320 * 240 * 3))
    );
    assert_eq!(
        shapes.last().map(|s| (s.0, s.1, s.2, s.3)),
        Some((160, 120, gst_video::VideoFormat::Gray8, 160 * 120))
    );
    assert!(p.next_end(0.0).is_none(), "no error, no end: the pipeline goes on");
}

#[test]
fn the_sink_publishes_every_frame_with_its_rows_and_times_then_ends() {
    let ch = Channel::new("sink");
    // 65 px of RGB: GStreamer pads each row to 196 bytes, a channel's rows are 195.
    let p = Pipeline::launch(&format!(
        "videotestsrc num-buffers=20 pattern=ball ! video/x-raw,format=RGB,width=65,height=48,framerate=30/1 ! tee name=t \
         t. ! queue ! shmframessink channel={} when-full=wait sync=false  t. ! queue ! fakesink name=sink signal-handoffs=true sync=false enable-last-sample=false",
        ch.0
    ));
    let expected: Shared<(Vec<Vec<u8>>, gst::ClockTime)> = Arc::default();
    let e = expected.clone();
    p.on_buffer(move |b, info| {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(b.as_ref(), &info).expect("a frame");
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).expect("plane 0");
        let rows = (0..48).map(|y| data[y * stride..][..65 * 3].to_vec()).collect();
        e.lock().unwrap().push((rows, b.pts().expect("a PTS")));
    });
    p.play();
    let opts =
        ReaderOptions { timeout: Duration::from_secs(10), lossless: true, ..Default::default() };
    let mut r = Reader::open(&ch.0, &opts).expect("the sink's channel appears");
    // What each frame held (the frames themselves are let go: a reader holding every slot
    // would stop the sink).
    type Seen = (u64, Vec<Vec<u8>>, u64, (u32, u32, PixelFormat));
    let mut frames: Vec<Seen> = Vec::new();
    loop {
        match r.read(Duration::from_secs(10)) {
            Ok(Some(f)) => {
                let s = f.shape();
                frames.push((
                    f.seq(),
                    (0..48).map(|y| f.row(y).to_vec()).collect(),
                    f.capture_ns(),
                    (s.width, s.height, s.format),
                ));
            }
            Ok(None) => panic!("no frame for 10 s after {}", frames.len()),
            Err(Error::EndOfStream { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(p.next_end(10.0), Some(Ok(())), "EOS");
    let expected = expected.lock().unwrap();
    assert_eq!(frames.len(), 20, "every buffer, then the end of stream");
    for (i, (seq, rows, capture_ns, shape)) in frames.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(*shape, (65, 48, PixelFormat::Rgb24));
        assert_eq!(rows, &expected[i].0, "frame {i}: its rows");
        // capture_ns follows the PTS (33.3 ms apart at 30/1), to the nanosecond.
        let d_pts = expected[i].1.nseconds() - expected[0].1.nseconds();
        assert_eq!(capture_ns - frames[0].2, d_pts, "frame {i}");
    }
}

#[test]
fn waits_end_at_once_when_the_pipeline_stops() {
    // A source on a silent channel, waiting for ever; a sink waiting for its first reader.
    let ch = Channel::new("unlock");
    let _w = writer(&ch.0, 64, 48, PixelFormat::Gray8, 2);
    let sink_ch = Channel::new("unlock-sink");
    for desc in [
        format!("shmframessrc channel={} timeout=inf ! fakesink", ch.0),
        format!("videotestsrc is-live=true ! video/x-raw,format=GRAY8,width=64,height=48 ! shmframessink channel={} when-full=wait", sink_ch.0),
    ] {
        let p = Pipeline::launch(&desc);
        p.0.set_state(gst::State::Playing).expect("plays");
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        p.0.set_state(gst::State::Null).expect("stops");
        assert!(t.elapsed() < Duration::from_secs(1), "{desc}: stopping took {:?}", t.elapsed());
        assert!(p.next_end(0.0).is_none_or(|e| e.is_ok()), "{desc}: no error");
    }
    assert!(
        !std::path::Path::new(&format!("/dev/shm/{}", sink_ch.0)).exists(),
        "a stopped sink removes its channel"
    );
}

#[test]
fn the_end_of_the_stream_is_eos() {
    let ch = Channel::new("eos");
    let mut w = writer(&ch.0, 64, 48, PixelFormat::Gray8, 2);
    let p = Pipeline::launch(&format!("shmframessrc channel={} lossless=true ! fakesink name=sink signal-handoffs=true sync=false enable-last-sample=false", ch.0));
    let n = Arc::new(Mutex::new(0));
    let n2 = n.clone();
    p.on_buffer(move |_, _| *n2.lock().unwrap() += 1);
    p.play();
    attached(&w);
    for _ in 0..5 {
        publish(&mut w, None);
    }
    w.close().expect("ends");
    assert_eq!(p.next_end(10.0), Some(Ok(())), "EOS, not an error");
    assert_eq!(*n.lock().unwrap(), 5, "every frame before the end");
}

#[test]
fn errors_say_what_is_wrong_in_the_message() {
    let missing = Channel::new("missing");
    let p = Pipeline::launch(&format!("shmframessrc channel={} timeout=0.2 ! fakesink", missing.0));
    p.play();
    let err = p.next_end(10.0).expect("an error").expect_err("an error");
    assert!(err.contains("no channel named") && err.contains(&missing.0), "{err}");

    let silent = Channel::new("silent");
    let _w = writer(&silent.0, 64, 48, PixelFormat::Gray8, 2);
    let p = Pipeline::launch(&format!("shmframessrc channel={} timeout=0.3 ! fakesink", silent.0));
    p.play();
    let err = p.next_end(10.0).expect("an error").expect_err("an error");
    assert!(err.contains("no frame on channel") && err.contains("alive but sent nothing"), "{err}");

    let taken = Channel::new("taken");
    let _w = writer(&taken.0, 64, 48, PixelFormat::Gray8, 2);
    let p = Pipeline::launch(&format!("videotestsrc num-buffers=5 ! video/x-raw,format=GRAY8,width=64,height=48 ! shmframessink channel={}", taken.0));
    p.play();
    let err = p.next_end(10.0).expect("an error").expect_err("an error");
    assert!(err.contains("already has a live producer"), "{err}");

    let p =
        Pipeline::launch(&format!("shmframessrc channel={} raw=1920by1080 ! fakesink", missing.0));
    let e = p.0.set_state(gst::State::Playing);
    let err = p.next_end(5.0).expect("an error").expect_err("an error");
    assert!(e.is_err() || !err.is_empty());
    assert!(err.contains("raw=\"1920by1080\"") && err.contains("WIDTHxHEIGHT"), "{err}");
}

#[test]
fn header_less_channels_both_ways() {
    // shmframessink raw=true writes what cpp_py_shmbuf's consumers read; shmframessrc raw=WxH
    // reads what its producer writes (here our raw Writer, byte for byte the same stream).
    let out = Channel::new("raw-sink");
    let p = Pipeline::launch(&format!(
        // Live and endless: the channel stays until the pipeline stops (a short stream could
        // end, removing the name, before the reader opens it).
        "videotestsrc is-live=true pattern=white ! video/x-raw,format=BGR,width=64,height=48 ! shmframessink channel={} raw=true",
        out.0
    ));
    p.play();
    let shape = shmframes::FrameShape::packed(64, 48, PixelFormat::Bgr24).expect("a shape");
    let opts =
        ReaderOptions { timeout: Duration::from_secs(10), raw: Some(shape), ..Default::default() };
    let mut r = Reader::open(&out.0, &opts).expect("the raw channel");
    let f = r.read(Duration::from_secs(10)).expect("no error").expect("a frame");
    assert!(f.is_raw() && f.pixels().len() == 64 * 48 * 3, "a header-less frame");
    assert!(f.pixels().iter().all(|&b| b == 255), "white: {:?}", &f.pixels()[..8]);
    drop((f, r, p));

    let inp = Channel::new("raw-src");
    let mut o = WriterOptions::new(64, 48, PixelFormat::Gray8).expect("a shape");
    o.raw = true;
    let mut w = Writer::create(&inp.0, &o).expect("a raw channel");
    let p = Pipeline::launch(&format!("shmframessrc channel={} raw=64x48 raw-format=gray ! fakesink name=sink signal-handoffs=true sync=false", inp.0));
    let got: Shared<(u32, u32, gst_video::VideoFormat, u8, Option<gst::ClockTime>)> =
        Arc::default();
    let g = got.clone();
    p.on_buffer(move |b, info| {
        g.lock().unwrap().push((
            info.width(),
            info.height(),
            info.format(),
            b.map_readable().expect("readable")[0],
            b.pts(),
        ))
    });
    p.play();
    assert!(
        wait_until(10.0, || {
            let _ = w.write(&[7u8; 64 * 48], None, Duration::ZERO);
            std::thread::sleep(Duration::from_millis(5));
            got.lock().unwrap().len() >= 3
        }),
        "no buffers from the raw channel"
    );
    let got = got.lock().unwrap();
    assert_eq!(
        (got[0].0, got[0].1, got[0].2, got[0].3),
        (64, 48, gst_video::VideoFormat::Gray8, 7)
    );
    // Header-less frames have no capture time: stamped on arrival, so PTS still advance.
    let pts: Vec<_> = got.iter().map(|g| g.4.expect("a PTS")).collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "PTS advance: {pts:?}");
}

#[test]
fn an_element_that_reads_no_strides_gets_frames_in_its_own_layout() {
    // 65 px of BGR: our rows are 195 bytes, GStreamer's default 196. fakesink answers no
    // allocation query, so it cannot read a VideoMeta: each frame is copied into its layout.
    let ch = Channel::new("layout");
    let mut w = writer(&ch.0, 65, 48, PixelFormat::Bgr24, 4);
    let p = Pipeline::launch(&format!("shmframessrc channel={} lossless=true ! fakesink name=sink signal-handoffs=true sync=false", ch.0));
    let got: Shared<(usize, usize, bool)> = Arc::default();
    let g = got.clone();
    p.on_buffer(move |b, info| {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(b.as_ref(), &info).expect("a frame");
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).expect("plane 0");
        let rows_ok = (0..48)
            .all(|y| data[y * stride..][..195].iter().all(|&x| x == (b.offset() % 251) as u8));
        g.lock().unwrap().push((b.size(), stride, rows_ok));
    });
    p.play();
    attached(&w);
    for _ in 0..3 {
        publish(&mut w, None);
    }
    assert!(wait_until(10.0, || got.lock().unwrap().len() == 3));
    for &(size, stride, rows_ok) in got.lock().unwrap().iter() {
        assert_eq!((size, stride), (196 * 48, 196), "GStreamer's default layout");
        assert!(rows_ok, "every row where GStreamer's layout puts it");
    }
}

#[test]
fn a_waiting_sink_paused_and_played_again_goes_on() {
    // Non-live upstream: a sink unlocked by PAUSED must wait for PLAYING, not return flushing
    // (which would stop videotestsrc for good).
    let ch = Channel::new("pause");
    let p = Pipeline::launch(&format!(
        "videotestsrc num-buffers=30 ! video/x-raw,format=GRAY8,width=64,height=48 ! shmframessink channel={} when-full=wait sync=false",
        ch.0
    ));
    p.play();
    std::thread::sleep(Duration::from_millis(300)); // the sink waits for a first reader
    p.0.set_state(gst::State::Paused).expect("pauses");
    std::thread::sleep(Duration::from_millis(200));
    p.play();
    let opts =
        ReaderOptions { timeout: Duration::from_secs(10), lossless: true, ..Default::default() };
    let mut r = Reader::open(&ch.0, &opts).expect("the channel");
    let mut seqs = Vec::new();
    loop {
        match r.read(Duration::from_secs(10)) {
            Ok(Some(f)) => seqs.push(f.seq()),
            Ok(None) => panic!("stalled after {} frames", seqs.len()),
            Err(Error::EndOfStream { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(seqs, (0..30).collect::<Vec<u64>>());
    assert!(
        wait_until(5.0, || !std::path::Path::new(&format!("/dev/shm/{}", ch.0)).exists()),
        "EOS removed the name"
    );
    drop(p);
    // Stopping to READY ends the channel too.
    let p2 = Pipeline::launch(&format!("videotestsrc is-live=true ! video/x-raw,format=GRAY8,width=64,height=48 ! shmframessink channel={}", ch.0));
    p2.play();
    assert!(wait_until(10.0, || std::path::Path::new(&format!("/dev/shm/{}", ch.0)).exists()));
    p2.0.set_state(gst::State::Ready).expect("to READY");
    assert!(
        !std::path::Path::new(&format!("/dev/shm/{}", ch.0)).exists(),
        "READY leaves no channel behind"
    );
}

#[test]
fn a_raw_sink_takes_bgr_only_and_hints_are_in_gstreamer_terms() {
    // cpp_py_shmbuf's consumers read BGR: a raw sink offers nothing else, so videoconvert
    // converts (here from videotestsrc's BGRA).
    let ch = Channel::new("raw-bgr");
    let p = Pipeline::launch(&format!("videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! videoconvert ! shmframessink channel={} raw=true", ch.0));
    p.play();
    let shape = shmframes::FrameShape::packed(64, 48, PixelFormat::Bgr24).expect("a shape");
    let mut r = Reader::open(
        &ch.0,
        &ReaderOptions { timeout: Duration::from_secs(10), raw: Some(shape), ..Default::default() },
    )
    .expect("the raw channel");
    let f = r
        .read(Duration::from_secs(10))
        .expect("a BGR frame of the right size, not a size mismatch")
        .expect("a frame");
    assert_eq!(f.pixels().len(), 64 * 48 * 3);
    drop((f, r));
    // Read as framed, the raw channel's error names this element's properties.
    let src = Pipeline::launch(&format!("shmframessrc channel={} timeout=5 ! fakesink", ch.0));
    src.play();
    let err = src.next_end(10.0).expect("an error").expect_err("an error");
    assert!(err.contains("raw=WIDTHxHEIGHT raw-format=FORMAT"), "{err}");
}
