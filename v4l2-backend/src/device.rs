//! An open V4L2 video node: identity, capabilities, formats of its queues.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use cenalloc::{Error, Result};
use rustix::fs::{Mode, OFlags};

use crate::format::PixelFormat;
use crate::sys;

/// Which queue of a device: the one the device writes (capture) or reads (output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Direction {
    /// Device → memory (camera frames, decoded frames, encoded bitstream).
    Capture,
    /// Memory → device (bitstream to decode, frames to encode).
    Output,
}

/// A format negotiated (or tried) on one queue, with the driver's per-plane requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct QueueFormat {
    /// V4L2 pixel format.
    pub pixelformat: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The queue is multi-planar (`*_MPLANE` buffer type).
    pub mplane: bool,
    /// Per memory plane: (bytesperline, sizeimage). One entry for single-buffer formats,
    /// even when the format has several colour planes.
    pub planes: Vec<PlaneFormat>,
}

impl QueueFormat {
    /// The format a driver wrote into a `struct v4l2_format`: `type_` is its buffer type
    /// (`V4L2_BUF_TYPE_*`) and `fmt` the 200 bytes of its `fmt` union, read as `pix_mp` for
    /// multi-planar types and as `pix` otherwise. A multi-planar format may come out with no
    /// plane (a driver error [`Device`] refuses).
    pub fn from_raw(type_: u32, fmt: &[u8; 200]) -> QueueFormat {
        Device::format_planes(&sys::Format {
            type_,
            fmt: sys::FormatUnion { raw_data: *fmt },
        })
    }
}

/// The driver's requirement on one memory plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PlaneFormat {
    /// Bytes per line (0 for compressed formats).
    pub bytesperline: u32,
    /// Minimum size of the plane's buffer in bytes.
    pub sizeimage: u32,
}

/// A format a queue can take, from VIDIOC_ENUM_FMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDesc {
    /// The code.
    pub pixelformat: PixelFormat,
    /// The driver's description.
    pub description: String,
    /// A compressed (bitstream) format.
    pub compressed: bool,
}

/// An open V4L2 video node.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
    path: PathBuf,
    name: String,
    driver: String,
    card: String,
    bus_info: String,
    caps: u32,
    /// `V4L2_BUF_CAP_*` of the capture and output queues, read once at open: REQBUFS(0)
    /// frees the caller's buffers, so it must not run once queues are in use.
    buffer_caps: [Option<u32>; 2],
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The sysfs name (`/sys/class/video4linux/videoN/name`) of a node path, if any.
pub(crate) fn sysfs_name(path: &Path) -> Option<String> {
    let node = path.file_name()?.to_str()?;
    let name = std::fs::read_to_string(format!("/sys/class/video4linux/{node}/name")).ok()?;
    Some(name.trim().to_owned())
}

impl Device {
    /// Opens the node at `path` (read-write, non-blocking) and queries its capabilities.
    pub fn open(path: impl AsRef<Path>) -> Result<Device> {
        let path = path.as_ref();
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Self::from_fd(fd, path)
    }

    /// Wraps an already open node; `path` is used for names and sysfs lookups only.
    pub fn from_fd(fd: OwnedFd, path: impl Into<PathBuf>) -> Result<Device> {
        let path = path.into();
        let cap = sys::querycap(fd.as_fd())
            .map_err(|e| Error::io(format!("VIDIOC_QUERYCAP on {}", path.display()), e))?;
        let caps = if cap.capabilities & sys::CAP_DEVICE_CAPS != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        let card = cstr(&cap.card);
        let name = sysfs_name(&path).unwrap_or_else(|| card.clone());
        let mut dev = Device {
            fd,
            name,
            driver: cstr(&cap.driver),
            card,
            bus_info: cstr(&cap.bus_info),
            caps,
            path,
            buffer_caps: [None, None],
        };
        dev.buffer_caps = [
            dev.query_buffer_caps(Direction::Capture),
            dev.query_buffer_caps(Direction::Output),
        ];
        Ok(dev)
    }

    /// The node's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node's name (sysfs `name`, e.g. `vivid-000-vid-cap`; the card name otherwise).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name (path)`, as used in errors and plans.
    pub fn display_name(&self) -> String {
        format!("{} ({})", self.name, self.path.display())
    }

    /// The driver's name (`vivid`, `vicodec`, ...).
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// The card name.
    pub fn card(&self) -> &str {
        &self.card
    }

    /// The bus info string.
    pub fn bus_info(&self) -> &str {
        &self.bus_info
    }

