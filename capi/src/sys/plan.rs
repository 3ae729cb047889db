//! Plans: the decision for a request and a set of devices, and its reasons.

use std::ffi::{c_char, c_int};

use super::{cenalloc_allocator, cenalloc_device, cenalloc_plan, hand_out, key, ALLOCATORS, PLANS};
use crate::error;
use crate::plan::PlanObject;

/// Plans a `width`×`height` image of `fourcc` (a drm_fourcc.h code, e.g.
/// `DRM_FORMAT_XRGB8888`) shared by `devices[0..count]` (each with its usage): merges their
/// constraints, chooses the memory source, modifier and layout, allocates nothing. Stores the
/// new handle in `*out` (owned by the caller: `cenalloc_plan_destroy`). Returns 0; -EINVAL for
/// bad arguments (zero size, unknown fourcc, a dead handle); -ENOTSUP when the devices cannot
/// agree (no common format or modifier, no memory source every device can import), with a
/// message naming the device and the constraint.
///
/// # Safety
/// `devices` must point to `count` handles (it may be NULL when `count` is 0: a buffer for
/// the CPU alone); `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn cenalloc_plan_create(
    allocator: *mut cenalloc_allocator,
    devices: *const *mut cenalloc_device,
    count: usize,
    width: u32,
    height: u32,
    fourcc: u32,
    out: *mut *mut cenalloc_plan,
) -> c_int {
    error::call(|| {
        hand_out(out, &PLANS, || {
            let allocator = ALLOCATORS.get(key(allocator))?;
            let devices = super::devices(devices, count)?;
            PlanObject::new(&allocator, &devices, width, height, fourcc)
        })
    })
}

/// The plan's reasons, one per line (why this source, this modifier, this layout; why each
/// other source was not used). Owned by the plan, valid until it is destroyed; NULL for a
/// NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_plan_reasons(plan: *const cenalloc_plan) -> *const c_char {
    error::value(std::ptr::null(), || {
        Ok(PLANS.get(key(plan))?.reasons.as_ptr())
    })
}

/// The name of the memory source the plan chose: a heap (`"system"`, `"reserved"` or another
/// CMA heap), `"udmabuf"`, or the device that exports the buffers. Owned by the plan, valid
/// until it is destroyed; NULL for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_plan_source(plan: *const cenalloc_plan) -> *const c_char {
    error::value(std::ptr::null(), || {
        Ok(PLANS.get(key(plan))?.source.as_ptr())
    })
}

/// Bytes per buffer of the plan; 0 for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_plan_size(plan: *const cenalloc_plan) -> u64 {
    error::value(0, || Ok(PLANS.get(key(plan))?.plan.size()))
}

/// The plan's format modifier (drm_fourcc.h, e.g. `DRM_FORMAT_MOD_LINEAR`);
/// `DRM_FORMAT_MOD_INVALID` for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_plan_modifier(plan: *const cenalloc_plan) -> u64 {
    error::value(u64::MAX >> 8, || {
        Ok(PLANS.get(key(plan))?.plan.modifier().0)
    })
}

/// Destroys a plan handle; buffers and pools made from it stay valid. Returns 0, or -EINVAL
/// for a NULL or dead handle.
#[no_mangle]
pub extern "C" fn cenalloc_plan_destroy(plan: *mut cenalloc_plan) -> c_int {
    error::call(|| {
        PLANS.remove(key(plan))?;
        Ok(0)
    })
}
