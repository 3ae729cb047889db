//! Planes, strides, offsets and total size of a buffer.

use crate::{
    BufferKind, ConstraintKind, Constraints, Error, Fourcc, MergedConstraints, Modifier, Result,
};

/// One plane of a buffer inside its dma-buf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PlaneLayout {
    /// Byte offset of the plane in the dma-buf.
    pub offset: u64,
    /// Bytes per row.
    pub stride: u64,
    /// Bytes the plane occupies (stride × padded rows).
    pub size: u64,
}

/// The planes of a layout: at most [`Layout::MAX_PLANES`].
pub(crate) type Planes = arrayvec::ArrayVec<PlaneLayout, { Layout::MAX_PLANES }>;

/// The full layout of a buffer: what an importer needs besides the fd. Every plane lies
/// inside the buffer's size; [`Layout::new`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Layout {
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_fourcc"))]
    pub(crate) fourcc: Option<Fourcc>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) modifier: Modifier,
    pub(crate) planes: Planes,
    pub(crate) size: u64,
}

#[cfg(feature = "serde")]
fn serialize_fourcc<S: serde::Serializer>(f: &Option<Fourcc>, s: S) -> Result<S::Ok, S::Error> {
    match f {
        Some(f) => s.serialize_str(&crate::format::fourcc_name(*f)),
        None => s.serialize_none(),
    }
}

impl Layout {
    /// The most planes a layout has: four, as a DRM framebuffer and a DRM format have at most.
    pub const MAX_PLANES: usize = 4;

    /// An image (`fourcc` is `Some`) or blob layout of `size` bytes whose planes lie at the
    /// given offsets. Fails with [`Error::InvalidLayout`] unless there are 1 to
    /// [`Layout::MAX_PLANES`] planes and each lies inside `size`.
    pub fn new(
        fourcc: Option<Fourcc>,
        width: u32,
        height: u32,
        modifier: Modifier,
        planes: &[PlaneLayout],
        size: u64,
    ) -> Result<Layout> {
        if planes.is_empty() || planes.len() > Self::MAX_PLANES {
            return Err(Error::InvalidLayout {
                plane: None,
                reason: format!(
                    "{} planes (a layout has 1 to {})",
                    planes.len(),
                    Self::MAX_PLANES
                ),
            });
        }
        for (i, p) in planes.iter().enumerate() {
            let end = p.offset.checked_add(p.size);
            if end.is_none_or(|end| end > size) {
                return Err(Error::InvalidLayout {
                    plane: Some(i),
                    reason: format!(
                        "offset {} + size {} lies beyond the buffer's {size} bytes",
                        p.offset, p.size
                    ),
                });
            }
        }
        Ok(Layout {
            fourcc,
            width,
            height,
            modifier,
            planes: planes.iter().copied().collect(),
            size,
        })
    }

    /// A blob of `size` bytes: one plane without rows, LINEAR.
    pub fn blob(size: u64) -> Layout {
        Layout {
            fourcc: None,
            width: 0,
            height: 0,
            modifier: Modifier::LINEAR,
            planes: [PlaneLayout {
                offset: 0,
                stride: 0,
                size,
            }]
            .into_iter()
            .collect(),
            size,
        }
    }

    /// Pixel format; `None` for a blob.
    pub fn fourcc(&self) -> Option<Fourcc> {
        self.fourcc
    }

    /// Width in pixels (0 for a blob).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels (0 for a blob).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Modifier of the layout.
    pub fn modifier(&self) -> Modifier {
        self.modifier
    }

    /// Planes, in format order.
    pub fn planes(&self) -> &[PlaneLayout] {
        &self.planes
    }

    /// Total size of the dma-buf in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Computes the layout of `kind` that satisfies every merged constraint (alignments,
    /// per-plane minimum strides and sizes, maxima), with overflow-checked arithmetic.
    pub fn compute(
        kind: &BufferKind,
        modifier: Modifier,
        merged: &MergedConstraints,
    ) -> Result<Layout> {
        crate::format::compute_layout(kind, modifier, merged)
    }

    /// Checks that this layout satisfies one device's constraints (modifier, alignments,
    /// strides, plane sizes, maxima); on failure says which constraint and why.
    pub fn check(&self, constraints: &Constraints) -> Result<(), (ConstraintKind, String)> {
        crate::format::check_layout(self, constraints)
    }
}
