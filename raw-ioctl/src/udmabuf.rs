//! udmabuf (`/dev/udmabuf`): ordinary memory of a memfd shared as a dma-buf.

use std::os::fd::{AsFd, OwnedFd};

use crate::sys;

/// Wraps `len` bytes of a new memfd, sealed against shrinking as udmabuf requires, in a
/// dma-buf through /dev/udmabuf (UDMABUF_CREATE).
pub fn alloc(len: u64) -> std::io::Result<OwnedFd> {
    use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
    let memfd = memfd_create(
        "cenalloc-raw-ioctl",
        MemfdFlags::ALLOW_SEALING | MemfdFlags::CLOEXEC,
    )?;
    ftruncate(&memfd, len)?;
    fcntl_add_seals(&memfd, SealFlags::SHRINK)?;
    let dev = std::fs::File::open("/dev/udmabuf")?;
    sys::udmabuf_create(dev.as_fd(), memfd.as_fd(), len)
}
