//! A DRM node (KMS or render) used directly: PRIME import and export, dumb buffers and
//! framebuffers, through drm-rs' thin ioctl wrappers with no state of its own.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use drm::buffer::{Handle as GemHandle, PlanarBuffer};
use drm::control::{Device as _, FbCmd2Flags};
use drm::Device as _;
use drm_fourcc::{DrmFourcc, DrmModifier};

/// A DRM node opened directly, with no state beyond its open file and two capabilities.
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
    /// Opens the node at `path` read-write; `kms` says whether it has KMS (only then are
    /// framebuffers made).
    pub fn open(path: &Path, kms: bool) -> std::io::Result<Card> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Card::on_file(file.into(), kms))
    }

    /// A card on an open file it shares with another user of the node (e.g. a duplicate of
    /// cenalloc's descriptor): both then make their calls against the same kernel state (GEM
    /// handles are per open file).
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

    /// MAP_DUMB: the offset at which an mmap of this node reaches the GEM object `handle`.
    /// The kernel answers it for the node's own buffers and refuses it (EINVAL) for a dma-buf
    /// imported from elsewhere, whose pages only its exporter maps.
    pub fn dumb_map_offset(&self, handle: GemHandle) -> std::io::Result<u64> {
        let map = drm_ffi::mode::dumbbuffer::map(self.as_fd(), handle.into(), 0, 0)?;
        Ok(map.offset)
    }

    /// RMFB and GEM_CLOSE.
    pub fn release(&self, import: Import) -> std::io::Result<()> {
        if let Some(fb) = import.fb {
            self.destroy_framebuffer(fb)?;
        }
        self.close_buffer(import.handle)
    }
}
