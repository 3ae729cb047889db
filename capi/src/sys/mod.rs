//! The C ABI: every `extern "C"` function of libcenalloc, the handle types and constants the
//! header declares. The only unsafe code of the crate is here: reading C strings and arrays
//! and writing out-parameters the caller passes, and borrowing the caller's fds for the length
//! of a call. Everything else goes through the safe modules of the crate.
//!
//! Thread safety, unless a function says otherwise: functions may be called from any thread
//! and on the same handles concurrently; a handle destroyed while another thread uses it stays
//! valid until that call returns, and is an error after.
#![allow(unsafe_code)]
// The handle types carry the names C code knows them by.
#![allow(non_camel_case_types)]

mod buffer;
mod device;
mod plan;
mod v4l2;

use std::ffi::{c_char, c_int, CStr};
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use cenalloc::Allocator;
use rustix::io::Errno;

use crate::buffer::BufferObject;
use crate::device::Device;
use crate::error::{self, CError};
use crate::handles::Table;
use crate::plan::PlanObject;
use crate::pool::PoolObject;

pub use buffer::*;
pub use device::*;
pub use plan::*;
pub use v4l2::*;

/// An allocator: the memory sources (dma-buf heaps, udmabuf) cenalloc found on this system.
pub struct cenalloc_allocator {
    _opaque: [u8; 0],
}

/// A device that will use the buffers: a DRM node, or one queue of a V4L2 node.
pub struct cenalloc_device {
    _opaque: [u8; 0],
}

/// A plan: memory source, layout and modifier for one request shared by a set of devices.
pub struct cenalloc_plan {
    _opaque: [u8; 0],
}

/// A buffer: one dma-buf imported into every device of its plan.
pub struct cenalloc_buffer {
    _opaque: [u8; 0],
}

/// A pool: up to a fixed number of buffers of one plan, reused.
pub struct cenalloc_pool {
    _opaque: [u8; 0],
}

/// Scanned out by a display controller's primary or overlay plane.
pub const CENALLOC_USAGE_SCANOUT: u32 = 1 << 0;
/// Scanned out by a display controller's cursor plane.
pub const CENALLOC_USAGE_CURSOR: u32 = 1 << 1;
/// Rendered into by a GPU.
pub const CENALLOC_USAGE_RENDER: u32 = 1 << 2;
/// Sampled by a GPU.
pub const CENALLOC_USAGE_TEXTURE: u32 = 1 << 3;
/// Written by a camera (V4L2 capture).
pub const CENALLOC_USAGE_CAMERA_WRITE: u32 = 1 << 4;
/// Written by a video decoder.
pub const CENALLOC_USAGE_VIDEO_DECODE: u32 = 1 << 5;
/// Read by a video encoder.
pub const CENALLOC_USAGE_VIDEO_ENCODE: u32 = 1 << 6;
/// Read by the CPU through a mapping.
pub const CENALLOC_USAGE_CPU_READ: u32 = 1 << 7;
/// Written by the CPU through a mapping.
pub const CENALLOC_USAGE_CPU_WRITE: u32 = 1 << 8;
/// Must use the linear (untiled) layout.
pub const CENALLOC_USAGE_LINEAR: u32 = 1 << 9;
/// Must live in protected (secure) memory.
pub const CENALLOC_USAGE_PROTECTED: u32 = 1 << 10;

/// Map for reading.
pub const CENALLOC_MAP_READ: u32 = 1;
/// Map for writing.
pub const CENALLOC_MAP_WRITE: u32 = 2;
/// Map for reading and writing.
pub const CENALLOC_MAP_READ_WRITE: u32 = 3;

/// The most devices one plan may name.
pub const CENALLOC_MAX_DEVICES: usize = 16;

static ALLOCATORS: Table<Allocator> = Table::new("cenalloc_allocator");
static DEVICES: Table<Device> = Table::new("cenalloc_device");
static PLANS: Table<PlanObject> = Table::new("cenalloc_plan");
static BUFFERS: Table<BufferObject> = Table::new("cenalloc_buffer");
static POOLS: Table<PoolObject> = Table::new("cenalloc_pool");

/// The table key a handle stands for (handles are keys, never addresses).
fn key<T>(handle: *const T) -> usize {
    handle.addr()
}

/// The handle C sees for `key`.
fn handle<T>(key: usize) -> *mut T {
    std::ptr::without_provenance_mut(key)
}

/// Fails unless `out` can take a value: checked before anything is created, so that a bad
/// out-parameter never leaves an object behind.
fn check_out<T>(out: *mut T, what: &str) -> Result<(), CError> {
    if out.is_null() {
        Err(CError::invalid(format!("{what} is NULL")))
    } else if !out.is_aligned() {
        Err(CError::invalid(format!("{what} is not aligned")))
    } else {
        Ok(())
    }
}

/// Makes an object with `make`, adds it to `table` and stores its handle in `*out`, which is
/// checked first: a bad out-parameter creates nothing. Returns 0.
fn hand_out<T, H>(
    out: *mut *mut H,
    table: &Table<T>,
    make: impl FnOnce() -> Result<T, CError>,
) -> Result<c_int, CError> {
    check_out(out, "out")?;
    let key = table.insert(make()?);
    write_out(out, handle(key), "out")?;
    Ok(0)
}

