//! All `unsafe` of this crate: the dma-buf, dma-heap and udmabuf ioctls and mmap.
//!
//! Each ioctl gets a small typed, safe wrapper in the style of rustix: the argument structs are
//! `#[repr(C)]` copies of the kernel's UAPI structs (their sizes are asserted at compile time),
//! the request codes are built with rustix's compile-time opcode helpers, and fds the kernel
//! hands back are wrapped in [`OwnedFd`] right away. These few ioctls are written by hand
//! because no maintained crate exposes the dma-heap, udmabuf and dma-buf UAPI on rustix 0.38.

use std::ffi::{c_void, CStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use rustix::ioctl::{self, Ioctl, IoctlOutput, Opcode, ReadWriteOpcode, Setter, Updater};
use rustix::ioctl::{CompileTimeOpcode, WriteOpcode};

/// `struct dma_heap_allocation_data` (linux/dma-heap.h).
#[repr(C)]
#[derive(Debug, Default)]
struct DmaHeapAllocationData {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}

/// `struct udmabuf_create` (linux/udmabuf.h).
#[repr(C)]
#[derive(Debug, Default)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}

/// `struct dma_buf_sync` (linux/dma-buf.h).
#[repr(C)]
#[derive(Debug, Default)]
struct DmaBufSync {
    flags: u64,
}

/// `struct dma_buf_export_sync_file` / `struct dma_buf_import_sync_file` (same shape).
#[repr(C)]
#[derive(Debug, Default)]
struct DmaBufSyncFile {
    flags: u32,
    fd: i32,
}

const _: () = assert!(std::mem::size_of::<DmaHeapAllocationData>() == 24);
const _: () = assert!(std::mem::size_of::<UdmabufCreate>() == 24);
const _: () = assert!(std::mem::size_of::<DmaBufSync>() == 8);
const _: () = assert!(std::mem::size_of::<DmaBufSyncFile>() == 8);

/// `DMA_HEAP_IOCTL_ALLOC`: `_IOWR('H', 0, struct dma_heap_allocation_data)`.
type DmaHeapIoctlAlloc = ReadWriteOpcode<b'H', 0, DmaHeapAllocationData>;
/// `UDMABUF_CREATE`: `_IOW('u', 0x42, struct udmabuf_create)`.
type UdmabufCreateOp = WriteOpcode<b'u', 0x42, UdmabufCreate>;
/// `DMA_BUF_IOCTL_SYNC`: `_IOW('b', 0, struct dma_buf_sync)`.
type DmaBufIoctlSync = WriteOpcode<b'b', 0, DmaBufSync>;
/// `DMA_BUF_SET_NAME_B`: `_IOW('b', 1, u64)`; the argument is the string pointer itself.
type DmaBufSetName = WriteOpcode<b'b', 1, u64>;
/// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`: `_IOWR('b', 2, struct dma_buf_export_sync_file)`.
type DmaBufExportSyncFile = ReadWriteOpcode<b'b', 2, DmaBufSyncFile>;
/// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`: `_IOW('b', 3, struct dma_buf_import_sync_file)`.
type DmaBufImportSyncFile = WriteOpcode<b'b', 3, DmaBufSyncFile>;

/// `UDMABUF_FLAGS_CLOEXEC`.
const UDMABUF_FLAGS_CLOEXEC: u32 = 1;

/// `DMA_BUF_SYNC_READ`.
pub(crate) const SYNC_READ: u64 = 1;
/// `DMA_BUF_SYNC_WRITE`.
pub(crate) const SYNC_WRITE: u64 = 2;
/// `DMA_BUF_SYNC_START`.
pub(crate) const SYNC_START: u64 = 0;
/// `DMA_BUF_SYNC_END`.
pub(crate) const SYNC_END: u64 = 4;

/// Takes ownership of an fd the kernel just returned.
fn owned_from_kernel(raw: RawFd) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "kernel returned a negative fd",
        ));
    }
    // SAFETY: the ioctl succeeded and the kernel installed `raw` as a new fd in our table that
    // nothing else owns; we take sole ownership of it here.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Allocates `len` bytes from the dma-buf heap open at `heap`; returns the dma-buf.
