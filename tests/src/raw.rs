//! dma-buf allocation with the bare kernel interfaces, independent of cenalloc, so the rig's
//! smoke test proves the guest's devices even when cenalloc itself is broken.
//! Also the fault a test injects from outside: unplugging a vivid camera.

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

/// vivid's "Disconnect" button control (VIVID_CID_VIVID_BASE + 65, drivers/media/test-drivers/
/// vivid/vivid-ctrls.c): it unregisters every node of the instance as an unplugged USB camera
/// would. vivid registers them again once the last open file of the instance is closed.
const VIVID_CID_DISCONNECT: u32 = 0x00f0_f000 + 65;

/// Opens the vivid node at `node` and presses its Disconnect control. The returned file is
/// the caller's handle on the instance: vivid reconnects after it (and every other user) is
/// closed.
pub fn vivid_disconnect(node: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)?;
    sys::v4l2_s_ctrl(file.as_fd(), VIVID_CID_DISCONNECT, 1)?;
    Ok(file)
}
