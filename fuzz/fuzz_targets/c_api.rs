//! libcenalloc's C entry points, called as a careless C program would: random sequences of
//! calls on handles that are live, destroyed, NULL, made up or of another kind; random
//! sizes, fourccs, usages, buffer types, planes, map modes, timeouts and fds (closed ones,
//! stdin, /dev/null); NULL out-parameters.
//!
//! Checks, beyond "no crash":
//! - a failing call returns a negative errno and leaves a non-empty message in
//!   `cenalloc_last_error`;
//! - no call reports `-ENOTRECOVERABLE`: that is a panic caught at the boundary, a bug;
//! - strings handed out are NUL-terminated and readable.
//!
//! On a build machine no device or dma-buf heap exists, so what is exercised is the argument
//! and handle checking every call does before it reaches a device. Each input destroys what it
//! created, so nothing accumulates between inputs.
//!
//! The calls are `unsafe` because C functions take raw pointers; this harness passes pointers
//! to its own locals or NULL, as the functions document.

#![no_main]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::{null, null_mut};

use arbitrary::Arbitrary;
use cenalloc_capi::sys::*;
use libfuzzer_sys::fuzz_target;

const ENOTRECOVERABLE: c_int = 131;

/// Names a C program could pass (no device exists on the build machine).
const NAMES: &[&CStr] = &[
    c"",
    c"vkms",
    c"vivid-000",
    c"/dev/null",
    c"/nonexistent",
    c"/dev/dri/card0",
    c"/dev/video0",
];

#[derive(Arbitrary, Debug)]
enum Call {
    CreateAllocator { null_out: bool },
    DestroyAllocator(u8),
    OpenDrm { name: u8, usage: u32, null_name: bool },
    OpenV4l2 { name: u8, buf_type: u32, usage: u32 },
    DrmFromFd { fd: i8, usage: u32 },
    V4l2FromFd { fd: i8, buf_type: u32, usage: u32 },
    DeviceInfo(u8),
    DestroyDevice(u8),
    Plan { allocator: u8, devices: Vec<u8>, count_delta: i8, width: u32, height: u32, fourcc: u32, null_out: bool },
    PlanInfo(u8),
    DestroyPlan(u8),
    Allocate { plan: u8, null_out: bool },
    PoolCreate { plan: u8, capacity: u32 },
    PoolAcquire(u8),
    DestroyPool(u8),
    BufferInfo { buffer: u8, plane: u32 },
    Framebuffer { buffer: u8, device: u8, null_out: bool },
    Map { buffer: u8, access: u32, null_out: bool },
    Unmap(u8),
    DestroyBuffer(u8),
    RequestBuffers { device: u8, count: u32 },
    Queue { device: u8, index: u32, buffer: u8 },
    Stream { device: u8, on: bool },
    Dequeue { device: u8, timeout_ms: i8, null_out: bool },
}

/// Every handle value this input has seen, live or not, plus NULL and made-up ones.
struct Handles {
    seen: Vec<usize>,
    created: Vec<(Kind, usize)>,
}

#[derive(Clone, Copy)]
enum Kind {
    Allocator,
    Device,
    Plan,
    Buffer,
    Pool,
}

impl Handles {
    fn pick<T>(&self, i: u8) -> *mut T {
        std::ptr::without_provenance_mut(self.seen[i as usize % self.seen.len()])
    }

    fn created<T>(&mut self, kind: Kind, h: *mut T) {
        if !h.is_null() {
            self.seen.push(h.addr());
            self.created.push((kind, h.addr()));
        }
    }
}

/// Checks the outcome of a call that returned `code`.
fn checked(what: &str, code: c_int) {
    assert_ne!(code, -ENOTRECOVERABLE, "{what}: a panic inside cenalloc: {}", last());
    if code < 0 {
        assert!(!last().is_empty(), "{what} failed ({code}) without a message");
    }
}

