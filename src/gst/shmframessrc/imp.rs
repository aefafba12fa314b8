//! `shmframessrc`: a shmframes channel as a live GStreamer source, zero-copy.
//!
//! The streaming thread (`create`) opens the channel, reads frames and pushes each as a
//! buffer that wraps the frame in place: the frame stays leased (the producer never writes
//! its slot) until GStreamer frees the buffer and every buffer sharing its memory. Caps come
//! from the frames themselves; a frame of another shape (a followed producer that restarted
//! with another size) renegotiates. `unlock` (flushing, stopping) ends every wait at once
//! through a [`Cancel`]; `unlock_stop` gives the reader a fresh one.
//!
//! As in gst-plugins-rs, the element keeps two locks: [`Settings`] (the properties) and
//! [`State`] (everything from `start` to `stop`). Neither is held while waiting: `create` takes
//! the reader out of the state for its wait, so `unlock`, caps and latency queries from other
//! threads never wait for a frame; and none is held while a message is posted or caps are set.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use shmframes::{
    Cancel, Error, Frame, FrameShape, PixelFormat, ProducerState, Reader, ReaderOptions, Start,
    Wake,
};

use crate::{channel_property, clock, formats, lock, video_pad_template, DEFAULT_CHANNEL};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("shmframessrc", gst::DebugColorFlags::empty(), Some("shmframes source"))
});

const DEFAULT_TIMEOUT: f64 = 10.0;
/// What the source adds to its producer's capture-to-publish time in the latency it reports:
/// the wake-up and the push (tens of microseconds here), with room to spare.
const DELIVERY: gst::ClockTime = gst::ClockTime::from_mseconds(1);
/// The most latency we report: a lossless reader far behind its producer should not delay
/// every sink of the pipeline by its backlog for ever.
const MAX_LATENCY: gst::ClockTime = gst::ClockTime::from_seconds(1);

#[derive(Debug, Clone)]
struct Settings {
    channel: String,
    /// Seconds to wait for the channel, and then for each frame (`inf`: for ever).
    timeout: f64,
    follow: bool,
    lossless: bool,
    /// Wake just before a steady producer's next frame is due (`false`: on its wake-up).
    anticipate: bool,
    /// `WxH` of a header-less (cpp_py_shmbuf) stream; empty: framed.
    raw: String,
    /// Its pixel format's name, checked by `start` (a property cannot fail when set).
    raw_format: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            channel: DEFAULT_CHANNEL.into(),
            timeout: DEFAULT_TIMEOUT,
            follow: false,
            lossless: false,
            anticipate: true,
            raw: String::new(),
            raw_format: PixelFormat::Bgr24.name().into(),
        }
    }
}

impl Settings {
    fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout).unwrap_or(Duration::MAX)
    }

    fn raw_shape(&self) -> Result<Option<FrameShape>, gst::ErrorMessage> {
        if self.raw.is_empty() {
            return Ok(None);
        }
        let bad = |e: &dyn std::fmt::Display| {
            gst::error_msg!(gst::ResourceError::Settings, ("raw={:?}: {}", self.raw, e))
        };
        let (w, h) = shmframes::format::parse_size(&self.raw).map_err(|e| bad(&e))?;
        let format: PixelFormat =
            self.raw_format.parse().map_err(|e: shmframes::format::UnknownFormat| {
                gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("raw-format={:?}: {e}", self.raw_format)
                )
            })?;
        FrameShape::packed(w, h, format).map(Some).map_err(|e| bad(&e))
    }
}

/// What only the streaming thread touches (and `start`/`stop`).
struct Streaming {
    reader: Reader,
    /// The settings it was opened with (they change only in NULL or READY, when it is closed).
    settings: Settings,
    /// The last PTS pushed: PTS never go backwards, whatever the producer's clock says.
    last_pts: Option<gst::ClockTime>,
    /// The next sequence number expected: a gap marks the buffer DISCONT.
    next_seq: Option<u64>,
    /// The previous frame's capture time, and the interval between the last two frames: a
    /// buffer's duration is the last interval (muxers need the last frame's duration).
    last_capture: Option<u64>,
    interval: Option<gst::ClockTime>,
}

