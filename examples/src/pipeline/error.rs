//! Errors of the pipeline programs.

/// What stopped a pipeline, naming the device or frame at fault.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// cenalloc (planning, allocation, V4L2 queue operations) failed.
    #[error(transparent)]
    Cenalloc(#[from] cenalloc::Error),
    /// A DRM/KMS operation failed.
    #[error(transparent)]
    Drm(#[from] cenalloc_drm::DrmError),
    /// A device could not be found or set up as asked.
    #[error("{0}")]
    Setup(String),
    /// The producer stopped delivering frames mid-stream.
    #[error("{device} stopped delivering frames after {frames} frame(s): {detail}")]
    ProducerStopped {
        /// The producing device.
        device: String,
        /// Frames shown before it stopped.
        frames: u32,
        /// What happened.
        detail: String,
    },
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// The file or operation.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}
