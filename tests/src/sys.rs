//! The test crate's only `unsafe`: two allocation ioctls, VIDIOC_S_CTRL and mmap.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

use rustix::ioctl::{ioctl, Ioctl, IoctlOutput, Opcode, ReadWriteOpcode, Updater};

#[repr(C)]
struct DmaHeapAllocationData {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}
const _: () = assert!(std::mem::size_of::<DmaHeapAllocationData>() == 24);

#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}
const _: () = assert!(std::mem::size_of::<UdmabufCreate>() == 24);

const O_RDWR: u32 = 0o2;
const O_CLOEXEC: u32 = 0o2000000;

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

/// UDMABUF_CREATE: a write ioctl whose return value is the new dma-buf fd.
struct UdmabufCreateIoctl(UdmabufCreate);

// SAFETY: the opcode is _IOW('u', 0x42, struct udmabuf_create), the pointer is to a struct
// of that layout, and the kernel only reads it.
unsafe impl Ioctl for UdmabufCreateIoctl {
    type Output = OwnedFd;
    const IS_MUTATING: bool = false;
    const OPCODE: Opcode = Opcode::write::<UdmabufCreate>(b'u', 0x42);

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        (&mut self.0 as *mut UdmabufCreate).cast()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut std::ffi::c_void,
    ) -> rustix::io::Result<OwnedFd> {
        // SAFETY: on success UDMABUF_CREATE returns a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(out) })
    }
}

pub fn udmabuf_create(
    dev: BorrowedFd<'_>,
    memfd: BorrowedFd<'_>,
    size: u64,
) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let create = UdmabufCreate {
        memfd: memfd.as_raw_fd() as u32,
        flags: 1, // UDMABUF_FLAGS_CLOEXEC
        offset: 0,
        size,
    };
    // SAFETY: see the Ioctl impl above.
    Ok(unsafe { ioctl(dev, UdmabufCreateIoctl(create))? })
}

#[repr(C)]
struct V4l2Control {
    id: u32,
    value: i32,
}
const _: () = assert!(std::mem::size_of::<V4l2Control>() == 8);

/// VIDIOC_S_CTRL: sets control `id` of a V4L2 node to `value`.
pub fn v4l2_s_ctrl(dev: BorrowedFd<'_>, id: u32, value: i32) -> std::io::Result<()> {
    let mut control = V4l2Control { id, value };
    // SAFETY: VIDIOC_S_CTRL is _IOWR('V', 28, struct v4l2_control); `control` has that
    // layout (size asserted above) and lives across the call.
    unsafe {
        ioctl(
            dev,
            Updater::<ReadWriteOpcode<b'V', 28, V4l2Control>, _>::new(&mut control),
        )?;
    }
    Ok(())
}

/// A shared read-write mapping, unmapped on drop.
pub struct Mapping {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

impl Mapping {
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> std::io::Result<Self> {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        // SAFETY: a fresh shared mapping of the fd at a kernel-chosen address; no existing
        // memory is affected.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        Ok(Mapping { ptr, len })
    }

    #[allow(clippy::mut_from_ref)]
    pub fn bytes_mut(&self) -> &mut [u8] {
        // SAFETY: ptr/len describe a live mapping owned by self; tests use one view at a time.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in new().
        unsafe {
            let _ = rustix::mm::munmap(self.ptr, self.len);
        }
    }
}