/// Everything the element knows from `start` to `stop`. Locked briefly, never across a wait,
/// a posted message or `set_caps` (whose caps query comes back to `caps`).
struct State {
    /// Ends the current waits: fired by `unlock`, replaced by `unlock_stop` and `start`.
    cancel: Cancel,
    /// The open channel: `None` before the first `create` opens it, and while `create` waits
    /// for a frame (it takes the reader out, and puts it back after).
    streaming: Option<Streaming>,
    /// The caps being pushed, for caps queries from any thread.
    info: Option<gst_video::VideoInfo>,
    /// The caps' layout, and whether frames must be copied into it.
    layout: Option<Layout>,
    /// The latency we report: the producer's longest capture-to-publish time seen, plus
    /// `DELIVERY` (at most `MAX_LATENCY`).
    latency: gst::ClockTime,
    /// The channel failed for good (the producer died, the stream broke the protocol): the
    /// error was posted once, and every later `create` returns an error at once, without
    /// posting it again, until the element is started again.
    failed: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            cancel: Cancel::new(),
            streaming: None,
            info: None,
            layout: None,
            latency: gst::ClockTime::ZERO,
            failed: false,
        }
    }
}

#[derive(Default)]
pub struct ShmframesSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

/// The frame's bytes, for `gst::Buffer::from_slice`: the frame (and its lease) lives exactly
/// as long as the buffer's memory.
struct FrameBytes(Frame);

impl AsRef<[u8]> for FrameBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.pixels()
    }
}

/// The caps of a frame shape.
fn video_info(shape: &FrameShape) -> Result<gst_video::VideoInfo, gst::ErrorMessage> {
    gst_video::VideoInfo::builder(formats::to_gst(shape.format), shape.width, shape.height)
        // The channel does not say its rate: variable (0/1); buffers carry capture times.
        .fps(gst::Fraction::new(0, 1))
        .build()
        .map_err(|e| {
            gst::error_msg!(
                gst::StreamError::Format,
                ("frames of {shape} have no GStreamer caps: {e}")
            )
        })
}

