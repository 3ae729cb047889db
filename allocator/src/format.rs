//! Per-format plane geometry (bytes per pixel, subsampling) and layout computation.
//!
//! Chroma strides follow the DRM/V4L2 convention for single-buffer formats: for NV12, NV21,
//! NV16 and P010 the chroma stride equals the luma stride; for YUV420 it is half of it. So the
//! luma stride is chosen such that every plane's derived stride meets its own minimum and the
//! merged pitch alignment; rows are padded to the merged height alignment (chroma rows are
//! that padded height divided by the vertical subsampling, rounded up), plane offsets are
//! aligned to the offset alignment, plane sizes meet each device's minimum, and the total is a
//! multiple of the size alignment and of the page size. Every step is overflow-checked.

use crate::merge::lcm;
use crate::{
    BufferKind, ConstraintKind, Constraints, Error, Fourcc, Layout, MergedConstraints, Modifier,
    PlaneLayout, Result,
};

/// Geometry of one plane of a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneGeometry {
    /// Bytes per block (a block is `block_width` pixels of this plane, at its resolution).
    pub block_bytes: u64,
    /// Pixels per block horizontally (2 for packed 4:2:2 like YUYV).
    pub block_width: u32,
    /// Horizontal subsampling relative to the image.
    pub hsub: u32,
    /// Vertical subsampling relative to the image.
    pub vsub: u32,
    /// This plane's stride is the first plane's stride divided by this.
    pub stride_divisor: u64,
}

impl PlaneGeometry {
    /// Bits per pixel of this plane, averaged over a block (16 for YUYV): what a dumb
    /// buffer's `bpp` asks for.
    pub fn bits_per_pixel(&self) -> u32 {
        (self.block_bytes * 8 / u64::from(self.block_width)) as u32
    }
}

const fn plane(
    block_bytes: u64,
    block_width: u32,
    hsub: u32,
    vsub: u32,
    div: u64,
) -> PlaneGeometry {
    PlaneGeometry {
        block_bytes,
        block_width,
        hsub,
        vsub,
        stride_divisor: div,
    }
}

const RGB32: &[PlaneGeometry] = &[plane(4, 1, 1, 1, 1)];
const RGB24: &[PlaneGeometry] = &[plane(3, 1, 1, 1, 1)];
const RGB16: &[PlaneGeometry] = &[plane(2, 1, 1, 1, 1)];
const R8: &[PlaneGeometry] = &[plane(1, 1, 1, 1, 1)];
const NV420: &[PlaneGeometry] = &[plane(1, 1, 1, 1, 1), plane(2, 1, 2, 2, 1)];
const NV422: &[PlaneGeometry] = &[plane(1, 1, 1, 1, 1), plane(2, 1, 2, 1, 1)];
const YUV420_3P: &[PlaneGeometry] = &[
    plane(1, 1, 1, 1, 1),
    plane(1, 1, 2, 2, 2),
    plane(1, 1, 2, 2, 2),
];
const PACKED422: &[PlaneGeometry] = &[plane(4, 2, 1, 1, 1)];
const P010_GEOM: &[PlaneGeometry] = &[plane(2, 1, 1, 1, 1), plane(4, 1, 2, 2, 1)];

/// The plane geometry of a supported format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatInfo {
    /// The format.
    pub fourcc: Fourcc,
    /// Its planes, in order.
    pub planes: &'static [PlaneGeometry],
}

/// Every format cenalloc can lay out.
pub const SUPPORTED: &[Fourcc] = &[
    Fourcc::Xrgb8888,
    Fourcc::Argb8888,
    Fourcc::Xbgr8888,
    Fourcc::Abgr8888,
    Fourcc::Rgbx8888,
    Fourcc::Rgba8888,
    Fourcc::Bgrx8888,
    Fourcc::Bgra8888,
    Fourcc::Xrgb2101010,
    Fourcc::Argb2101010,
    Fourcc::Rgb888,
    Fourcc::Bgr888,
    Fourcc::Rgb565,
    Fourcc::R8,
    Fourcc::Nv12,
    Fourcc::Nv21,
    Fourcc::Nv16,
    Fourcc::Nv61,
    Fourcc::Yuv420,
    Fourcc::Yvu420,
    Fourcc::Yuyv,
    Fourcc::Yvyu,
    Fourcc::Uyvy,
    Fourcc::Vyuy,
    Fourcc::P010,
];

