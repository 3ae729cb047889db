//! The crate's only unsafe code: the atomic commit that asks the kernel for a writeback out
//! fence. WRITEBACK_OUT_FENCE_PTR is a property whose *value is a user pointer* the kernel
//! writes an fd into during the commit; the drm crate has no typed API for that, so the
//! pointer and the adoption of the returned fd are handled here.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use drm::control::{atomic::AtomicModeReq, property, AtomicCommitFlags, Device, RawResourceHandle};

/// Adds `out_fence_prop` (WRITEBACK_OUT_FENCE_PTR) of `connector` to `req`, commits, and
/// returns the sync_file the kernel installed.
pub(crate) fn atomic_commit_with_out_fence(
    dev: &impl Device,
    flags: AtomicCommitFlags,
    mut req: AtomicModeReq,
    connector: RawResourceHandle,
    out_fence_prop: property::Handle,
) -> io::Result<OwnedFd> {
    // The kernel writes an s32 through this pointer; a heap slot keeps it at a fixed address
    // for the duration of the ioctl.
    let mut slot: Box<i32> = Box::new(-1);
    let ptr: *mut i32 = &mut *slot;
    req.add_raw_property(connector, out_fence_prop, ptr as u64);
    dev.atomic_commit(flags, req)?;
    // SAFETY: `ptr` points into `slot`, which is alive, aligned and initialised; the kernel
    // wrote to it behind the compiler's back during the ioctl, hence the volatile read.
    let raw = unsafe { std::ptr::read_volatile(ptr) };
    drop(slot);
    if raw < 0 {
        return Err(io::Error::other(
            "atomic commit succeeded but the kernel returned no writeback out fence",
        ));
    }
    // SAFETY: on success the kernel installed a new sync_file fd in this process's table
    // (drm_atomic_uapi.c: setup_out_fence → fd_install) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
