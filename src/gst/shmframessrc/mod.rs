//! `shmframessrc`: reads a shmframes channel as live raw video, zero-copy.
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// Reads a shmframes channel as live raw video; each buffer is a frame in shared memory.
    pub struct ShmframesSrc(ObjectSubclass<imp::ShmframesSrc>) @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

/// Registers the element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "shmframessrc",
        gst::Rank::NONE,
        ShmframesSrc::static_type(),
    )
}