#[glib::object_subclass]
impl ObjectSubclass for ShmframesSrc {
    const NAME: &'static str = "GstShmframesSrc";
    type Type = super::ShmframesSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for ShmframesSrc {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
        // We timestamp: PTS is the frame's capture time on the pipeline clock.
        obj.set_do_timestamp(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let ready = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY;
            // The formats from the core's table, never a list typed in here.
            let raw_format_blurb = format!(
                "Pixel format of a header-less stream ({})",
                PixelFormat::names().join(", ")
            );
            vec![
                channel_property("Name of the shmframes channel to read (frame-producer --name, Writer(name), shmframessink channel=)"),
                glib::ParamSpecDouble::builder("timeout")
                    .nick("Timeout")
                    .blurb("Seconds to wait for the channel to appear, and then for each frame, before posting an error (inf: for ever)")
                    .minimum(0.0)
                    .maximum(f64::INFINITY)
                    .default_value(DEFAULT_TIMEOUT)
                    .flags(ready)
                    .build(),
                glib::ParamSpecBoolean::builder("follow")
                    .nick("Follow")
                    .blurb("Survive the producer: after its end or death, wait (up to timeout) for a new producer of the same name and go on, renegotiating if its frames differ")
                    .default_value(false)
                    .flags(ready)
                    .build(),
                glib::ParamSpecBoolean::builder("lossless")
                    .nick("Lossless")
                    .blurb("Start at the oldest frame the channel keeps and lose none to a producer that waits (frame-producer --when-full wait); frames a dropping producer overwrites mark the next buffer DISCONT")
                    .default_value(false)
                    .flags(ready)
                    .build(),
                glib::ParamSpecBoolean::builder("anticipate")
                    .nick("Anticipate")
                    .blurb("Wake just before a steady producer's next frame is due and watch for it briefly (at most 1.5 % of the frame interval); false: always sleep until the producer's wake-up (no watching, slower)")
                    .default_value(true)
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("raw")
                    .nick("Raw size")
                    .blurb("WIDTHxHEIGHT of a header-less stream (a cpp_py_shmbuf producer); empty: frames describe themselves")
                    .default_value(Some(""))
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("raw-format")
                    .nick("Raw format")
                    .blurb(&raw_format_blurb)
                    .default_value(Some("bgr"))
                    .flags(ready)
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "channel" => {
                s.channel = value
                    .get::<Option<String>>()
                    .expect("a string")
                    .unwrap_or_else(|| DEFAULT_CHANNEL.into())
            }
            "timeout" => s.timeout = value.get().expect("a double"),
            "follow" => s.follow = value.get().expect("a boolean"),
            "lossless" => s.lossless = value.get().expect("a boolean"),
            "anticipate" => s.anticipate = value.get().expect("a boolean"),
            "raw" => s.raw = value.get::<Option<String>>().expect("a string").unwrap_or_default(),
            "raw-format" => {
                s.raw_format = value.get::<Option<String>>().expect("a string").unwrap_or_default()
            }
            _ => unreachable!("a property we registered"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "channel" => s.channel.to_value(),
            "timeout" => s.timeout.to_value(),
            "follow" => s.follow.to_value(),
            "lossless" => s.lossless.to_value(),
            "anticipate" => s.anticipate.to_value(),
            "raw" => s.raw.to_value(),
            "raw-format" => s.raw_format.to_value(),
            _ => unreachable!("a property we registered"),
        }
    }
}

impl GstObjectImpl for ShmframesSrc {}

impl ElementImpl for ShmframesSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "shmframes source",
                "Source/Video",
                "Reads a shmframes channel (frame-producer, a Python Writer, shmframessink) as live raw video, in place: \
                 each buffer is the frame in shared memory, held until the buffer is freed",
                "shmframes developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PADS: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| vec![video_pad_template("src", gst::PadDirection::Src)]);
        PADS.as_ref()
    }
}

impl BaseSrcImpl for ShmframesSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // Settings are checked here, before streaming: a wrong raw= fails the state change.
        lock(&self.settings).raw_shape()?;
        *lock(&self.state) = State::default();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // The reader goes (its place in the channel is free at once); frames still in buffers
        // downstream stay valid until those buffers are freed. (The base class stops the
        // streaming thread first: no `create` holds the reader now.)
        let old = std::mem::take(&mut *lock(&self.state));
        drop(old);
        Ok(())
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let info = lock(&self.state).info.clone();
        let caps = match info {
            Some(info) => info.to_caps().ok()?,
            None => self.obj().src_pad().pad_template_caps(),
        };
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    /// Caps are known once the first frame is in: `create` sets them then. Until then there is
    /// nothing to negotiate (the base class would fixate the template to an arbitrary size).
    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        let caps = lock(&self.state).info.as_ref().and_then(|i| i.to_caps().ok());
        match caps {
            Some(caps) => self
                .obj()
                .set_caps(&caps)
                .map_err(|_| gst::loggable_error!(CAT, "downstream refused {caps}")),
            None => Ok(()),
        }
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            // A buffer's PTS is its capture time, and it reaches us about this much later.
            let latency = lock(&self.state).latency;
            q.set(true, latency, gst::ClockTime::NONE);
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.state).cancel.cancel();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.state).cancel = Cancel::new();
        Ok(())
    }
}

/// The negotiated layout of the frames being pushed.
struct Layout {
    /// The frames' shape, strides included.
    shape: FrameShape,
    info: gst_video::VideoInfo,
    /// Downstream reads no `GstVideoMeta` and our strides differ from GStreamer's defaults.
    copy: bool,
}

