//! The floor: the ioctl sequence cenalloc makes, written out directly. A dma-buf heap
//! allocation (or a dumb buffer PRIME-exported by the display itself, which then uses its
//! own handle), PRIME_FD_TO_HANDLE + ADDFB2 on a KMS node (through drm-rs' thin ioctl
//! wrappers), PRIME alone on a node without KMS, VIDIOC_TRY_FMT on a V4L2 queue; then RMFB,
//! GEM_CLOSE and close.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use drm::buffer::{Handle as GemHandle, PlanarBuffer};
use drm::control::{Device as _, FbCmd2Flags};
use drm::Device as _;
use drm_fourcc::{DrmFourcc, DrmModifier};

/// An open dma-buf heap node.
#[derive(Debug)]
pub struct Heap(File);

impl Heap {
    /// Opens `/dev/dma_heap/<name>`.
    pub fn open(path: &Path) -> std::io::Result<Heap> {
        Ok(Heap(File::open(path)?))
    }

    /// DMA_HEAP_IOCTL_ALLOC of `len` bytes.
    pub fn alloc(&self, len: u64) -> std::io::Result<OwnedFd> {
        super::sys::dma_heap_alloc(self.0.as_fd(), len)
    }
}

/// A DRM node opened directly, with no cenalloc state.
#[derive(Debug)]
pub struct Card {
    file: File,
    /// The node has KMS (framebuffers).
    pub kms: bool,
    /// ADDFB2 takes a modifier (DRM_CAP_ADDFB2_MODIFIERS), as cenalloc passes it.
    pub modifiers: bool,
}

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
impl drm::Device for Card {}
impl drm::control::Device for Card {}

/// What [`Card::import`] created; [`Card::release`] undoes it.
#[derive(Debug)]
pub struct Import {
    handle: GemHandle,
    fb: Option<drm::control::framebuffer::Handle>,
}

/// A dumb buffer a card made and exported: the dma-buf, its pitch and the card's GEM handle.
#[derive(Debug)]
pub struct Dumb {
    /// The PRIME-exported dma-buf.
    pub fd: OwnedFd,
    /// The pitch the kernel chose.
    pub stride: u32,
    /// The handle on the card that made it.
    pub handle: GemHandle,
}

/// ADDFB2 arguments of a single-plane image.
struct Fb {
    size: (u32, u32),
    stride: u32,
    handle: GemHandle,
    modifier: Option<DrmModifier>,
}

impl PlanarBuffer for Fb {
    fn size(&self) -> (u32, u32) {
        self.size
    }
    fn format(&self) -> DrmFourcc {
        DrmFourcc::Xrgb8888
    }
    fn modifier(&self) -> Option<DrmModifier> {
        self.modifier
    }
    fn pitches(&self) -> [u32; 4] {
        [self.stride, 0, 0, 0]
    }
    fn handles(&self) -> [Option<GemHandle>; 4] {
        [Some(self.handle), None, None, None]
    }
    fn offsets(&self) -> [u32; 4] {
        [0; 4]
    }
}

