//! GStreamer raw video formats as DRM fourccs (both name the byte order in memory the same way
//! on little-endian machines: GStreamer's `BGRx` is DRM's `XR24`).

use cenalloc::Fourcc;
use gst_video::VideoFormat;

/// The DRM fourcc of a GStreamer video format, or `None` if cenalloc has no equivalent.
pub fn fourcc(format: VideoFormat) -> Option<Fourcc> {
    Some(match format {
        VideoFormat::Bgrx => Fourcc::Xrgb8888,
        VideoFormat::Bgra => Fourcc::Argb8888,
        VideoFormat::Rgbx => Fourcc::Xbgr8888,
        VideoFormat::Rgba => Fourcc::Abgr8888,
        VideoFormat::Xrgb => Fourcc::Bgrx8888,
        VideoFormat::Argb => Fourcc::Bgra8888,
        VideoFormat::Xbgr => Fourcc::Rgbx8888,
        VideoFormat::Abgr => Fourcc::Rgba8888,
        VideoFormat::Rgb => Fourcc::Bgr888,
        VideoFormat::Bgr => Fourcc::Rgb888,
        VideoFormat::Rgb16 => Fourcc::Rgb565,
        VideoFormat::Nv12 => Fourcc::Nv12,
        VideoFormat::Nv21 => Fourcc::Nv21,
        VideoFormat::Nv16 => Fourcc::Nv16,
        VideoFormat::I420 => Fourcc::Yuv420,
        VideoFormat::Yv12 => Fourcc::Yvu420,
        VideoFormat::Yuy2 => Fourcc::Yuyv,
        VideoFormat::Uyvy => Fourcc::Uyvy,
        VideoFormat::Yvyu => Fourcc::Yvyu,
        VideoFormat::Vyuy => Fourcc::Vyuy,
        VideoFormat::Gray8 => Fourcc::R8,
        VideoFormat::P01010le => Fourcc::P010,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgrx_is_xr24_and_yuy2_is_yuyv() {
        assert_eq!(fourcc(VideoFormat::Bgrx), Some(Fourcc::Xrgb8888));
        assert_eq!(fourcc(VideoFormat::Yuy2), Some(Fourcc::Yuyv));
        assert_eq!(fourcc(VideoFormat::Nv12), Some(Fourcc::Nv12));
        assert_eq!(fourcc(VideoFormat::Encoded), None);
    }
}
