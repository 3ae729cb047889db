//! What can be done with any dma-buf, whoever made it: name it and reach its pages from the
//! CPU.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;

use crate::sys;

/// Names the dma-buf (DMA_BUF_SET_NAME; the kernel keeps at most 31 bytes). cenalloc names
/// every buffer it allocates, so the benchmark's floor does too.
pub fn set_name(dmabuf: BorrowedFd<'_>, name: &CStr) -> std::io::Result<()> {
    sys::dma_buf_set_name(dmabuf, name)
}

/// Maps the first `len` bytes of the dma-buf shared and writes one byte per page, so every
/// page is really backed (dumb buffers and shmem objects get their pages on first touch).
pub fn touch_pages(dmabuf: BorrowedFd<'_>, len: usize) -> std::io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let mut map = sys::Mapping::new(dmabuf, len)?;
    for offset in (0..len).step_by(rustix::param::page_size()) {
        map.write_volatile(offset, 0x5a);
    }
    map.unmap()
}

/// Maps the first `len` (> 0) bytes of the dma-buf, writes `pattern(i)` at every byte `i`,
/// unmaps, maps again and returns whether every byte still holds its pattern: the memory
/// behind the dma-buf is real and shared, not a per-mapping copy.
pub fn write_and_verify(
    dmabuf: BorrowedFd<'_>,
    len: usize,
    pattern: impl Fn(usize) -> u8,
) -> std::io::Result<bool> {
    {
        let mut map = sys::Mapping::new(dmabuf, len)?;
        for (i, b) in map.bytes_mut().iter_mut().enumerate() {
            *b = pattern(i);
        }
    }
    let mut map = sys::Mapping::new(dmabuf, len)?;
    Ok(map
        .bytes_mut()
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(i)))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::fd::{AsFd as _, OwnedFd};

    use super::*;

    /// A memfd of `len` bytes: mappable like a dma-buf, and there on any host.
    fn memfd(len: u64) -> OwnedFd {
        let fd = rustix::fs::memfd_create("raw-ioctl-test", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        rustix::fs::ftruncate(&fd, len).expect("ftruncate");
        fd
    }

    #[test]
    fn a_pattern_written_through_one_mapping_is_read_through_the_next() {
        let fd = memfd(3 * 4096);
        let pattern = |i: usize| (i * 7 % 251) as u8;
        assert!(write_and_verify(fd.as_fd(), 3 * 4096, pattern).unwrap());
        let mut bytes = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut bytes).unwrap();
        assert!(bytes.iter().enumerate().all(|(i, b)| *b == pattern(i)));
    }

    #[test]
    fn touching_writes_the_first_byte_of_every_page_and_nothing_else() {
        let page = rustix::param::page_size();
        let fd = memfd(3 * page as u64 - 1);
        touch_pages(fd.as_fd(), 3 * page - 1).unwrap();
        touch_pages(fd.as_fd(), 0).unwrap();
        let mut bytes = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut bytes).unwrap();
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(*b, if i % page == 0 { 0x5a } else { 0 }, "byte {i}");
        }
    }

    #[test]
    fn naming_what_is_not_a_dma_buf_is_refused() {
        let fd = memfd(4096);
        assert!(set_name(fd.as_fd(), c"cenalloc").is_err());
    }
}
