//! The `cenalloc` element: a pass-through (same caps on both sides, never copies) that answers
//! upstream's ALLOCATION query with a [`CenallocPool`](crate::pool::CenallocPool) planned by
//! cenalloc for the V4L2 producer upstream and the display downstream.
//!
//! Properties: `upstream-device` and `downstream-device` (a path, DRM driver name, or V4L2
//! card or node name, as `cenalloc-info` accepts) override the devices found on the
//! neighbouring elements (v4l2src's or a V4L2 decoder's `device`; kmssink's open fd or
//! `driver-name`).
//!
//! Every plan is logged at INFO (`GST_DEBUG=cenalloc:4`) and posted as an element message, the
//! structure `cenalloc-plan` with fields `source` (the heap, `udmabuf` or exporting device),
//! `source-kind`, `size`, `modifier`, `devices` and `reasons` (an array of strings).

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// The `cenalloc` element (see the module documentation).
    pub struct Cenalloc(ObjectSubclass<imp::Cenalloc>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Registers the element `cenalloc` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "cenalloc",
        gst::Rank::NONE,
        Cenalloc::static_type(),
    )
}
