//! The zero-copy proof: which framebuffer is on the primary plane and whose memory backs it,
//! and what the display actually produced (vkms writeback), compared with the client's pixels.

use std::os::fd::{AsFd, BorrowedFd};

use cenalloc::{
    Buffer, CpuAccess, Fourcc, Layout, Modifier, PlaneLayout, SourceChoice, SourceKind,
};
use drm::buffer::{Buffer as _, DrmFourcc};

use drm::control::dumbbuffer::DumbBuffer;
use drm::control::{connector, framebuffer, plane, property, Device as _};
use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::Buffer as _;
use smithay::backend::drm::DrmDeviceFd;

/// The property `name` of a KMS object.
pub fn find_property(
    drm: &DrmDeviceFd,
    object: impl drm::control::ResourceHandle,
    name: &str,
) -> Result<(property::Handle, u64), String> {
    let props = drm
        .get_properties(object)
        .map_err(|e| format!("cannot read properties: {e}"))?;
    for (handle, value) in props.iter() {
        let info = drm
            .get_property(*handle)
            .map_err(|e| format!("cannot read property {handle:?}: {e}"))?;
        if info.name().to_bytes() == name.as_bytes() {
            return Ok((*handle, *value));
        }
    }
    Err(format!("no property {name}"))
}

/// The dma-buf inode behind a file descriptor (two fds of one dma-buf share it).
fn inode(fd: BorrowedFd<'_>) -> Result<u64, String> {
    rustix::fs::fstat(fd)
        .map(|s| s.st_ino)
        .map_err(|e| format!("fstat: {e}"))
}

/// The framebuffer `plane` scans out, what GETFB2 says of it, and the dma-buf behind its
/// first GEM handle (a PRIME export of the handle GETFB2 made).
fn plane_framebuffer(
    drm: &DrmDeviceFd,
    plane: plane::Handle,
) -> Result<
    (
        framebuffer::Handle,
        drm::control::framebuffer::PlanarInfo,
        std::os::fd::OwnedFd,
    ),
    String,
> {
    let info = drm.get_plane(plane).map_err(|e| format!("GETPLANE: {e}"))?;
    let fb = info
        .framebuffer()
        .ok_or("the primary plane has no framebuffer")?;
    let fb_info = drm
        .get_planar_framebuffer(fb)
        .map_err(|e| format!("GETFB2 on {fb:?}: {e}"))?;
    let gem = fb_info.buffers()[0].ok_or("GETFB2 returned no GEM handle")?;
    let exported = drm.buffer_to_prime_fd(gem, rustix::fs::OFlags::CLOEXEC.bits());
    // GETFB2 made a fresh handle for us; close it whatever happened.
    let _ = drm.close_buffer(gem);
    let fd = exported.map_err(|e| format!("PRIME export of the FB's GEM handle: {e}"))?;
    Ok((fb, fb_info, fd))
}

/// The framebuffer `plane` scans out and the inode of the dma-buf behind its first GEM
/// handle.
pub fn plane_backing(
    drm: &DrmDeviceFd,
    plane: plane::Handle,
) -> Result<(framebuffer::Handle, u64), String> {
    let (fb, _, fd) = plane_framebuffer(drm, plane)?;
    Ok((fb, inode(fd.as_fd())?))
}

/// The inode of a client's dma-buf (its first plane).
pub fn dmabuf_inode(client: &Dmabuf) -> Result<u64, String> {
    inode(
        client
            .handles()
            .next()
            .ok_or("client dma-buf without planes")?,
    )
}

