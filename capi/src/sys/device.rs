//! Devices: opened by name, or wrapped around an fd the caller owns.

use std::ffi::{c_char, c_int};

use super::{borrowed_fd, cenalloc_device, hand_out, key, text, DEVICES};
use crate::device::Device;
use crate::error;

/// Opens the DRM device `name` names — a node path (`"/dev/dri/card1"`) or a driver name
/// (`"vkms"`, whose primary node is taken) — as a device using buffers as `usage`
/// (`CENALLOC_USAGE_*` bits) says. Stores the new handle in `*out` (owned by the caller:
/// `cenalloc_device_destroy`). Returns 0, -ENODEV or -ENOENT for a name that names no DRM
/// device (the message lists those there are), -EINVAL for bad arguments.
///
/// # Safety
/// `name` must be NULL (an error) or a NUL-terminated string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_device_open_drm(
    name: *const c_char,
    usage: u32,
    out: *mut *mut cenalloc_device,
) -> c_int {
    error::call(|| {
        hand_out(out, &DEVICES, || {
            Device::open_drm(text(name, "name")?, usage)
        })
    })
}

/// Wraps the DRM node open on `fd` as a device using buffers as `usage` says. `fd` stays the
/// caller's: cenalloc keeps its own duplicate (same open file, so the same DRM master and
/// framebuffers), closed by `cenalloc_device_destroy`. Returns 0, -EBADF for an fd that is
/// not open, -ENODEV for one that is not a DRM node.
///
/// # Safety
/// `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_device_from_drm_fd(
    fd: c_int,
    usage: u32,
    out: *mut *mut cenalloc_device,
) -> c_int {
    error::call(|| {
        hand_out(out, &DEVICES, || {
            Device::drm_from_fd(borrowed_fd(fd)?, usage)
        })
    })
}

/// Opens the V4L2 device `name` names — a node path (`"/dev/video0"`), a node name
/// (`"vivid-000-vid-cap"`) or a card name (`"vivid-000"`, whose capture node is taken) — and
/// takes its queue of type `buf_type` (`V4L2_BUF_TYPE_VIDEO_CAPTURE`, `..._OUTPUT` or their
/// `_MPLANE` forms, as the node has it), using buffers as `usage` says. Stores the new handle
/// in `*out` (owned by the caller). Returns 0 or a negative errno.
///
/// # Safety
/// `name` must be NULL (an error) or a NUL-terminated string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_device_open_v4l2(
    name: *const c_char,
    buf_type: u32,
    usage: u32,
    out: *mut *mut cenalloc_device,
) -> c_int {
    error::call(|| {
        hand_out(out, &DEVICES, || {
            Device::open_v4l2(text(name, "name")?, buf_type, usage)
        })
    })
}

/// Wraps the queue `buf_type` of the V4L2 node open on `fd`, using buffers as `usage` says.
/// `fd` stays the caller's: cenalloc keeps its own duplicate (the same open file, so formats
/// the caller sets apply). Returns 0, -EBADF for an fd that is not open, -ENOTTY for one that
/// is not a V4L2 node, -EINVAL for a buffer type the node does not have.
///
/// # Safety
/// `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_device_from_v4l2_fd(
    fd: c_int,
    buf_type: u32,
    usage: u32,
    out: *mut *mut cenalloc_device,
) -> c_int {
    error::call(|| {
        hand_out(out, &DEVICES, || {
            Device::v4l2_from_fd(borrowed_fd(fd)?, buf_type, usage)
        })
    })
}

/// The device's name as plans and errors name it (e.g. `"vkms"`,
/// `"vivid-000-vid-cap (/dev/video0)"`); owned by the device, valid until it is destroyed.
/// NULL for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_device_name(device: *const cenalloc_device) -> *const c_char {
    error::value(std::ptr::null(), || {
        Ok(DEVICES.get(key(device))?.name.as_ptr())
    })
}

/// Destroys a device handle and closes cenalloc's duplicate of its fd. A V4L2 queue set up
/// with `cenalloc_v4l2_request_buffers` is stopped and its slots freed (the driver lets go of
/// the buffers). Plans and buffers made for the device stay valid: their imports keep the
/// node open until they are destroyed. Returns 0, or -EINVAL for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_device_destroy(device: *mut cenalloc_device) -> c_int {
    error::call(|| {
        DEVICES.remove(key(device))?;
        Ok(0)
    })
}

/// cenalloc's fd of the device (its duplicate of the caller's fd, or the node it opened by
/// name), for the caller's own ioctls: libdrm calls on a DRM device (same DRM file: its
/// framebuffers and master status), VIDIOC_S_FMT on a V4L2 device. It stays cenalloc's:
/// never close it. Returns the fd, or -EINVAL for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_device_fd(device: *const cenalloc_device) -> c_int {
    error::call(|| Ok(DEVICES.get(key(device))?.raw_fd()))
}
