//! `gstshmframes`: GStreamer elements for shmframes channels.
//!
//! - **`shmframessrc channel=NAME`**: a live source. Each buffer is a frame in shared memory,
//!   held (the producer never writes its slot) until GStreamer frees the buffer: no copy.
//!   Caps come from the frames (`video/x-raw`, format, width, height; strides in a
//!   `GstVideoMeta`) and follow a producer that restarts with another shape (`follow=true`).
//!   PTS is the frame's capture time on the pipeline clock (see [`clock`]). End of stream is
//!   EOS; a producer that dies is an element error with the reason.
//! - **`shmframessink channel=NAME`**: publishes whatever raw video reaches it (our formats;
//!   `videoconvert` in front does the rest) into a channel any number of readers can read:
//!   Python's `shmframes.Reader`, `frame-viewer`, `shmframessrc`. PTS becomes `capture_ns`;
//!   EOS ends the stream.
//!
//! Built by `make gst` into `target/gst/`; `GST_PLUGIN_PATH=target/gst gst-inspect-1.0
//! shmframessrc` lists the properties. The channel protocol is the core crate's
//! (`shmframes`); this crate adds no shared-memory code and no `unsafe`.
#![forbid(unsafe_code)]

use gst::glib;

pub mod clock;
pub mod formats;
pub mod shmframessink;
pub mod shmframessrc;

use std::sync::{Mutex, MutexGuard};

use gst::glib::prelude::*;

/// The channel both elements use unless told otherwise: frame-producer's default.
const DEFAULT_CHANNEL: &str = "shm_video";

/// A poisoned lock means a panic already reported elsewhere: carry on with the data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The one pad of either element: raw video in every format a channel carries.
fn video_pad_template(name: &str, direction: gst::PadDirection) -> gst::PadTemplate {
    let caps = gst_video::VideoCapsBuilder::new().format_list(formats::all()).build();
    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps)
        .expect("a valid template")
}

/// The `channel` property of either element.
fn channel_property(blurb: &str) -> gst::glib::ParamSpec {
    gst::glib::ParamSpecString::builder("channel")
        .nick("Channel")
        .blurb(blurb)
        .default_value(Some(DEFAULT_CHANNEL))
        .flags(gst::glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY)
        .build()
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    shmframessink::register(plugin)?;
    shmframessrc::register(plugin)
}

gst::plugin_define!(
    shmframes,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    // GStreamer's name for the MIT licence.
    "MIT/X11",
    "shmframes",
    "gstshmframes",
    "https://github.com/shmframes/shmframes",
    // From the build: SOURCE_DATE_EPOCH, the commit's date or today (build.rs).
    env!("SHMFRAMES_GST_RELEASE_DATE")
);