pub(crate) fn dma_heap_alloc(heap: BorrowedFd<'_>, len: u64) -> io::Result<OwnedFd> {
    let mut data = DmaHeapAllocationData {
        len,
        fd: 0,
        fd_flags: libc_flags::O_RDWR | libc_flags::O_CLOEXEC,
        heap_flags: 0,
    };
    // SAFETY: the opcode is DMA_HEAP_IOCTL_ALLOC, whose argument is a
    // struct dma_heap_allocation_data, which `DmaHeapAllocationData` mirrors exactly.
    unsafe { ioctl::ioctl(heap, Updater::<DmaHeapIoctlAlloc, _>::new(&mut data))? };
    owned_from_kernel(data.fd as RawFd)
}

/// Wraps `size` bytes at `offset` of a sealed memfd into a dma-buf through `/dev/udmabuf`.
pub(crate) fn udmabuf_create(
    udmabuf: BorrowedFd<'_>,
    memfd: BorrowedFd<'_>,
    offset: u64,
    size: u64,
) -> io::Result<OwnedFd> {
    let data = UdmabufCreate {
        memfd: memfd.as_raw_fd() as u32,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset,
        size,
    };
    // SAFETY: the opcode is UDMABUF_CREATE, whose argument is a struct udmabuf_create, which
    // `UdmabufCreate` mirrors exactly; the kernel only reads it. The new fd is the return value.
    let raw = unsafe { ioctl::ioctl(udmabuf, ReturnsFd(Setter::<UdmabufCreateOp, _>::new(data)))? };
    owned_from_kernel(raw)
}

/// `DMA_BUF_IOCTL_SYNC` with `flags` (a direction | START or END).
pub(crate) fn dma_buf_sync(dmabuf: BorrowedFd<'_>, flags: u64) -> io::Result<()> {
    // SAFETY: DMA_BUF_IOCTL_SYNC reads a struct dma_buf_sync, mirrored by `DmaBufSync`.
    unsafe {
        ioctl::ioctl(
            dmabuf,
            Setter::<DmaBufIoctlSync, _>::new(DmaBufSync { flags }),
        )
    }?;
    Ok(())
}

/// The DMA_BUF_SET_NAME ioctl: its argument is the pointer to the NUL-terminated name itself.
struct SetName<'a>(&'a CStr);

// SAFETY: the opcode is DMA_BUF_SET_NAME_B (= DMA_BUF_SET_NAME on 64-bit), which reads a
// NUL-terminated string (at most DMA_BUF_NAME_LEN bytes are copied) from the pointer passed as
// the argument and writes no user memory.
unsafe impl Ioctl for SetName<'_> {
    type Output = ();
    const IS_MUTATING: bool = false;
    const OPCODE: Opcode = DmaBufSetName::OPCODE;

    fn as_ptr(&mut self) -> *mut c_void {
        self.0.as_ptr() as *mut c_void
    }

    unsafe fn output_from_ptr(_: IoctlOutput, _: *mut c_void) -> rustix::io::Result<()> {
        Ok(())
    }
}

/// Wraps a setter-style ioctl whose return value is a new fd.
struct ReturnsFd<I>(I);

// SAFETY: delegates everything to the wrapped ioctl; only the output interpretation differs
// (the non-negative return value of a successful call is taken as the result).
unsafe impl<I: Ioctl> Ioctl for ReturnsFd<I> {
    type Output = RawFd;
    const IS_MUTATING: bool = I::IS_MUTATING;
    const OPCODE: Opcode = I::OPCODE;

