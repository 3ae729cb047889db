//! All `unsafe` of this crate: the V4L2 UAPI structures and ioctls, the media controller's
//! request ioctls, and the udmabuf ioctl used by the contiguity trial.
//!
//! Written by hand over `rustix::ioctl` rather than taken from a crate: v4l2r ≥ 0.0.7 generates
//! its bindings with bindgen against the build machine's kernel headers and does not build
//! against Debian bookworm's (6.1) headers; the handful of structures needed here are stable
//! UAPI, and every one has its size asserted against the kernel ABI
//! (`include/uapi/linux/videodev2.h`, `include/uapi/linux/media.h`,
//! `include/uapi/linux/udmabuf.h` of Linux 6.12, x86_64).
//!
//! Every wrapper here is safe: it takes typed, fully initialised structures and returns
//! `rustix::io::Result`.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::io;
use rustix::ioctl::{
    ioctl, Ioctl, IoctlOutput, Opcode, ReadOpcode, ReadWriteOpcode, Setter, Updater, WriteOpcode,
};

// ---------------------------------------------------------------------------------------------
// Constants (videodev2.h)

/// `V4L2_CAP_VIDEO_CAPTURE`
pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
/// `V4L2_CAP_VIDEO_OUTPUT`
pub const CAP_VIDEO_OUTPUT: u32 = 0x0000_0002;
/// `V4L2_CAP_VIDEO_CAPTURE_MPLANE`
pub const CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
/// `V4L2_CAP_VIDEO_OUTPUT_MPLANE`
pub const CAP_VIDEO_OUTPUT_MPLANE: u32 = 0x0000_2000;
/// `V4L2_CAP_VIDEO_M2M_MPLANE`
pub const CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
/// `V4L2_CAP_VIDEO_M2M`
pub const CAP_VIDEO_M2M: u32 = 0x0000_8000;
/// `V4L2_CAP_STREAMING`
pub const CAP_STREAMING: u32 = 0x0400_0000;
/// `V4L2_CAP_DEVICE_CAPS`
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`
pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
/// `V4L2_BUF_TYPE_VIDEO_OUTPUT`
pub const BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
/// `V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE`
pub const BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
/// `V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE`
pub const BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;

/// `V4L2_MEMORY_MMAP`
pub const MEMORY_MMAP: u32 = 1;
/// `V4L2_MEMORY_DMABUF`
pub const MEMORY_DMABUF: u32 = 4;

/// `V4L2_BUF_CAP_SUPPORTS_MMAP`
pub const BUF_CAP_SUPPORTS_MMAP: u32 = 1 << 0;
/// `V4L2_BUF_CAP_SUPPORTS_DMABUF`
pub const BUF_CAP_SUPPORTS_DMABUF: u32 = 1 << 2;

/// `V4L2_BUF_CAP_SUPPORTS_REQUESTS`: the queue takes buffers inside media requests.
pub const BUF_CAP_SUPPORTS_REQUESTS: u32 = 1 << 3;
/// `V4L2_BUF_FLAG_REQUEST_FD`: `request_fd` of the buffer is valid.
pub const BUF_FLAG_REQUEST_FD: u32 = 0x0080_0000;
/// `V4L2_CTRL_WHICH_REQUEST_VAL`: controls are set in the request given by `request_fd`.
pub const CTRL_WHICH_REQUEST_VAL: u32 = 0x0f01_0000;

/// `V4L2_FMT_FLAG_COMPRESSED`
pub const FMT_FLAG_COMPRESSED: u32 = 0x0001;

/// `V4L2_FIELD_NONE`
pub const FIELD_NONE: u32 = 1;

/// `V4L2_BUF_FLAG_ERROR`
pub const BUF_FLAG_ERROR: u32 = 0x0000_0040;
/// `V4L2_BUF_FLAG_LAST`
pub const BUF_FLAG_LAST: u32 = 0x0010_0000;

/// `V4L2_EVENT_EOS`
pub const EVENT_EOS: u32 = 2;
/// `V4L2_EVENT_SOURCE_CHANGE`
pub const EVENT_SOURCE_CHANGE: u32 = 5;

/// `V4L2_DEC_CMD_STOP`
pub const DEC_CMD_STOP: u32 = 1;
/// `V4L2_ENC_CMD_STOP`
pub const ENC_CMD_STOP: u32 = 1;

/// `VIDEO_MAX_PLANES`
pub const VIDEO_MAX_PLANES: usize = 8;

// ---------------------------------------------------------------------------------------------
// Structures

/// `struct v4l2_capability`
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_fmtdesc`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FmtDesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_pix_format`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `struct v4l2_plane_pix_format` (packed in the kernel; naturally aligned anyway)
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanePixFormat {
    pub sizeimage: u32,
    pub bytesperline: u32,
    pub reserved: [u16; 6],
}

/// `struct v4l2_pix_format_mplane` (packed in the kernel)
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PixFormatMplane {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub colorspace: u32,
    pub plane_fmt: [PlanePixFormat; VIDEO_MAX_PLANES],
    pub num_planes: u8,
    pub flags: u8,
    pub ycbcr_enc: u8,
    pub quantization: u8,
    pub xfer_func: u8,
    pub reserved: [u8; 7],
}

/// The `fmt` union of `struct v4l2_format` (200 bytes, 8-aligned because of
/// `struct v4l2_window`'s pointers).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub union FormatUnion {
    pub pix: PixFormat,
    pub pix_mp: PixFormatMplane,
    pub raw_data: [u8; 200],
}

/// `struct v4l2_format`
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Format {
    pub type_: u32,
    pub fmt: FormatUnion,
}

impl Format {
    /// An all-zero format of queue type `type_`.
    pub fn new(type_: u32) -> Self {
        Format {
            type_,
            fmt: FormatUnion { raw_data: [0; 200] },
        }
    }

    /// The single-planar view (valid for single-planar queue types).
    pub fn pix(&self) -> PixFormat {
        // SAFETY: every member of the union is plain old data valid for any bit pattern, and
        // the union is always fully initialised (it is created from `raw_data`).
        unsafe { self.fmt.pix }
    }

    /// The multi-planar view (valid for multi-planar queue types).
    pub fn pix_mp(&self) -> PixFormatMplane {
        // SAFETY: as in `pix`.
        unsafe { self.fmt.pix_mp }
    }

    /// Replaces the single-planar view.
    pub fn set_pix(&mut self, pix: PixFormat) {
        self.fmt.pix = pix;
    }

    /// Replaces the multi-planar view.
    pub fn set_pix_mp(&mut self, pix_mp: PixFormatMplane) {
        self.fmt.pix_mp = pix_mp;
    }
}

/// `struct v4l2_requestbuffers`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestBuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

/// `struct timeval` as used by `struct v4l2_buffer` on 64-bit.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// `struct v4l2_timecode`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// The `m` union of `struct v4l2_plane`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union PlaneM {
    pub mem_offset: u32,
    pub userptr: u64,
    pub fd: i32,
}

/// `struct v4l2_plane`
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Plane {
    pub bytesused: u32,
    pub length: u32,
    pub m: PlaneM,
    pub data_offset: u32,
    pub reserved: [u32; 11],
}

impl Default for Plane {
    fn default() -> Self {
        Plane {
            bytesused: 0,
            length: 0,
            m: PlaneM { userptr: 0 },
            data_offset: 0,
            reserved: [0; 11],
        }
    }
}

/// The `m` union of `struct v4l2_buffer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union BufferM {
    pub offset: u32,
    pub userptr: u64,
    pub planes: *mut Plane,
    pub fd: i32,
}

