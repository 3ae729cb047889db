//! The framebuffer layouts a device has already accepted, so that importing the buffers of a
//! pool or swapchain (one layout, many buffers) checks the layout once instead of per buffer,
//! and, for the first layout, without a lock.
//!
//! Exact: a layout is remembered by everything [`crate::DrmDevice::check_scanout_layout`]
//! looks at (format, width, modifier, every plane's stride and offset), never by a hash.

use std::sync::{Mutex, OnceLock};

use cenalloc::{Layout, Modifier};

/// How many layouts a device remembers (a compositor shows a few sizes at once).
const REMEMBERED: usize = 4;

/// What the scan-out check of a layout depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    fourcc: u32,
    width: u32,
    modifier: Modifier,
    planes: usize,
    strides: [u64; 4],
    offsets: [u64; 4],
}

impl Shape {
    /// `None` for a layout the check always refuses (no format, or more than 4 planes).
    fn of(layout: &Layout) -> Option<Shape> {
        let fourcc = layout.fourcc? as u32;
        if layout.planes.len() > 4 {
            return None;
        }
        let mut shape = Shape {
            fourcc,
            width: layout.width,
            modifier: layout.modifier,
            planes: layout.planes.len(),
            strides: [0; 4],
            offsets: [0; 4],
        };
        for (i, p) in layout.planes.iter().enumerate() {
            shape.strides[i] = p.stride;
            shape.offsets[i] = p.offset;
        }
        Some(shape)
    }

    /// `layout` has this shape (compared in place: this runs on every import).
    fn is_of(&self, layout: &Layout) -> bool {
        layout.fourcc.map(|f| f as u32) == Some(self.fourcc)
            && layout.width == self.width
            && layout.modifier == self.modifier
            && layout.planes.len() == self.planes
            && layout
                .planes
                .iter()
                .zip(self.strides.iter().zip(&self.offsets))
                .all(|(p, (&stride, &offset))| p.stride == stride && p.offset == offset)
    }
}

/// The first layout a device accepted for scan-out, for good, and the last few others, most
/// recent first. The first is read without a lock: a pool or swapchain (one layout) never
/// takes the lock after its first buffer.
#[derive(Debug, Default)]
pub(crate) struct ScanoutMemo {
    first: OnceLock<Shape>,
    accepted: Mutex<[Option<Shape>; REMEMBERED]>,
}

impl ScanoutMemo {
    /// The device accepted this layout before.
    #[inline(always)]
    pub(crate) fn knows(&self, layout: &Layout) -> bool {
        if self.first.get().is_some_and(|shape| shape.is_of(layout)) {
            return true;
        }
        let accepted = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
        accepted.iter().flatten().any(|shape| shape.is_of(layout))
    }

    /// Remembers a layout the device has just accepted, forgetting the oldest.
    pub(crate) fn remember(&self, layout: &Layout) {
        let Some(shape) = Shape::of(layout) else {
            return;
        };
        if self.first.set(shape).is_ok() {
            return;
        }
        let mut accepted = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
        if !accepted.contains(&Some(shape)) {
            accepted.rotate_right(1);
            accepted[0] = Some(shape);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cenalloc::{Fourcc, PlaneLayout};

    fn xrgb(width: u32, stride: u64) -> Layout {
        Layout {
            fourcc: Some(Fourcc::Xrgb8888),
            width,
            height: 16,
            modifier: Modifier::LINEAR,
            planes: cenalloc::Planes::from_slice(&[PlaneLayout {
                offset: 0,
                stride,
                size: stride * 16,
            }]),
            size: stride * 16,
        }
    }

    #[test]
    fn remembers_exactly_what_it_was_told() {
        let memo = ScanoutMemo::default();
        assert!(!memo.knows(&xrgb(16, 64)));
        memo.remember(&xrgb(16, 64));
        assert!(memo.knows(&xrgb(16, 64)));
        assert!(!memo.knows(&xrgb(16, 128)), "another stride");
        assert!(!memo.knows(&xrgb(17, 128)), "another width");
        let mut other_modifier = xrgb(16, 64);
        other_modifier.modifier = Modifier::INVALID;
        assert!(!memo.knows(&other_modifier));
        let mut other_format = xrgb(16, 64);
        other_format.fourcc = Some(Fourcc::Argb8888);
        assert!(!memo.knows(&other_format));
        let mut moved = xrgb(16, 64);
        moved.planes[0].offset = 64;
        assert!(!memo.knows(&moved), "another offset");
        let mut two = xrgb(16, 64);
        two.planes.push(two.planes[0]);
        assert!(!memo.knows(&two), "another plane count");
    }

    #[test]
    fn keeps_the_first_and_forgets_the_oldest_of_the_others() {
        let memo = ScanoutMemo::default();
        for w in 1..=REMEMBERED as u32 + 2 {
            memo.remember(&xrgb(w, 64));
        }
        assert!(memo.knows(&xrgb(1, 64)), "the first, for good");
        assert!(!memo.knows(&xrgb(2, 64)), "the oldest of the others");
        for w in 3..=REMEMBERED as u32 + 2 {
            assert!(memo.knows(&xrgb(w, 64)), "width {w}");
        }
    }

    #[test]
    fn a_blob_or_five_planes_is_never_known() {
        let memo = ScanoutMemo::default();
        let mut blob = xrgb(16, 64);
        blob.fourcc = None;
        memo.remember(&blob);
        assert!(!memo.knows(&blob));
        let mut five = xrgb(16, 64);
        five.planes = cenalloc::Planes::from_elem(five.planes[0], 5);
        memo.remember(&five);
        assert!(!memo.knows(&five));
    }
}