    fn as_ptr(&mut self) -> *mut c_void {
        self.0.as_ptr()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<RawFd> {
        Ok(out)
    }
}

/// Names the dma-buf (visible in /sys/kernel/debug/dma_buf/bufinfo and /proc/PID/fdinfo).
pub(crate) fn dma_buf_set_name(dmabuf: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: see the `Ioctl` impl of `SetName`; `name` outlives the call.
    unsafe { ioctl::ioctl(dmabuf, SetName(name)) }?;
    Ok(())
}

/// Exports the dma-buf's current fences for `flags` (SYNC_READ/SYNC_WRITE) as a sync_file.
pub(crate) fn dma_buf_export_sync_file(dmabuf: BorrowedFd<'_>, flags: u32) -> io::Result<OwnedFd> {
    let mut data = DmaBufSyncFile { flags, fd: -1 };
    // SAFETY: DMA_BUF_IOCTL_EXPORT_SYNC_FILE reads and writes a
    // struct dma_buf_export_sync_file, mirrored by `DmaBufSyncFile`.
    unsafe { ioctl::ioctl(dmabuf, Updater::<DmaBufExportSyncFile, _>::new(&mut data))? };
    owned_from_kernel(data.fd)
}

/// Adds the fence of `sync_file` to the dma-buf for `flags` (SYNC_READ/SYNC_WRITE).
pub(crate) fn dma_buf_import_sync_file(
    dmabuf: BorrowedFd<'_>,
    flags: u32,
    sync_file: BorrowedFd<'_>,
) -> io::Result<()> {
    let data = DmaBufSyncFile {
        flags,
        fd: sync_file.as_raw_fd(),
    };
    // SAFETY: DMA_BUF_IOCTL_IMPORT_SYNC_FILE reads a struct dma_buf_import_sync_file,
    // mirrored by `DmaBufSyncFile`; the kernel takes its own reference to the fence.
    unsafe { ioctl::ioctl(dmabuf, Setter::<DmaBufImportSyncFile, _>::new(data)) }?;
    Ok(())
}

/// A shared mapping of a whole file (a dma-buf), unmapped on drop.
#[derive(Debug)]
pub(crate) struct MmapRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain shared memory owned by this value; access to the bytes goes
// through &self / &mut self, so the usual borrow rules prevent data races within the process.
unsafe impl Send for MmapRegion {}
// SAFETY: as above; shared references only give shared (read) access.
unsafe impl Sync for MmapRegion {}

impl MmapRegion {
    /// Maps `len` bytes of `fd` from offset 0, shared, readable and optionally writable.
    pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Self> {
        use rustix::mm::{MapFlags, ProtFlags};
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map 0 bytes",
            ));
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh mapping at an address the kernel chooses (null hint) cannot alias
        // any existing Rust object; it is owned by the returned value and unmapped in Drop.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(MmapRegion { ptr, len })
    }

    /// The mapped bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr/len describe a live mapping owned by self (unmapped only in Drop); the
        // memory may be changed by devices, which the caller brackets with DMA_BUF_IOCTL_SYNC.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable. Only call on a mapping created with `writable`.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice; &mut self gives exclusive access through this mapping.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for MmapRegion {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping created in map_shared, and no slice borrowed
        // from it can outlive self.
        if let Err(e) = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) } {
            log::warn!("munmap of a dma-buf mapping failed: {e}");
        }
    }
}

/// Open flags for the fd the heap returns (`O_RDWR | O_CLOEXEC`), from rustix's constants.
mod libc_flags {
    pub(super) const O_RDWR: u32 = rustix::fs::OFlags::RDWR.bits();
    pub(super) const O_CLOEXEC: u32 = rustix::fs::OFlags::CLOEXEC.bits();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_the_kernel_headers() {
        // Values computed from the kernel's _IOWR/_IOW macros on x86_64/aarch64.
        assert_eq!(DmaHeapIoctlAlloc::OPCODE.raw(), 0xc018_4800);
        assert_eq!(UdmabufCreateOp::OPCODE.raw(), 0x4018_7542);
        assert_eq!(DmaBufIoctlSync::OPCODE.raw(), 0x4008_6200);
        assert_eq!(DmaBufSetName::OPCODE.raw(), 0x4008_6201);
        assert_eq!(DmaBufExportSyncFile::OPCODE.raw(), 0xc008_6202);
        assert_eq!(DmaBufImportSyncFile::OPCODE.raw(), 0x4008_6203);
    }

    #[test]
    fn sync_on_a_memfd_is_rejected_not_a_crash() {
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        use std::os::fd::AsFd;
        assert!(dma_buf_sync(fd.as_fd(), SYNC_START | SYNC_READ).is_err());
        assert!(dma_buf_set_name(fd.as_fd(), c"x").is_err());
    }

    #[test]
    fn map_a_memfd() {
        use std::os::fd::AsFd;
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 8192).unwrap();
        let mut m = MmapRegion::map_shared(fd.as_fd(), 8192, true).unwrap();
        m.as_mut_slice()[100] = 7;
        assert_eq!(m.as_slice()[100], 7);
        assert_eq!(m.len(), 8192);
    }
}
