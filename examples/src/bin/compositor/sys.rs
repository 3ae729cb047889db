//! The one raw-fd conversion the compositor needs: the writeback out-fence the kernel writes
//! into memory we hand it as a property value.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Takes ownership of the sync_file fd the kernel stored through WRITEBACK_OUT_FENCE_PTR.
/// Returns `None` for -1 (no fence was created).
pub fn fence_from_kernel(raw: RawFd) -> Option<OwnedFd> {
    if raw < 0 {
        return None;
    }
    // SAFETY: the kernel created this fd for this process in the atomic commit that set
    // WRITEBACK_OUT_FENCE_PTR, and nothing else in the process knows or owns it.
    Some(unsafe { OwnedFd::from_raw_fd(raw) })
}
