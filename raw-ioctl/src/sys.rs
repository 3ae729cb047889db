//! The crate's only `unsafe`: the ioctls issued directly over `rustix::ioctl`, the layouts of
//! their argument structures (sizes asserted against the kernel ABI of
//! `include/uapi/linux/{dma-heap,dma-buf,udmabuf,videodev2}.h`, x86_64), and shared mappings.
//!
//! Every function here is safe to call: it takes typed, fully initialised values and returns
//! `std::io::Result`.

use std::ffi::{c_void, CStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::ioctl::{
    ioctl, CompileTimeOpcode, Ioctl, IoctlOutput, Opcode, ReadWriteOpcode, Updater, WriteOpcode,
};

const O_RDWR: u32 = 0o2;
const O_CLOEXEC: u32 = 0o2000000;

// ---------------------------------------------------------------------------------------------
// dma-buf heaps and udmabuf

/// `struct dma_heap_allocation_data`.
#[repr(C)]
struct DmaHeapAllocationData {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}
const _: () = assert!(std::mem::size_of::<DmaHeapAllocationData>() == 24);

/// DMA_HEAP_IOCTL_ALLOC: `len` bytes from the heap whose node is open as `heap`, as a
/// read-write, close-on-exec dma-buf.
pub(crate) fn dma_heap_alloc(heap: BorrowedFd<'_>, len: u64) -> std::io::Result<OwnedFd> {
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

/// `struct udmabuf_create`.
#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}
const _: () = assert!(std::mem::size_of::<UdmabufCreate>() == 24);

/// UDMABUF_FLAGS_CLOEXEC.
const UDMABUF_FLAGS_CLOEXEC: u32 = 1;

/// UDMABUF_CREATE: a write ioctl whose return value is the new dma-buf fd.
struct UdmabufCreateIoctl(UdmabufCreate);

// SAFETY: the opcode is _IOW('u', 0x42, struct udmabuf_create), the pointer is to a struct
// of that layout, and the kernel only reads it.
unsafe impl Ioctl for UdmabufCreateIoctl {
    type Output = OwnedFd;
    const IS_MUTATING: bool = false;
    const OPCODE: Opcode = Opcode::write::<UdmabufCreate>(b'u', 0x42);

    fn as_ptr(&mut self) -> *mut c_void {
        (&mut self.0 as *mut UdmabufCreate).cast()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<OwnedFd> {
        // SAFETY: on success UDMABUF_CREATE returns a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(out) })
    }
}

/// UDMABUF_CREATE: the first `size` bytes of the sealed `memfd` as a close-on-exec dma-buf,
/// asked of /dev/udmabuf open as `dev`.
pub(crate) fn udmabuf_create(
    dev: BorrowedFd<'_>,
    memfd: BorrowedFd<'_>,
    size: u64,
) -> std::io::Result<OwnedFd> {
    let create = UdmabufCreate {
        memfd: memfd.as_raw_fd() as u32,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset: 0,
        size,
    };
    // SAFETY: see the Ioctl impl above.
    Ok(unsafe { ioctl(dev, UdmabufCreateIoctl(create))? })
}

// ---------------------------------------------------------------------------------------------
// dma-buf

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

/// DMA_BUF_SET_NAME_B: names the dma-buf (the name shows in /sys/kernel/debug/dma_buf and
/// fdinfo).
pub(crate) fn dma_buf_set_name(dmabuf: BorrowedFd<'_>, name: &CStr) -> std::io::Result<()> {
    // SAFETY: see `SetName`; `name` outlives the call.
    unsafe { ioctl(dmabuf, SetName(name)) }?;
    Ok(())
}

/// A shared read-write mapping of the start of a dma-buf, unmapped on drop.
pub(crate) struct Mapping {
    ptr: *mut c_void,
    len: usize,
}

impl Mapping {
    /// Maps the first `len` (> 0) bytes of `fd` shared, readable and writable.
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> std::io::Result<Mapping> {
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

    /// The mapped bytes.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr/len describe a live mapping owned by self, and the exclusive borrow of
        // self makes this the only view of it in this process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast(), self.len) }
    }

    /// Writes `value` at `offset` (< len) with a volatile store: the write happens even though
    /// nothing in this process reads it back (it exists to make the kernel back the page).
    pub(crate) fn write_volatile(&mut self, offset: usize, value: u8) {
        assert!(offset < self.len, "offset {offset} outside the mapping");
        // SAFETY: `offset < len`, inside the writable mapping owned by self.
        unsafe { self.ptr.cast::<u8>().add(offset).write_volatile(value) };
    }

    /// Unmaps, reporting munmap's error (drop ignores it).
    pub(crate) fn unmap(self) -> std::io::Result<()> {
        let (ptr, len) = (self.ptr, self.len);
        std::mem::forget(self);
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, no longer used (self is
        // consumed and its drop skipped).
        unsafe { rustix::mm::munmap(ptr, len) }?;
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`; no view of it outlives self.
        unsafe {
            let _ = rustix::mm::munmap(self.ptr, self.len);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// V4L2

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE`.
pub(crate) const BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
/// `V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE`.
pub(crate) const BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;
/// `V4L2_FIELD_NONE`: progressive frames.
pub(crate) const FIELD_NONE: u32 = 1;
/// `VIDEO_MAX_PLANES`.
const VIDEO_MAX_PLANES: usize = 8;

/// `struct v4l2_control`.
#[repr(C)]
struct Control {
    id: u32,
    value: i32,
}
const _: () = assert!(std::mem::size_of::<Control>() == 8);

/// VIDIOC_S_CTRL: sets control `id` of the V4L2 node open as `dev` to `value`.
pub(crate) fn v4l2_s_ctrl(dev: BorrowedFd<'_>, id: u32, value: i32) -> std::io::Result<()> {
    let mut control = Control { id, value };
    // SAFETY: VIDIOC_S_CTRL is _IOWR('V', 28, struct v4l2_control); `control` has that
    // layout (size asserted above) and lives across the call.
    unsafe {
        ioctl(
            dev,
            Updater::<ReadWriteOpcode<b'V', 28, Control>, _>::new(&mut control),
        )?;
    }
    Ok(())
}

/// `struct v4l2_fmtdesc`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct FmtDesc {
    pub(crate) index: u32,
    pub(crate) type_: u32,
    pub(crate) flags: u32,
    pub(crate) description: [u8; 32],
    pub(crate) pixelformat: u32,
    pub(crate) mbus_code: u32,
    pub(crate) reserved: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<FmtDesc>() == 64);

/// VIDIOC_ENUM_FMT: the format `desc.index` of queue type `desc.type_`.
pub(crate) fn v4l2_enum_fmt(fd: BorrowedFd<'_>, desc: &mut FmtDesc) -> std::io::Result<()> {
    // SAFETY: _IOWR('V', 2, struct v4l2_fmtdesc); `desc` has that layout (size asserted
    // above) and is exclusively borrowed across the call.
    unsafe {
        ioctl(
            fd,
            Updater::<ReadWriteOpcode<b'V', 2, FmtDesc>, _>::new(desc),
        )
    }?;
    Ok(())
}

/// `struct v4l2_pix_format`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct PixFormat {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixelformat: u32,
    pub(crate) field: u32,
    pub(crate) bytesperline: u32,
    pub(crate) sizeimage: u32,
    pub(crate) colorspace: u32,
    pub(crate) priv_: u32,
    pub(crate) flags: u32,
    pub(crate) ycbcr_enc: u32,
    pub(crate) quantization: u32,
    pub(crate) xfer_func: u32,
}
const _: () = assert!(std::mem::size_of::<PixFormat>() == 48);

/// `struct v4l2_plane_pix_format` (packed in the kernel; naturally aligned anyway).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub(crate) struct PlanePixFormat {
    pub(crate) sizeimage: u32,
    pub(crate) bytesperline: u32,
    pub(crate) reserved: [u16; 6],
}
const _: () = assert!(std::mem::size_of::<PlanePixFormat>() == 20);

/// `struct v4l2_pix_format_mplane` (packed in the kernel).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub(crate) struct PixFormatMplane {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixelformat: u32,
    pub(crate) field: u32,
    pub(crate) colorspace: u32,
    pub(crate) plane_fmt: [PlanePixFormat; VIDEO_MAX_PLANES],
    pub(crate) num_planes: u8,
    pub(crate) flags: u8,
    pub(crate) ycbcr_enc: u8,
    pub(crate) quantization: u8,
    pub(crate) xfer_func: u8,
    pub(crate) reserved: [u8; 7],
}
const _: () = assert!(std::mem::size_of::<PixFormatMplane>() == 192);

/// The `fmt` union of `struct v4l2_format` (200 bytes, 8-aligned because of
/// `struct v4l2_window`'s pointers).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
union FormatUnion {
    pix: PixFormat,
    pix_mp: PixFormatMplane,
    raw_data: [u8; 200],
}
const _: () = assert!(std::mem::size_of::<FormatUnion>() == 200);

/// `struct v4l2_format`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Format {
    type_: u32,
    fmt: FormatUnion,
}
const _: () = assert!(std::mem::size_of::<Format>() == 208);

impl Format {
    /// An all-zero format of queue type `type_`.
    pub(crate) fn new(type_: u32) -> Format {
        Format {
            type_,
            fmt: FormatUnion { raw_data: [0; 200] },
        }
    }

    /// The single-planar view (meaningful for single-planar queue types).
    pub(crate) fn pix(&self) -> PixFormat {
        // SAFETY: every member of the union is plain old data valid for any bit pattern, and
        // the union is always fully initialised (it is created from `raw_data`).
        unsafe { self.fmt.pix }
    }

    /// The multi-planar view (meaningful for multi-planar queue types).
    pub(crate) fn pix_mp(&self) -> PixFormatMplane {
        // SAFETY: as in `pix`.
        unsafe { self.fmt.pix_mp }
    }

    /// Replaces the single-planar view.
    pub(crate) fn set_pix(&mut self, pix: PixFormat) {
        self.fmt.pix = pix;
    }

    /// Replaces the multi-planar view.
    pub(crate) fn set_pix_mp(&mut self, pix_mp: PixFormatMplane) {
        self.fmt.pix_mp = pix_mp;
    }
}

/// VIDIOC_TRY_FMT: what the driver would make of `fmt`, written back into it.
pub(crate) fn v4l2_try_fmt(fd: BorrowedFd<'_>, fmt: &mut Format) -> std::io::Result<()> {
    // SAFETY: _IOWR('V', 64, struct v4l2_format); `fmt` has that layout (size asserted above)
    // and is exclusively borrowed across the call.
    unsafe {
        ioctl(
            fd,
            Updater::<ReadWriteOpcode<b'V', 64, Format>, _>::new(fmt),
        )
    }?;
    Ok(())
}
