//! Buffers and pools: allocation, what a buffer is (fd, offsets, strides, modifier, size), its
//! KMS framebuffer, CPU mapping.

use std::ffi::{c_int, c_void};
use std::os::fd::AsRawFd;

use cenalloc::CpuAccess;

use super::{
    cenalloc_buffer, cenalloc_device, cenalloc_plan, cenalloc_pool, check_out, hand_out, key,
    write_out, BUFFERS, CENALLOC_MAP_READ, CENALLOC_MAP_READ_WRITE, CENALLOC_MAP_WRITE, DEVICES,
    PLANS, POOLS,
};
use crate::buffer::BufferObject;
use crate::error::{self, CError};
use crate::pool::PoolObject;

/// Allocates one buffer as `plan` says and imports it into every device of the plan (a DRM
/// display makes its framebuffer). Stores the new handle in `*out` (owned by the caller:
/// `cenalloc_buffer_destroy`). Returns 0; the OS error of the memory source (e.g. -ENOMEM
/// when a CMA heap is exhausted) or of the device that refused the import, with a message
/// naming it. On failure nothing is left allocated or imported.
///
/// # Safety
/// `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_buffer_allocate(
    plan: *const cenalloc_plan,
    out: *mut *mut cenalloc_buffer,
) -> c_int {
    error::call(|| {
        hand_out(out, &BUFFERS, || {
            let plan = PLANS.get(key(plan))?;
            Ok(BufferObject::own(plan.allocator.allocate(&plan.plan)?))
        })
    })
}

/// Creates a pool of at most `capacity` buffers following `plan`; they are allocated as they
/// are first acquired. Stores the new handle in `*out` (owned by the caller:
/// `cenalloc_pool_destroy`). Returns 0, or -EINVAL (a zero capacity, a dead plan).
///
/// # Safety
/// `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_pool_create(
    plan: *const cenalloc_plan,
    capacity: u32,
    out: *mut *mut cenalloc_pool,
) -> c_int {
    error::call(|| {
        hand_out(out, &POOLS, || {
            let plan = PLANS.get(key(plan))?;
            let pool =
                cenalloc::Pool::with_plan(&plan.allocator, plan.plan.clone(), capacity as usize)?;
            Ok(PoolObject { pool })
        })
    })
}

/// Lends a buffer of the pool: a free one, or a new one while fewer than its capacity exist.
/// Stores the handle in `*out`; `cenalloc_buffer_destroy` gives it back. Returns 0, -EBUSY
/// when every buffer is lent out, or the allocation's error.
///
/// # Safety
/// `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_pool_acquire(
    pool: *mut cenalloc_pool,
    out: *mut *mut cenalloc_buffer,
) -> c_int {
    error::call(|| {
        hand_out(out, &BUFFERS, || {
            Ok(BufferObject::pooled(POOLS.get(key(pool))?.pool.acquire()?))
        })
    })
}

/// Destroys a pool handle. Free buffers are released now; lent ones when they are destroyed.
/// Returns 0, or -EINVAL for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_pool_destroy(pool: *mut cenalloc_pool) -> c_int {
    error::call(|| {
        POOLS.remove(key(pool))?;
        Ok(0)
    })
}

/// Destroys a buffer handle: an owned buffer is released (its imports — framebuffers, GEM
/// handles — and its dma-buf, once no device holds it any more); a lent one goes back to its
/// pool. A mapping still open is unmapped first. Returns 0, or -EINVAL for a NULL or dead
/// handle.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_destroy(buffer: *mut cenalloc_buffer) -> c_int {
    error::call(|| {
        BUFFERS.remove(key(buffer))?;
        Ok(0)
    })
}

/// The dma-buf fd holding plane `plane`: the buffer's one dma-buf (every plane at its own
/// offset), or the plane's own when a device needs each plane in a dma-buf of its own (a V4L2
/// capture queue in `NM12`). The fd stays cenalloc's: never close it; `dup` it to keep it
/// beyond `cenalloc_buffer_destroy`. Returns the fd, or a negative errno (-EINVAL for a dead
/// handle or a plane the buffer does not have).
#[no_mangle]
pub extern "C" fn cenalloc_buffer_fd(buffer: *const cenalloc_buffer, plane: u32) -> c_int {
    error::call(|| {
        let buffer = BUFFERS.get(key(buffer))?;
        buffer.plane(plane)?;
        let b = buffer.shared().buffer();
        Ok(b.plane_fd(plane as usize).unwrap_or(b.fd()).as_raw_fd())
    })
}

/// The byte offset of plane `plane` in its dma-buf; 0 (and the last error set) for a dead
/// handle or a plane the buffer does not have.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_offset(buffer: *const cenalloc_buffer, plane: u32) -> u32 {
    error::value(0, || {
        let p = BUFFERS.get(key(buffer))?.plane(plane)?;
        u32::try_from(p.offset).map_err(|_| CError::invalid("offset beyond 4 GiB"))
    })
}

