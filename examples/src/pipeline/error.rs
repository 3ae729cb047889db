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
    /// A buffer of a pipeline's pool could not be allocated (e.g. its memory source is
    /// exhausted); the buffers allocated before it are released.
    #[error("buffer {index} of {count} for {devices}: {source}")]
    Allocation {
        /// Which buffer (from 1).
        index: u32,
        /// How many the pool needs.
        count: u32,
        /// The devices sharing it.
        devices: String,
        /// cenalloc's error, naming the memory source.
        source: Box<cenalloc::Error>,
    },
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
