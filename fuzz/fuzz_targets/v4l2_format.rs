//! V4L2 format structures: a `struct v4l2_format` as a driver could fill it (any buffer type,
//! any 200 bytes of the union) read by `QueueFormat::from_raw`, turned into the constraints
//! the V4L2 importer gives (`V4l2Importer::plane_constraints`), laid out by the core (`merge`,
//! `Layout::compute`) and checked as an import would (`V4l2Importer::check_image_layout`).
//!
//! Input: 4 bytes choose the buffer type (mostly capture/output, single- or multi-planar),
//! the next 200 bytes are the union (zero-padded when the input is shorter).
//!
//! Checks, beyond "no panic":
//! - the fields read are the bytes at their UAPI offsets (`pix`: width, height, pixelformat,
//!   bytesperline at 16, sizeimage at 20; `pix_mp`: plane formats from byte 20, 20 bytes
//!   each, `num_planes` at byte 180, capped at 8), one plane for single-planar types;
//! - a multi-planar format's packed offsets and constraints have as many entries as the
//!   format has colour planes, or as the driver gave memory planes;
//! - when the core lays out an image under those constraints alone, the layout passes the
//!   core's own check against them, and — when the driver's answer is consistent (as many
//!   memory planes as the V4L2 code has) — the V4L2 import check accepts it: cenalloc never
//!   plans a buffer its own V4L2 importer then refuses.

#![no_main]

use cenalloc::{BufferRequest, Constraints, Layout, Modifier, Usage};
use cenalloc_v4l2::format::{color_planes, memory_planes, v4l2_to_drm};
use cenalloc_v4l2::{QueueFormat, V4l2Importer};
use libfuzzer_sys::fuzz_target;

fn u32_at(raw: &[u8; 200], at: usize) -> u32 {
    u32::from_ne_bytes(raw[at..at + 4].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = data.split_at(data.len().min(4));
    let mut selector_bytes = [0u8; 4];
    selector_bytes[..selector.len()].copy_from_slice(selector);
    let selector = u32::from_le_bytes(selector_bytes);
    // VIDEO_CAPTURE, VIDEO_OUTPUT, their _MPLANE variants, or any other type.
    let type_ = match selector % 8 {
        0 | 1 => 1,
        2 => 2,
        3..=5 => 9,
        6 => 10,
        _ => selector >> 3,
    };
    let mut raw = [0u8; 200];
    let n = rest.len().min(200);
    raw[..n].copy_from_slice(&rest[..n]);

    let f = QueueFormat::from_raw(type_, &raw);
    let mplane = type_ == 9 || type_ == 10;
    assert_eq!(f.mplane, mplane);
    assert_eq!(f.width, u32_at(&raw, 0));
    assert_eq!(f.height, u32_at(&raw, 4));
    assert_eq!(f.pixelformat.0, u32_at(&raw, 8));
    if mplane {
        assert_eq!(f.planes.len(), usize::from(raw[180]).min(8));
        for (i, p) in f.planes.iter().enumerate() {
            assert_eq!(p.sizeimage, u32_at(&raw, 20 + 20 * i));
            assert_eq!(p.bytesperline, u32_at(&raw, 24 + 20 * i));
        }
    } else {
        assert_eq!(f.planes.len(), 1);
        assert_eq!(f.planes[0].bytesperline, u32_at(&raw, 16));
        assert_eq!(f.planes[0].sizeimage, u32_at(&raw, 20));
    }
    let _ = f.pixelformat.to_string();

    let Some(fourcc) = v4l2_to_drm(f.pixelformat) else {
        return;
    };
    let planes = V4l2Importer::plane_constraints(fourcc, &f);
    let offsets = V4l2Importer::packed_offsets(fourcc, &f);
    match f.planes.len() {
        0 => assert!(planes.is_empty() && offsets.is_empty()),
        1 => {
            assert_eq!(planes.len(), color_planes(fourcc));
            assert_eq!(offsets.len(), color_planes(fourcc));
        }
        n => assert_eq!(planes.len(), n),
    }
    if f.planes.is_empty() || f.width == 0 || f.height == 0 {
        return;
    }
    // What the importer answers for this format (contiguity and export aside).
    let constraints = Constraints {
        modifiers: vec![Modifier::LINEAR],
        planes,
        ..Constraints::default()
    };
    let request = BufferRequest::image(f.width, f.height, fourcc, Usage::CAMERA_WRITE);
    let Ok(merged) = cenalloc::merge(&request, [("v4l2", &constraints)]) else {
        return;
    };
    let Ok(layout) = Layout::compute(&request.kind, Modifier::LINEAR, &merged) else {
        return;
    };
    if let Err(e) = layout.check(&constraints) {
        panic!("the layout fails the constraints it was computed for: {e:?}\n{layout:?}");
    }
    if f.planes.len() == memory_planes(f.pixelformat) {
        if let Err(e) = V4l2Importer::check_image_layout(&layout, fourcc, &f) {
            panic!(
                "the V4L2 import check refuses a layout computed from its own constraints: \
                 {e:?}\nformat {f:?}\nconstraints {constraints:?}\nlayout {layout:?}"
            );
        }
    }
});
