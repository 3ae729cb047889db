//! dma-buf heaps (`/dev/dma_heap/*`): system memory, CMA regions, carve-outs.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::sys;

/// An open dma-buf heap node, for allocating from it repeatedly.
#[derive(Debug)]
pub struct Heap(File);

impl Heap {
    /// Opens the heap node at `path` (e.g. `/dev/dma_heap/system`).
    pub fn open(path: &Path) -> std::io::Result<Heap> {
        Ok(Heap(File::open(path)?))
    }

    /// Allocates `len` bytes (DMA_HEAP_IOCTL_ALLOC): a read-write, close-on-exec dma-buf.
    pub fn alloc(&self, len: u64) -> std::io::Result<OwnedFd> {
        sys::dma_heap_alloc(self.0.as_fd(), len)
    }
}

/// Allocates `len` bytes once from the heap node at `path` (opened for this call only).
pub fn alloc(path: &Path, len: u64) -> std::io::Result<OwnedFd> {
    Heap::open(path)?.alloc(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_heap_is_an_error_not_a_panic() {
        let err = alloc(Path::new("/dev/dma_heap/no-such-heap"), 4096).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
