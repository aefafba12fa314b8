//! Pixel formats: GStreamer's `video/x-raw` name for each of ours, taken from the core's one
//! format table ([`shmframes::format::FORMATS`], its GStreamer column).

use gst_video::VideoFormat;
use shmframes::format::FORMATS;
use shmframes::PixelFormat;

/// GStreamer's format for one of ours.
pub fn to_gst(format: PixelFormat) -> VideoFormat {
    VideoFormat::from_string(format.info().gstreamer)
}

/// Our format for one of GStreamer's, if we have it.
pub fn from_gst(format: VideoFormat) -> Option<PixelFormat> {
    FORMATS
        .iter()
        .find(|info| VideoFormat::from_string(info.gstreamer) == format)
        .map(|info| info.format)
}

/// Every format a channel can carry, in the table's order (the pad templates' format list).
pub fn all() -> Vec<VideoFormat> {
    FORMATS.iter().map(|info| VideoFormat::from_string(info.gstreamer)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_a_gstreamer_name_and_comes_back() {
        gst::init().unwrap();
        for info in FORMATS {
            let v = to_gst(info.format);
            assert_ne!(v, VideoFormat::Unknown, "{} ({})", info.name, info.gstreamer);
            assert_eq!(from_gst(v), Some(info.format));
        }
        assert_eq!(from_gst(VideoFormat::Bgrx), None);
    }
}