/// Checks that the framebuffer scanned out by `plane` is backed by `client`'s dma-buf: GETFB2
/// on the plane's FB_ID gives a GEM handle whose PRIME export is the client's dma-buf, and a
/// PRIME import of the client's fd on the same DRM fd yields the handle the framebuffer was
/// created from (`fb_handles`). Returns a one-line description.
pub fn check_plane_backing(
    drm: &DrmDeviceFd,
    plane: plane::Handle,
    client: &Dmabuf,
    fb_handles: &[drm::buffer::Handle],
) -> Result<String, String> {
    let (fb, fb_ino) = plane_backing(drm, plane)?;
    let client_ino = dmabuf_inode(client)?;
    if fb_ino != client_ino {
        return Err(format!(
            "FB {fb:?} is backed by dma-buf inode {fb_ino}, the client's is {client_ino}"
        ));
    }
    let client_fd = client
        .handles()
        .next()
        .ok_or("client dma-buf without planes")?;
    // The exporter keeps its import handle open, so the kernel's per-file PRIME table maps the
    // client's dma-buf to it: do not close this handle.
    let imported = drm
        .prime_fd_to_buffer(client_fd)
        .map_err(|e| format!("PRIME import of the client's fd: {e}"))?;
    if !fb_handles.contains(&imported) {
        // A fresh handle: this import was ours alone, release it.
        let _ = drm.close_buffer(imported);
        return Err(format!(
            "PRIME import of the client's fd gives GEM {imported:?}, the FB was made from {fb_handles:?}"
        ));
    }
    Ok(format!(
        "FB {} <- GEM {} = PRIME import of client dma-buf (inode {client_ino})",
        u32::from(fb),
        u32::from(imported)
    ))
}

/// A vkms writeback connector and a buffer it writes frames into.
pub struct Writeback {
    drm: DrmDeviceFd,
    connector: connector::Handle,
    fb_prop: property::Handle,
    fence_prop: property::Handle,
    buffer: DumbBuffer,
    fb: framebuffer::Handle,
    size: (u32, u32),
}

impl Writeback {
    /// Prepares `connector` (a writeback connector) to capture `size` frames in XRGB8888.
    pub fn new(
        drm: &DrmDeviceFd,
        connector: connector::Handle,
        size: (u32, u32),
    ) -> Result<Self, String> {
        let (fb_prop, _) = find_property(drm, connector, "WRITEBACK_FB_ID")?;
        let (fence_prop, _) = find_property(drm, connector, "WRITEBACK_OUT_FENCE_PTR")?;
        let buffer = drm
            .create_dumb_buffer(size, DrmFourcc::Xrgb8888, 32)
            .map_err(|e| format!("writeback dumb buffer: {e}"))?;
        let fb = drm
            .add_framebuffer(&buffer, 24, 32)
            .map_err(|e| format!("writeback framebuffer: {e}"))?;
        Ok(Writeback {
            drm: drm.clone(),
            connector,
            fb_prop,
            fence_prop,
            buffer,
            fb,
            size,
        })
    }

    /// Queues one writeback job on the current frame, waits for its fence and returns the
    /// captured XRGB8888 rows (tightly packed); `None` if the kernel refuses the commit
    /// because the compositor is no longer DRM master (the seat has just paused the session).
    pub fn capture(&mut self, drm: &DrmDeviceFd) -> Result<Option<Vec<u8>>, String> {
        let fence = match cenalloc_drm::writeback::queue_job(
            drm,
            self.connector,
            self.fb_prop,
            self.fence_prop,
            self.fb,
        ) {
            Ok(fence) => fence,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
            Err(e) => return Err(format!("writeback commit: {e}")),
        };
        cenalloc_drm::writeback::wait_fence(&fence, std::time::Duration::from_secs(5))
            .map_err(|e| format!("writeback fence: {e}"))?;
        let (w, h) = self.size;
        let pitch = self.buffer.pitch() as usize;
        let map = drm
            .map_dumb_buffer(&mut self.buffer)
            .map_err(|e| format!("map writeback buffer: {e}"))?;
        let mut out = Vec::with_capacity(w as usize * h as usize * 4);
        for y in 0..h as usize {
            out.extend_from_slice(&map[y * pitch..y * pitch + w as usize * 4]);
        }
        Ok(Some(out))
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        let _ = self.drm.destroy_framebuffer(self.fb);
        let _ = self.drm.destroy_dumb_buffer(self.buffer);
    }
}

/// The client's pixels as (r, g, b) per pixel, read from its dma-buf through cenalloc, and
/// the frame number cenalloc's client draws into its first row.
pub fn client_rgb(dmabuf: &Dmabuf) -> Result<(Vec<[u8; 3]>, u32), String> {
    let code = dmabuf.format().code;
    let (w, h) = (dmabuf.width(), dmabuf.height());
    let stride = dmabuf.strides().next().ok_or("no planes")? as u64;
    let offset = dmabuf.offsets().next().ok_or("no planes")? as u64;
    let fd = dmabuf
        .handles()
        .next()
        .ok_or("no planes")?
        .try_clone_to_owned()
        .map_err(|e| format!("dup: {e}"))?;
    let out = dmabuf_rgb(fd, code, (w, h), offset, stride, "wayland client")?;
    // Frame counter: bits in the first 32 pixels of row 0 (white = 1).
    let frame = out
        .iter()
        .take(32)
        .fold(0u32, |acc, p| (acc << 1) | u32::from(p[0] > 0x7f));
    Ok((out, frame))
}

