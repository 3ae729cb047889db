//! Typed errors of the DRM backend; each names the device and what was wrong.

use std::io;

use cenalloc::{ConstraintKind, Modifier};

/// Everything the DRM backend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DrmError {
    /// The fd or path is not a DRM device node.
    #[error("{what} is not a DRM device: {reason}")]
    NotDrm {
        /// The fd or path.
        what: String,
        /// Why not.
        reason: String,
    },
    /// A stride is below what the format needs at this width.
    #[error("{device}: plane {plane} stride {stride} is below the minimum {min} for {format} at width {width}")]
    StrideTooSmall {
        /// The device.
        device: String,
        /// Plane index.
        plane: usize,
        /// Stride given.
        stride: u64,
        /// Minimum stride.
        min: u64,
        /// Format name.
        format: String,
        /// Image width.
        width: u32,
    },
    /// No plane of the device supports the buffer's modifier for its format.
    #[error(
        "{device}: no plane supports {format} with modifier {modifier} (supported: {supported:?})"
    )]
    ModifierUnsupported {
        /// The device.
        device: String,
        /// Format name.
        format: String,
        /// Modifier asked for.
        modifier: Modifier,
        /// Modifiers the planes support for the format.
        supported: Vec<Modifier>,
    },
    /// The device cannot do what was asked at all.
    #[error("{device}: {what} not supported: {detail}")]
    Unsupported {
        /// The device.
        device: String,
        /// Which constraint rules it out.
        what: ConstraintKind,
        /// Details.
        detail: String,
    },
    /// The kernel refused the import (PRIME fd → handle or ADDFB2).
    #[error("{device}: {step} failed: {source}")]
    ImportRefused {
        /// The device.
        device: String,
        /// Which step.
        step: &'static str,
        /// The errno.
        source: io::Error,
    },
    /// The KMS objects needed for presenting or writeback are missing (no connector, no
    /// property, no mode of the size asked for).
    #[error("{device}: {detail}")]
    Kms {
        /// The device.
        device: String,
        /// What is missing.
        detail: String,
    },
    /// Any other ioctl or sysfs failure.
    #[error("{device}: {context}: {source}")]
    Io {
        /// The device.
        device: String,
        /// What was being done.
        context: String,
        /// The OS error.
        source: io::Error,
    },
}

impl DrmError {
    pub(crate) fn io(device: &str, context: impl Into<String>, source: io::Error) -> Self {
        DrmError::Io {
            device: device.to_owned(),
            context: context.into(),
            source,
        }
    }
}

impl From<DrmError> for cenalloc::Error {
    fn from(e: DrmError) -> Self {
        match e {
            DrmError::ModifierUnsupported {
                ref device,
                modifier,
                ..
            } => cenalloc::Error::Unsupported {
                device: device.clone(),
                kind: ConstraintKind::Modifier,
                detail: format!("modifier {modifier}: {e}"),
            },
            DrmError::Unsupported {
                device,
                what,
                detail,
            } => cenalloc::Error::Unsupported {
                device,
                kind: what,
                detail,
            },
            DrmError::StrideTooSmall { ref device, .. } => cenalloc::Error::Incompatible {
                device: device.clone(),
                kind: ConstraintKind::Plane,
                reason: e.to_string(),
            },
            DrmError::ImportRefused {
                device,
                step,
                source,
            } => cenalloc::Error::Import {
                device,
                step: step.to_owned(),
                source,
            },
            DrmError::NotDrm { ref what, .. } => cenalloc::Error::Device {
                device: what.clone(),
                source: Box::new(e),
            },
            DrmError::Kms { ref device, .. } | DrmError::Io { ref device, .. } => {
                cenalloc::Error::Device {
                    device: device.clone(),
                    source: Box::new(e),
                }
            }
        }
    }
}
