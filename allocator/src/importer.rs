//! The trait a device backend implements to take part in an allocation.

use std::any::Any;
use std::fmt::Debug;
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::{Buffer, BufferRequest, Constraints, Error, Layout, MergedConstraints, Result};

/// A device that will import (or must export) a buffer: a KMS display, a render GPU, a V4L2
/// camera, decoder or encoder.
pub trait Importer: Send + Sync + Debug {
    /// Human-readable device name used in plans and errors, e.g. `vkms (/dev/dri/card1)`.
    fn name(&self) -> &str;

    /// What this device requires of a buffer for `request`. A device that cannot handle the
    /// request at all returns [`Error::Unsupported`].
    fn constraints(&self, request: &BufferRequest) -> Result<Constraints>;

    /// Imports `buffer` into the device. The returned handle holds the device's reference
    /// (GEM handle, framebuffer, V4L2 plane) and releases it on drop.
    fn import(&self, buffer: &Buffer) -> Result<Import>;

    /// Allocates the buffer on the device itself and exports it as a dma-buf. Only devices
    /// whose constraints say `can_export` implement it; `merged` are the constraints of every
    /// device taking part.
    fn export(&self, request: &BufferRequest, merged: &MergedConstraints) -> Result<Exported> {
        let _ = merged;
        Err(Error::Unsupported {
            device: self.name().to_owned(),
            kind: crate::ConstraintKind::Import,
            detail: format!("cannot allocate {:?} itself", request.kind),
        })
    }
}

/// A device's reference to an imported buffer. Dropping it releases the reference.
pub trait Imported: Any + Send + Sync + Debug {
    /// The device holding the import.
    fn device(&self) -> &str;
}

/// A device's import of a buffer, owned.
pub type Import = Box<dyn Imported>;

impl dyn Imported {
    /// The backend's concrete import type, if this import is a `T` (e.g.
    /// `cenalloc_drm::DrmImport`).
    pub fn downcast_ref<T: Imported>(&self) -> Option<&T> {
        let any: &dyn Any = self;
        any.downcast_ref::<T>()
    }
}

/// A buffer a device allocated on itself and exported as a dma-buf: the fd, the layout the
/// device chose and what must stay alive with it. The allocator turns it into a [`Buffer`].
#[derive(Debug)]
pub struct Exported {
    pub(crate) fd: OwnedFd,
    pub(crate) layout: Layout,
    pub(crate) keepalive: Option<Box<dyn Any + Send + Sync>>,
}

impl Exported {
    /// A dma-buf `fd` the kernel handed out for the device's buffer (PRIME_HANDLE_TO_FD,
    /// VIDIOC_EXPBUF), laid out as `layout` (the device's own pitch and size).
    pub fn new(fd: OwnedFd, layout: Layout) -> Exported {
        Exported {
            fd,
            layout,
            keepalive: None,
        }
    }

    /// [`Exported::new`], also keeping a device-side object (a GBM bo, a GEM handle) alive
    /// as long as the buffer and anything importing it. The device recognises a buffer it
    /// exported itself through [`Buffer::keepalive`].
    pub fn with_keepalive(
        fd: OwnedFd,
        layout: Layout,
        keepalive: impl Any + Send + Sync,
    ) -> Exported {
        Exported {
            fd,
            layout,
            keepalive: Some(Box::new(keepalive)),
        }
    }

    /// The dma-buf.
    pub fn fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// How the device laid the planes out.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The device-side object kept alive with the buffer.
    pub fn keepalive(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.keepalive.as_deref()
    }
}