/// `struct v4l2_buffer`
#[repr(C)]
#[derive(Clone, Copy)]
pub struct V4l2Buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: Timeval,
    pub timecode: Timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: BufferM,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

/// `struct v4l2_exportbuffer`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportBuffer {
    pub type_: u32,
    pub index: u32,
    pub plane: u32,
    pub flags: u32,
    pub fd: i32,
    pub reserved: [u32; 11],
}

/// `struct v4l2_event_subscription`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EventSubscription {
    pub type_: u32,
    pub id: u32,
    pub flags: u32,
    pub reserved: [u32; 5],
}

/// `struct timespec` (64-bit).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

/// `struct v4l2_event` (the payload union as raw bytes; 8-aligned like the kernel's).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub type_: u32,
    pub u: EventData,
    pub pending: u32,
    pub sequence: u32,
    pub timestamp: Timespec,
    pub id: u32,
    pub reserved: [u32; 8],
}

/// The payload union of `struct v4l2_event`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct EventData {
    pub data: [u8; 64],
}

/// `struct v4l2_decoder_cmd` (the parameter union as raw words).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct DecoderCmd {
    pub cmd: u32,
    pub flags: u32,
    pub raw: [u32; 16],
}

/// `struct v4l2_encoder_cmd`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EncoderCmd {
    pub cmd: u32,
    pub flags: u32,
    pub raw: [u32; 8],
}

