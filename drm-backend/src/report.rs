//! A short, serialisable summary of a DRM device for `cenalloc-info`.

use std::collections::BTreeMap;

use cenalloc::Modifier;

use crate::constraints::{can_export, can_import, needs_contiguous};
use crate::probe::{ImportTrial, PlaneKind};
use crate::{DrmDevice, NodeKind};

/// What cenalloc-info prints per DRM device.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DeviceReport {
    /// Node path.
    pub path: Option<String>,
    /// DRM driver name.
    pub driver: String,
    /// Card or render node.
    pub node: NodeKind,
    /// `scanout`, `cursor`, `render`.
    pub roles: Vec<&'static str>,
    /// Imports foreign dma-bufs (verified by the trial import when it could run).
    pub can_import: bool,
    /// The trial import's outcome.
    pub import_trial: ImportTrial,
    /// Can allocate and export a buffer itself.
    pub can_export: bool,
    /// Needs physically contiguous memory.
    pub needs_contiguous: bool,
    /// Behind an IOMMU.
    pub iommu: bool,
    /// DMA mask width, where sysfs exposes it.
    pub dma_mask_bits: Option<u32>,
    /// Formats the primary and overlay planes scan out, with their modifiers.
    pub scanout_formats: BTreeMap<String, Vec<Modifier>>,
    /// Cursor plane size limit.
    pub cursor_size: Option<(u64, u64)>,
}

impl DrmDevice {
    /// Probes (once) and runs the trial import (once), then summarises.
    pub fn report(&self) -> DeviceReport {
        let probe = self.probe();
        let trial = self.import_trial();
        let mut scanout_formats: BTreeMap<String, Vec<Modifier>> = BTreeMap::new();
        for p in probe
            .planes
            .iter()
            .filter(|p| matches!(p.kind, PlaneKind::Primary | PlaneKind::Overlay))
        {
            let pairs: Vec<(String, Vec<Modifier>)> = if p.in_formats.is_empty() {
                p.formats
                    .iter()
                    .map(|f| (f.clone(), vec![Modifier::LINEAR]))
                    .collect()
            } else {
                p.in_formats.clone().into_iter().collect()
            };
            for (f, mods) in pairs {
                let entry = scanout_formats.entry(f).or_default();
                for m in mods {
                    if !entry.contains(&m) {
                        entry.push(m);
                    }
                }
            }
        }
        DeviceReport {
            path: probe.path.clone(),
            driver: probe.driver.clone(),
            node: probe.node,
            roles: probe.roles(),
            can_import: can_import(probe, trial),
            import_trial: trial.clone(),
            can_export: can_export(probe),
            needs_contiguous: needs_contiguous(probe),
            iommu: probe.sysfs.iommu,
            dma_mask_bits: probe.sysfs.dma_mask_bits,
            scanout_formats,
            cursor_size: probe.cursor_size,
        }
    }
}