    /// The node's capabilities (`device_caps` when the driver reports them).
    pub fn caps(&self) -> u32 {
        self.caps
    }

    /// True if the node supports streaming I/O.
    pub fn streaming(&self) -> bool {
        self.caps & sys::CAP_STREAMING != 0
    }

    /// True for memory-to-memory devices (codecs, scalers).
    pub fn is_m2m(&self) -> bool {
        self.caps & (sys::CAP_VIDEO_M2M | sys::CAP_VIDEO_M2M_MPLANE) != 0
    }

    /// The V4L2 buffer type of the queue in `dir`, if the node has it (multi-planar preferred).
    pub fn buf_type(&self, dir: Direction) -> Option<u32> {
        let c = self.caps;
        let m2m_mp = c & sys::CAP_VIDEO_M2M_MPLANE != 0;
        let m2m = c & sys::CAP_VIDEO_M2M != 0;
        match dir {
            Direction::Capture if c & sys::CAP_VIDEO_CAPTURE_MPLANE != 0 || m2m_mp => {
                Some(sys::BUF_TYPE_VIDEO_CAPTURE_MPLANE)
            }
            Direction::Capture if c & sys::CAP_VIDEO_CAPTURE != 0 || m2m => {
                Some(sys::BUF_TYPE_VIDEO_CAPTURE)
            }
            Direction::Output if c & sys::CAP_VIDEO_OUTPUT_MPLANE != 0 || m2m_mp => {
                Some(sys::BUF_TYPE_VIDEO_OUTPUT_MPLANE)
            }
            Direction::Output if c & sys::CAP_VIDEO_OUTPUT != 0 || m2m => {
                Some(sys::BUF_TYPE_VIDEO_OUTPUT)
            }
            _ => None,
        }
    }

    fn require_type(&self, dir: Direction) -> Result<u32> {
        self.buf_type(dir).ok_or_else(|| Error::Unsupported {
            device: self.display_name(),
            kind: cenalloc::ConstraintKind::Import,
            detail: format!("no video {dir:?} queue"),
        })
    }