/// Why `next_frame` gave no frame.
enum Stop {
    Flow(gst::FlowError),
    /// An error to post; the stream may go on after it (a timeout: playing again waits again).
    Error(gst::ErrorMessage),
    /// An error that ends the channel for good (the reader returns it again at every read):
    /// posted once, and the source stays failed.
    Fatal(gst::ErrorMessage),
}

impl ShmframesSrc {
    /// Opens the channel (waiting up to `timeout` for it to appear).
    fn open(&self, s: &Settings, cancel: Cancel) -> Result<Streaming, Stop> {
        let opts = ReaderOptions {
            timeout: s.timeout(),
            raw: s.raw_shape().map_err(Stop::Error)?,
            follow: s.follow,
            cancel: Some(cancel),
            lossless: s.lossless,
            start: if s.lossless { Start::Oldest } else { Start::Newest },
        };
        match Reader::open(&s.channel, &opts) {
            Ok(mut reader) => {
                reader.set_wake(if s.anticipate { Wake::Anticipate } else { Wake::Publish });
                gst::info!(CAT, imp = self, "reading channel {:?}", s.channel);
                Ok(Streaming {
                    reader,
                    settings: s.clone(),
                    last_pts: None,
                    next_seq: None,
                    last_capture: None,
                    interval: None,
                })
            }
            Err(Error::Interrupted { .. }) => Err(Stop::Flow(gst::FlowError::Flushing)),
            Err(e) => Err(Stop::Error(gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("{e}{}", in_gstreamer(&e))
            ))),
        }
    }

    /// The next frame, waiting up to `timeout` (the cancel ends the wait at once).
    fn next_frame(&self, st: &mut Streaming) -> Result<Frame, Stop> {
        let s = &st.settings;
        match st.reader.read(s.timeout()) {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => {
                let why = match st.reader.producer_state() {
                    ProducerState::Gone | ProducerState::Ended => {
                        "its producer is gone and no new one took its place"
                    }
                    _ => "the producer is alive but sent nothing",
                };
                Err(Stop::Error(gst::error_msg!(
                    gst::ResourceError::Read,
                    (
                        "no frame on channel {:?} for {} s: {why} (timeout=inf waits for ever)",
                        s.channel,
                        s.timeout
                    )
                )))
            }
            Err(Error::EndOfStream { .. }) => Err(Stop::Flow(gst::FlowError::Eos)),
            Err(Error::Interrupted { .. }) => Err(Stop::Flow(gst::FlowError::Flushing)),
            Err(e) => Err(Stop::Fatal(gst::error_msg!(
                gst::ResourceError::Read,
                ("{e}{}", in_gstreamer(&e))
            ))),
        }
    }

    /// Whether the elements downstream read strides from a `GstVideoMeta` (an allocation query
    /// for `caps`).
    fn downstream_takes_video_meta(&self, caps: &gst::Caps) -> bool {
        let mut q = gst::query::Allocation::new(Some(caps), false);
        self.obj().src_pad().peer_query(&mut q)
            && q.find_allocation_meta::<gst_video::VideoMeta>().is_some()
    }

    /// Raises the reported latency when a frame took longer from capture to publish than it
    /// allows, and tells the pipeline to recompute its latency. (Time a frame then waits in
    /// the channel because the pipeline is slow is not latency the source adds: a live
    /// pipeline that falls behind drops frames, it should not delay every sink.)
    fn note_age(&self, capture_to_publish: gst::ClockTime) {
        let need = (capture_to_publish + DELIVERY).min(MAX_LATENCY);
        let mut state = lock(&self.state);
        if need > state.latency {
            // A quarter more than needed: a producer whose times creep up reposts a few
            // times (about 30 steps from 1 ms to the cap), not at every frame.
            state.latency = gst::ClockTime::from_nseconds(need.nseconds() / 4 * 5).min(MAX_LATENCY);
            drop(state);
            let obj = self.obj();
            let _ = obj.post_message(gst::message::Latency::builder().src(&*obj).build());
        }
    }
}

