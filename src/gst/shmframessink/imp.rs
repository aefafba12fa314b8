//! `shmframessink`: publishes the raw video that reaches it into a shmframes channel.
//!
//! The channel is created when caps are set (its frames have their shape) and ends, removing
//! the name, at EOS or when the element goes to READY; readers read what was published
//! first. A buffer after EOS (a seek back) starts it again with the same caps. New
//! caps of another shape end the channel and create it again under the same name (readers
//! with `follow` carry on). Each buffer is copied once, plane by plane, into the next slot:
//! GStreamer's strides may pad rows, ours are packed.
//!
//! As in gst-plugins-rs, the element keeps two locks: [`Settings`] (the properties) and
//! [`State`] (the channel and what it needs). Neither is held while waiting: `render` takes
//! the channel out of the state while it waits for room or a reader, so `unlock` from another
//! thread can always fire the cancel; and none is held while a message is posted.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use shmframes::{
    Cancel, Error, FrameShape, PixelFormat, Writer, WriterOptions, DEFAULT_MAX_READERS,
    MAX_READERS, MAX_SLOTS,
};

use crate::{channel_property, clock, formats, lock, video_pad_template, DEFAULT_CHANNEL};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("shmframessink", gst::DebugColorFlags::empty(), Some("shmframes sink"))
});

const DEFAULT_BUFFER_FRAMES: u32 = 4;

/// What to do when readers leave no room for the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstShmframesSinkWhenFull")]
pub enum WhenFull {
    /// Never wait, as a live source must: the frame is dropped (readers see the gap).
    #[default]
    #[enum_value(name = "Drop the frame: never wait (live sources)", nick = "drop")]
    Drop = 0,
    /// Wait for lossless readers (and, raw, the consumer), and for a first reader before the
    /// first frame: nothing is lost; upstream is held back.
    #[enum_value(
        name = "Wait for lossless readers (and for a first reader): lose nothing",
        nick = "wait"
    )]
    Wait = 1,
}

#[derive(Debug, Clone)]
struct Settings {
    channel: String,
    buffer_frames: u32,
    max_readers: u32,
    when_full: WhenFull,
    raw: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            channel: DEFAULT_CHANNEL.into(),
            buffer_frames: DEFAULT_BUFFER_FRAMES,
            max_readers: DEFAULT_MAX_READERS,
            when_full: WhenFull::Drop,
            raw: false,
        }
    }
}

/// The channel being written.
struct Channel {
    writer: Writer,
    info: gst_video::VideoInfo,
    /// Buffers received: each frame's sequence number, so frames dropped for want of room
    /// show as gaps to readers.
    seq: u64,
    /// Whether a reader has been waited for (`when-full=wait`, before the first frame).
    reader_seen: bool,
}

/// What the element knows between `start` and `stop`. Locked briefly, never across a wait or
/// a posted message.
struct State {
    /// The channel being written: `None` before caps, after EOS, and while `render` publishes
    /// into it (taken out for the copy and the waits, put back after).
    channel: Option<Channel>,
    /// The last caps set: the channel starts again with them after EOS (a seek back).
    last_info: Option<gst_video::VideoInfo>,
    /// Ends the current wait for room: fired by `unlock`, replaced by `unlock_stop`.
    cancel: Cancel,
}

impl Default for State {
    fn default() -> Self {
        State { channel: None, last_info: None, cancel: Cancel::new() }
    }
}

