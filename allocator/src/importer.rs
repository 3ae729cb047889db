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

    /// Whether, and how, the device's answer to [`Importer::constraints`] for a given request
    /// can change over this object's life; decides how the allocator may reuse a plan made
    /// for it. Defaults to [`ConstraintsChange::AskEachTime`].
    fn constraints_change(&self) -> ConstraintsChange {
        ConstraintsChange::AskEachTime
    }

    /// Imports `buffer` into the device. The returned handle keeps the device's reference (GEM
    /// handle, framebuffer, V4L2 plane) and releases it on drop; it also keeps `buffer` alive.
    /// Backends wrap their import type with [`into_import`].
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

/// How an importer's constraints can change, and so how a plan made for it may be reused
/// ([`crate::Allocator::allocate_and_import`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintsChange {
    /// Never: they come from a one-time probe, not from device state. A plan is reused
    /// without asking again.
    Never,
    /// They follow device state (a V4L2 queue's input or format), but [`Importer::import`]
    /// checks the buffer against the device's current requirements and refuses one that no
    /// longer suits with [`Error::Incompatible`] or [`Error::Unsupported`]. A plan is reused
    /// without asking; a refused import makes the allocator plan anew and try once more.
    CheckedOnImport,
    /// They follow device state and an import may not notice a change: asked again before
    /// each reuse of a plan, which is made anew when the answer differs.
    AskEachTime,
}

/// A device's reference to an imported buffer. Dropping it releases the reference.
pub trait Imported: Send + Sync + Debug {
    /// The device holding the import.
    fn device(&self) -> &str;
    /// Access to the backend's concrete import type.
    fn as_any(&self) -> &dyn Any;
}

/// A device's import of a buffer, owned: held inline when it fits [`ImportSpace`] (a device
/// reference, the buffer, a GEM handle and a framebuffer do), on the heap otherwise. Imports
/// are made and released for every buffer, so the common one costs no allocation.
pub type Import = smallbox::SmallBox<dyn Imported, ImportSpace>;

/// The room an [`Import`] has inline: four machine words.
pub type ImportSpace = [usize; 4];

/// Wraps a backend's concrete import as an [`Import`].
pub fn into_import<T: Imported + 'static>(imported: T) -> Import {
    smallbox::smallbox!(imported)
}

/// How the device that allocated a buffer knows it again: an identity the device chose for
/// itself and its own name for the buffer object. Plain data, compared on every import
/// without a dynamic type check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExportToken {
    /// The exporting device's identity, unique among live devices (e.g. the address of
    /// state the buffer's keepalive holds).
    pub device: std::num::NonZeroUsize,
    /// The device's name for the object (e.g. a GEM handle on its open file).
    pub object: u64,
}

/// A buffer a device allocated on itself and exported as a dma-buf: the fd, the layout the
/// device chose and what must stay alive with it. The allocator turns it into a [`Buffer`].
#[derive(Debug)]
pub struct Exported {
    buffer: Buffer,
    known_dmabuf: bool,
}

impl Exported {
    /// A dma-buf `fd` the device laid out as `layout` (its own pitch, its own size).
    /// `known_dmabuf`: the kernel handed `fd` out as a dma-buf (PRIME_HANDLE_TO_FD,
    /// VIDIOC_EXPBUF), so it is not checked again; `false` for an fd of any other origin,
    /// which is checked before use.
    pub fn new(fd: OwnedFd, layout: Layout, known_dmabuf: bool) -> Exported {
        Self::with_keepalive(fd, layout, crate::buffer::NoKeepalive, known_dmabuf)
    }

    /// [`Exported::new`], also keeping a device-side object (a GBM bo, a GEM handle) alive
    /// as long as the buffer and anything importing it; it is stored with the buffer.
    #[inline]
    pub fn with_keepalive<K: Any + Send + Sync>(
        fd: OwnedFd,
        layout: Layout,
        keepalive: K,
        known_dmabuf: bool,
    ) -> Exported {
        Exported {
            buffer: Buffer::unplaced(fd, layout, keepalive, None),
            known_dmabuf,
        }
    }

    /// [`Exported::with_keepalive`] for a dma-buf the kernel handed out (PRIME_HANDLE_TO_FD,
    /// VIDIOC_EXPBUF), with the device's `token` for it: importing the buffer back into the
    /// device that allocated it compares tokens ([`Buffer::export_token`]) to reuse the
    /// device's own object. `keepalive` must keep whatever the token names alive.
    #[inline]
    pub fn with_token<K: Any + Send + Sync>(
        fd: OwnedFd,
        layout: Layout,
        keepalive: K,
        token: ExportToken,
    ) -> Exported {
        Exported {
            buffer: Buffer::unplaced(fd, layout, keepalive, Some(token)),
            known_dmabuf: true,
        }
    }

    /// The dma-buf.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.buffer.fd()
    }

    /// How the device laid the planes out.
    pub fn layout(&self) -> &Layout {
        self.buffer.layout()
    }

    /// The device-side object kept alive with the buffer.
    pub fn keepalive(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.buffer.keepalive()
    }

    #[inline(always)]
    pub(crate) fn into_parts(self) -> (Buffer, bool) {
        (self.buffer, self.known_dmabuf)
    }
}

impl<'a> dyn Imported + 'a {
    /// Downcasts to a backend's concrete import type.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.as_any().downcast_ref::<T>()
    }
}