impl Card {
    /// Opens the node at `path` read-write.
    pub fn open(path: &Path, kms: bool) -> std::io::Result<Card> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Card::on_file(file.into(), kms))
    }

    /// A card on an open file it shares with another user of the node (a duplicate of
    /// cenalloc's descriptor): both then make their calls against the same kernel state.
    pub fn on_file(fd: OwnedFd, kms: bool) -> Card {
        let mut card = Card {
            file: File::from(fd),
            kms,
            modifiers: false,
        };
        card.modifiers = kms
            && card
                .get_driver_capability(drm::DriverCapability::AddFB2Modifiers)
                .unwrap_or(0)
                != 0;
        card
    }

    /// PRIME_FD_TO_HANDLE, then on KMS nodes ADDFB2 of a `width`×`height` XRGB8888 image.
    pub fn import(
        &self,
        dmabuf: BorrowedFd<'_>,
        width: u32,
        height: u32,
        stride: u32,
    ) -> std::io::Result<Import> {
        let handle = self.prime_fd_to_buffer(dmabuf)?;
        self.framebuffer(handle, width, height, stride)
    }

    /// The card's own dumb buffer on its handle: ADDFB2 on KMS nodes, no PRIME import (what
    /// a program that allocated the buffer on this card does). [`Card::release`] closes the
    /// handle.
    pub fn import_own(&self, dumb: &Dumb, width: u32, height: u32) -> std::io::Result<Import> {
        self.framebuffer(dumb.handle, width, height, dumb.stride)
    }

    /// On KMS nodes, ADDFB2 of `handle` as a `width`×`height` XRGB8888 image; the handle is
    /// closed again if that fails.
    fn framebuffer(
        &self,
        handle: GemHandle,
        width: u32,
        height: u32,
        stride: u32,
    ) -> std::io::Result<Import> {
        let mut import = Import { handle, fb: None };
        if self.kms {
            let fb = Fb {
                size: (width, height),
                stride,
                handle,
                modifier: self.modifiers.then_some(DrmModifier::Linear),
            };
            let flags = if self.modifiers {
                FbCmd2Flags::MODIFIERS
            } else {
                FbCmd2Flags::empty()
            };
            match self.add_planar_framebuffer(&fb, flags) {
                Ok(h) => import.fb = Some(h),
                Err(e) => {
                    self.release(import)?;
                    return Err(e);
                }
            }
        }
        Ok(import)
    }

    /// CREATE_DUMB of a `width`×`height` XRGB8888 buffer and PRIME_HANDLE_TO_FD (read-write).
    /// The handle stays open: [`Card::import_own`] uses it, importing the dma-buf on this
    /// node returns it, and [`Card::release`] closes it.
    pub fn export_dumb(&self, width: u32, height: u32) -> std::io::Result<Dumb> {
        let dumb = self.create_dumb_buffer((width, height), DrmFourcc::Xrgb8888, 32)?;
        let flags = rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC;
        let handle = drm::buffer::Buffer::handle(&dumb);
        match self.buffer_to_prime_fd(handle, flags.bits()) {
            Ok(fd) => Ok(Dumb {
                fd,
                stride: drm::buffer::Buffer::pitch(&dumb),
                handle,
            }),
            Err(e) => {
                self.close_buffer(handle)?;
                Err(e)
            }
        }
    }

    /// RMFB and GEM_CLOSE.
    pub fn release(&self, import: Import) -> std::io::Result<()> {
        if let Some(fb) = import.fb {
            self.destroy_framebuffer(fb)?;
        }
        self.close_buffer(import.handle)
    }
}

/// A V4L2 queue checked with VIDIOC_TRY_FMT, as cenalloc's V4L2 import does.
#[derive(Debug)]
pub struct VideoQueue {
    file: File,
    buf_type: u32,
    pixelformat: u32,
}

impl VideoQueue {
    /// Opens the capture queue of the node at `path` for `pixelformat`.
    pub fn open(path: &Path, buf_type: u32, pixelformat: u32) -> std::io::Result<VideoQueue> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(VideoQueue::on_file(file.into(), buf_type, pixelformat))
    }

    /// The queue on an open file it shares with another user of the node (see
    /// [`Card::on_file`]).
    pub fn on_file(fd: OwnedFd, buf_type: u32, pixelformat: u32) -> VideoQueue {
        VideoQueue {
            file: File::from(fd),
            buf_type,
            pixelformat,
        }
    }

    /// VIDIOC_ENUM_FMT over every format of the queue; returns how many there are.
    pub fn enumerate_formats(&self) -> usize {
        use cenalloc_v4l2::sys;
        let mut n = 0;
        loop {
            let mut d = sys::FmtDesc {
                index: n,
                type_: self.buf_type,
                ..Default::default()
            };
            if sys::enum_fmt(self.file.as_fd(), &mut d).is_err() {
                return n as usize;
            }
            n += 1;
        }
    }

    /// VIDIOC_TRY_FMT at `width`×`height`; fails unless the driver keeps the format and size
    /// and the buffer of `len` bytes holds `sizeimage`.
    pub fn check(&self, width: u32, height: u32, len: u64) -> std::io::Result<()> {
        use cenalloc_v4l2::sys;
        let mut f = sys::Format::new(self.buf_type);
        if sys::is_mplane(self.buf_type) {
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
        sys::try_fmt(self.file.as_fd(), &mut f)?;
        let (w, h, pf, size) = if sys::is_mplane(self.buf_type) {
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