#[derive(Default)]
pub struct ShmframesSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for ShmframesSink {
    const NAME: &'static str = "GstShmframesSink";
    type Type = super::ShmframesSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for ShmframesSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let ready = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY;
            vec![
                channel_property("Name of the shmframes channel to create (readers: shmframes.Reader(name), frame-viewer name, shmframessrc channel=)"),
                glib::ParamSpecUInt::builder("buffer-frames")
                    .nick("Buffer frames")
                    .blurb("Frames the channel keeps for readers that fall behind")
                    .minimum(1)
                    .maximum(MAX_SLOTS - 1)
                    .default_value(DEFAULT_BUFFER_FRAMES)
                    .flags(ready)
                    .build(),
                glib::ParamSpecUInt::builder("max-readers")
                    .nick("Max readers")
                    .blurb("Readers the channel serves at once (64 bytes of shared memory each)")
                    .minimum(1)
                    .maximum(MAX_READERS)
                    .default_value(DEFAULT_MAX_READERS)
                    .flags(ready)
                    .build(),
                glib::ParamSpecEnum::builder_with_default("when-full", WhenFull::Drop)
                    .nick("When full")
                    .blurb("When readers leave no room: drop the frame (never wait), or wait for lossless readers and for a first reader (lose nothing)")
                    .flags(ready)
                    .build(),
                glib::ParamSpecBoolean::builder("raw")
                    .nick("Raw")
                    .blurb("Header-less frames, exactly as cpp_py_shmbuf's producer writes them (one consumer; its consumers expect BGR)")
                    .default_value(false)
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
            "buffer-frames" => s.buffer_frames = value.get().expect("a uint"),
            "max-readers" => s.max_readers = value.get().expect("a uint"),
            "when-full" => s.when_full = value.get().expect("a WhenFull"),
            "raw" => s.raw = value.get().expect("a boolean"),
            _ => unreachable!("a property we registered"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "channel" => s.channel.to_value(),
            "buffer-frames" => s.buffer_frames.to_value(),
            "max-readers" => s.max_readers.to_value(),
            "when-full" => s.when_full.to_value(),
            "raw" => s.raw.to_value(),
            _ => unreachable!("a property we registered"),
        }
    }
}

impl GstObjectImpl for ShmframesSink {}

impl ElementImpl for ShmframesSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "shmframes sink",
                "Sink/Video",
                "Publishes raw video into a shmframes channel, for any number of readers (shmframes.Reader in Python, frame-viewer, shmframessrc)",
                "shmframes developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PADS: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| vec![video_pad_template("sink", gst::PadDirection::Sink)]);
        PADS.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        let done = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            // Base sinks stop only at NULL: a READY pipeline must not leave a channel that
            // looks live and sends nothing.
            lock(&self.state).last_info = None;
            if let Err(msg) = self.finish() {
                self.post_error_message(msg);
            }
        }
        Ok(done)
    }
}

impl ShmframesSink {
    /// The channel for frames of `info`'s shape: the current one if it has that shape, else a
    /// new one (the old one ends first, so the name is free).
    fn open(&self, info: gst_video::VideoInfo) -> Result<(), gst::ErrorMessage> {
        if info.interlace_mode() != gst_video::VideoInterlaceMode::Progressive {
            return Err(gst::error_msg!(
                gst::StreamError::Format,
                ("interlaced video ({:?}): put deinterlace in front", info.interlace_mode())
            ));
        }
        let format = formats::from_gst(info.format()).ok_or_else(|| {
            gst::error_msg!(
                gst::StreamError::Format,
                ("shmframes has no {:?} frames (put videoconvert in front)", info.format())
            )
        })?;
        let shape = FrameShape::packed(info.width(), info.height(), format)
            .map_err(|e| gst::error_msg!(gst::StreamError::Format, ("{e}")))?;
        let mut state = lock(&self.state);
        if let Some(c) = state.channel.as_mut().filter(|c| c.writer.shape() == shape) {
            c.info = info;
            return Ok(());
        }
        if let Some(old) = state.channel.take() {
            gst::info!(
                CAT,
                imp = self,
                "frames change from {} to {shape}: the channel starts again",
                old.writer.shape()
            );
            old.writer.close().map_err(|e| gst::error_msg!(gst::ResourceError::Close, ("{e}")))?;
        }
        let s = lock(&self.settings).clone();
        let mut opts = WriterOptions::new(shape.width, shape.height, format)
            .map_err(|e| gst::error_msg!(gst::StreamError::Format, ("{e}")))?;
        opts.buffer_frames = s.buffer_frames;
        opts.max_readers = s.max_readers;
        opts.raw = s.raw;
        opts.cancel = Some(state.cancel.clone());
        let writer = Writer::create(&s.channel, &opts)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ("{e}")))?;
        gst::info!(CAT, imp = self, "channel {:?}: frames of {shape}", s.channel);
        state.channel = Some(Channel { writer, info, seq: 0, reader_seen: false });
        Ok(())
    }

    /// Ends the stream: readers read what was published, then see its end; the name goes.
    fn finish(&self) -> Result<(), gst::ErrorMessage> {
        let channel = lock(&self.state).channel.take();
        match channel {
            Some(c) => {
                c.writer.close().map_err(|e| gst::error_msg!(gst::ResourceError::Close, ("{e}")))
            }
            None => Ok(()),
        }
    }

    /// The capture time of `buffer`: its PTS on the monotonic clock (now, without a PTS).
    fn capture_ns(&self, buffer: &gst::BufferRef) -> u64 {
        let obj = self.obj();
        let segment = obj.segment();
        let running = buffer
            .pts()
            .and_then(|pts| segment.downcast_ref::<gst::ClockTime>()?.to_running_time(pts));
        match (running, obj.clock(), obj.base_time()) {
            (Some(rt), Some(clock), Some(base)) => clock::capture_ns(rt, &clock, base),
            _ => shmframes::monotonic_ns(),
        }
    }
}

