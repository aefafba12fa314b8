//! `shmframessink`: publishes raw video into a shmframes channel (work in progress).

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use shmframes::{PixelFormat, Writer, WriterOptions};

#[derive(Debug, Clone)]
struct Settings {
    name: String,
    buffer_frames: u32,
    max_readers: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { name: "shm_video".into(), buffer_frames: 2, max_readers: shmframes::DEFAULT_MAX_READERS }
    }
}

#[derive(Default)]
pub struct ShmframesSink {
    settings: Mutex<Settings>,
    writer: Mutex<Option<(Writer, gst_video::VideoInfo)>>,
}

/// GStreamer's raw video formats and ours.
pub(crate) fn to_pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match f {
        V::Bgr => PixelFormat::Bgr24,
        V::Rgb => PixelFormat::Rgb24,
        V::Gray8 => PixelFormat::Gray8,
        V::Rgba => PixelFormat::Rgba32,
        V::Bgra => PixelFormat::Bgra32,
        V::Nv12 => PixelFormat::Nv12,
        V::I420 => PixelFormat::I420,
        V::Yuy2 => PixelFormat::Yuyv,
        _ => return None,
    })
}

pub(crate) const FORMATS: [gst_video::VideoFormat; 8] = [
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Gray8,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Yuy2,
];

#[glib::object_subclass]
impl ObjectSubclass for ShmframesSink {
    const NAME: &'static str = "GstShmframesSink";
    type Type = super::ShmframesSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for ShmframesSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("channel").nick("Channel").blurb("shmframes channel name").default_value(Some("shm_video")).build(),
                glib::ParamSpecUInt::builder("buffer-frames").nick("Buffer frames").blurb("frames a reader may fall behind").minimum(1).maximum(31).default_value(2).build(),
                glib::ParamSpecUInt::builder("max-readers")
                    .nick("Max readers")
                    .blurb("readers served at once")
                    .minimum(1)
                    .maximum(shmframes::MAX_READERS)
                    .default_value(shmframes::DEFAULT_MAX_READERS)
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "channel" => s.name = value.get::<Option<String>>().unwrap().unwrap_or_else(|| "shm_video".into()),
            "buffer-frames" => s.buffer_frames = value.get().unwrap(),
            "max-readers" => s.max_readers = value.get().unwrap(),
            _ => unreachable!("a property we registered"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "channel" => s.name.to_value(),
            "buffer-frames" => s.buffer_frames.to_value(),
            "max-readers" => s.max_readers.to_value(),
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
                "Publishes raw video into a shmframes channel (readers: python -m shmframes.view, frame-viewer, shmframessrc)",
                "shmframes",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PADS: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().format_list(FORMATS).build();
            vec![gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps).unwrap()]
        });
        PADS.as_ref()
    }
}

impl BaseSinkImpl for ShmframesSink {
    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::loggable_error!(gst::CAT_RUST, "not raw video caps: {caps}"))?;
        let format = to_pixel_format(info.format()).ok_or_else(|| gst::loggable_error!(gst::CAT_RUST, "format {:?}", info.format()))?;
        let s = self.settings.lock().unwrap().clone();
        let mut opts = WriterOptions::new(info.width(), info.height(), format).map_err(|e| gst::loggable_error!(gst::CAT_RUST, "{e}"))?;
        opts.buffer_frames = s.buffer_frames;
        opts.max_readers = s.max_readers;
        let mut slot = self.writer.lock().unwrap();
        *slot = None; // a caps change: the old channel ends first
        let w = Writer::create(&s.name, &opts).map_err(|e| gst::loggable_error!(gst::CAT_RUST, "{e}"))?;
        *slot = Some((w, info));
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Ends the stream (readers get end of stream after the last frame) and removes the name.
        self.writer.lock().unwrap().take();
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut g = self.writer.lock().unwrap();
        let Some((writer, info)) = g.as_mut() else { return Err(gst::FlowError::NotNegotiated) };
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info).map_err(|_| gst::FlowError::Error)?;
        // Live: never wait for readers (a lossless reader that lags loses frames, counted).
        let shape = writer.shape();
        let Some(mut slot) = writer.try_frame().map_err(|_| gst::FlowError::Error)? else { return Ok(gst::FlowSuccess::Ok) };
        let dst = slot.pixels();
        // Plane by plane, row by row: GStreamer's strides may pad rows differently from ours.
        for (p, plane) in shape.planes().iter().enumerate() {
            let src = frame.plane_data(p as u32).map_err(|_| gst::FlowError::Error)?;
            let src_stride = frame.plane_stride()[p] as usize;
            let (row, base) = (plane.row_bytes as usize, plane.offset as usize);
            for y in 0..plane.rows as usize {
                dst[base + y * plane.stride as usize..][..row].copy_from_slice(&src[y * src_stride..][..row]);
            }
        }
        slot.publish();
        Ok(gst::FlowSuccess::Ok)
    }
}
