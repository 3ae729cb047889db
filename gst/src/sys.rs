//! The plugin's only `unsafe`: handing a dma-buf fd to GStreamer. gstreamer-allocators 0.23
//! offers `DmaBufAllocator::alloc` as an unsafe function (it cannot check that the fd is an
//! open dma-buf of the given size), so the promise is made here.

use std::os::fd::OwnedFd;

use gst::glib;

/// Wraps `fd` as GStreamer dma-buf memory of `size` bytes; the memory owns (and closes) `fd`.
/// `fd` must be an open dma-buf of at least `size` bytes.
pub(crate) fn dmabuf_memory(
    allocator: &gst_allocators::DmaBufAllocator,
    fd: OwnedFd,
    size: usize,
) -> Result<gst::Memory, glib::BoolError> {
    // SAFETY: the caller hands over an open dma-buf it owns (a dup of cenalloc's), at least
    // `size` bytes long (the plan's size); ownership passes to the memory, which closes it
    // when freed.
    unsafe { allocator.alloc(fd, size) }
}
