//! Delayed allocation: describe a buffer, attach devices, then realize it once.

use std::sync::Arc;

use crate::{Allocator, BufferRequest, Importer, Plan, Result, SharedBuffer};

/// A described buffer with devices attached, not yet backed by memory.
#[derive(Debug)]
pub struct PendingBuffer {
    allocator: Allocator,
    request: BufferRequest,
    importers: Vec<Arc<dyn Importer>>,
}

impl PendingBuffer {
    pub(crate) fn new(allocator: Allocator, request: BufferRequest) -> Self {
        PendingBuffer {
            allocator,
            request,
            importers: Vec::new(),
        }
    }

    /// Attaches a device that will use the buffer.
    pub fn attach(&mut self, importer: Arc<dyn Importer>) -> &mut Self {
        self.importers.push(importer);
        self
    }

    /// The devices attached so far.
    pub fn importers(&self) -> &[Arc<dyn Importer>] {
        &self.importers
    }

    /// The request described.
    pub fn request(&self) -> &BufferRequest {
        &self.request
    }

    /// What realizing would do now, without allocating.
    pub fn plan(&self) -> Result<Plan> {
        self.allocator.plan(&self.request, &self.importers)
    }

    /// Allocates once from the merged constraints of every attached device and imports the
    /// buffer into each.
    pub fn realize(&self) -> Result<SharedBuffer> {
        self.allocator
            .allocate_and_import(&self.request, &self.importers)
    }
}
