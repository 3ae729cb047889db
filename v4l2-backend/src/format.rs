//! V4L2 pixel formats and their DRM fourcc equivalents.
//!
//! V4L2 and DRM both use four-character codes, but not the same ones for the same memory
//! layout: V4L2 names RGB formats by byte order in memory (`BGR3` is B, G, R), DRM by the
//! little-endian packed value (`RG24` is also B, G, R in memory). Only formats whose memory
//! layout is identical are mapped; V4L2's multi-planar variants (`NM12`, `YM12`) map to the
//! same DRM format as their single-buffer twin.

use std::fmt;

use cenalloc::Fourcc;

/// A V4L2 pixel format code (`V4L2_PIX_FMT_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PixelFormat(pub u32);

impl PixelFormat {
    /// Builds a code from its four characters.
    pub const fn from_chars(c: &[u8; 4]) -> Self {
        PixelFormat(
            (c[0] as u32) | ((c[1] as u32) << 8) | ((c[2] as u32) << 16) | ((c[3] as u32) << 24),
        )
    }

    /// `V4L2_PIX_FMT_FWHT`: vicodec's stateful bitstream.
    pub const FWHT: PixelFormat = PixelFormat::from_chars(b"FWHT");
    /// `V4L2_PIX_FMT_FWHT_STATELESS`: vicodec's coded data without frame headers, for its
    /// stateless decoder.
    pub const FWHT_STATELESS: PixelFormat = PixelFormat::from_chars(b"SFWH");
    /// `V4L2_PIX_FMT_YUYV`
    pub const YUYV: PixelFormat = PixelFormat::from_chars(b"YUYV");
    /// `V4L2_PIX_FMT_YUV420` (`YU12`)
    pub const YUV420: PixelFormat = PixelFormat::from_chars(b"YU12");
    /// `V4L2_PIX_FMT_NV12`
    pub const NV12: PixelFormat = PixelFormat::from_chars(b"NV12");
    /// `V4L2_PIX_FMT_NV12M` (`NM12`): NV12 with each plane in a buffer of its own.
    pub const NV12M: PixelFormat = PixelFormat::from_chars(b"NM12");
    /// `V4L2_PIX_FMT_XBGR32` (`XR24`): B, G, R, X in memory, like DRM XRGB8888.
    pub const XBGR32: PixelFormat = PixelFormat::from_chars(b"XR24");
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.to_le_bytes() {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PixelFormat({self})")
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for PixelFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// (DRM fourcc, V4L2 single-buffer code, V4L2 multi-planar code if any).
type Mapping = (Fourcc, &'static [u8; 4], Option<&'static [u8; 4]>);

/// The mappings; the first V4L2 code listed for a DRM format is the preferred one.
const TABLE: &[Mapping] = &[
    (Fourcc::Xrgb8888, b"XR24", None), // V4L2_PIX_FMT_XBGR32: B G R X
    (Fourcc::Xrgb8888, b"BGR4", None), // V4L2_PIX_FMT_BGR32 (deprecated): B G R X
    (Fourcc::Argb8888, b"AR24", None), // V4L2_PIX_FMT_ABGR32: B G R A
    (Fourcc::Xbgr8888, b"XB24", None), // V4L2_PIX_FMT_RGBX32: R G B X
    (Fourcc::Abgr8888, b"AB24", None), // V4L2_PIX_FMT_RGBA32: R G B A
    (Fourcc::Bgrx8888, b"BX24", None), // V4L2_PIX_FMT_XRGB32: X R G B
    (Fourcc::Bgra8888, b"BA24", None), // V4L2_PIX_FMT_ARGB32: A R G B
    (Fourcc::Rgbx8888, b"RX24", None), // V4L2_PIX_FMT_BGRX32: X B G R
    (Fourcc::Rgba8888, b"RA24", None), // V4L2_PIX_FMT_BGRA32: A B G R
    (Fourcc::Rgb888, b"BGR3", None),   // V4L2_PIX_FMT_BGR24: B G R
    (Fourcc::Bgr888, b"RGB3", None),   // V4L2_PIX_FMT_RGB24: R G B
    (Fourcc::Rgb565, b"RGBP", None),   // V4L2_PIX_FMT_RGB565
    (Fourcc::R8, b"GREY", None),
    (Fourcc::Yuyv, b"YUYV", None),
    (Fourcc::Yvyu, b"YVYU", None),
    (Fourcc::Uyvy, b"UYVY", None),
    (Fourcc::Vyuy, b"VYUY", None),
    (Fourcc::Nv12, b"NV12", Some(b"NM12")),
    (Fourcc::Nv21, b"NV21", Some(b"NM21")),
    (Fourcc::Nv16, b"NV16", Some(b"NM16")),
    (Fourcc::Nv61, b"NV61", Some(b"NM61")),
    (Fourcc::Nv24, b"NV24", None),
    (Fourcc::Nv42, b"NV42", None),
    (Fourcc::Yuv420, b"YU12", Some(b"YM12")),
    (Fourcc::Yvu420, b"YV12", Some(b"YM21")),
    (Fourcc::Yuv422, b"422P", Some(b"YM16")),
    (Fourcc::P010, b"P010", None),
];

/// The V4L2 codes with the same memory layout as `fourcc`, preferred first: the single-buffer
/// code(s), then the multi-planar one.
pub fn drm_to_v4l2(fourcc: Fourcc) -> Vec<PixelFormat> {
    let mut single: Vec<PixelFormat> = Vec::new();
    let mut multi = Vec::new();
    for (drm, v, m) in TABLE {
        if *drm == fourcc {
            single.push(PixelFormat::from_chars(v));
            if let Some(m) = m {
                multi.push(PixelFormat::from_chars(m));
            }
        }
    }
    single.extend(multi);
    single
}

/// The DRM fourcc with the same memory layout as V4L2 code `pf`, if any.
pub fn v4l2_to_drm(pf: PixelFormat) -> Option<Fourcc> {
    TABLE.iter().find_map(|(drm, v, m)| {
        let hit =
            PixelFormat::from_chars(v) == pf || m.is_some_and(|m| PixelFormat::from_chars(m) == pf);
        hit.then_some(*drm)
    })
}

/// Number of separate memory buffers (V4L2 "memory planes") a multi-planar code uses.
pub fn memory_planes(pf: PixelFormat) -> usize {
    TABLE
        .iter()
        .find(|(_, _, m)| m.is_some_and(|m| PixelFormat::from_chars(m) == pf))
        .map(|(drm, _, _)| color_planes(*drm))
        .unwrap_or(1)
}

/// Colour planes of a DRM format (1 for packed formats).
pub fn color_planes(fourcc: Fourcc) -> usize {
    match fourcc {
        Fourcc::Nv12 | Fourcc::Nv21 | Fourcc::Nv16 | Fourcc::Nv61 | Fourcc::Nv24 | Fourcc::Nv42 => {
            2
        }
        Fourcc::P010 => 2,
        Fourcc::Yuv420 | Fourcc::Yvu420 | Fourcc::Yuv422 => 3,
        _ => 1,
    }
}

/// Vertical subsampling of colour plane `plane` of `fourcc` (1 = full height).
pub fn plane_vsub(fourcc: Fourcc, plane: usize) -> u32 {
    if plane == 0 {
        return 1;
    }
    match fourcc {
        Fourcc::Nv12 | Fourcc::Nv21 | Fourcc::Yuv420 | Fourcc::Yvu420 | Fourcc::P010 => 2,
        _ => 1,
    }
}

/// Bytes per line of colour plane `plane` given plane 0's (V4L2 single-buffer formats give
/// only plane 0's bytesperline). Saturates instead of overflowing.
pub fn plane_stride(fourcc: Fourcc, plane: usize, luma_stride: u64) -> u64 {
    match (fourcc, plane) {
        (_, 0) => luma_stride,
        // 4:4:4 semi-planar: the interleaved chroma row is twice as wide as the luma row.
        (Fourcc::Nv24 | Fourcc::Nv42, _) => luma_stride.saturating_mul(2),
        // Planar formats: each chroma row holds half as many samples.
        (Fourcc::Yuv420 | Fourcc::Yvu420 | Fourcc::Yuv422, _) => luma_stride / 2,
        // 4:2:x semi-planar: interleaved CbCr rows are as wide as luma rows.
        _ => luma_stride,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_chars() {
        assert_eq!(PixelFormat::YUYV.0, 0x5659_5559);
        assert_eq!(PixelFormat::FWHT.to_string(), "FWHT");
    }

    #[test]
    fn xr24_is_xbgr32_and_memory_order_matches() {
        // V4L2_PIX_FMT_XBGR32 = v4l2_fourcc('X','R','2','4') = DRM_FORMAT_XRGB8888's code.
        assert_eq!(drm_to_v4l2(Fourcc::Xrgb8888)[0], PixelFormat::XBGR32);
        assert_eq!(PixelFormat::XBGR32.0, Fourcc::Xrgb8888 as u32);
        assert_eq!(
            v4l2_to_drm(PixelFormat::from_chars(b"BGR4")),
            Some(Fourcc::Xrgb8888)
        );
        // 24-bit RGB: the codes differ though the memory order is the same.
        assert_eq!(
            drm_to_v4l2(Fourcc::Rgb888),
            vec![PixelFormat::from_chars(b"BGR3")]
        );
        assert_eq!(
            v4l2_to_drm(PixelFormat::from_chars(b"RGB3")),
            Some(Fourcc::Bgr888)
        );
        // V4L2 'RGB4' (RGB32, deprecated, ambiguous alpha) is not mapped.
        assert_eq!(v4l2_to_drm(PixelFormat::from_chars(b"RGB4")), None);
    }

    #[test]
    fn yuv_formats() {
        assert_eq!(
            drm_to_v4l2(Fourcc::Nv12),
            vec![PixelFormat::NV12, PixelFormat::from_chars(b"NM12")]
        );
        assert_eq!(
            v4l2_to_drm(PixelFormat::from_chars(b"NM12")),
            Some(Fourcc::Nv12)
        );
        assert_eq!(v4l2_to_drm(PixelFormat::YUYV), Some(Fourcc::Yuyv));
        assert_eq!(v4l2_to_drm(PixelFormat::YUV420), Some(Fourcc::Yuv420));
        assert_eq!(memory_planes(PixelFormat::from_chars(b"YM12")), 3);
        assert_eq!(memory_planes(PixelFormat::NV12), 1);
        assert_eq!(v4l2_to_drm(PixelFormat::FWHT), None);
    }

    #[test]
    fn every_mapping_round_trips() {
        for (drm, v, m) in TABLE {
            assert_eq!(v4l2_to_drm(PixelFormat::from_chars(v)), Some(*drm));
            if let Some(m) = m {
                assert_eq!(v4l2_to_drm(PixelFormat::from_chars(m)), Some(*drm));
            }
            assert!(drm_to_v4l2(*drm).contains(&PixelFormat::from_chars(v)));
        }
    }
}
