//! Allocating on the device itself and exporting a dma-buf: a dumb buffer + PRIME export on
//! primary nodes that must be the exporter (virtio-gpu without 3D refuses foreign dma-bufs),
//! or a GBM buffer object (Mesa's libgbm) on render devices with a GBM driver.

use std::os::fd::{AsFd as _, OwnedFd};

use cenalloc::format::FormatInfo;
use cenalloc::{
    BufferKind, BufferRequest, ConstraintKind, Exported, Fourcc, Layout, MergedConstraints,
    Modifier, PlaneLayout, Usage,
};
use drm::buffer::Handle as GemHandle;
use drm::control::Device as _;

use crate::import::GemRef;
use crate::probe::fourcc_code_name;
use crate::{DrmDevice, DrmError, NodeKind};

/// DRM_CLOEXEC | DRM_RDWR for PRIME export (include/uapi/drm/drm.h: both are the O_ flags).
const PRIME_FLAGS: u32 = rustix::fs::OFlags::CLOEXEC.bits() | rustix::fs::OFlags::RDWR.bits();

fn dmabuf_size(dev: &DrmDevice, fd: &OwnedFd) -> Result<u64, DrmError> {
    rustix::fs::seek(fd, rustix::fs::SeekFrom::End(0))
        .map_err(|e| DrmError::io(dev.name(), "lseek on the exported dma-buf", e.into()))
}

fn image(dev: &DrmDevice, request: &BufferRequest) -> Result<(u32, u32, Fourcc), DrmError> {
    match request.kind {
        BufferKind::Image {
            width,
            height,
            fourcc,
        } => Ok((width, height, fourcc)),
        BufferKind::Blob { size } => Err(DrmError::Unsupported {
            device: dev.name().to_owned(),
            what: ConstraintKind::Format,
            detail: format!("cannot allocate a {size}-byte blob (images only)"),
        }),
    }
}

/// Allocates a linear dumb buffer for `fourcc` (single-plane formats) and exports it. The
/// kernel chooses the pitch and size. The buffer keeps the dumb buffer's GEM handle as a
/// counted reference of the device, so importing it back into this device reuses the handle.
pub fn export_dumb(
    dev: &DrmDevice,
    width: u32,
    height: u32,
    fourcc: Fourcc,
) -> Result<Exported, DrmError> {
    let name = || fourcc_code_name(fourcc as u32);
    let info = FormatInfo::of(fourcc)
        .filter(|i| i.planes.len() == 1)
        .ok_or_else(|| DrmError::Unsupported {
            device: dev.name().to_owned(),
            what: ConstraintKind::Format,
            detail: format!("no dumb buffer for {}", name()),
        })?;
    let plane = info.planes[0];
    let bpp = plane.bits_per_pixel();
    // drm-ffi rather than drm's create_dumb_buffer: the kernel's size is needed, which
    // DumbBuffer keeps private.
    let dumb =
        drm_ffi::mode::dumbbuffer::create(dev.as_fd(), width, height, bpp, 0).map_err(|e| {
            DrmError::io(
                dev.name(),
                format!("CREATE_DUMB {width}x{height} {}", name()),
                e,
            )
        })?;
    let handle = GemHandle::from(std::num::NonZeroU32::new(dumb.handle).ok_or_else(|| {
        DrmError::io(dev.name(), "CREATE_DUMB", std::io::Error::other("handle 0"))
    })?);
    let gem = GemRef::adopt(&dev.shared, handle);
    let fd = dev
        .shared
        .node
        .buffer_to_prime_fd(handle, PRIME_FLAGS)
        .map_err(|e| DrmError::io(dev.name(), "PRIME export of a dumb buffer", e))?;
    let pitch = u64::from(dumb.pitch);
    let plane = PlaneLayout {
        offset: 0,
        stride: pitch,
        size: pitch * u64::from(height),
    };
    let layout = Layout::new(
        Some(fourcc),
        width,
        height,
        Modifier::LINEAR,
        &[plane],
        dumb.size,
    )
    .map_err(|e| DrmError::io(dev.name(), "CREATE_DUMB", std::io::Error::other(e)))?;
    Ok(Exported::with_keepalive(fd, layout, gem))
}

/// Keeps a GBM device and buffer object alive as long as the exported buffer.
struct GbmKeepalive {
    _bo: gbm::BufferObject<()>,
    _device: gbm::Device<crate::device::Node>,
}

