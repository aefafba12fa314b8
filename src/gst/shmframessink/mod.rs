//! `shmframessink`: publishes raw video into a shmframes channel.
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// Publishes raw video into a shmframes channel, for any number of readers.
    pub struct ShmframesSink(ObjectSubclass<imp::ShmframesSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

/// Registers the element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "shmframessink",
        gst::Rank::NONE,
        ShmframesSink::static_type(),
    )
}
