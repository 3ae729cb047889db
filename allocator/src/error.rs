//! Typed errors: each says what was wrong and which device or constraint caused it.

use std::io;

/// A constraint that can conflict between devices or with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ConstraintKind {
    /// Physically contiguous memory.
    Contiguous,
    /// Scatter-gather segment count.
    MaxSegments,
    /// Highest reachable DMA address.
    DmaAddressLimit,
    /// An alignment (base, offset, pitch, height, size).
    Alignment,
    /// Maximum width.
    MaxWidth,
    /// Maximum height.
    MaxHeight,
    /// Maximum stride.
    MaxPitch,
    /// Maximum size.
    MaxSize,
    /// Supported modifiers.
    Modifier,
    /// Supported formats.
    Format,
    /// Cache policy.
    Cache,
    /// Ability to import foreign dma-bufs / need to export.
    Import,
    /// Protected memory.
    Protected,
    /// A per-plane stride or size requirement.
    Plane,
}

impl std::fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ConstraintKind::Contiguous => "contiguous memory",
            ConstraintKind::MaxSegments => "scatter-gather segments",
            ConstraintKind::DmaAddressLimit => "DMA address limit",
            ConstraintKind::Alignment => "alignment",
            ConstraintKind::MaxWidth => "maximum width",
            ConstraintKind::MaxHeight => "maximum height",
            ConstraintKind::MaxPitch => "maximum pitch",
            ConstraintKind::MaxSize => "maximum size",
            ConstraintKind::Modifier => "modifiers",
            ConstraintKind::Format => "format",
            ConstraintKind::Cache => "cache policy",
            ConstraintKind::Import => "dma-buf import",
            ConstraintKind::Protected => "protected memory",
            ConstraintKind::Plane => "plane layout",
        };
        f.write_str(s)
    }
}

/// Every error cenalloc returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed (zero size, empty modifier list, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Two devices (or a device and the request) cannot agree on a constraint.
    #[error("{kind} conflict: {first} needs {first_wants}, but {second} needs {second_wants}")]
    Conflict {
        /// The constraint that conflicts.
        kind: ConstraintKind,
        /// The first party (a device name, or "request").
        first: String,
        /// What the first party needs.
        first_wants: String,
        /// The second party.
        second: String,
        /// What the second party needs.
        second_wants: String,
    },
    /// A device cannot handle the request at all.
    #[error("{device}: {kind} not supported: {detail}")]
    Unsupported {
        /// The device.
        device: String,
        /// The constraint that rules it out.
        kind: ConstraintKind,
        /// What exactly.
        detail: String,
    },
    /// A size computation overflowed (e.g. a 65536x65536 image).
    #[error("size overflow: {0}")]
    Overflow(String),
    /// No memory source satisfies the merged constraints; one reason per source considered.
    #[error("no memory source satisfies the constraints: {}", .reasons.join("; "))]
    NoSource {
        /// Why each source was ruled out.
        reasons: Vec<String>,
    },
    /// An existing buffer does not suit a device attaching late.
    #[error("{device} cannot use the existing buffer: {kind}: {reason}")]
    Incompatible {
        /// The device that attached late.
        device: String,
        /// The constraint the buffer violates.
        kind: ConstraintKind,
        /// Why.
        reason: String,
    },
    /// The operation needs the buffer idle, but devices still hold it.
    #[error("buffer is busy: {0}")]
    Busy(String),
    /// A device refused to import the buffer: the kernel said no to one step.
    #[error("{device}: import failed at {step}: {source}")]
    Import {
        /// The device.
        device: String,
        /// The step that failed (e.g. `PRIME fd to handle`, `ADDFB2`, `VIDIOC_QBUF`).
        step: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A device backend failed; `source` is the backend's own typed error (e.g.
    /// `cenalloc_drm::DrmError`), reachable with `downcast_ref`.
    #[error("{device}: {source}")]
    Device {
        /// The device.
        device: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A layout whose planes do not fit its buffer.
    #[error("invalid layout: {}{reason}", .plane.map(|p| format!("plane {p}: ")).unwrap_or_default())]
    InvalidLayout {
        /// The plane at fault, if one is.
        plane: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A memory source failed to allocate.
    #[error("{source_name}: allocation of {size} bytes failed: {error}")]
    Allocation {
        /// The heap, udmabuf or device.
        source_name: String,
        /// Bytes requested.
        size: u64,
        /// The OS error.
        #[source]
        error: io::Error,
    },
    /// An fd that should be a dma-buf is not one.
    #[error("{what} is not a dma-buf: {reason}")]
    NotDmabuf {
        /// What fd.
        what: String,
        /// Why it is not.
        reason: String,
    },
    /// Any other OS error, with what was being done.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        error: io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] from a context and an OS error.
    pub fn io(context: impl Into<String>, error: impl Into<io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            error: error.into(),
        }
    }
}

/// Result with cenalloc's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
