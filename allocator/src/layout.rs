//! Planes, strides, offsets and total size of a buffer.

use crate::{BufferKind, ConstraintKind, Constraints, Fourcc, MergedConstraints, Modifier, Result};

/// One plane of a buffer inside its dma-buf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PlaneLayout {
    /// Byte offset of the plane in the dma-buf.
    pub offset: u64,
    /// Bytes per row.
    pub stride: u64,
    /// Bytes the plane occupies (stride × padded rows).
    pub size: u64,
}

/// The planes of a layout. One plane (RGB formats, most scan-out buffers) is kept inline, so
/// such a layout is built, cloned and dropped without an allocation; multi-planar layouts
/// keep theirs on the heap (inline room for four would make every layout and buffer three
/// times larger to move).
pub type Planes = smallvec::SmallVec<[PlaneLayout; 1]>;

/// The full layout of a buffer: what an importer needs besides the fd.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    /// Pixel format; `None` for a blob.
    #[serde(serialize_with = "serialize_fourcc")]
    pub fourcc: Option<Fourcc>,
    /// Width in pixels (0 for a blob).
    pub width: u32,
    /// Height in pixels (0 for a blob).
    pub height: u32,
    /// Modifier of the layout.
    pub modifier: Modifier,
    /// Planes, in format order.
    pub planes: Planes,
    /// Total size of the dma-buf in bytes.
    pub size: u64,
}

fn serialize_fourcc<S: serde::Serializer>(f: &Option<Fourcc>, s: S) -> Result<S::Ok, S::Error> {
    match f {
        Some(f) => s.serialize_str(&crate::format::fourcc_name(*f)),
        None => s.serialize_none(),
    }
}

impl Layout {
    /// No planes, no size: a placeholder.
    pub(crate) const EMPTY: Layout = Layout {
        fourcc: None,
        width: 0,
        height: 0,
        modifier: Modifier::INVALID,
        planes: Planes::new_const(),
        size: 0,
    };

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