/// Stores `value` in `*out`, checked by [`check_out`] first.
fn write_out<T>(out: *mut T, value: T, what: &str) -> Result<(), CError> {
    check_out(out, what)?;
    // SAFETY: `out` is non-null and aligned, and every function taking an out-parameter
    // documents that it must point to writable memory for one value of its type.
    unsafe { out.write(value) };
    Ok(())
}

/// Stores `value` in `*out` when `out` is not NULL (an optional out-parameter).
fn write_optional<T>(out: *mut T, value: T, what: &str) -> Result<(), CError> {
    if out.is_null() {
        Ok(())
    } else {
        write_out(out, value, what)
    }
}

/// The UTF-8 text of the C string `s`.
fn text<'a>(s: *const c_char, what: &str) -> Result<&'a str, CError> {
    if s.is_null() {
        return Err(CError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null; the functions taking strings document that they must be
    // NUL-terminated and stay valid for the call.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str()
        .map_err(|_| CError::invalid(format!("{what} is not UTF-8: {s:?}")))
}

/// The caller's `fd`, borrowed for the length of the call.
fn borrowed_fd<'a>(fd: c_int) -> Result<BorrowedFd<'a>, CError> {
    if fd < 0 {
        return Err(CError::new(
            Errno::BADF,
            format!("fd {fd} is not a file descriptor"),
        ));
    }
    // SAFETY: the fd is only duplicated (F_DUPFD_CLOEXEC) during the call, never closed; a
    // closed fd makes that fail with EBADF, which is reported.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The devices of the C array `devices[0..count]`.
fn devices(devices: *const *mut cenalloc_device, count: usize) -> Result<Vec<Arc<Device>>, CError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if devices.is_null() {
        return Err(CError::invalid(format!(
            "devices is NULL with count {count}"
        )));
    }
    if count > CENALLOC_MAX_DEVICES {
        return Err(CError::invalid(format!(
            "{count} devices: a plan takes at most {CENALLOC_MAX_DEVICES}"
        )));
    }
    if !devices.is_aligned() {
        return Err(CError::invalid("devices is not aligned"));
    }
    // SAFETY: non-null, aligned, and `cenalloc_plan_create` documents that `devices` points to
    // `count` handles.
    let handles = unsafe { std::slice::from_raw_parts(devices, count) };
    handles.iter().map(|&h| DEVICES.get(key(h))).collect()
}

/// The version of libcenalloc, e.g. `"0.1.0"`. The string is static.
#[no_mangle]
pub extern "C" fn cenalloc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the calling thread's last failed call: what went wrong, naming the device
/// and the constraint ("" before any failure). The string belongs to libcenalloc and stays
/// valid until the thread's next failing call. Thread-local: safe from any thread.
#[no_mangle]
pub extern "C" fn cenalloc_last_error() -> *const c_char {
    error::last_error()
}

/// Creates an allocator: finds the memory sources (dma-buf heaps under /dev/dma_heap,
/// /dev/udmabuf) it may allocate from, and opens them as they are first used. Stores the new
/// handle in `*out` (owned by the caller: `cenalloc_allocator_destroy`). Returns 0 or a
/// negative errno.
///
/// # Safety
/// `out` must be NULL (an error) or point to writable memory for one handle.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_allocator_create(out: *mut *mut cenalloc_allocator) -> c_int {
    error::call(|| hand_out(out, &ALLOCATORS, || Ok(Allocator::new())))
}

/// Destroys an allocator handle. Plans, pools and buffers made with it stay usable (they keep
/// what they need). Returns 0, or -EINVAL for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_allocator_destroy(allocator: *mut cenalloc_allocator) -> c_int {
    error::call(|| {
        ALLOCATORS.remove(key(allocator))?;
        Ok(0)
    })
}

/// Usage bits of the header and of the Rust library agree.
#[cfg(test)]
mod tests {
    use super::*;
    use cenalloc::Usage;

    #[test]
    fn usage_bits_are_the_rust_librarys() {
        let pairs = [
            (CENALLOC_USAGE_SCANOUT, Usage::SCANOUT),
            (CENALLOC_USAGE_CURSOR, Usage::CURSOR),
            (CENALLOC_USAGE_RENDER, Usage::RENDER),
            (CENALLOC_USAGE_TEXTURE, Usage::TEXTURE),
            (CENALLOC_USAGE_CAMERA_WRITE, Usage::CAMERA_WRITE),
            (CENALLOC_USAGE_VIDEO_DECODE, Usage::VIDEO_DECODE),
            (CENALLOC_USAGE_VIDEO_ENCODE, Usage::VIDEO_ENCODE),
            (CENALLOC_USAGE_CPU_READ, Usage::CPU_READ),
            (CENALLOC_USAGE_CPU_WRITE, Usage::CPU_WRITE),
            (CENALLOC_USAGE_LINEAR, Usage::LINEAR),
            (CENALLOC_USAGE_PROTECTED, Usage::PROTECTED),
        ];
        let mut all = Usage::empty();
        for (bit, usage) in pairs {
            assert_eq!(bit, usage.bits());
            all |= usage;
        }
        assert_eq!(all, Usage::all(), "every Rust usage has a C constant");
    }
}
