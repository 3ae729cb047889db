//! Per-format plane geometry (bits per pixel, subsampling) and layout computation.

use crate::{BufferKind, Layout, MergedConstraints, Modifier, Result};

/// Computes the layout of `kind` under `merged` (see [`Layout::compute`]).
pub(crate) fn compute_layout(
    kind: &BufferKind,
    modifier: Modifier,
    merged: &MergedConstraints,
) -> Result<Layout> {
    let _ = (kind, modifier, merged);
    todo!("layout")
}