    /// The formats of the queue in `dir` (VIDIOC_ENUM_FMT); empty if there is no such queue.
    pub fn formats(&self, dir: Direction) -> Vec<FormatDesc> {
        let Some(ty) = self.buf_type(dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for index in 0..256 {
            let mut d = sys::FmtDesc {
                index,
                type_: ty,
                ..Default::default()
            };
            if sys::enum_fmt(self.fd.as_fd(), &mut d).is_err() {
                break;
            }
            out.push(FormatDesc {
                pixelformat: PixelFormat(d.pixelformat),
                description: cstr(&d.description),
                compressed: d.flags & sys::FMT_FLAG_COMPRESSED != 0,
            });
        }
        out
    }

    fn build_format(&self, ty: u32, pf: PixelFormat, width: u32, height: u32) -> sys::Format {
        let mut f = sys::Format::new(ty);
        if sys::is_mplane(ty) {
            f.set_pix_mp(sys::PixFormatMplane {
                width,
                height,
                pixelformat: pf.0,
                field: sys::FIELD_NONE,
                ..Default::default()
            });
        } else {
            f.set_pix(sys::PixFormat {
                width,
                height,
                pixelformat: pf.0,
                field: sys::FIELD_NONE,
                ..Default::default()
            });
        }
        f
    }

    /// The driver's format as a [`QueueFormat`]; a multi-planar format with no plane is an
    /// error naming the device, so callers can rely on `planes[0]`.
    fn parse_format(&self, f: &sys::Format) -> Result<QueueFormat> {
        let parsed = Self::format_planes(f);
        if parsed.planes.is_empty() {
            return Err(Error::Unsupported {
                device: self.display_name(),
                kind: cenalloc::ConstraintKind::Plane,
                detail: format!("the driver reported {} with no plane", parsed.pixelformat),
            });
        }
        Ok(parsed)
    }

    fn format_planes(f: &sys::Format) -> QueueFormat {
        if sys::is_mplane(f.type_) {
            let mp = f.pix_mp();
            let n = usize::from(mp.num_planes).min(sys::VIDEO_MAX_PLANES);
            let plane_fmt = mp.plane_fmt;
            QueueFormat {
                pixelformat: PixelFormat(mp.pixelformat),
                width: mp.width,
                height: mp.height,
                mplane: true,
                planes: plane_fmt[..n]
                    .iter()
                    .map(|p| PlaneFormat {
                        bytesperline: p.bytesperline,
                        sizeimage: p.sizeimage,
                    })
                    .collect(),
            }
        } else {
            let p = f.pix();
            QueueFormat {
                pixelformat: PixelFormat(p.pixelformat),
                width: p.width,
                height: p.height,
                mplane: false,
                planes: vec![PlaneFormat {
                    bytesperline: p.bytesperline,
                    sizeimage: p.sizeimage,
                }],
            }
        }
    }

    /// Asks the driver what it would make of `pf` at `width`×`height` (VIDIOC_TRY_FMT),
    /// without changing the device's state. The driver may adjust every field.
    pub fn try_format(
        &self,
        dir: Direction,
        pf: PixelFormat,
        width: u32,
        height: u32,
    ) -> Result<QueueFormat> {
        let ty = self.require_type(dir)?;
        let mut f = self.build_format(ty, pf, width, height);
        sys::try_fmt(self.fd.as_fd(), &mut f)
            .map_err(|e| Error::io(format!("{}: VIDIOC_TRY_FMT {pf}", self.display_name()), e))?;
        self.parse_format(&f)
    }

    /// Sets the format of the queue in `dir` (VIDIOC_S_FMT) and returns what the driver chose.
    pub fn set_format(
        &self,
        dir: Direction,
        pf: PixelFormat,
        width: u32,
        height: u32,
    ) -> Result<QueueFormat> {
        self.set_format_with_stride(dir, pf, width, height, None)
    }

    /// Like [`Device::set_format`], also asking for plane 0's bytesperline.
    pub fn set_format_with_stride(
        &self,
        dir: Direction,
        pf: PixelFormat,
        width: u32,
        height: u32,
        bytesperline: Option<u32>,
    ) -> Result<QueueFormat> {
        let ty = self.require_type(dir)?;
        let mut f = self.build_format(ty, pf, width, height);
        if let Some(bpl) = bytesperline {
            if sys::is_mplane(ty) {
                let mut mp = f.pix_mp();
                mp.plane_fmt[0].bytesperline = bpl;
                f.set_pix_mp(mp);
            } else {
                let mut p = f.pix();
                p.bytesperline = bpl;
                f.set_pix(p);
            }
        }
        sys::s_fmt(self.fd.as_fd(), &mut f)
            .map_err(|e| Error::io(format!("{}: VIDIOC_S_FMT {pf}", self.display_name()), e))?;
        self.parse_format(&f)
    }

    /// The current format of the queue in `dir` (VIDIOC_G_FMT).
    pub fn format(&self, dir: Direction) -> Result<QueueFormat> {
        let ty = self.require_type(dir)?;
        let mut f = sys::Format::new(ty);
        sys::g_fmt(self.fd.as_fd(), &mut f)
            .map_err(|e| Error::io(format!("{}: VIDIOC_G_FMT", self.display_name()), e))?;
        self.parse_format(&f)
    }

    /// The `V4L2_BUF_CAP_*` flags of the queue in `dir`, from VIDIOC_REQBUFS with count 0
    /// when the node was opened.
    pub fn buffer_caps(&self, dir: Direction) -> Result<u32> {
        let i = match dir {
            Direction::Capture => 0,
            Direction::Output => 1,
        };
        self.buffer_caps[i].ok_or_else(|| Error::Unsupported {
            device: self.display_name(),
            kind: cenalloc::ConstraintKind::Import,
            detail: format!("the {dir:?} queue takes no streaming buffers (VIDIOC_REQBUFS failed)"),
        })
    }

    /// REQBUFS(count=0): frees this file's buffers of that queue (none yet at open) and
    /// fails with EBUSY if another file owns them.
    fn query_buffer_caps(&self, dir: Direction) -> Option<u32> {
        let ty = self.buf_type(dir)?;
        let mut last = None;
        for memory in [sys::MEMORY_DMABUF, sys::MEMORY_MMAP] {
            let mut r = sys::RequestBuffers {
                count: 0,
                type_: ty,
                memory,
                ..Default::default()
            };
            match sys::reqbufs(self.fd.as_fd(), &mut r) {
                Ok(()) => return Some(r.capabilities),
                Err(e) => last = Some(e),
            }
        }
        log::debug!(
            "{}: VIDIOC_REQBUFS(count=0) on {dir:?}: {last:?}",
            self.display_name()
        );
        None
    }

    /// True if the queue in `dir` can import dma-bufs (`V4L2_BUF_CAP_SUPPORTS_DMABUF`).
    pub fn supports_dmabuf(&self, dir: Direction) -> bool {
        self.buffer_caps(dir)
            .is_ok_and(|c| c & sys::BUF_CAP_SUPPORTS_DMABUF != 0)
    }

    /// The node's fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