impl FormatInfo {
    /// The geometry of `fourcc`, or `None` if cenalloc cannot lay it out.
    pub fn of(fourcc: Fourcc) -> Option<FormatInfo> {
        use Fourcc as F;
        let planes = match fourcc {
            F::Xrgb8888
            | F::Argb8888
            | F::Xbgr8888
            | F::Abgr8888
            | F::Rgbx8888
            | F::Rgba8888
            | F::Bgrx8888
            | F::Bgra8888
            | F::Xrgb2101010
            | F::Argb2101010 => RGB32,
            F::Rgb888 | F::Bgr888 => RGB24,
            F::Rgb565 => RGB16,
            F::R8 => R8,
            F::Nv12 | F::Nv21 => NV420,
            F::Nv16 | F::Nv61 => NV422,
            F::Yuv420 | F::Yvu420 => YUV420_3P,
            F::Yuyv | F::Yvyu | F::Uyvy | F::Vyuy => PACKED422,
            F::P010 => P010_GEOM,
            _ => return None,
        };
        Some(FormatInfo { fourcc, planes })
    }
}

/// The four characters of a fourcc (or its hex value when they are not printable). Unlike
/// `Display` of drm-fourcc, never panics.
pub fn fourcc_name(fourcc: Fourcc) -> String {
    fourcc_code_name(fourcc as u32)
}

/// [`fourcc_name`] for a raw fourcc code, known to drm-fourcc or not.
pub fn fourcc_code_name(code: u32) -> String {
    let bytes = code.to_le_bytes();
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        bytes
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
            .trim_end()
            .to_owned()
    } else {
        format!("{code:#010x}")
    }
}

fn overflow(what: &str) -> Error {
    Error::Overflow(format!("{what} does not fit in 64 bits"))
}

fn align_up(v: u64, a: u64, what: &str) -> Result<u64> {
    v.checked_next_multiple_of(a.max(1))
        .ok_or_else(|| overflow(what))
}

impl PlaneGeometry {
    /// Smallest stride of this plane for an image `width` pixels wide.
    pub fn min_row_bytes(&self, width: u32) -> Result<u64> {
        let plane_width = u64::from(width).div_ceil(u64::from(self.hsub.max(1)));
        let blocks = plane_width.div_ceil(u64::from(self.block_width.max(1)));
        blocks
            .checked_mul(self.block_bytes)
            .ok_or_else(|| overflow("row size"))
    }

    /// Rows of this plane for an image of `padded_height` rows.
    pub fn rows(&self, padded_height: u64) -> u64 {
        padded_height.div_ceil(u64::from(self.vsub.max(1)))
    }
}

fn conflict(
    kind: ConstraintKind,
    first: String,
    first_wants: String,
    second: &str,
    second_wants: String,
) -> Error {
    Error::Conflict {
        kind,
        first,
        first_wants,
        second: second.to_owned(),
        second_wants,
    }
}

