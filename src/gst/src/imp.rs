//! `shmframessrc`: a shmframes channel as a live GStreamer video source, zero-copy: each buffer
//! wraps a frame in place, held (leased) until GStreamer releases the buffer (work in progress).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use shmframes::{Cancel, Error, Frame, PixelFormat, Reader, ReaderOptions, Start};

#[derive(Debug, Clone)]
struct Settings {
    name: String,
    timeout: Duration,
    lossless: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { name: "shm_video".into(), timeout: Duration::from_secs(10), lossless: false }
    }
}

struct State {
    reader: Reader,
    /// The first frame, read to learn the caps, handed out by the first `create`.
    pending: Option<Frame>,
    info: gst_video::VideoInfo,
}

pub struct ShmframesSrc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Set by `unlock` (flushing, stopping): ends a wait for a frame at once.
    flushing: Arc<AtomicBool>,
}

impl Default for ShmframesSrc {
    fn default() -> Self {
        ShmframesSrc { settings: Mutex::default(), state: Mutex::new(None), flushing: Arc::new(AtomicBool::new(false)) }
    }
}

/// The frame's bytes, for `gst::Buffer::from_slice`: the frame stays leased while the buffer
/// (and every buffer sharing its memory) lives.
struct FrameBytes(Frame);

impl AsRef<[u8]> for FrameBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.pixels()
    }
}

fn to_video_format(f: PixelFormat) -> Option<gst_video::VideoFormat> {
    use gst_video::VideoFormat as V;
    Some(match f {
        PixelFormat::Bgr24 => V::Bgr,
        PixelFormat::Rgb24 => V::Rgb,
        PixelFormat::Gray8 => V::Gray8,
        PixelFormat::Rgba32 => V::Rgba,
        PixelFormat::Bgra32 => V::Bgra,
        PixelFormat::Nv12 => V::Nv12,
        PixelFormat::I420 => V::I420,
        PixelFormat::Yuyv => V::Yuy2,
        _ => return None,
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
        obj.set_do_timestamp(true);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("channel").nick("Channel").blurb("shmframes channel name").default_value(Some("shm_video")).build(),
                glib::ParamSpecUInt::builder("timeout")
                    .nick("Timeout")
                    .blurb("seconds to wait for the channel and its first frame")
                    .default_value(10)
                    .build(),
                glib::ParamSpecBoolean::builder("lossless").nick("Lossless").blurb("never lose a frame to a producer that waits").build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "channel" => s.name = value.get::<Option<String>>().unwrap().unwrap_or_else(|| "shm_video".into()),
            "timeout" => s.timeout = Duration::from_secs(value.get::<u32>().unwrap() as u64),
            "lossless" => s.lossless = value.get().unwrap(),
            _ => unreachable!("a property we registered"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "channel" => s.name.to_value(),
            "timeout" => (s.timeout.as_secs() as u32).to_value(),
            "lossless" => s.lossless.to_value(),
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
                "Reads a shmframes channel (frame-producer, a Python Writer, shmframessink) as live raw video, in place",
                "shmframes",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PADS: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().format_list(crate::sink::FORMATS).build();
            vec![gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps).unwrap()]
        });
        PADS.as_ref()
    }
}

impl BaseSrcImpl for ShmframesSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().unwrap().clone();
        let flag = self.flushing.clone();
        flag.store(false, Ordering::SeqCst);
        let cancel = Cancel::with_check(Duration::from_millis(50), move || flag.load(Ordering::Relaxed));
        let start = if s.lossless { Start::Oldest } else { Start::Newest };
        let opts = ReaderOptions { timeout: s.timeout, lossless: s.lossless, start, cancel: Some(cancel), ..Default::default() };
        let fail = |e: Error| gst::error_msg!(gst::ResourceError::OpenRead, ["{}", e]);
        let mut reader = Reader::open(&s.name, &opts).map_err(fail)?;
        // The caps come from the stream: its first frame says the shape.
        let first = match reader.read(s.timeout) {
            Ok(Some(f)) => f,
            Ok(None) => return Err(gst::error_msg!(gst::ResourceError::Read, ["no frame on channel {:?} for {} s", s.name, s.timeout.as_secs()])),
            Err(e) => return Err(fail(e)),
        };
        let shape = first.shape();
        let format = to_video_format(shape.format)
            .ok_or_else(|| gst::error_msg!(gst::StreamError::Format, ["pixel format {} has no GStreamer name here", shape.format]))?;
        let info = gst_video::VideoInfo::builder(format, shape.width, shape.height)
            .fps(gst::Fraction::new(0, 1))
            .build()
            .map_err(|e| gst::error_msg!(gst::StreamError::Format, ["{}", e]))?;
        *self.state.lock().unwrap() = Some(State { reader, pending: Some(first), info });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.state.lock().unwrap().take();
        Ok(())
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = match self.state.lock().unwrap().as_ref() {
            Some(st) => st.info.to_caps().ok()?,
            None => self.obj().src_pad().pad_template_caps(),
        };
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl PushSrcImpl for ShmframesSrc {
    fn create(&self, _buffer: Option<&mut gst::BufferRef>) -> Result<CreateSuccess, gst::FlowError> {
        let mut g = self.state.lock().unwrap();
        let Some(st) = g.as_mut() else { return Err(gst::FlowError::Flushing) };
        let frame = match st.pending.take() {
            Some(f) => f,
            None => loop {
                match st.reader.read(Duration::from_secs(1)) {
                    Ok(Some(f)) => break f,
                    Ok(None) => continue, // a quiet producer: keep waiting (unlock ends it)
                    Err(Error::EndOfStream { .. }) => return Err(gst::FlowError::Eos),
                    Err(Error::Interrupted { .. }) => return Err(gst::FlowError::Flushing),
                    Err(e) => {
                        gst::element_imp_error!(self, gst::ResourceError::Read, ["{}", e]);
                        return Err(gst::FlowError::Error);
                    }
                }
            },
        };
        if frame.shape().width != st.info.width() || frame.shape().height != st.info.height() {
            gst::element_imp_error!(self, gst::StreamError::Format, ["the channel's frame size changed"]);
            return Err(gst::FlowError::NotNegotiated);
        }
        let shape = frame.shape();
        let mut buffer = gst::Buffer::from_slice(FrameBytes(frame));
        {
            // Our strides and plane offsets (GStreamer's defaults may pad rows differently).
            let planes = shape.planes();
            let offsets: Vec<usize> = planes.iter().map(|p| p.offset as usize).collect();
            let strides: Vec<i32> = planes.iter().map(|p| p.stride as i32).collect();
            let b = buffer.get_mut().expect("a new buffer is writable");
            gst_video::VideoMeta::add_full(b, gst_video::VideoFrameFlags::empty(), st.info.format(), shape.width, shape.height, &offsets, &strides)
                .map_err(|_| gst::FlowError::Error)?;
        }
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}
