//! Merging the constraints of every attached device into one set.

use crate::{BufferRequest, Constraints, Result};

/// The intersection of every attached device's constraints, with the device that imposed each
/// restriction kept for explanations and error messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MergedConstraints {
    /// The combined constraints: alignments are least common multiples, maxima minima,
    /// modifiers the intersection (ordered by the first device's preference), `contiguous` and
    /// `protected` if any device needs them, `can_import` only if every device can import.
    pub constraints: Constraints,
    /// Names of the devices merged, in attach order.
    pub devices: Vec<String>,
    /// Indices (into `devices`) of devices that cannot import foreign dma-bufs and so must be
    /// the exporter; at most one device may be in this list.
    pub must_export: Vec<usize>,
    /// Indices of devices able to allocate and export the buffer themselves.
    pub can_export: Vec<usize>,
    /// One line per restriction saying which device imposed it, e.g.
    /// `contiguous memory: required by vivid-000 (/dev/video0)`.
    pub reasons: Vec<String>,
}

/// Merges the constraints of `devices` (name, constraints) for `request`. Conflicts are typed
/// errors naming both parties and the constraint; this never panics, whatever the input.
pub fn merge<'a>(
    request: &BufferRequest,
    devices: impl IntoIterator<Item = (&'a str, &'a Constraints)>,
) -> Result<MergedConstraints> {
    let _ = (request, devices.into_iter().count());
    todo!("merge")
}