/// `struct v4l2_ext_control` (packed in the UAPI): one control with a pointer payload.
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ExtControl {
    pub id: u32,
    pub size: u32,
    pub reserved2: u32,
    pub ptr: *mut std::ffi::c_void,
}

/// `struct v4l2_ext_controls`
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExtControls {
    pub which: u32,
    pub count: u32,
    pub error_idx: u32,
    pub request_fd: i32,
    pub reserved: u32,
    pub controls: *mut ExtControl,
}

/// `struct udmabuf_create_item`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct UdmabufItem {
    pub memfd: u32,
    pub pad: u32,
    pub offset: u64,
    pub size: u64,
}

/// Header of `struct udmabuf_create_list` (the ioctl number is computed from it).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct UdmabufListHeader {
    flags: u32,
    count: u32,
}

// Sizes and offsets against the kernel ABI (x86_64 / any LP64).
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<StreamParm>() == 204);
    assert!(size_of::<Capability>() == 104);
    assert!(size_of::<FmtDesc>() == 64);
    assert!(size_of::<PixFormat>() == 48);
    assert!(size_of::<PlanePixFormat>() == 20);
    assert!(size_of::<PixFormatMplane>() == 192);
    assert!(size_of::<FormatUnion>() == 200);
    assert!(size_of::<Format>() == 208);
    assert!(offset_of!(Format, fmt) == 8);
    assert!(size_of::<RequestBuffers>() == 20);
    assert!(size_of::<Plane>() == 64);
    assert!(offset_of!(Plane, m) == 8);
    assert!(offset_of!(Plane, data_offset) == 16);
    assert!(size_of::<V4l2Buffer>() == 88);
    assert!(offset_of!(V4l2Buffer, timestamp) == 24);
    assert!(offset_of!(V4l2Buffer, sequence) == 56);
    assert!(offset_of!(V4l2Buffer, m) == 64);
    assert!(offset_of!(V4l2Buffer, length) == 72);
    assert!(offset_of!(V4l2Buffer, request_fd) == 80);
    assert!(size_of::<ExportBuffer>() == 64);
    assert!(size_of::<EventSubscription>() == 32);
    assert!(size_of::<Event>() == 136);
    assert!(offset_of!(Event, pending) == 72);
    assert!(offset_of!(Event, timestamp) == 80);
    assert!(align_of::<Event>() == 8);
    assert!(size_of::<DecoderCmd>() == 72);
    assert!(size_of::<EncoderCmd>() == 40);
    assert!(size_of::<UdmabufItem>() == 24);
    assert!(size_of::<ExtControl>() == 20);
    assert!(size_of::<ExtControls>() == 32);
    assert!(offset_of!(ExtControls, controls) == 24);
    assert!(size_of::<UdmabufListHeader>() == 8);
};

// ---------------------------------------------------------------------------------------------
// Ioctls

const V: u8 = b'V';

type Rw<const N: u8, T> = ReadWriteOpcode<V, N, T>;

/// VIDIOC_QUERYCAP
pub fn querycap(fd: BorrowedFd<'_>) -> io::Result<Capability> {
    // SAFETY: VIDIOC_QUERYCAP is _IOR('V', 0, struct v4l2_capability); `Capability` matches it
    // and any bit pattern is valid for it.
    unsafe {
        ioctl(
            fd,
            rustix::ioctl::Getter::<ReadOpcode<V, 0, Capability>, Capability>::new(),
        )
    }
}

