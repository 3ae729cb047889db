//! Delayed allocation: describe a buffer, attach devices, then realize it once.

/// A described buffer with devices attached, not yet backed by memory.
#[derive(Debug)]
pub struct PendingBuffer {}
