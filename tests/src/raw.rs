//! dma-buf allocation with the bare kernel interfaces, independent of cenalloc, so the rig's
//! smoke test proves the guest's devices even when cenalloc itself is broken.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::sys;

/// Allocates `len` bytes from the dma-buf heap at `heap` (DMA_HEAP_IOCTL_ALLOC).
pub fn heap_alloc(heap: &Path, len: u64) -> std::io::Result<OwnedFd> {
    let heap = std::fs::File::open(heap)?;
    sys::dma_heap_alloc(heap.as_fd(), len)
}

/// Wraps `len` bytes of a sealed memfd in a dma-buf through /dev/udmabuf.
pub fn udmabuf_alloc(len: u64) -> std::io::Result<OwnedFd> {
    use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
    let memfd = memfd_create(
        "cenalloc-test",
        MemfdFlags::ALLOW_SEALING | MemfdFlags::CLOEXEC,
    )?;
    ftruncate(&memfd, len)?;
    fcntl_add_seals(&memfd, SealFlags::SHRINK)?;
    let dev = std::fs::File::open("/dev/udmabuf")?;
    sys::udmabuf_create(dev.as_fd(), memfd.as_fd(), len)
}

/// Maps the dma-buf, writes `pattern(i)` at every byte, unmaps, maps again and checks it.
pub fn write_and_verify(fd: &OwnedFd, len: usize, pattern: impl Fn(usize) -> u8) -> bool {
    {
        let map = sys::Mapping::new(fd.as_fd(), len).expect("mmap for writing");
        for (i, b) in map.bytes_mut().iter_mut().enumerate() {
            *b = pattern(i);
        }
    }
    let map = sys::Mapping::new(fd.as_fd(), len).expect("mmap for reading");
    map.bytes_mut()
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(i))
}