/// VIDIOC_ENUM_FMT
pub fn enum_fmt(fd: BorrowedFd<'_>, desc: &mut FmtDesc) -> io::Result<()> {
    // SAFETY: _IOWR('V', 2, struct v4l2_fmtdesc); `desc` is a valid, exclusive v4l2_fmtdesc.
    unsafe { ioctl(fd, Updater::<Rw<2, FmtDesc>, FmtDesc>::new(desc)) }
}

/// VIDIOC_G_FMT
pub fn g_fmt(fd: BorrowedFd<'_>, fmt: &mut Format) -> io::Result<()> {
    // SAFETY: _IOWR('V', 4, struct v4l2_format); `fmt` is a valid, exclusive v4l2_format.
    unsafe { ioctl(fd, Updater::<Rw<4, Format>, Format>::new(fmt)) }
}

/// VIDIOC_S_FMT
pub fn s_fmt(fd: BorrowedFd<'_>, fmt: &mut Format) -> io::Result<()> {
    // SAFETY: _IOWR('V', 5, struct v4l2_format); as in g_fmt.
    unsafe { ioctl(fd, Updater::<Rw<5, Format>, Format>::new(fmt)) }
}

/// VIDIOC_TRY_FMT
pub fn try_fmt(fd: BorrowedFd<'_>, fmt: &mut Format) -> io::Result<()> {
    // SAFETY: _IOWR('V', 64, struct v4l2_format); as in g_fmt.
    unsafe { ioctl(fd, Updater::<Rw<64, Format>, Format>::new(fmt)) }
}

/// `struct v4l2_streamparm` with its union read as `struct v4l2_captureparm` (the member
/// capture queues use), padded to the union's 200 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StreamParm {
    /// `V4L2_BUF_TYPE_*`.
    pub type_: u32,
    /// `V4L2_CAP_TIMEPERFRAME` when the driver takes a frame interval.
    pub capability: u32,
    /// `capturemode`.
    pub capturemode: u32,
    /// Seconds per frame: numerator.
    pub numerator: u32,
    /// Seconds per frame: denominator.
    pub denominator: u32,
    /// `extendedmode`.
    pub extendedmode: u32,
    /// `readbuffers`.
    pub readbuffers: u32,
    /// Reserved, zero.
    pub reserved: [u32; 4],
    /// The rest of the 200-byte union.
    pub padding: [u8; 160],
}

/// `V4L2_CAP_TIMEPERFRAME`.
pub const CAP_TIMEPERFRAME: u32 = 0x1000;

/// VIDIOC_S_PARM
pub fn s_parm(fd: BorrowedFd<'_>, parm: &mut StreamParm) -> io::Result<()> {
    // SAFETY: _IOWR('V', 22, struct v4l2_streamparm); `parm` has its size (204 bytes, checked
    // by a test) and layout for the capture member.
    unsafe { ioctl(fd, Updater::<Rw<22, StreamParm>, StreamParm>::new(parm)) }
}

/// VIDIOC_REQBUFS
pub fn reqbufs(fd: BorrowedFd<'_>, req: &mut RequestBuffers) -> io::Result<()> {
    // SAFETY: _IOWR('V', 8, struct v4l2_requestbuffers); `req` matches it.
    unsafe {
        ioctl(
            fd,
            Updater::<Rw<8, RequestBuffers>, RequestBuffers>::new(req),
        )
    }
}

/// A `struct v4l2_buffer` with its plane array, ready for QUERYBUF/QBUF/DQBUF. The planes
/// pointer is set right before each ioctl, so the value can be moved freely.
#[derive(Clone, Copy)]
pub struct BufferWithPlanes {
    /// The buffer; `m.planes`/`length` are managed for multi-planar types.
    pub buf: V4l2Buffer,
    /// The planes (multi-planar types only).
    pub planes: [Plane; VIDEO_MAX_PLANES],
}