/// What the primary plane scans out, as (r, g, b) per pixel: the framebuffer's memory read
/// through a PRIME export of its GEM handle (GETFB2). For a composited frame this is the frame
/// the compositor composed.
pub fn plane_rgb(drm: &DrmDeviceFd, plane: plane::Handle) -> Result<Vec<[u8; 3]>, String> {
    let (_, fb_info, fd) = plane_framebuffer(drm, plane)?;
    let (w, h) = fb_info.size();
    let stride = u64::from(fb_info.pitches()[0]);
    let offset = u64::from(fb_info.offsets()[0]);
    dmabuf_rgb(
        fd,
        fb_info.pixel_format(),
        (w, h),
        offset,
        stride,
        "framebuffer",
    )
}

/// The (r, g, b) pixels of a single-plane RGB image in a dma-buf, mapped through cenalloc.
fn dmabuf_rgb(
    fd: std::os::fd::OwnedFd,
    code: Fourcc,
    (w, h): (u32, u32),
    offset: u64,
    stride: u64,
    what: &str,
) -> Result<Vec<[u8; 3]>, String> {
    let plane = PlaneLayout {
        offset,
        stride,
        size: stride * u64::from(h),
    };
    let size = offset + plane.size;
    let layout = Layout::new(Some(code), w, h, Modifier::LINEAR, &[plane], size)
        .map_err(|e| e.to_string())?;
    let source = SourceChoice {
        kind: SourceKind::Heap,
        name: what.into(),
        path: None,
    };
    let buffer = Buffer::from_fd(fd, layout, source).map_err(|e| e.to_string())?;
    let map = buffer.map(CpuAccess::Read).map_err(|e| e.to_string())?;
    let bytes = map.as_slice();
    let bpp = match code {
        Fourcc::Rgb565 => 2,
        _ => 4,
    };
    let mut out = Vec::with_capacity((w * h) as usize);
    for y in 0..h as usize {
        let start = offset as usize + y * stride as usize;
        let row = bytes
            .get(start..start + w as usize * bpp)
            .ok_or_else(|| format!("{what}: row {y} lies beyond the dma-buf"))?;
        for px in row.chunks_exact(bpp) {
            out.push(match code {
                Fourcc::Xrgb8888 | Fourcc::Argb8888 => [px[2], px[1], px[0]],
                Fourcc::Xbgr8888 | Fourcc::Abgr8888 => [px[0], px[1], px[2]],
                Fourcc::Rgb565 => {
                    let v = u16::from_le_bytes([px[0], px[1]]);
                    [
                        widen((v >> 11) & 0x1f, 31),
                        widen((v >> 5) & 0x3f, 63),
                        widen(v & 0x1f, 31),
                    ]
                }
                other => return Err(format!("cannot compare {other:?} pixels")),
            });
        }
    }
    Ok(out)
}

/// A `max`-scale channel value on the 8-bit scale, rounded to nearest: the exact conversion
/// (vkms reaches the same value through its 16-bit intermediate), not bit replication.
fn widen(value: u16, max: u16) -> u8 {
    ((u32::from(value) * 255 + u32::from(max) / 2) / u32::from(max)) as u8
}

/// The first pixel where a capture and the client's pixels differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Pixel index (row-major).
    pub index: usize,
    /// (r, g, b) the display produced.
    pub got: [u8; 3],
    /// (r, g, b) the client drew.
    pub want: [u8; 3],
}

/// Compares a writeback capture (XRGB8888 rows) with the client's pixels. Returns the number of
/// differing pixels and the first one.
pub fn compare(capture: &[u8], client: &[[u8; 3]]) -> (usize, Option<Mismatch>) {
    let mut diff = 0;
    let mut first = None;
    for (index, (px, want)) in capture.chunks_exact(4).zip(client).enumerate() {
        let got = [px[2], px[1], px[0]];
        if got != *want {
            diff += 1;
            first.get_or_insert(Mismatch {
                index,
                got,
                want: *want,
            });
        }
    }
    (diff, first)
}
