//! V4L2 queues fed with cenalloc buffers by index (V4L2_MEMORY_DMABUF).

use std::ffi::c_int;
use std::time::Duration;

use super::{
    cenalloc_buffer, cenalloc_device, check_out, key, write_optional, write_out, BUFFERS, DEVICES,
};
use crate::error::{self, CError};

/// Sets up `count` DMABUF slots on the device's V4L2 queue (VIDIOC_REQBUFS with
/// V4L2_MEMORY_DMABUF) and stores in `*granted` how many the driver gave (it may give more or
/// fewer). Set the queue's format first (VIDIOC_S_FMT on your fd). A count of 0 frees the
/// slots. Returns 0, or -EINVAL for a device that is not a V4L2 queue, or the driver's error.
/// Calls on one device are serialised.
///
/// # Safety
/// `granted` must be NULL (not wanted) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_v4l2_request_buffers(
    device: *const cenalloc_device,
    count: u32,
    granted: *mut u32,
) -> c_int {
    error::call(|| {
        let got = DEVICES.get(key(device))?.request_buffers(count)?;
        write_optional(granted, got, "granted")?;
        Ok(0)
    })
}

/// Queues `buffer` in slot `index` of the device's V4L2 queue (VIDIOC_QBUF with the buffer's
/// dma-buf). The queue keeps the buffer alive until it is dequeued or the queue is released.
/// Returns 0, or a negative errno with a message naming the device and the constraint (a
/// buffer too small, not contiguous for a contiguous-only driver, a slot that does not exist).
#[no_mangle]
pub extern "C" fn cenalloc_v4l2_queue_buffer(
    device: *const cenalloc_device,
    index: u32,
    buffer: *const cenalloc_buffer,
) -> c_int {
    error::call(|| {
        let device = DEVICES.get(key(device))?;
        let buffer = BUFFERS.get(key(buffer))?;
        device.queue_buffer(index, buffer.shared().buffer())?;
        Ok(0)
    })
}

/// Starts streaming on the device's V4L2 queue (VIDIOC_STREAMON). Returns 0 or a negative
/// errno.
#[no_mangle]
pub extern "C" fn cenalloc_v4l2_stream_on(device: *const cenalloc_device) -> c_int {
    error::call(|| {
        DEVICES.get(key(device))?.stream(true)?;
        Ok(0)
    })
}

/// Stops streaming on the device's V4L2 queue (VIDIOC_STREAMOFF); every queued buffer comes
/// back. Returns 0 or a negative errno.
#[no_mangle]
pub extern "C" fn cenalloc_v4l2_stream_off(device: *const cenalloc_device) -> c_int {
    error::call(|| {
        DEVICES.get(key(device))?.stream(false)?;
        Ok(0)
    })
}

/// Waits up to `timeout_ms` milliseconds for a buffer the driver is done with (poll +
/// VIDIOC_DQBUF). Stores its slot in `*index` and its `V4L2_BUF_FLAG_*` in `*flags` (NULL if
/// not wanted; V4L2_BUF_FLAG_ERROR marks a corrupted frame). Returns 0, -ETIMEDOUT when none
/// came, or the driver's error (-EPIPE after the last buffer).
///
/// # Safety
/// `index` must be NULL (an error) or writable; `flags` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_v4l2_dequeue(
    device: *const cenalloc_device,
    timeout_ms: c_int,
    index: *mut u32,
    flags: *mut u32,
) -> c_int {
    error::call(|| {
        check_out(index, "index")?;
        let timeout = u64::try_from(timeout_ms)
            .map_err(|_| CError::invalid(format!("timeout {timeout_ms} ms is negative")))?;
        let (slot, bits) = DEVICES
            .get(key(device))?
            .dequeue(Duration::from_millis(timeout))?;
        write_out(index, slot, "index")?;
        write_optional(flags, bits, "flags")?;
        Ok(0)
    })
}