impl ShmframesSrc {
    /// New caps for frames of `shape`, set before its first buffer. Returns the layout to copy
    /// frames into, if downstream cannot read ours.
    fn renegotiate(&self, shape: FrameShape) -> Result<Option<gst_video::VideoInfo>, Stop> {
        let info = video_info(&shape).map_err(Stop::Error)?;
        let caps = info.to_caps().map_err(|_| Stop::Flow(gst::FlowError::NotNegotiated))?;
        gst::info!(CAT, imp = self, "frames of {shape}: caps {caps}");
        // Set before `set_caps`: its caps query comes back to `caps`.
        lock(&self.state).info = Some(info.clone());
        if self.obj().set_caps(&caps).is_err() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("downstream does not accept the channel's frames ({caps})")
            );
            return Err(Stop::Flow(gst::FlowError::NotNegotiated));
        }
        // Our producers pack rows; GStreamer's default layout pads some (BGR rows to 4
        // bytes, I420's chroma). Where they differ, downstream must read our strides from the
        // VideoMeta; an element that cannot gets a copy in its own layout.
        let copy = !layout_matches(&info, &shape) && !self.downstream_takes_video_meta(&caps);
        if copy {
            gst::warning!(CAT, imp = self, "downstream reads no GstVideoMeta and {shape} is not GStreamer's default layout: each frame is copied");
        }
        let copy = copy.then_some(info.clone());
        lock(&self.state).layout = Some(Layout { shape, info, copy: copy.is_some() });
        Ok(copy)
    }
}

impl PushSrcImpl for ShmframesSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        // Messages are posted with no lock held.
        let fail = |stop: Stop| match stop {
            Stop::Flow(f) => f,
            Stop::Error(msg) => {
                self.post_error_message(msg);
                gst::FlowError::Error
            }
            Stop::Fatal(msg) => {
                lock(&self.state).failed = true;
                self.post_error_message(msg);
                gst::FlowError::Error
            }
        };
        let obj = self.obj();
        let (clock, base) = (obj.clock(), obj.base_time().unwrap_or(gst::ClockTime::ZERO));
        // The reader is taken out of the state for the wait, and put back after.
        let (cancel, streaming) = {
            let mut state = lock(&self.state);
            if state.failed {
                // Posted already: the pipeline is told once.
                return Err(gst::FlowError::Error);
            }
            (state.cancel.clone(), state.streaming.take())
        };
        let mut st = match streaming {
            Some(st) => st,
            None => {
                let s = lock(&self.settings).clone();
                self.open(&s, cancel.clone()).map_err(fail)?
            }
        };
        st.reader.set_cancel(Some(cancel));
        let next = self.next_frame(&mut st);
        let frame = match next {
            Ok(f) => f,
            Err(stop) => {
                lock(&self.state).streaming = Some(st);
                return Err(fail(stop));
            }
        };

        let shape = frame.shape();
        let discont = frame.lost_before() > 0 || st.next_seq.is_some_and(|n| n != frame.seq());
        st.next_seq = Some(frame.seq() + 1);
        // Header-less frames carry no capture time (0): they are stamped on arrival.
        let capture_ns = if frame.is_raw() { None } else { Some(frame.capture_ns()) };
        let publish_ns = frame.publish_ns();
        if let Some(last) =
            st.last_capture.filter(|&l| capture_ns.is_some_and(|c| l < c) && !discont)
        {
            st.interval = capture_ns.map(|c| gst::ClockTime::from_nseconds(c - last));
        }
        st.last_capture = capture_ns;
        let duration = st.interval;
        let now = clock.as_ref().map(|c| c.time().saturating_sub(base));
        let pts = match (clock.as_ref(), capture_ns) {
            (Some(c), Some(ns)) => Some(clock::running_time(ns, c, base)),
            _ => now,
        };
        let pts = match (pts, st.last_pts) {
            (Some(p), Some(last)) if p < last => Some(last),
            (p, _) => p,
        };
        st.last_pts = pts.or(st.last_pts);
        // A new shape (the first frame, or a followed producer's): new caps, before its buffer.
        // (Strides count too: they decide whether frames must be copied.)
        let copy = {
            let mut state = lock(&self.state);
            state.streaming = Some(st);
            state
                .layout
                .as_ref()
                .filter(|l| l.shape == shape)
                .map(|l| l.copy.then(|| l.info.clone()))
        };
        if let Some(capture) = capture_ns {
            self.note_age(gst::ClockTime::from_nseconds(publish_ns.saturating_sub(capture)));
        }
        let copy = match copy {
            Some(copy) => copy,
            None => self.renegotiate(shape).map_err(fail)?,
        };

        let seq = frame.seq();
        let mut buffer = match copy {
            Some(info) => copy_to_default_layout(&frame, &shape, &info)?,
            None => {
                let mut buffer = gst::Buffer::from_slice(FrameBytes(frame));
                // Our plane offsets and strides, for elements that read them.
                let planes = shape.planes();
                let (mut offsets, mut strides) = ([0usize; 3], [0i32; 3]);
                for (i, p) in planes.iter().enumerate() {
                    (offsets[i], strides[i]) = (p.offset as usize, p.stride as i32);
                }
                let (offsets, strides) = (&offsets[..planes.len()], &strides[..planes.len()]);
                let b = buffer.get_mut().expect("a new buffer is writable");
                gst_video::VideoMeta::add_full(
                    b,
                    gst_video::VideoFrameFlags::empty(),
                    formats::to_gst(shape.format),
                    shape.width,
                    shape.height,
                    offsets,
                    strides,
                )
                .map_err(|e| {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Failed,
                        ("no video meta for {shape}: {e}")
                    );
                    gst::FlowError::Error
                })?;
                buffer
            }
        };
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(pts);
        b.set_duration(duration);
        b.set_offset(seq);
        if discont {
            b.set_flags(gst::BufferFlags::DISCONT);
        }
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}

