//! `shmframessrc`.
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// Reads a shmframes channel as live raw video.
    pub struct ShmframesSrc(ObjectSubclass<imp::ShmframesSrc>) @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

/// Registers the element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "shmframessrc", gst::Rank::NONE, ShmframesSrc::static_type())
}
