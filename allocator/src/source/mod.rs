//! Where buffer memory comes from: dma-buf heaps, udmabuf, or an exporting device.

use std::fmt::Debug;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::{CachePolicy, Result};

/// The kind of a memory source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A dma-buf heap in `/dev/dma_heap`.
    Heap,
    /// memfd pages wrapped by `/dev/udmabuf`.
    Udmabuf,
    /// A device that allocates the buffer itself and exports it.
    Device,
}

/// What a memory source can give.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceProperties {
    /// Every allocation is physically contiguous.
    pub contiguous: bool,
    /// Largest contiguous allocation it can give, if contiguous and known.
    pub max_contiguous: Option<u64>,
    /// Cache policy of its memory.
    pub cache: CachePolicy,
    /// Highest physical address its memory may lie at, if known.
    pub max_address: Option<u64>,
    /// Gives protected memory.
    pub protected: bool,
    /// A scarce resource (CMA): used only when its properties are needed.
    pub scarce: bool,
    /// Used only when asked for by name (unknown heaps).
    pub explicit_only: bool,
}

/// A place buffers can be allocated from.
pub trait MemorySource: Send + Sync + Debug {
    /// Name, e.g. `system`, `reserved`, `udmabuf`.
    fn name(&self) -> &str;
    /// Heap, udmabuf or device.
    fn kind(&self) -> SourceKind;
    /// Device node, if any.
    fn path(&self) -> Option<&Path>;
    /// What it gives.
    fn properties(&self) -> &SourceProperties;
    /// Allocates `size` bytes (already page-aligned) and returns the dma-buf.
    fn allocate(&self, size: u64) -> Result<OwnedFd>;
}

/// A source that exists but cannot be used (e.g. a heap node root can read but we cannot).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnavailableSource {
    /// The node.
    pub path: PathBuf,
    /// Why it cannot be used.
    pub reason: String,
    /// What fixes it (e.g. a udev rule).
    pub fix: String,
}
