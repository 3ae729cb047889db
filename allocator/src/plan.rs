//! The decision cenalloc makes for a request, before allocating anything.

use std::path::PathBuf;

use crate::{BufferRequest, Layout, MergedConstraints, SourceKind};

/// Which memory source a plan chose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceChoice {
    /// Heap, udmabuf or device.
    pub kind: SourceKind,
    /// Heap name (`system`, `reserved`, ...), `udmabuf`, or the exporting device's name.
    pub name: String,
    /// Node of the heap/udmabuf/device, if any.
    pub path: Option<PathBuf>,
}

/// Merged constraints, chosen source, layout, and one human-readable reason per choice.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// The request planned for.
    #[serde(skip)]
    pub request: BufferRequest,
    /// The merged constraints of every device.
    pub merged: MergedConstraints,
    /// Where the memory will come from.
    pub source: SourceChoice,
    /// Index of the importer that will export the buffer, when the source is a device.
    pub exporter: Option<usize>,
    /// Planes, strides, offsets.
    pub layout: Layout,
    /// Total size in bytes (same as `layout.size`).
    pub size: u64,
    /// Chosen modifier (same as `layout.modifier`).
    pub modifier: crate::Modifier,
    /// One sentence per decision: why this source, why this modifier, which device imposed
    /// which alignment.
    pub reasons: Vec<String>,
}
