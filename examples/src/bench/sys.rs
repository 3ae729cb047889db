//! The benchmark's only `unsafe`: DMA_HEAP_IOCTL_ALLOC and DMA_BUF_SET_NAME issued directly,
//! so the "raw" side of each comparison is the bare kernel call with nothing of cenalloc in
//! between, and a shared mapping to touch a buffer's pages.

use std::ffi::{c_void, CStr};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

use rustix::ioctl::{
    ioctl, CompileTimeOpcode, Ioctl, IoctlOutput, Opcode, ReadWriteOpcode, Updater, WriteOpcode,
};

/// `struct dma_heap_allocation_data` (include/uapi/linux/dma-heap.h).
#[repr(C)]
struct DmaHeapAllocationData {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}
const _: () = assert!(std::mem::size_of::<DmaHeapAllocationData>() == 24);

const O_RDWR: u32 = 0o2;
const O_CLOEXEC: u32 = 0o2000000;

/// Allocates `len` bytes from the heap whose node is open as `heap`.
pub fn dma_heap_alloc(heap: BorrowedFd<'_>, len: u64) -> std::io::Result<OwnedFd> {
    let mut data = DmaHeapAllocationData {
        len,
        fd: 0,
        fd_flags: O_RDWR | O_CLOEXEC,
        heap_flags: 0,
    };
    // SAFETY: DMA_HEAP_IOCTL_ALLOC is _IOWR('H', 0, struct dma_heap_allocation_data); `data`
    // has that layout (size asserted above) and lives across the call.
    unsafe {
        ioctl(
            heap,
            Updater::<ReadWriteOpcode<b'H', 0, DmaHeapAllocationData>, _>::new(&mut data),
        )?;
    }
    // SAFETY: on success the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(data.fd as i32) })
}

/// DMA_BUF_SET_NAME_B: `_IOW('b', 1, u64)` whose argument is the name's pointer itself.
struct SetName<'a>(&'a CStr);

// SAFETY: DMA_BUF_SET_NAME_B reads a NUL-terminated string (at most 32 bytes are copied) from
// the pointer passed as the argument and writes no user memory.
unsafe impl Ioctl for SetName<'_> {
    type Output = ();
    const IS_MUTATING: bool = false;
    const OPCODE: Opcode = WriteOpcode::<b'b', 1, u64>::OPCODE;

    fn as_ptr(&mut self) -> *mut c_void {
        self.0.as_ptr() as *mut c_void
    }

    unsafe fn output_from_ptr(_: IoctlOutput, _: *mut c_void) -> rustix::io::Result<()> {
        Ok(())
    }
}

/// Names the dma-buf (what cenalloc does for every buffer it allocates).
pub fn dma_buf_set_name(dmabuf: BorrowedFd<'_>, name: &CStr) -> std::io::Result<()> {
    // SAFETY: see `SetName`; `name` outlives the call.
    unsafe { ioctl(dmabuf, SetName(name)) }?;
    Ok(())
}

/// Maps `len` bytes of the dma-buf shared and writes one byte per page, so every page is
/// really allocated (dumb buffers and shmem objects get their pages on first touch).
pub fn touch_pages(dmabuf: BorrowedFd<'_>, len: usize) -> std::io::Result<()> {
    use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
    if len == 0 {
        return Ok(());
    }
    // SAFETY: a fresh shared mapping of `len` bytes of the fd at a kernel-chosen address;
    // nothing else refers to it, and it is unmapped below.
    let ptr = unsafe {
        mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            dmabuf,
            0,
        )
    }?;
    let page = rustix::param::page_size();
    for offset in (0..len).step_by(page) {
        // SAFETY: `offset < len`, inside the writable mapping made above.
        unsafe { ptr.cast::<u8>().add(offset).write_volatile(0x5a) };
    }
    // SAFETY: `ptr`/`len` are exactly the mapping made above, no longer used.
    unsafe { munmap(ptr, len) }?;
    Ok(())
}