/// The bytes per row (pitch) of plane `plane`; 0 for a dead handle or a plane the buffer does
/// not have.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_stride(buffer: *const cenalloc_buffer, plane: u32) -> u32 {
    error::value(0, || {
        let p = BUFFERS.get(key(buffer))?.plane(plane)?;
        u32::try_from(p.stride).map_err(|_| CError::invalid("stride beyond 4 GiB"))
    })
}

/// The number of planes; 0 for a dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_plane_count(buffer: *const cenalloc_buffer) -> u32 {
    error::value(0, || {
        Ok(BUFFERS
            .get(key(buffer))?
            .shared()
            .buffer()
            .layout()
            .planes()
            .len() as u32)
    })
}

/// Width in pixels; 0 for a dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_width(buffer: *const cenalloc_buffer) -> u32 {
    error::value(0, || {
        Ok(BUFFERS.get(key(buffer))?.shared().buffer().layout().width())
    })
}

/// Height in pixels; 0 for a dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_height(buffer: *const cenalloc_buffer) -> u32 {
    error::value(0, || {
        Ok(BUFFERS
            .get(key(buffer))?
            .shared()
            .buffer()
            .layout()
            .height())
    })
}

/// The drm_fourcc.h format; 0 for a dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_format(buffer: *const cenalloc_buffer) -> u32 {
    error::value(0, || {
        let layout = BUFFERS.get(key(buffer))?.shared().buffer().layout().clone();
        Ok(layout.fourcc().map(|f| f as u32).unwrap_or(0))
    })
}

/// The format modifier (drm_fourcc.h); `DRM_FORMAT_MOD_INVALID` for a dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_modifier(buffer: *const cenalloc_buffer) -> u64 {
    error::value(u64::MAX >> 8, || {
        Ok(BUFFERS
            .get(key(buffer))?
            .shared()
            .buffer()
            .layout()
            .modifier()
            .0)
    })
}

/// The dma-buf's size in bytes; 0 for a dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_size(buffer: *const cenalloc_buffer) -> u64 {
    error::value(0, || {
        Ok(BUFFERS.get(key(buffer))?.shared().buffer().layout().size())
    })
}

/// Stores in `*fb_id` the KMS framebuffer id the DRM device `display` made when the buffer
/// was imported into it, for SETCRTC, SETPLANE or an atomic FB_ID. It belongs to the buffer:
/// removed when the buffer is destroyed (never call RMFB on it). Returns 0; -ENOENT when the
/// display was not among the plan's devices (or without CENALLOC_USAGE_SCANOUT); -EINVAL for a
/// dead handle or a device that is not a DRM device.
///
/// # Safety
/// `fb_id` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_buffer_framebuffer(
    buffer: *const cenalloc_buffer,
    display: *const cenalloc_device,
    fb_id: *mut u32,
) -> c_int {
    error::call(|| {
        check_out(fb_id, "fb_id")?;
        let buffer = BUFFERS.get(key(buffer))?;
        let display = DEVICES.get(key(display))?;
        write_out(fb_id, buffer.framebuffer(&display)?, "fb_id")?;
        Ok(0)
    })
}

/// Maps the whole buffer for the CPU (`CENALLOC_MAP_READ`, `_WRITE` or `_READ_WRITE`) and
/// begins CPU access (DMA_BUF_IOCTL_SYNC start, which waits for devices writing it). Stores
/// the address in `*data` and the length in `*length` (the buffer's size). The memory is
/// valid until `cenalloc_buffer_unmap` (or destroy). One mapping per buffer at a time:
/// -EBUSY if already mapped. Not to be called on one buffer from two threads at once. A
/// buffer with a dma-buf per plane is -ENOTSUP: map each plane's fd instead.
///
/// # Safety
/// `data` and `length` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_buffer_map(
    buffer: *mut cenalloc_buffer,
    access: u32,
    data: *mut *mut c_void,
    length: *mut usize,
) -> c_int {
    error::call(|| {
        check_out(data, "data")?;
        check_out(length, "length")?;
        let access = match access {
            CENALLOC_MAP_READ => CpuAccess::Read,
            CENALLOC_MAP_WRITE => CpuAccess::Write,
            CENALLOC_MAP_READ_WRITE => CpuAccess::ReadWrite,
            other => {
                return Err(CError::invalid(format!(
                    "map access {other} is not CENALLOC_MAP_READ, _WRITE or _READ_WRITE"
                )))
            }
        };
        let buffer = BUFFERS.get(key(buffer))?;
        let (ptr, len) = buffer.map(access)?;
        write_out(data, ptr.cast(), "data")?;
        write_out(length, len, "length")?;
        Ok(0)
    })
}

/// Ends CPU access (DMA_BUF_IOCTL_SYNC end) and unmaps the buffer. Returns 0, or -EINVAL for
/// a dead handle or a buffer that is not mapped.
#[no_mangle]
pub extern "C" fn cenalloc_buffer_unmap(buffer: *mut cenalloc_buffer) -> c_int {
    error::call(|| {
        BUFFERS.get(key(buffer))?.unmap()?;
        Ok(0)
    })
}
