//! What one device requires of a buffer for one request.

use crate::Modifier;

/// CPU cache policy of the buffer's memory as seen by a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CachePolicy {
    /// Either is fine.
    #[default]
    Any,
    /// CPU-cached memory, kept coherent by DMA_BUF_IOCTL_SYNC / the DMA API.
    Cached,
    /// Uncached (write-combined) memory: CPU reads are very slow.
    Uncached,
}

/// A device's own requirement on one plane (e.g. V4L2's bytesperline and sizeimage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PlaneConstraint {
    /// Smallest acceptable stride in bytes.
    pub min_stride: u64,
    /// Smallest acceptable plane size in bytes (from the plane's offset).
    pub min_size: u64,
    /// The device can only use exactly this stride.
    pub exact_stride: Option<u64>,
}

/// What one device requires of a buffer for one (format, usage, size).
///
/// Alignments accept any positive value (not only powers of two); `1` means "no requirement".
/// `None` limits mean "no limit".
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Constraints {
    /// The device needs physically contiguous memory (no IOMMU, dma-contig).
    pub contiguous: bool,
    /// Maximum number of scatter-gather segments the device can map.
    pub max_segments: Option<u32>,
    /// Highest physical/bus address the device can reach (inclusive).
    pub dma_addr_limit: Option<u64>,
    /// Alignment of the buffer's base address.
    pub base_align: u64,
    /// Alignment of each plane's offset.
    pub offset_align: u64,
    /// Alignment of each plane's stride (pitch).
    pub pitch_align: u64,
    /// Alignment of the height the planes are sized for (padding rows).
    pub height_align: u32,
    /// Alignment of the total size.
    pub size_align: u64,
    /// Widest image the device accepts.
    pub max_width: Option<u32>,
    /// Tallest image the device accepts.
    pub max_height: Option<u32>,
    /// Largest stride the device accepts.
    pub max_pitch: Option<u64>,
    /// Largest buffer the device accepts.
    pub max_size: Option<u64>,
    /// Modifiers the device accepts for the requested format and usage (never empty).
    pub modifiers: Vec<Modifier>,
    /// Cache policy the device needs.
    pub cache: CachePolicy,
    /// The device can import a dma-buf allocated elsewhere.
    pub can_import: bool,
    /// The device can allocate the buffer itself and export it as a dma-buf.
    pub can_export: bool,
    /// When it is the only device using a buffer the CPU does not map, the device would rather
    /// allocate the buffer itself (as GBM does) than import heap memory: it knows where its
    /// memory is best placed (VRAM, a carve-out) and may back it on first use. In merged
    /// constraints: true only when one device takes part and it prefers so.
    pub prefers_own_memory: bool,
    /// The device needs protected memory.
    pub protected: bool,
    /// The device takes each plane of a multi-plane image in a dma-buf of its own (a V4L2
    /// capture queue in a multi-planar format such as `NM12`), not at offsets inside one.
    pub separate_planes: bool,
    /// Per-plane requirements; empty means none beyond the format's minimum.
    pub planes: Vec<PlaneConstraint>,
}

impl Default for Constraints {
    /// The constraints of a device that accepts anything linear.
    fn default() -> Self {
        Constraints {
            contiguous: false,
            max_segments: None,
            dma_addr_limit: None,
            base_align: 1,
            offset_align: 1,
            pitch_align: 1,
            height_align: 1,
            size_align: 1,
            max_width: None,
            max_height: None,
            max_pitch: None,
            max_size: None,
            modifiers: vec![Modifier::LINEAR],
            cache: CachePolicy::Any,
            can_import: true,
            can_export: false,
            prefers_own_memory: false,
            protected: false,
            separate_planes: false,
            planes: Vec::new(),
        }
    }
}