fn last() -> String {
    // SAFETY: cenalloc_last_error returns a NUL-terminated string it owns.
    unsafe { CStr::from_ptr(cenalloc_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn readable(s: *const c_char) {
    if !s.is_null() {
        // SAFETY: strings the API hands out are NUL-terminated and live with their handle.
        let _ = unsafe { CStr::from_ptr(s) }.to_bytes().len();
    }
}

fuzz_target!(|calls: Vec<Call>| {
    let mut h = Handles {
        seen: vec![0, 0xdead_0000, 0x10, usize::MAX & !15],
        created: Vec::new(),
    };
    for call in calls.into_iter().take(64) {
        // SAFETY (every call below): pointers are to locals of the right type, or NULL.
        unsafe {
            match call {
                Call::CreateAllocator { null_out } => {
                    let mut a = null_mut();
                    let out = if null_out { null_mut() } else { &mut a as *mut _ };
                    checked("allocator_create", cenalloc_allocator_create(out));
                    h.created(Kind::Allocator, a);
                }
                Call::DestroyAllocator(i) => {
                    checked("allocator_destroy", cenalloc_allocator_destroy(h.pick(i)))
                }
                Call::OpenDrm { name, usage, null_name } => {
                    let mut d = null_mut();
                    let name = if null_name { null() } else { NAMES[name as usize % NAMES.len()].as_ptr() };
                    checked("device_open_drm", cenalloc_device_open_drm(name, usage, &mut d));
                    h.created(Kind::Device, d);
                }
                Call::OpenV4l2 { name, buf_type, usage } => {
                    let mut d = null_mut();
                    let name = NAMES[name as usize % NAMES.len()].as_ptr();
                    checked(
                        "device_open_v4l2",
                        cenalloc_device_open_v4l2(name, buf_type % 12, usage, &mut d),
                    );
                    h.created(Kind::Device, d);
                }
                Call::DrmFromFd { fd, usage } => {
                    let mut d = null_mut();
                    checked(
                        "device_from_drm_fd",
                        cenalloc_device_from_drm_fd(c_int::from(fd), usage, &mut d),
                    );
                    h.created(Kind::Device, d);
                }
                Call::V4l2FromFd { fd, buf_type, usage } => {
                    let mut d = null_mut();
                    checked(
                        "device_from_v4l2_fd",
                        cenalloc_device_from_v4l2_fd(c_int::from(fd), buf_type % 12, usage, &mut d),
                    );
                    h.created(Kind::Device, d);
                }
                Call::DeviceInfo(i) => {
                    readable(cenalloc_device_name(h.pick(i)));
                    checked("device_fd", cenalloc_device_fd(h.pick(i)).min(0));
                }
                Call::DestroyDevice(i) => checked("device_destroy", cenalloc_device_destroy(h.pick(i))),
                Call::Plan { allocator, devices, count_delta, width, height, fourcc, null_out } => {
                    let list: Vec<*mut cenalloc_device> =
                        devices.iter().take(20).map(|&i| h.pick(i)).collect();
                    // A count that may disagree with the array is a caller bug the API cannot
                    // see; only counts within the array are passed.
                    let count = (list.len() as i64 + i64::from(count_delta)).clamp(0, list.len() as i64) as usize;
                    let mut p = null_mut();
                    let out = if null_out { null_mut() } else { &mut p as *mut _ };
                    let array = if list.is_empty() { null() } else { list.as_ptr() };
                    checked(
                        "plan_create",
                        cenalloc_plan_create(h.pick(allocator), array, count, width % 8192, height % 8192, fourcc, out),
                    );
                    h.created(Kind::Plan, p);
                }
                Call::PlanInfo(i) => {
                    readable(cenalloc_plan_reasons(h.pick(i)));
                    readable(cenalloc_plan_source(h.pick(i)));
                    let _ = cenalloc_plan_size(h.pick(i));
                    let _ = cenalloc_plan_modifier(h.pick(i));
                }
                Call::DestroyPlan(i) => checked("plan_destroy", cenalloc_plan_destroy(h.pick(i))),
                Call::Allocate { plan, null_out } => {
                    let mut b = null_mut();
                    let out = if null_out { null_mut() } else { &mut b as *mut _ };
                    checked("buffer_allocate", cenalloc_buffer_allocate(h.pick(plan), out));
                    h.created(Kind::Buffer, b);
                }
                Call::PoolCreate { plan, capacity } => {
                    let mut p = null_mut();
                    checked("pool_create", cenalloc_pool_create(h.pick(plan), capacity % 64, &mut p));
                    h.created(Kind::Pool, p);
                }
                Call::PoolAcquire(i) => {
                    let mut b = null_mut();
                    checked("pool_acquire", cenalloc_pool_acquire(h.pick(i), &mut b));
                    h.created(Kind::Buffer, b);
                }
                Call::DestroyPool(i) => checked("pool_destroy", cenalloc_pool_destroy(h.pick(i))),
                Call::BufferInfo { buffer, plane } => {
                    let b = h.pick(buffer);
                    checked("buffer_fd", cenalloc_buffer_fd(b, plane).min(0));
                    let _ = (
                        cenalloc_buffer_offset(b, plane),
                        cenalloc_buffer_stride(b, plane),
                        cenalloc_buffer_plane_count(b),
                        cenalloc_buffer_width(b),
                        cenalloc_buffer_height(b),
                        cenalloc_buffer_format(b),
                        cenalloc_buffer_modifier(b),
                        cenalloc_buffer_size(b),
                    );
                }
                Call::Framebuffer { buffer, device, null_out } => {
                    let mut fb = 0u32;
                    let out = if null_out { null_mut() } else { &mut fb as *mut u32 };
                    checked(
                        "buffer_framebuffer",
                        cenalloc_buffer_framebuffer(h.pick(buffer), h.pick(device), out),
                    );
                }
                Call::Map { buffer, access, null_out } => {
                    let mut data: *mut c_void = null_mut();
                    let mut len = 0usize;
                    let (d, l) = if null_out {
                        (null_mut(), null_mut())
                    } else {
                        (&mut data as *mut _, &mut len as *mut usize)
                    };
                    checked("buffer_map", cenalloc_buffer_map(h.pick(buffer), access % 5, d, l));
                }
                Call::Unmap(i) => checked("buffer_unmap", cenalloc_buffer_unmap(h.pick(i))),
                Call::DestroyBuffer(i) => checked("buffer_destroy", cenalloc_buffer_destroy(h.pick(i))),
                Call::RequestBuffers { device, count } => {
                    let mut granted = 0u32;
                    checked(
                        "v4l2_request_buffers",
                        cenalloc_v4l2_request_buffers(h.pick(device), count % 64, &mut granted),
                    );
                }
                Call::Queue { device, index, buffer } => checked(
                    "v4l2_queue_buffer",
                    cenalloc_v4l2_queue_buffer(h.pick(device), index, h.pick(buffer)),
                ),
                Call::Stream { device, on } => {
                    let code = if on {
                        cenalloc_v4l2_stream_on(h.pick(device))
                    } else {
                        cenalloc_v4l2_stream_off(h.pick(device))
                    };
                    checked("v4l2_stream", code);
                }
                Call::Dequeue { device, timeout_ms, null_out } => {
                    let (mut index, mut flags) = (0u32, 0u32);
                    let i = if null_out { null_mut() } else { &mut index as *mut u32 };
                    checked(
                        "v4l2_dequeue",
                        cenalloc_v4l2_dequeue(h.pick(device), c_int::from(timeout_ms) % 5, i, &mut flags),
                    );
                }
            }
        }
    }
    // Destroy what this input created (already destroyed ones just give an error).
    for (kind, key) in h.created.drain(..).rev() {
        match kind {
            Kind::Buffer => drop(cenalloc_buffer_destroy(std::ptr::without_provenance_mut(key))),
            Kind::Pool => drop(cenalloc_pool_destroy(std::ptr::without_provenance_mut(key))),
            Kind::Plan => drop(cenalloc_plan_destroy(std::ptr::without_provenance_mut(key))),
            Kind::Device => drop(cenalloc_device_destroy(std::ptr::without_provenance_mut(key))),
            Kind::Allocator => {
                drop(cenalloc_allocator_destroy(std::ptr::without_provenance_mut(key)))
            }
        }
    }
});
