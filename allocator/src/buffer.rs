//! An allocated dma-buf with its layout: fds, planes, CPU mapping, names and fences.

use std::any::Any;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::{Layout, Result, SourceChoice};

/// A dma-buf with its layout. Cloning is cheap and shares the same dma-buf; the memory lives
/// as long as any clone or any import of it.
#[derive(Clone)]
pub struct Buffer {
    inner: Arc<Inner>,
}

struct Inner {
    fd: OwnedFd,
    layout: Layout,
    source: SourceChoice,
    _keepalive: Option<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("fd", &self.inner.fd)
            .field("layout", &self.inner.layout)
            .field("source", &self.inner.source)
            .finish()
    }
}

/// How the CPU will access a mapping (selects the DMA_BUF_IOCTL_SYNC direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuAccess {
    /// Read only.
    Read,
    /// Write only.
    Write,
    /// Read and write.
    ReadWrite,
}

/// A CPU mapping of a whole buffer, bracketed by DMA_BUF_IOCTL_SYNC start/end.
pub struct Mapping<'a> {
    buffer: &'a Buffer,
    ptr: *mut u8,
    len: usize,
    access: CpuAccess,
}

impl Buffer {
    /// Wraps a dma-buf with its layout (for buffers cenalloc did not allocate, e.g. a Wayland
    /// client's). Fails with [`crate::Error::NotDmabuf`] if `fd` is not a dma-buf.
    pub fn from_fd(fd: OwnedFd, layout: Layout, source: SourceChoice) -> Result<Buffer> {
        Self::with_keepalive(fd, layout, source, None)
    }

    /// Like [`Buffer::from_fd`], also keeping a device-side object alive as long as the buffer.
    pub fn with_keepalive(
        fd: OwnedFd,
        layout: Layout,
        source: SourceChoice,
        keepalive: Option<Box<dyn Any + Send + Sync>>,
    ) -> Result<Buffer> {
        Ok(Buffer {
            inner: Arc::new(Inner {
                fd,
                layout,
                source,
                _keepalive: keepalive,
            }),
        })
    }

    /// The dma-buf fd (all planes live in this one dma-buf, at their offsets).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Planes, strides, offsets, modifier and size.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// Where the memory came from.
    pub fn source(&self) -> &SourceChoice {
        &self.inner.source
    }

    /// True if both handles refer to the same allocation.
    pub fn same_as(&self, other: &Buffer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Maps the whole buffer for CPU access.
    pub fn map(&self, access: CpuAccess) -> Result<Mapping<'_>> {
        let _ = access;
        todo!("map")
    }
}

impl Mapping<'_> {
    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr/len come from a successful mmap of the whole buffer that lives as long
        // as self; the mapping is only unmapped in Drop.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The mapped bytes, writable (only for Write/ReadWrite access).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice; &mut self guarantees exclusive access through this mapping.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// The buffer mapped.
    pub fn buffer(&self) -> &Buffer {
        self.buffer
    }

    /// The access mode.
    pub fn access(&self) -> CpuAccess {
        self.access
    }
}
