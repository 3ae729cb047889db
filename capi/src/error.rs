//! Errors as C sees them: every fallible function returns 0 (or a count) on success and a
//! negative errno-style code on failure, and keeps a message for the calling thread that names
//! the device and the constraint (`cenalloc_last_error`).
//!
//! The code is the OS error where one caused the failure (`-ENOMEM` from a heap, `-EBADF` for
//! a closed fd, ...); otherwise it stands for the kind of failure: `-EINVAL` for bad arguments
//! and malformed requests, `-ENOTSUP` when the devices cannot agree or a device cannot take the
//! request, `-ENODEV` for a node that is not the kind of device asked for, `-EBUSY` when every
//! buffer of a pool is lent out, `-ENOTRECOVERABLE` for an internal error (a panic caught at the
//! boundary: a bug in cenalloc, reported instead of unwinding into C).

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use rustix::io::Errno;

/// A failure on its way to C: a positive errno value and the message.
#[derive(Debug)]
pub struct CError {
    /// The errno value; functions return its negation.
    pub errno: i32,
    /// What went wrong, naming the device and the constraint.
    pub message: String,
}

impl CError {
    /// A failure with `errno` and `message`.
    pub fn new(errno: Errno, message: impl Into<String>) -> CError {
        CError {
            errno: errno.raw_os_error(),
            message: message.into(),
        }
    }

    /// A bad argument (`-EINVAL`).
    pub fn invalid(message: impl Into<String>) -> CError {
        CError::new(Errno::INVAL, message)
    }
}

impl From<cenalloc::Error> for CError {
    fn from(e: cenalloc::Error) -> CError {
        use cenalloc::Error as E;
        let errno = os_error_in(&e).unwrap_or(match &e {
            E::InvalidRequest(_) | E::InvalidLayout { .. } | E::Overflow(_) => Errno::INVAL,
            E::Conflict { .. }
            | E::Unsupported { .. }
            | E::Incompatible { .. }
            | E::NoSource { .. } => Errno::NOTSUP,
            E::Busy(_) => Errno::BUSY,
            E::NotDmabuf { .. } => Errno::BADF,
            E::Device { source, .. } => match source.downcast_ref::<cenalloc_drm::DrmError>() {
                Some(cenalloc_drm::DrmError::NotDrm { .. }) => Errno::NODEV,
                Some(cenalloc_drm::DrmError::StrideTooSmall { .. }) => Errno::INVAL,
                Some(
                    cenalloc_drm::DrmError::ModifierUnsupported { .. }
                    | cenalloc_drm::DrmError::Unsupported { .. },
                ) => Errno::NOTSUP,
                _ => Errno::IO,
            },
            _ => Errno::IO,
        });
        CError {
            errno: errno.raw_os_error(),
            message: e.to_string(),
        }
    }
}

impl From<cenalloc_drm::DrmError> for CError {
    fn from(e: cenalloc_drm::DrmError) -> CError {
        let errno = os_error_in(&e).unwrap_or(match &e {
            cenalloc_drm::DrmError::NotDrm { .. } => Errno::NODEV,
            cenalloc_drm::DrmError::StrideTooSmall { .. } => Errno::INVAL,
            cenalloc_drm::DrmError::ModifierUnsupported { .. }
            | cenalloc_drm::DrmError::Unsupported { .. } => Errno::NOTSUP,
            _ => Errno::IO,
        });
        CError {
            errno: errno.raw_os_error(),
            message: e.to_string(),
        }
    }
}

/// The first OS error in `e`'s chain of causes.
fn os_error_in(e: &(dyn std::error::Error + 'static)) -> Option<Errno> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(n) = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(Errno::from_raw_os_error(n));
        }
        cause = c.source();
    }
    None
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Keeps `message` as the calling thread's last error.
pub fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    log::debug!("{message}");
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
}

/// The calling thread's last error message; valid until the thread's next failing call.
pub fn last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// Runs `f` for a C caller: its value on success; on failure (or a panic, which never crosses
/// the boundary) the negated errno, with the message kept as the thread's last error.
pub fn call(f: impl FnOnce() -> Result<i32, CError>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            -e.errno
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(&format!("internal error in cenalloc (a bug): {what}"));
            -Errno::NOTRECOVERABLE.raw_os_error()
        }
    }
}

/// Runs `f` for a C caller that returns a value rather than a status: its value on success,
/// `fallback` on failure (with the thread's last error set, as [`call`] does).
pub fn value<T: Copy>(fallback: T, f: impl FnOnce() -> Result<T, CError>) -> T {
    let mut out = fallback;
    call(|| {
        out = f()?;
        Ok(0)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_code_and_a_message() {
        let code = call(|| panic!("boom"));
        assert_eq!(code, -Errno::NOTRECOVERABLE.raw_os_error());
        let message = last_message();
        assert!(message.contains("boom"), "{message}");
    }

    #[test]
    fn the_os_error_in_the_chain_is_the_code() {
        let e = cenalloc::Error::io(
            "DMA_HEAP_IOCTL_ALLOC",
            std::io::Error::from_raw_os_error(12),
        );
        assert_eq!(CError::from(e).errno, Errno::NOMEM.raw_os_error());
        let e = cenalloc::Error::InvalidRequest("zero width".into());
        assert_eq!(CError::from(e).errno, Errno::INVAL.raw_os_error());
    }

    fn last_message() -> String {
        LAST_ERROR.with(|last| last.borrow().to_string_lossy().into_owned())
    }
}
