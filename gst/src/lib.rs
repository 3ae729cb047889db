//! GStreamer plugin `cenalloc` (`libgstcenalloc.so`): the element `cenalloc`, a pass-through
//! that answers upstream's ALLOCATION query with dma-bufs cenalloc planned for both the V4L2
//! producer upstream (camera or decoder) and the display downstream (kmssink).
//!
//! GStreamer alone lets the display propose its memory (dumb buffers), which a camera that
//! needs physically contiguous memory cannot import; `cenalloc` merges both devices'
//! constraints and allocates from the memory source that suits both (a CMA heap there).
//!
//! Use it by putting the directory holding `libgstcenalloc.so` on `GST_PLUGIN_PATH`:
//!
//! ```text
//! GST_PLUGIN_PATH=target/debug gst-launch-1.0 v4l2src device=/dev/video0 io-mode=dmabuf-import \
//!     ! video/x-raw,format=BGRx,width=640,height=480 ! cenalloc ! kmssink driver-name=vkms
//! ```
//!
//! Modules: [`cenalloc`] (the element), [`pool`] (the buffer pool of cenalloc buffers),
//! [`format`](mod@format) (GStreamer video formats as DRM fourccs), [`peers`] (finding the devices of the
//! neighbouring elements).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cenalloc;
pub mod format;
pub mod peers;
pub mod pool;
#[allow(unsafe_code)]
mod sys;

use gst::glib;
use std::sync::LazyLock;

/// The debug category of the plugin (`GST_DEBUG=cenalloc:4` shows every plan's reasons).
pub static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "cenalloc",
        gst::DebugColorFlags::empty(),
        Some("cenalloc: dma-bufs that suit the producer and the display"),
    )
});

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    cenalloc::register(plugin)
}

/// The plugin's registration (`gst_plugin_cenalloc_get_desc`, made by `gst::plugin_define!`).
#[allow(missing_docs)]
mod registration {
    use super::plugin_init;

    gst::plugin_define!(
        cenalloc,
        env!("CARGO_PKG_DESCRIPTION"),
        plugin_init,
        concat!(env!("CARGO_PKG_VERSION"), "-", "cenalloc"),
        "MIT/X11",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_NAME"),
        "https://github.com/cenalloc/cenalloc"
    );
}
