//! `cenalloc_plan`: the decision for one request shared by a set of devices — memory source,
//! layout, modifier — with the reasons, made without allocating. Buffers and pools follow it.

use std::ffi::CString;
use std::sync::Arc;

use cenalloc::{Allocator, BufferRequest, Fourcc, Importer, Usage};

use crate::device::Device;
use crate::error::CError;

/// A plan as the C API holds it, with the allocator that made it (buffers come from there).
pub struct PlanObject {
    /// The decision.
    pub plan: cenalloc::Plan,
    /// The allocator that allocates for it.
    pub allocator: Allocator,
    /// The reasons, one per line.
    pub reasons: CString,
    /// The memory source's name.
    pub source: CString,
}

impl PlanObject {
    /// Plans a `width`×`height` image of `fourcc` (a drm_fourcc.h code) for `devices`, each
    /// using it as its usage says.
    pub fn new(
        allocator: &Allocator,
        devices: &[Arc<Device>],
        width: u32,
        height: u32,
        fourcc: u32,
    ) -> Result<PlanObject, CError> {
        let format = Fourcc::try_from(fourcc).map_err(|_| {
            CError::invalid(format!(
                "unknown fourcc {fourcc:#010x} ({:?}): not a drm_fourcc.h format",
                fourcc_text(fourcc)
            ))
        })?;
        let usage = devices.iter().fold(Usage::empty(), |u, d| u | d.usage);
        let importers: Vec<Arc<dyn Importer>> =
            devices.iter().map(|d| d.importer.clone()).collect();
        let request = BufferRequest::image(width, height, format, usage);
        let plan = allocator.plan(&request, &importers)?;
        let reasons = plan.reasons().join("\n");
        let source = plan.source().name.clone();
        Ok(PlanObject {
            allocator: allocator.clone(),
            reasons: CString::new(reasons.replace('\0', "")).unwrap_or_default(),
            source: CString::new(source.replace('\0', "")).unwrap_or_default(),
            plan,
        })
    }
}

/// The four characters of a fourcc, non-printable ones shown as `.`.
fn fourcc_text(fourcc: u32) -> String {
    fourcc
        .to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}