/// The core's errors give the fix in command-line and Python terms; this adds this element's.
fn in_gstreamer(e: &Error) -> &'static str {
    match e {
        Error::ProducerGone { .. } => " (here: follow=true)",
        Error::RawWithoutShape { .. } => " (here: raw=WIDTHxHEIGHT raw-format=FORMAT)",
        Error::RawSizeMismatch { .. } => {
            " (here: raw=WIDTHxHEIGHT raw-format=FORMAT; a size that fits only in another format means raw-format is wrong)"
        }
        _ => "",
    }
}

/// Whether `shape`'s planes lie where GStreamer's default layout for `info` puts them.
fn layout_matches(info: &gst_video::VideoInfo, shape: &FrameShape) -> bool {
    let planes = shape.planes();
    planes.len() == info.n_planes() as usize
        && planes.iter().enumerate().all(|(i, p)| {
            info.stride()[i] as i64 == p.stride as i64 && info.offset()[i] as u64 == p.offset
        })
}

/// A buffer in GStreamer's default layout for `info`, with the frame's rows copied in.
fn copy_to_default_layout(
    frame: &Frame,
    shape: &FrameShape,
    info: &gst_video::VideoInfo,
) -> Result<gst::Buffer, gst::FlowError> {
    let mut out = gst::Buffer::with_size(info.size()).map_err(|_| gst::FlowError::Error)?;
    {
        let b = out.get_mut().expect("a new buffer is writable");
        let mut map = b.map_writable().map_err(|_| gst::FlowError::Error)?;
        let (src, dst) = (frame.pixels(), map.as_mut_slice());
        for (i, p) in shape.planes().iter().enumerate() {
            let (row, rows) = (p.row_bytes as usize, p.rows as usize);
            let (so, ss) = (p.offset as usize, p.stride as usize);
            let (d_off, ds) = (info.offset()[i], info.stride()[i] as usize);
            for y in 0..rows {
                dst[d_off + y * ds..][..row].copy_from_slice(&src[so + y * ss..][..row]);
            }
        }
    }
    Ok(out)
}