impl BaseSinkImpl for ShmframesSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = State::default();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.state).last_info = None;
        self.finish()
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "not raw video: {caps}"))?;
        lock(&self.state).last_info = Some(info.clone());
        self.open(info).map_err(|msg| {
            // The reason (a name taken, no space in /dev/shm) is the user's to read, not a
            // bare not-negotiated: post it as the element's error.
            self.post_error_message(msg);
            gst::loggable_error!(CAT, "no channel for {caps}")
        })
    }

    /// A raw channel is for cpp_py_shmbuf's consumers, which read BGR: only BGR is offered
    /// then (`videoconvert` in front converts).
    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let raw = lock(&self.settings).raw;
        let caps = if raw {
            gst_video::VideoCapsBuilder::new().format(formats::to_gst(PixelFormat::Bgr24)).build()
        } else {
            self.obj().sink_pad().pad_template_caps()
        };
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn propose_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        // Any strides upstream likes: render copies row by row where they differ from ours.
        query.add_allocation_meta::<gst_video::VideoMeta>(None);
        self.parent_propose_allocation(query)
    }

    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            if let Err(msg) = self.finish() {
                self.post_error_message(msg);
            }
        }
        self.parent_event(event)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.state).cancel.cancel();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        // `render` hands the writer the current cancel before each wait.
        lock(&self.state).cancel = Cancel::new();
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let capture_ns = self.capture_ns(buffer);
        loop {
            match self.publish(buffer, capture_ns) {
                Err(Stop::Interrupted) => {
                    // Unlocked while waiting for room or a reader: flushing, stopping, or going
                    // to PAUSED. Wait until the pipeline plays again (then try again) or says
                    // to stop (its flow return).
                    self.obj().wait_preroll()?;
                }
                Err(Stop::Flow(f)) => return Err(f),
                Err(Stop::Error(msg)) => {
                    self.post_error_message(msg);
                    return Err(gst::FlowError::Error);
                }
                Ok(s) => return Ok(s),
            }
        }
    }
}

/// Why `publish` published nothing.
enum Stop {
    /// A wait was cancelled (`unlock`).
    Interrupted,
    Flow(gst::FlowError),
    /// An error to post (after our locks are released).
    Error(gst::ErrorMessage),
}

