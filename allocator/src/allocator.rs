//! The entry point: memory sources found on the system, planning and allocation.

use std::sync::Arc;

use crate::{MemorySource, UnavailableSource};

/// Knows the memory sources of the system and turns requests into buffers.
#[derive(Debug, Clone)]
pub struct Allocator {
    sources: Vec<Arc<dyn MemorySource>>,
    unavailable: Vec<UnavailableSource>,
}

impl Allocator {
    /// The memory sources in use.
    pub fn sources(&self) -> &[Arc<dyn MemorySource>] {
        &self.sources
    }

    /// Sources that exist but cannot be used, with the reason and the fix.
    pub fn unavailable(&self) -> &[UnavailableSource] {
        &self.unavailable
    }
}
