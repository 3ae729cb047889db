//! Planes, strides, offsets and total size of a buffer.

use crate::{
    BufferKind, ConstraintKind, Constraints, Error, Fourcc, MergedConstraints, Modifier, Result,
};

/// One plane of a buffer inside its dma-buf (the buffer's only one, or the plane's own when
/// the layout keeps planes in separate dma-bufs).
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

/// The full layout of a buffer: what an importer needs besides the fds. Usually every plane
/// lies at its offset inside one dma-buf; a layout made for a device that takes each plane in
/// a dma-buf of its own ([`crate::Constraints::separate_planes`]) has one dma-buf per plane,
/// plane `i` in dma-buf `i`. Every plane lies inside its dma-buf; [`Layout::new`] and
/// [`Layout::new_per_plane`] check it.
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
    /// The size of each dma-buf: one entry (`size`), or one per plane.
    pub(crate) dma_buf_sizes: DmaBufSizes,
}

/// The sizes of a layout's dma-bufs.
pub(crate) type DmaBufSizes = arrayvec::ArrayVec<u64, { Layout::MAX_PLANES }>;

/// `[size]`: the sizes of a layout with one dma-buf.
pub(crate) fn one_dma_buf(size: u64) -> DmaBufSizes {
    [size].into_iter().collect()
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
            dma_buf_sizes: one_dma_buf(size),
        })
    }

    /// An image layout whose plane `i` lies in a dma-buf of its own of `sizes[i]` bytes.
    /// Fails with [`Error::InvalidLayout`] unless there are 1 to [`Layout::MAX_PLANES`]
    /// planes, as many sizes, and each plane lies inside its dma-buf.
    pub fn new_per_plane(
        fourcc: Fourcc,
        width: u32,
        height: u32,
        modifier: Modifier,
        planes: &[PlaneLayout],
        sizes: &[u64],
    ) -> Result<Layout> {
        if sizes.len() != planes.len() {
            return Err(Error::InvalidLayout {
                plane: None,
                reason: format!("{} planes but {} dma-buf sizes", planes.len(), sizes.len()),
            });
        }
        let mut total = 0u64;
        for (i, (p, &size)) in planes.iter().zip(sizes).enumerate() {
            Layout::new(Some(fourcc), width, height, modifier, &[*p], size).map_err(
                |e| match e {
                    Error::InvalidLayout { reason, .. } => Error::InvalidLayout {
                        plane: Some(i),
                        reason,
                    },
                    e => e,
                },
            )?;
            total = total
                .checked_add(size)
                .ok_or_else(|| Error::InvalidLayout {
                    plane: Some(i),
                    reason: "the dma-buf sizes overflow".into(),
                })?;
        }
        let mut layout = Layout::new(Some(fourcc), width, height, modifier, planes, u64::MAX)?;
        layout.size = total;
        layout.dma_buf_sizes = sizes.iter().copied().collect();
        Ok(layout)
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
            dma_buf_sizes: one_dma_buf(size),
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

    /// Total size in bytes: of the dma-buf, or of all of them together when each plane has
    /// its own.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size of each dma-buf the buffer consists of: one, or one per plane.
    pub fn dma_buf_sizes(&self) -> &[u64] {
        &self.dma_buf_sizes
    }

    /// True when each plane lies in a dma-buf of its own (and there is more than one plane).
    pub fn has_separate_planes(&self) -> bool {
        self.dma_buf_sizes.len() > 1
    }

    /// Which dma-buf (index into [`Layout::dma_buf_sizes`]) holds plane `plane`.
    pub fn dma_buf_of_plane(&self, plane: usize) -> usize {
        if self.has_separate_planes() {
            plane
        } else {
            0
        }
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