impl ShmframesSink {
    /// Publishes `buffer` (or drops it for want of room, `when-full=drop`).
    fn publish(&self, buffer: &gst::Buffer, capture_ns: u64) -> Result<gst::FlowSuccess, Stop> {
        let (when_full, raw) = {
            let s = lock(&self.settings);
            (s.when_full, s.raw)
        };
        let (cancel, channel, last_info) = {
            let mut state = lock(&self.state);
            (state.cancel.clone(), state.channel.take(), state.last_info.clone())
        };
        let mut c = match (channel, last_info) {
            (Some(c), _) => c,
            // After EOS (a seek back, a loop): the same caps start the channel again.
            (None, Some(info)) => {
                self.open(info).map_err(Stop::Error)?;
                lock(&self.state).channel.take().ok_or(Stop::Flow(gst::FlowError::Flushing))?
            }
            (None, None) => {
                return Err(Stop::Error(gst::error_msg!(
                    gst::CoreError::Negotiation,
                    ("a buffer arrived before its caps")
                )))
            }
        };
        // Out of the state while it waits and copies; back in whatever happened.
        let published = self.publish_into(&mut c, buffer, capture_ns, when_full, raw, cancel);
        lock(&self.state).channel = Some(c);
        published
    }

    /// Publishes `buffer` into channel `c` (or drops it for want of room).
    fn publish_into(
        &self,
        c: &mut Channel,
        buffer: &gst::Buffer,
        capture_ns: u64,
        when_full: WhenFull,
        raw: bool,
        cancel: Cancel,
    ) -> Result<gst::FlowSuccess, Stop> {
        c.writer.set_cancel(Some(cancel.clone()));
        if when_full == WhenFull::Wait && !c.reader_seen && !raw {
            // Lossless from the first frame: publish nothing before someone reads. (A raw ring
            // keeps its frames for its consumer anyway, and cpp_py_shmbuf's consumers take no
            // lock we could see.)
            let writer = &c.writer;
            if !cancel.sleep_while(|| !writer.reader_attached(), Duration::from_millis(10)) {
                return Err(Stop::Interrupted);
            }
            c.reader_seen = true;
        }
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &c.info)
            .map_err(|_| {
                Stop::Error(gst::error_msg!(
                    gst::StreamError::Format,
                    ("a buffer of {} bytes does not hold a frame of {:?}", buffer.size(), c.info)
                ))
            })?;
        let shape = c.writer.shape();
        let seq = c.seq;
        let slot = match when_full {
            WhenFull::Drop => c.writer.try_frame(),
            WhenFull::Wait => c.writer.frame(None),
        };
        let mut slot = match slot {
            Ok(Some(slot)) => slot,
            Ok(None) => {
                gst::debug!(CAT, imp = self, "frame {seq} dropped: readers hold every slot");
                c.seq += 1;
                return Ok(gst::FlowSuccess::Ok);
            }
            Err(Error::Interrupted { .. }) => return Err(Stop::Interrupted),
            Err(e) => return Err(Stop::Error(gst::error_msg!(gst::ResourceError::Write, ("{e}")))),
        };
        let dst = slot.pixels();
        for (p, plane) in shape.planes().iter().enumerate() {
            let src = frame.plane_data(p as u32).map_err(|_| Stop::Flow(gst::FlowError::Error))?;
            let src_stride = frame.plane_stride()[p] as usize;
            let (row, stride, rows, base) = (
                plane.row_bytes as usize,
                plane.stride as usize,
                plane.rows as usize,
                plane.offset as usize,
            );
            if src.len() < src_stride * (rows - 1) + row {
                return Err(Stop::Error(gst::error_msg!(
                    gst::StreamError::Format,
                    ("plane {p} of a buffer holds {} bytes, not {rows} rows of {row}", src.len())
                )));
            }
            if src_stride == stride {
                // One copy for the whole plane (the usual case: packed rows both sides).
                let len = stride * (rows - 1) + row;
                dst[base..base + len].copy_from_slice(&src[..len]);
            } else {
                for y in 0..rows {
                    dst[base + y * stride..][..row].copy_from_slice(&src[y * src_stride..][..row]);
                }
            }
        }
        slot.set_seq(seq);
        slot.set_capture_ns(capture_ns);
        slot.publish();
        c.seq += 1;
        Ok(gst::FlowSuccess::Ok)
    }
}