impl BufferWithPlanes {
    /// A zeroed buffer of queue type `type_` and memory `memory`.
    pub fn new(type_: u32, memory: u32, index: u32) -> Self {
        BufferWithPlanes {
            buf: V4l2Buffer {
                index,
                type_,
                bytesused: 0,
                flags: 0,
                field: 0,
                timestamp: Timeval::default(),
                timecode: Timecode::default(),
                sequence: 0,
                memory,
                m: BufferM { userptr: 0 },
                length: 0,
                reserved2: 0,
                request_fd: 0,
            },
            planes: [Plane::default(); VIDEO_MAX_PLANES],
        }
    }

    /// True for multi-planar queue types.
    pub fn is_mplane(&self) -> bool {
        is_mplane(self.buf.type_)
    }

    /// The single-planar dma-buf fd field.
    pub fn set_fd(&mut self, fd: RawFd) {
        self.buf.m.fd = fd;
    }

    /// Sets plane `i`'s dma-buf fd (multi-planar).
    pub fn set_plane_fd(&mut self, i: usize, fd: RawFd) {
        self.planes[i].m.fd = fd;
    }

    fn prepare(&mut self) {
        if self.is_mplane() {
            self.buf.m.planes = self.planes.as_mut_ptr();
            if self.buf.length == 0 || self.buf.length as usize > VIDEO_MAX_PLANES {
                self.buf.length = VIDEO_MAX_PLANES as u32;
            }
        }
    }

    fn finish(&mut self) {
        if self.is_mplane() {
            self.buf.m.userptr = 0;
        }
    }
}

impl std::fmt::Debug for BufferWithPlanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferWithPlanes")
            .field("index", &self.buf.index)
            .field("type", &self.buf.type_)
            .field("flags", &self.buf.flags)
            .field("bytesused", &self.buf.bytesused)
            .finish()
    }
}

/// True for the multi-planar buffer types.
pub fn is_mplane(type_: u32) -> bool {
    type_ == BUF_TYPE_VIDEO_CAPTURE_MPLANE || type_ == BUF_TYPE_VIDEO_OUTPUT_MPLANE
}

fn buffer_ioctl<const N: u8>(fd: BorrowedFd<'_>, b: &mut BufferWithPlanes) -> io::Result<()> {
    b.prepare();
    // SAFETY: QUERYBUF (9), QBUF (15) and DQBUF (17) are _IOWR('V', N, struct v4l2_buffer);
    // `b.buf` matches it. For multi-planar types `prepare` pointed `m.planes` at `b.planes`
    // (VIDEO_MAX_PLANES entries, `length` never more), which lives, exclusively borrowed, for
    // the duration of the call; the pointer is cleared again by `finish`.
    let r = unsafe {
        ioctl(
            fd,
            Updater::<Rw<N, V4l2Buffer>, V4l2Buffer>::new(&mut b.buf),
        )
    };
    b.finish();
    r
}

/// VIDIOC_QUERYBUF
pub fn querybuf(fd: BorrowedFd<'_>, b: &mut BufferWithPlanes) -> io::Result<()> {
    buffer_ioctl::<9>(fd, b)
}

/// VIDIOC_QBUF
pub fn qbuf(fd: BorrowedFd<'_>, b: &mut BufferWithPlanes) -> io::Result<()> {
    buffer_ioctl::<15>(fd, b)
}

/// VIDIOC_DQBUF
pub fn dqbuf(fd: BorrowedFd<'_>, b: &mut BufferWithPlanes) -> io::Result<()> {
    buffer_ioctl::<17>(fd, b)
}

/// VIDIOC_EXPBUF: exports plane `plane` of buffer `index` as a dma-buf.
pub fn expbuf(fd: BorrowedFd<'_>, type_: u32, index: u32, plane: u32) -> io::Result<OwnedFd> {
    let mut e = ExportBuffer {
        type_,
        index,
        plane,
        flags: (rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::RDWR).bits(),
        ..Default::default()
    };
    // SAFETY: _IOWR('V', 16, struct v4l2_exportbuffer); `e` matches it.
    unsafe {
        ioctl(
            fd,
            Updater::<Rw<16, ExportBuffer>, ExportBuffer>::new(&mut e),
        )?
    };
    // SAFETY: on success the kernel returned a new file descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(e.fd) })
}