/// Computes the layout of `kind` under `merged` (see [`Layout::compute`]).
pub(crate) fn compute_layout(
    kind: &BufferKind,
    modifier: Modifier,
    merged: &MergedConstraints,
) -> Result<Layout> {
    let c = &merged.constraints;
    let page = crate::source::page_size();
    let total_align = lcm(c.size_align, page).ok_or_else(|| overflow("size alignment"))?;
    let (width, height, fourcc) = match *kind {
        BufferKind::Blob { size } => {
            if size == 0 {
                return Err(Error::InvalidRequest("blob size is zero".into()));
            }
            let want = size.max(c.planes.first().map_or(0, |p| p.min_size));
            let total = align_up(want, total_align, "blob size")?;
            check_max_size(total, merged)?;
            return Ok(Layout {
                fourcc: None,
                width: 0,
                height: 0,
                modifier,
                planes: [PlaneLayout {
                    offset: 0,
                    stride: 0,
                    size: want,
                }]
                .into_iter()
                .collect(),
                size: total,
                dma_buf_sizes: crate::layout::one_dma_buf(total),
            });
        }
        BufferKind::Image {
            width,
            height,
            fourcc,
        } => (width, height, fourcc),
    };
    if width == 0 || height == 0 {
        return Err(Error::InvalidRequest(format!(
            "image size {width}x{height} has a zero dimension"
        )));
    }
    let info = FormatInfo::of(fourcc).ok_or_else(|| {
        Error::InvalidRequest(format!(
            "format {} has no known plane layout",
            fourcc_name(fourcc)
        ))
    })?;

    // The first plane's stride: a multiple of pitch_align * divisor of every plane, large
    // enough for every plane's own minimum.
    let mut stride_align = 1u64;
    let mut need = 0u64;
    for (p, g) in info.planes.iter().enumerate() {
        let a = c
            .pitch_align
            .max(1)
            .checked_mul(g.stride_divisor)
            .and_then(|a| lcm(stride_align, a))
            .ok_or_else(|| overflow("pitch alignment"))?;
        stride_align = a;
        let device_min = c.planes.get(p).map_or(0, |pc| pc.min_stride);
        let min = g.min_row_bytes(width)?.max(device_min);
        let as_first = min
            .checked_mul(g.stride_divisor)
            .ok_or_else(|| overflow("stride"))?;
        need = need.max(as_first);
    }
    let mut stride0 = align_up(need, stride_align, "stride")?;
    // Exact strides requested by a device override, if they fit.
    for (p, g) in info.planes.iter().enumerate() {
        let Some(exact) = c.planes.get(p).and_then(|pc| pc.exact_stride) else {
            continue;
        };
        let who = merged.party(merged.origins.exact_stride.get(p).copied().flatten());
        let as_first = exact
            .checked_mul(g.stride_divisor)
            .ok_or_else(|| overflow("stride"))?;
        let fixed_elsewhere = info.planes[..p]
            .iter()
            .enumerate()
            .any(|(q, _)| c.planes.get(q).and_then(|pc| pc.exact_stride).is_some());
        if as_first < need
            || as_first % stride_align != 0
            || (fixed_elsewhere && as_first != stride0)
        {
            return Err(conflict(
                ConstraintKind::Plane,
                who,
                format!("plane {p} stride exactly {exact}"),
                "request",
                format!(
                    "plane {p} stride of at least {} that is a multiple of {}",
                    need / g.stride_divisor,
                    stride_align / g.stride_divisor
                ),
            ));
        }
        stride0 = as_first;
    }

    let padded_height = align_up(
        u64::from(height),
        u64::from(c.height_align),
        "padded height",
    )?;
    let separate = c.separate_planes && info.planes.len() > 1;
    let mut planes = crate::layout::Planes::new();
    let mut dma_buf_sizes = crate::layout::DmaBufSizes::new();
    let mut end = 0u64;
    // The format table has at most three planes per format.
    for (p, g) in info.planes.iter().enumerate().take(Layout::MAX_PLANES) {
        let stride = stride0 / g.stride_divisor;
        if let Some(max) = c.max_pitch.filter(|&max| stride > max) {
            return Err(conflict(
                ConstraintKind::MaxPitch,
                merged.party(merged.origins.max_pitch),
                format!("stride at most {max}"),
                "request",
                format!(
                    "plane {p} stride {stride} for {width}x{height} {}",
                    fourcc_name(fourcc)
                ),
            ));
        }
        // In a dma-buf of its own, every plane starts at the dma-buf's start.
        let offset = if p == 0 || separate {
            0
        } else {
            align_up(end, c.offset_align, "plane offset")?
        };
        let rows_size = stride
            .checked_mul(g.rows(padded_height))
            .ok_or_else(|| overflow("plane size"))?;
        let size = rows_size.max(c.planes.get(p).map_or(0, |pc| pc.min_size));
        if separate {
            let own = align_up(size, total_align, "plane's dma-buf size")?;
            check_max_size(own, merged)?;
            dma_buf_sizes.push(own);
            end = end
                .checked_add(own)
                .ok_or_else(|| overflow("buffer size"))?;
        } else {
            end = offset
                .checked_add(size)
                .ok_or_else(|| overflow("buffer size"))?;
        }
        planes.push(PlaneLayout {
            offset,
            stride,
            size,
        });
    }
    let total = if separate {
        end
    } else {
        let total = align_up(end, total_align, "buffer size")?;
        check_max_size(total, merged)?;
        dma_buf_sizes.push(total);
        total
    };
    Ok(Layout {
        fourcc: Some(fourcc),
        width,
        height,
        modifier,
        planes,
        size: total,
        dma_buf_sizes,
    })
}

