//! A V4L2 video node used directly: the format check an import of a dma-buf makes, and
//! setting a control.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::sys;

/// One queue of a V4L2 node (a buffer type and the pixel format it is checked for), checked
/// with VIDIOC_TRY_FMT as cenalloc's V4L2 import does.
#[derive(Debug)]
pub struct VideoQueue {
    file: File,
    buf_type: u32,
    pixelformat: u32,
}

impl AsFd for VideoQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl VideoQueue {
    /// Opens the node at `path` read-write for its queue of type `buf_type`
    /// (`V4L2_BUF_TYPE_*`) and the fourcc `pixelformat`.
    pub fn open(path: &Path, buf_type: u32, pixelformat: u32) -> std::io::Result<VideoQueue> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(VideoQueue::on_file(file.into(), buf_type, pixelformat))
    }

    /// The queue on an open file it shares with another user of the node (see
    /// [`crate::Card::on_file`]).
    pub fn on_file(fd: OwnedFd, buf_type: u32, pixelformat: u32) -> VideoQueue {
        VideoQueue {
            file: File::from(fd),
            buf_type,
            pixelformat,
        }
    }

    /// Lists every format of the queue (VIDIOC_ENUM_FMT until the driver refuses the index);
    /// returns how many there are.
    pub fn enumerate_formats(&self) -> usize {
        let mut n = 0;
        loop {
            let mut d = sys::FmtDesc {
                index: n,
                type_: self.buf_type,
                ..Default::default()
            };
            if sys::v4l2_enum_fmt(self.file.as_fd(), &mut d).is_err() {
                return n as usize;
            }
            n += 1;
        }
    }

    /// Checks a `width`×`height` image of the queue's pixel format (VIDIOC_TRY_FMT); fails
    /// unless the driver keeps the format and size and a buffer of `len` bytes holds its
    /// `sizeimage` (the first plane's, on multi-planar queues).
    pub fn check(&self, width: u32, height: u32, len: u64) -> std::io::Result<()> {
        let mplane = is_mplane(self.buf_type);
        let mut f = sys::Format::new(self.buf_type);
        if mplane {
            f.set_pix_mp(sys::PixFormatMplane {
                width,
                height,
                pixelformat: self.pixelformat,
                field: sys::FIELD_NONE,
                ..Default::default()
            });
        } else {
            f.set_pix(sys::PixFormat {
                width,
                height,
                pixelformat: self.pixelformat,
                field: sys::FIELD_NONE,
                ..Default::default()
            });
        }
        sys::v4l2_try_fmt(self.file.as_fd(), &mut f)?;
        let (w, h, pf, size) = if mplane {
            let mp = f.pix_mp();
            let planes = mp.plane_fmt;
            (mp.width, mp.height, mp.pixelformat, planes[0].sizeimage)
        } else {
            let p = f.pix();
            (p.width, p.height, p.pixelformat, p.sizeimage)
        };
        if (w, h, pf) != (width, height, self.pixelformat) || u64::from(size) > len {
            return Err(std::io::Error::other(format!(
                "TRY_FMT gave {w}x{h} {pf:#x} sizeimage {size}"
            )));
        }
        Ok(())
    }
}

/// Whether `buf_type` is a multi-planar queue type (its format is a `v4l2_pix_format_mplane`).
fn is_mplane(buf_type: u32) -> bool {
    buf_type == sys::BUF_TYPE_VIDEO_CAPTURE_MPLANE || buf_type == sys::BUF_TYPE_VIDEO_OUTPUT_MPLANE
}

/// Sets control `id` of the V4L2 node open as `dev` to `value` (VIDIOC_S_CTRL).
pub fn set_control(dev: BorrowedFd<'_>, id: u32, value: i32) -> std::io::Result<()> {
    sys::v4l2_s_ctrl(dev, id, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_planar_queue_types() {
        // V4L2_BUF_TYPE_VIDEO_CAPTURE, _OUTPUT, _CAPTURE_MPLANE, _OUTPUT_MPLANE.
        assert!(!is_mplane(1));
        assert!(!is_mplane(2));
        assert!(is_mplane(9));
        assert!(is_mplane(10));
    }
}