/// VIDIOC_STREAMON
pub fn streamon(fd: BorrowedFd<'_>, type_: u32) -> io::Result<()> {
    // SAFETY: _IOW('V', 18, int): the kernel reads one int, the buffer type.
    unsafe {
        ioctl(
            fd,
            Setter::<WriteOpcode<V, 18, i32>, i32>::new(type_ as i32),
        )
    }
}

/// VIDIOC_STREAMOFF
pub fn streamoff(fd: BorrowedFd<'_>, type_: u32) -> io::Result<()> {
    // SAFETY: _IOW('V', 19, int): as in streamon.
    unsafe {
        ioctl(
            fd,
            Setter::<WriteOpcode<V, 19, i32>, i32>::new(type_ as i32),
        )
    }
}

/// VIDIOC_SUBSCRIBE_EVENT
pub fn subscribe_event(fd: BorrowedFd<'_>, type_: u32, id: u32) -> io::Result<()> {
    let sub = EventSubscription {
        type_,
        id,
        ..Default::default()
    };
    // SAFETY: _IOW('V', 90, struct v4l2_event_subscription); `sub` matches it.
    unsafe {
        ioctl(
            fd,
            Setter::<WriteOpcode<V, 90, EventSubscription>, EventSubscription>::new(sub),
        )
    }
}

/// VIDIOC_DQEVENT
pub fn dqevent(fd: BorrowedFd<'_>) -> io::Result<Event> {
    // SAFETY: _IOR('V', 89, struct v4l2_event); `Event` matches it and any bit pattern is
    // valid for it.
    unsafe {
        ioctl(
            fd,
            rustix::ioctl::Getter::<ReadOpcode<V, 89, Event>, Event>::new(),
        )
    }
}

/// VIDIOC_DECODER_CMD
pub fn decoder_cmd(fd: BorrowedFd<'_>, cmd: u32) -> io::Result<()> {
    let mut c = DecoderCmd {
        cmd,
        ..Default::default()
    };
    // SAFETY: _IOWR('V', 96, struct v4l2_decoder_cmd); `c` matches it.
    unsafe { ioctl(fd, Updater::<Rw<96, DecoderCmd>, DecoderCmd>::new(&mut c)) }
}

/// VIDIOC_ENCODER_CMD
pub fn encoder_cmd(fd: BorrowedFd<'_>, cmd: u32) -> io::Result<()> {
    let mut c = EncoderCmd {
        cmd,
        ..Default::default()
    };
    // SAFETY: _IOWR('V', 77, struct v4l2_encoder_cmd); `c` matches it.
    unsafe { ioctl(fd, Updater::<Rw<77, EncoderCmd>, EncoderCmd>::new(&mut c)) }
}

/// VIDIOC_S_EXT_CTRLS of one compound control `id` whose value is `payload`, set inside the
/// media request `request` (applied when the request runs).
pub fn s_ext_ctrl_in_request(
    fd: BorrowedFd<'_>,
    request: BorrowedFd<'_>,
    id: u32,
    payload: &mut [u8],
) -> io::Result<()> {
    let mut control = ExtControl {
        id,
        size: u32::try_from(payload.len()).map_err(|_| io::Errno::INVAL)?,
        reserved2: 0,
        ptr: payload.as_mut_ptr().cast(),
    };
    let mut controls = ExtControls {
        which: CTRL_WHICH_REQUEST_VAL,
        count: 1,
        error_idx: 0,
        request_fd: raw(request),
        reserved: 0,
        controls: &mut control,
    };
    // SAFETY: _IOWR('V', 72, struct v4l2_ext_controls); `controls` matches it and points at
    // one `struct v4l2_ext_control` whose `ptr` points at `size` bytes of `payload`; both
    // outlive the call, and the kernel writes no more than `size` bytes back.
    unsafe {
        ioctl(
            fd,
            Updater::<Rw<72, ExtControls>, ExtControls>::new(&mut controls),
        )
    }
}

