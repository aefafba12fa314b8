//! GStreamer elements for shmframes channels (work in progress).
use gst::glib;

mod sink;
#[path = "src/mod.rs"]
mod source;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    sink::register(plugin)?;
    source::register(plugin)
}

gst::plugin_define!(
    shmframes,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "https://github.com/shmframes/shmframes",
    "2026-12-01"
);