/// Allocates a buffer object through Mesa's GBM on this device with one of `modifiers` and
/// exports it.
pub fn export_gbm(
    dev: &DrmDevice,
    width: u32,
    height: u32,
    fourcc: Fourcc,
    modifiers: &[Modifier],
    usage: Usage,
) -> Result<Exported, DrmError> {
    // A file of its own: libgbm's GEM handles must not alias handles this device's imports
    // count and close (one dma-buf on one file always maps to one handle).
    let gbm_dev = gbm::Device::new(dev.reopen()?)
        .map_err(|e| DrmError::io(dev.name(), "gbm_create_device", e))?;
    let mut flags = gbm::BufferObjectFlags::empty();
    if usage.intersects(Usage::RENDER | Usage::TEXTURE) {
        flags |= gbm::BufferObjectFlags::RENDERING;
    }
    if usage.contains(Usage::SCANOUT) {
        flags |= gbm::BufferObjectFlags::SCANOUT;
    }
    let explicit = modifiers.iter().any(|m| *m != Modifier::INVALID);
    let mut created = gbm_dev.create_buffer_object_with_modifiers2::<()>(
        width,
        height,
        fourcc,
        modifiers.iter().map(|m| drm_fourcc::DrmModifier::from(m.0)),
        flags,
    );
    // DRI drivers without modifier support make libgbm fail with ENOSYS; a linear buffer
    // can still be asked for through the plain entry point with GBM_BO_USE_LINEAR.
    let linear_ok = !explicit || modifiers.contains(&Modifier::LINEAR);
    let mut forced_linear = false;
    if let Err(e) = &created {
        if e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error()) && linear_ok {
            log::debug!(
                "{}: GBM has no modifier support, asking for LINEAR",
                dev.name()
            );
            forced_linear = true;
            created = gbm_dev.create_buffer_object::<()>(
                width,
                height,
                fourcc,
                flags | gbm::BufferObjectFlags::LINEAR,
            );
        }
    }
    let bo = created.map_err(|e| {
        DrmError::io(
            dev.name(),
            format!(
                "gbm_bo_create_with_modifiers2 {width}x{height} {}",
                fourcc_code_name(fourcc as u32)
            ),
            e,
        )
    })?;
    let fd = bo
        .fd()
        .map_err(|e| DrmError::io(dev.name(), "gbm_bo_get_fd", std::io::Error::other(e)))?;
    let size = dmabuf_size(dev, &fd)?;
    let count = bo.plane_count() as i32;
    let mut planes = Vec::new();
    for i in 0..count {
        let offset = u64::from(bo.offset(i));
        let stride = u64::from(bo.stride_for_plane(i));
        planes.push(PlaneLayout {
            offset,
            stride,
            size: 0,
        });
    }
    // Each plane extends to the next plane's offset (or the end of the dma-buf).
    for i in 0..planes.len() {
        let end = planes.get(i + 1).map_or(size, |p| p.offset);
        planes[i].size = end.saturating_sub(planes[i].offset);
    }
    let mut modifier = Modifier(u64::from(bo.modifier()));
    if forced_linear && modifier == Modifier::INVALID {
        // GBM_BO_USE_LINEAR guarantees the layout the driver cannot name.
        modifier = Modifier::LINEAR;
    }
    let layout = Layout::new(Some(fourcc), width, height, modifier, &planes, size)
        .map_err(|e| DrmError::io(dev.name(), "GBM layout", std::io::Error::other(e)))?;
    let keepalive = GbmKeepalive {
        _bo: bo,
        _device: gbm_dev,
    };
    Ok(Exported::with_keepalive(fd, layout, keepalive))
}

/// The exporter path [`cenalloc::Importer::export`] takes: a dumb buffer on primary nodes
/// with dumb buffers and PRIME export when LINEAR is acceptable, else GBM. The allocator
/// checks the result against the merged constraints.
pub fn export(
    dev: &DrmDevice,
    request: &BufferRequest,
    merged: &MergedConstraints,
) -> Result<Exported, DrmError> {
    let (width, height, fourcc) = image(dev, request)?;
    let probe = dev.probe();
    let modifiers = &merged.constraints.modifiers;
    let dumb_ok = probe.node == NodeKind::Card
        && probe.caps.dumb_buffer
        && probe.caps.prime_export
        && (modifiers.is_empty() || modifiers.contains(&Modifier::LINEAR));
    if dumb_ok {
        export_dumb(dev, width, height, fourcc)
    } else {
        export_gbm(dev, width, height, fourcc, modifiers, request.usage)
    }
}