/// MEDIA_IOC_REQUEST_ALLOC on a media device: a new request fd.
pub fn media_request_alloc(media: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: _IOR('|', 0x05, int): the kernel writes one int, the new request's fd.
    let fd = unsafe {
        ioctl(
            media,
            rustix::ioctl::Getter::<ReadOpcode<b'|', 0x05, i32>, i32>::new(),
        )
    }?;
    if fd < 0 {
        return Err(io::Errno::BADF);
    }
    // SAFETY: on success the kernel installed a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// MEDIA_REQUEST_IOC_QUEUE on a request fd.
pub fn media_request_queue(request: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: _IO('|', 0x80): no argument.
    unsafe {
        ioctl(
            request,
            rustix::ioctl::NoArg::<rustix::ioctl::NoneOpcode<b'|', 0x80, ()>>::new(),
        )
    }
}

/// MEDIA_REQUEST_IOC_REINIT on a request fd.
pub fn media_request_reinit(request: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: _IO('|', 0x81): no argument.
    unsafe {
        ioctl(
            request,
            rustix::ioctl::NoArg::<rustix::ioctl::NoneOpcode<b'|', 0x81, ()>>::new(),
        )
    }
}

/// UDMABUF_CREATE_LIST with a variable number of items; returns the new dma-buf.
struct UdmabufCreateList<'a> {
    header_and_items: &'a mut [u64],
}

// SAFETY: the opcode is UDMABUF_CREATE_LIST (_IOW('u', 0x43, struct udmabuf_create_list)),
// the pointer refers to a header followed by `count` items laid out as the kernel expects
// (built by `udmabuf_create_list`), and the positive return value is a new fd.
unsafe impl Ioctl for UdmabufCreateList<'_> {
    type Output = OwnedFd;
    const IS_MUTATING: bool = false;
    const OPCODE: Opcode = Opcode::write::<UdmabufListHeader>(b'u', 0x43);

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        self.header_and_items.as_mut_ptr().cast()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut std::ffi::c_void,
    ) -> io::Result<Self::Output> {
        // SAFETY: the caller (rustix) only calls this on success, when `out` is a new fd.
        Ok(OwnedFd::from_raw_fd(out))
    }
}

/// Creates a dma-buf from `items` (memfd ranges) through /dev/udmabuf.
pub fn udmabuf_create_list(udmabuf: BorrowedFd<'_>, items: &[UdmabufItem]) -> io::Result<OwnedFd> {
    // Header (one u64: flags = 0x1 CLOEXEC, count) then 3 u64 per item.
    let mut words = vec![0u64; 1 + 3 * items.len()];
    let count = u32::try_from(items.len()).map_err(|_| io::Errno::INVAL)?;
    words[0] = 0x01 | (u64::from(count) << 32); // UDMABUF_FLAGS_CLOEXEC, little endian
    for (i, it) in items.iter().enumerate() {
        words[1 + 3 * i] = u64::from(it.memfd);
        words[2 + 3 * i] = it.offset;
        words[3 + 3 * i] = it.size;
    }
    // SAFETY: see the `Ioctl` impl above; `words` outlives the call.
    unsafe {
        ioctl(
            udmabuf,
            UdmabufCreateList {
                header_and_items: &mut words,
            },
        )
    }
}

/// The raw fd of a borrowed fd, for the fd fields of V4L2 structures.
pub fn raw(fd: impl AsFd) -> RawFd {
    use std::os::fd::AsRawFd;
    fd.as_fd().as_raw_fd()
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `struct v4l2_format` as a driver could fill it: any bytes in the union, any queue
        /// type, read through both views.
        #[test]
        fn format_struct_from_arbitrary_bytes(
            type_ in any::<u32>(),
            bytes in proptest::collection::vec(any::<u8>(), 200),
        ) {
            let mut raw = [0u8; 200];
            raw.copy_from_slice(&bytes);
            let f = Format {
                type_,
                fmt: FormatUnion { raw_data: raw },
            };
            let pix = f.pix();
            let mp = f.pix_mp();
            let _ = crate::PixelFormat(pix.pixelformat).to_string();
            let _ = crate::v4l2_to_drm(crate::PixelFormat(mp.pixelformat));
            let planes = mp.plane_fmt;
            let n = usize::from(mp.num_planes).min(planes.len());
            for p in &planes[..n] {
                let (bpl, size) = (p.bytesperline, p.sizeimage);
                let _ = (u64::from(bpl), u64::from(size));
            }
            let _ = is_mplane(type_);
        }
    }
}