fn check_max_size(total: u64, merged: &MergedConstraints) -> Result<()> {
    match merged.constraints.max_size {
        Some(max) if total > max => Err(conflict(
            ConstraintKind::MaxSize,
            merged.party(merged.origins.max_size),
            format!("at most {max} bytes"),
            "request",
            format!("{total} bytes"),
        )),
        _ => Ok(()),
    }
}

/// Checks that `layout` satisfies one device's constraints `c` (the buffer's memory aside);
/// says which constraint is violated and how.
pub(crate) fn check_layout(
    layout: &Layout,
    c: &Constraints,
) -> std::result::Result<(), (ConstraintKind, String)> {
    use ConstraintKind as K;
    if !c.modifiers.contains(&layout.modifier) {
        return Err((
            K::Modifier,
            format!(
                "modifier {} is not among {:?}",
                layout.modifier, c.modifiers
            ),
        ));
    }
    for &size in layout.dma_buf_sizes() {
        if let Some(max) = c.max_size.filter(|&m| size > m) {
            return Err((K::MaxSize, format!("size {size} exceeds {max}")));
        }
        if !size.is_multiple_of(c.size_align.max(1)) {
            return Err((
                K::Alignment,
                format!("size {size} is not a multiple of {}", c.size_align),
            ));
        }
    }
    if c.separate_planes && layout.planes.len() > 1 && !layout.has_separate_planes() {
        return Err((
            K::Plane,
            format!(
                "its {} planes share one dma-buf; it takes each plane in a dma-buf of its own",
                layout.planes.len()
            ),
        ));
    }
    if let Some(max) = c.max_width.filter(|&m| layout.width > m) {
        return Err((K::MaxWidth, format!("width {} exceeds {max}", layout.width)));
    }
    if let Some(max) = c.max_height.filter(|&m| layout.height > m) {
        return Err((
            K::MaxHeight,
            format!("height {} exceeds {max}", layout.height),
        ));
    }
    let info = layout.fourcc.and_then(FormatInfo::of);
    if let Some(info) = info {
        if info.planes.len() != layout.planes.len() {
            return Err((
                K::Plane,
                format!(
                    "{} planes, {} expects {}",
                    layout.planes.len(),
                    info.fourcc,
                    info.planes.len()
                ),
            ));
        }
    }
    let padded_height =
        u64::from(layout.height).checked_next_multiple_of(u64::from(c.height_align.max(1)));
    let mut prev_end = 0u64;
    for (p, pl) in layout.planes.iter().enumerate() {
        let end = pl
            .offset
            .checked_add(pl.size)
            .ok_or_else(|| (K::Plane, format!("plane {p} end overflows")))?;
        let (dma_buf_size, after) = if layout.has_separate_planes() {
            (layout.dma_buf_sizes[p], 0)
        } else {
            (layout.size, prev_end)
        };
        if end > dma_buf_size || pl.offset < after {
            return Err((
                K::Plane,
                format!(
                    "plane {p} at {}+{} overlaps or lies outside the buffer",
                    pl.offset, pl.size
                ),
            ));
        }
        prev_end = end;
        if pl.offset % c.offset_align.max(1) != 0 {
            return Err((
                K::Alignment,
                format!(
                    "plane {p} offset {} is not a multiple of {}",
                    pl.offset, c.offset_align
                ),
            ));
        }
        if let Some(pc) = c.planes.get(p) {
            if pl.size < pc.min_size {
                return Err((
                    K::Plane,
                    format!("plane {p} size {} is below {}", pl.size, pc.min_size),
                ));
            }
            if info.is_some() && pl.stride < pc.min_stride {
                return Err((
                    K::Plane,
                    format!("plane {p} stride {} is below {}", pl.stride, pc.min_stride),
                ));
            }
            if let Some(e) = pc
                .exact_stride
                .filter(|&e| info.is_some() && e != pl.stride)
            {
                return Err((
                    K::Plane,
                    format!("plane {p} stride {} is not {e}", pl.stride),
                ));
            }
        }
        let Some(info) = info else { continue };
        let g = info.planes[p];
        if pl.stride % c.pitch_align.max(1) != 0 {
            return Err((
                K::Alignment,
                format!(
                    "plane {p} stride {} is not a multiple of {}",
                    pl.stride, c.pitch_align
                ),
            ));
        }
        if let Some(max) = c.max_pitch.filter(|&m| pl.stride > m) {
            return Err((
                K::MaxPitch,
                format!("plane {p} stride {} exceeds {max}", pl.stride),
            ));
        }
        if layout.modifier == Modifier::LINEAR {
            let min = g
                .min_row_bytes(layout.width)
                .map_err(|e| (K::Plane, e.to_string()))?;
            if pl.stride < min {
                return Err((
                    K::Plane,
                    format!(
                        "plane {p} stride {} is below the {min} bytes a row needs",
                        pl.stride
                    ),
                ));
            }
            let rows = padded_height
                .map(|h| g.rows(h))
                .ok_or_else(|| (K::Plane, "padded height overflows".to_owned()))?;
            if pl
                .stride
                .checked_mul(rows)
                .is_none_or(|need| pl.size < need)
            {
                return Err((
                    K::Alignment,
                    format!(
                        "plane {p} size {} does not hold {rows} rows of {} bytes",
                        pl.size, pl.stride
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{merge, BufferRequest, PlaneConstraint, Usage};
    use proptest::prelude::*;

    fn layout_of(w: u32, h: u32, f: Fourcc, devs: &[Constraints]) -> Result<Layout> {
        let r = BufferRequest::image(w, h, f, Usage::RENDER);
        let named: Vec<(String, &Constraints)> = devs
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("d{i}"), c))
            .collect();
        let m = merge(&r, named.iter().map(|(n, c)| (n.as_str(), *c)))?;
        Layout::compute(&r.kind, Modifier::LINEAR, &m)
    }

    fn planes(l: &Layout) -> Vec<(u64, u64, u64)> {
        l.planes
            .iter()
            .map(|p| (p.offset, p.stride, p.size))
            .collect()
    }

    #[test]
    fn packed_rgb_formats() {
        for f in [
            Fourcc::Xrgb8888,
            Fourcc::Argb8888,
            Fourcc::Xbgr8888,
            Fourcc::Abgr8888,
        ] {
            let l = layout_of(1920, 1080, f, &[]).unwrap();
            assert_eq!(planes(&l), [(0, 7680, 7680 * 1080)]);
            assert_eq!(l.size, 8_294_400); // already a multiple of 4096
        }
        let l = layout_of(1366, 768, Fourcc::Rgb565, &[]).unwrap();
        assert_eq!(planes(&l), [(0, 2732, 2732 * 768)]);
        assert_eq!(l.size, 2_101_248); // 2098176 rounded up to 4096
    }

    #[test]
    fn with_pitch_alignment_64_and_height_16() {
        let d = Constraints {
            pitch_align: 64,
            height_align: 16,
            ..Default::default()
        };
        let l = layout_of(1366, 768, Fourcc::Xrgb8888, std::slice::from_ref(&d)).unwrap();
        // 1366*4 = 5464 -> 5504
        assert_eq!(planes(&l), [(0, 5504, 5504 * 768)]);
        let l = layout_of(1920, 1080, Fourcc::Nv12, &[d]).unwrap();
        // rows padded to 1088; UV rows 544
        assert_eq!(
            planes(&l),
            [(0, 1920, 1920 * 1088), (1920 * 1088, 1920, 1920 * 544)]
        );
        assert_eq!(l.size, 3_133_440);
    }

    #[test]
    fn yuv_formats() {
        let l = layout_of(1920, 1080, Fourcc::Nv12, &[]).unwrap();
        assert_eq!(
            planes(&l),
            [(0, 1920, 2_073_600), (2_073_600, 1920, 1_036_800)]
        );
        assert_eq!(l.size, 3_112_960); // 3110400 rounded to 4096
        let l = layout_of(1920, 1080, Fourcc::Nv21, &[]).unwrap();
        assert_eq!(
            planes(&l),
            [(0, 1920, 2_073_600), (2_073_600, 1920, 1_036_800)]
        );
        let l = layout_of(1920, 1080, Fourcc::Nv16, &[]).unwrap();
        assert_eq!(
            planes(&l),
            [(0, 1920, 2_073_600), (2_073_600, 1920, 2_073_600)]
        );
        assert_eq!(l.size, 4_149_248);
        let l = layout_of(1920, 1080, Fourcc::Yuv420, &[]).unwrap();
        assert_eq!(
            planes(&l),
            [
                (0, 1920, 2_073_600),
                (2_073_600, 960, 518_400),
                (2_592_000, 960, 518_400)
            ]
        );
        let l = layout_of(640, 480, Fourcc::Yuyv, &[]).unwrap();
        assert_eq!(planes(&l), [(0, 1280, 614_400)]);
        let l = layout_of(641, 481, Fourcc::Uyvy, &[]).unwrap();
        assert_eq!(planes(&l), [(0, 1284, 1284 * 481)]);
        let l = layout_of(1920, 1080, Fourcc::P010, &[]).unwrap();
        assert_eq!(
            planes(&l),
            [(0, 3840, 4_147_200), (4_147_200, 3840, 2_073_600)]
        );
        assert_eq!(l.size, 6_221_824);
        // Odd sizes: chroma rounds up.
        let l = layout_of(5, 3, Fourcc::Yuv420, &[]).unwrap();
        assert_eq!(planes(&l), [(0, 6, 18), (18, 3, 6), (24, 3, 6)]);
        let l = layout_of(5, 3, Fourcc::Nv12, &[]).unwrap();
        assert_eq!(planes(&l), [(0, 6, 18), (18, 6, 12)]);
    }

    #[test]
    fn yuv420_chroma_stride_stays_aligned() {
        let d = Constraints {
            pitch_align: 64,
            offset_align: 4096,
            ..Default::default()
        };
        let l = layout_of(1000, 100, Fourcc::Yuv420, &[d]).unwrap();
        // luma multiple of 128 so chroma (half) is a multiple of 64.
        assert_eq!(
            planes(&l),
            [
                (0, 1024, 102_400),
                (102_400, 512, 25_600),
                (131_072, 512, 25_600)
            ]
        );
    }

    #[test]
    fn device_plane_minimums_and_exact() {
        let d = Constraints {
            planes: vec![
                PlaneConstraint {
                    min_stride: 2048,
                    min_size: 0,
                    exact_stride: None,
                },
                PlaneConstraint {
                    min_stride: 0,
                    min_size: 2 << 20,
                    exact_stride: None,
                },
            ],
            ..Default::default()
        };
        let l = layout_of(1920, 1080, Fourcc::Nv12, &[d]).unwrap();
        assert_eq!(
            planes(&l),
            [(0, 2048, 2048 * 1080), (2048 * 1080, 2048, 2 << 20)]
        );
        let exact = Constraints {
            pitch_align: 256,
            planes: vec![PlaneConstraint {
                exact_stride: Some(8192),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            layout_of(1920, 10, Fourcc::Xrgb8888, &[exact])
                .unwrap()
                .planes[0]
                .stride,
            8192
        );
        let bad = Constraints {
            planes: vec![PlaneConstraint {
                exact_stride: Some(4000),
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = layout_of(1920, 10, Fourcc::Xrgb8888, &[bad]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Conflict {
                    kind: ConstraintKind::Plane,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn big_and_overflowing_sizes() {
        let l = layout_of(16384, 16384, Fourcc::Xrgb8888, &[]).unwrap();
        assert_eq!(l.size, 1 << 30);
        let limited = Constraints {
            max_size: Some(256 << 20),
            ..Default::default()
        };
        let e = layout_of(16384, 16384, Fourcc::Xrgb8888, &[limited]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Conflict {
                    kind: ConstraintKind::MaxSize,
                    ..
                }
            ),
            "{e}"
        );
        let huge = Constraints {
            pitch_align: u64::MAX / 2,
            ..Default::default()
        };
        let e = layout_of(u32::MAX, u32::MAX, Fourcc::Xrgb8888, &[huge]).unwrap_err();
        assert!(matches!(e, Error::Overflow(_)), "{e}");
        let e = layout_of(
            65536,
            65536,
            Fourcc::Xrgb8888,
            &[Constraints {
                max_size: Some(u32::MAX as u64),
                ..Default::default()
            }],
        )
        .unwrap_err();
        assert!(matches!(e, Error::Conflict { .. }), "{e}");
        let hmax = Constraints {
            height_align: u32::MAX,
            ..Default::default()
        };
        assert!(layout_of(u32::MAX, u32::MAX, Fourcc::P010, &[hmax]).is_err());
        let pitch = Constraints {
            max_pitch: Some(4096),
            ..Default::default()
        };
        let e = layout_of(2000, 10, Fourcc::Xrgb8888, &[pitch]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Conflict {
                    kind: ConstraintKind::MaxPitch,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn blobs() {
        let r = BufferRequest::blob(10_000, Usage::VIDEO_DECODE);
        let d = Constraints {
            size_align: 3,
            ..Default::default()
        };
        let m = merge(&r, [("dec", &d)]).unwrap();
        let l = Layout::compute(&r.kind, Modifier::LINEAR, &m).unwrap();
        assert_eq!(l.size, 12_288); // lcm(3, 4096) = 12288
        assert_eq!(planes(&l), [(0, 0, 10_000)]);
    }

    fn arb_device() -> impl Strategy<Value = Constraints> {
        (
            (1u64..300, 1u64..300, 1u64..300, 1u32..40),
            proptest::collection::vec((0u64..5000, 0u64..3_000_000, any::<bool>()), 0..3),
        )
            .prop_map(
                |((offset_align, pitch_align, size_align, height_align), planes)| Constraints {
                    offset_align,
                    pitch_align,
                    size_align,
                    height_align,
                    planes: planes
                        .into_iter()
                        .map(|(min_stride, min_size, _)| PlaneConstraint {
                            min_stride,
                            min_size,
                            exact_stride: None,
                        })
                        .collect(),
                    ..Default::default()
                },
            )
    }

    proptest! {
        #[test]
        fn layout_satisfies_every_device(
            devs in proptest::collection::vec(arb_device(), 1..4),
            w in 1u32..5000, h in 1u32..3000, f in 0usize..64,
        ) {
            let fourcc = SUPPORTED[f % SUPPORTED.len()];
            let l = layout_of(w, h, fourcc, &devs).unwrap();
            for d in &devs {
                prop_assert_eq!(check_layout(&l, d), Ok(()));
            }
            prop_assert_eq!(l.size % crate::source::page_size(), 0);
        }
    }
}
