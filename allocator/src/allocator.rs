//! The entry point: memory sources found on the system, planning and allocation.

use std::path::PathBuf;
use std::sync::Arc;

use crate::plan::{choose_source, PlanParts};
use crate::source::{discover, SystemRoot};
use crate::{
    merge, Buffer, BufferRequest, Constraints, Error, Importer, Layout, MemorySource, Modifier,
    PendingBuffer, Plan, Result, SharedBuffer, SourceChoice, SourceKind, SourceProperties,
    UnavailableSource, Usage,
};

/// Knows the memory sources of the system and turns requests into buffers.
#[derive(Debug, Clone)]
pub struct Allocator {
    sources: Vec<Arc<dyn MemorySource>>,
    unavailable: Vec<UnavailableSource>,
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

impl Allocator {
    /// Discovers the memory sources of this system: every heap in `/dev/dma_heap` and
    /// `/dev/udmabuf`. Nodes that exist but cannot be opened are listed in
    /// [`Allocator::unavailable`] with the fix.
    pub fn new() -> Self {
        Self::with_root(SystemRoot::real().0)
    }

    /// Discovers sources below `root` instead of `/` (`root/dev/dma_heap`, `root/dev/udmabuf`,
    /// `root/sys/...`, `root/proc/...`); for tests.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        let (sources, unavailable) = discover(&SystemRoot(root.into()));
        for s in &sources {
            log::debug!(
                "memory source {} ({:?}): {:?}",
                s.name(),
                s.kind(),
                s.properties()
            );
        }
        Allocator {
            sources,
            unavailable,
        }
    }

    /// An allocator over exactly these sources (explicit heaps, or mocks in tests).
    pub fn from_sources(sources: Vec<Arc<dyn MemorySource>>) -> Self {
        Allocator {
            sources,
            unavailable: Vec::new(),
        }
    }

    /// The memory sources in use.
    pub fn sources(&self) -> &[Arc<dyn MemorySource>] {
        &self.sources
    }

    /// The source called `name`, if any.
    pub fn source(&self, name: &str) -> Option<&Arc<dyn MemorySource>> {
        self.sources.iter().find(|s| s.name() == name)
    }

    /// Sources that exist but cannot be used, with the reason and the fix.
    pub fn unavailable(&self) -> &[UnavailableSource] {
        &self.unavailable
    }

    /// Starts a delayed allocation: attach devices to the returned buffer, then realize it.
    pub fn describe(&self, request: BufferRequest) -> PendingBuffer {
        PendingBuffer::new(self.clone(), request)
    }

    /// Decides, without allocating, how `request` shared by `importers` would be allocated:
    /// merged constraints, source, layout, and the reasons. Keep the plan to allocate from it
    /// again ([`Allocator::allocate`]); nothing is remembered here.
    pub fn plan(&self, request: &BufferRequest, importers: &[Arc<dyn Importer>]) -> Result<Plan> {
        self.plan_inner(request, importers, None)
    }

    /// Like [`Allocator::plan`], but allocates from the source named `source_name` (e.g. an
    /// explicit-only heap); fails if that source does not satisfy the merged constraints.
    pub fn plan_with_source(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
        source_name: &str,
    ) -> Result<Plan> {
        self.plan_inner(request, importers, Some(source_name))
    }

    fn plan_inner(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
        only: Option<&str>,
    ) -> Result<Plan> {
        crate::merge::validate_request(request)?;
        let constraints: Vec<Constraints> = importers
            .iter()
            .map(|i| i.constraints(request))
            .collect::<Result<_>>()?;
        self.plan_from(request, importers, &constraints, only)
    }

    /// Plans for `request` from the constraints `importers` gave for it.
    fn plan_from(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
        constraints: &[Constraints],
        only: Option<&str>,
    ) -> Result<Plan> {
        let merged = merge(
            request,
            importers.iter().map(|i| i.name()).zip(constraints.iter()),
        )?;
        let c = &merged.constraints;
        let mut reasons = merged.reasons.clone();

        // A device that cannot import must allocate the buffer itself.
        if let Some(&i) = merged.must_export.first() {
            if only.is_some() {
                return Err(Error::NoSource {
                    reasons: vec![format!(
                        "{}: {} cannot import, so it must allocate the buffer itself",
                        only.unwrap_or_default(),
                        merged.devices[i]
                    )],
                });
            }
            return self.device_plan(request, importers, merged, i, reasons, "it cannot import foreign dma-bufs, so it allocates the buffer and every other device imports it".into());
        }

        // A buffer only one device uses, and the CPU does not map, comes from that device
        // when it prefers so (GBM's model); heaps are for memory several parties share.
        let cpu_mapped = request.usage.intersects(Usage::CPU_READ | Usage::CPU_WRITE);
        if only.is_none() && c.prefers_own_memory && !cpu_mapped {
            if let Some(&i) = merged.can_export.first() {
                let why = "it is the only device using the buffer and the CPU does not map it, \
                           so it allocates the buffer in its own memory, as GBM does (placed \
                           where the device wants it, backed on first use, nothing to import)"
                    .to_owned();
                return self.device_plan(request, importers, merged, i, reasons, why);
            }
        }

        // Memory sources give linear layouts only.
        if !c.modifiers.contains(&Modifier::LINEAR) {
            if let Some(&i) = merged.can_export.first() {
                let why = format!(
                    "the devices agree only on modifiers {:?}, which only a device can lay out",
                    c.modifiers
                );
                return self.device_plan(request, importers, merged, i, reasons, why);
            }
            return Err(Error::NoSource {
                reasons: vec![format!(
                    "memory sources give LINEAR layouts only; the devices agree on {:?} and none can allocate itself",
                    c.modifiers
                )],
            });
        }
        reasons.push(if c.modifiers.len() > 1 {
            format!(
                "modifier LINEAR: heaps and udmabuf give linear layouts (devices also accept {:?})",
                c.modifiers
            )
        } else {
            "modifier LINEAR: the only one every device accepts".to_owned()
        });
        let layout = Layout::compute(&request.kind, Modifier::LINEAR, &merged)?;
        let decision = choose_source(&self.sources, &merged, layout.size, only);
        let Some(source) = decision.chosen else {
            if only.is_none() {
                if let Some(&i) = merged.can_export.first() {
                    let why = format!(
                        "no memory source satisfies every device ({})",
                        decision.rejected.join("; ")
                    );
                    return self.device_plan(request, importers, merged, i, reasons, why);
                }
            }
            return Err(Error::NoSource {
                reasons: decision.rejected,
            });
        };
        reasons.extend(decision.reasons);
        reasons.push(layout_sentence(&layout));
        Ok(Plan::new(PlanParts {
            request: request.clone(),
            importers: importers.to_vec(),
            merged,
            source: SourceChoice {
                kind: source.kind(),
                name: source.name().to_owned(),
                path: source.path().map(|p| p.to_owned()),
            },
            source_properties: source.properties().clone(),
            exporter: None,
            layout,
            reasons,
        }))
    }

    fn device_plan(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
        merged: crate::MergedConstraints,
        exporter: usize,
        mut reasons: Vec<String>,
        why: String,
    ) -> Result<Plan> {
        let modifier = merged.constraints.modifiers[0];
        let layout = Layout::compute(&request.kind, modifier, &merged)?;
        let name = importers[exporter].name().to_owned();
        reasons.push(format!("source {name}: {why}"));
        reasons.push(format!(
            "modifier {modifier}: the first every device accepts, in {}'s order of preference",
            merged.devices.first().cloned().unwrap_or_default()
        ));
        reasons.push(format!(
            "{} (estimate; {name} lays the buffer out itself)",
            layout_sentence(&layout)
        ));
        let c = &merged.constraints;
        let source_properties = SourceProperties {
            contiguous: c.contiguous,
            max_contiguous: None,
            cache: c.cache,
            max_address: c.dma_addr_limit,
            protected: c.protected,
            scarce: false,
            explicit_only: false,
        };
        Ok(Plan::new(PlanParts {
            request: request.clone(),
            importers: importers.to_vec(),
            merged,
            source: SourceChoice {
                kind: SourceKind::Device,
                name,
                path: None,
            },
            source_properties,
            exporter: Some(exporter),
            layout,
            reasons,
        }))
    }

    /// Allocates one buffer as `plan` says (from its memory source, or by asking the
    /// exporting device) and imports it into every device of the plan. If any import fails,
    /// the imports already made are released and the error names the device.
    pub fn allocate(&self, plan: &Plan) -> Result<SharedBuffer> {
        let buffer = self.allocate_buffer(plan)?;
        SharedBuffer::import(buffer, plan.clone())
    }

    /// Plans for `request` shared by `importers`, allocates once and imports the buffer into
    /// every importer: [`Allocator::plan`] then [`Allocator::allocate`]. Every call plans
    /// anew; to allocate many buffers for one decision, keep the plan or use a
    /// [`crate::Pool`].
    pub fn allocate_and_import(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
    ) -> Result<SharedBuffer> {
        let plan = self.plan(request, importers)?;
        self.allocate(&plan)
    }

    /// The buffer `plan` describes, allocated and named, imported nowhere yet.
    pub(crate) fn allocate_buffer(&self, plan: &Plan) -> Result<Buffer> {
        let buffer = match plan.exporter() {
            Some(i) => {
                let exported = self.export_from(plan, i)?;
                Buffer::assemble(
                    crate::buffer::one(exported.fd),
                    exported.layout,
                    plan.shared_source().clone(),
                    Some(plan.source_properties().clone()),
                    exported.keepalive,
                )
            }
            None => {
                let source = self
                    .source(&plan.source().name)
                    .ok_or_else(|| Error::NoSource {
                        reasons: vec![format!(
                            "{}: not a source of this allocator",
                            plan.source().name
                        )],
                    })?;
                // One allocation per dma-buf: one for the whole buffer, or one per plane.
                let fds = plan
                    .layout()
                    .dma_buf_sizes()
                    .iter()
                    .map(|&size| source.allocate(size))
                    .collect::<Result<crate::buffer::DmaBufs>>()?;
                Buffer::assemble(
                    fds,
                    plan.layout().clone(),
                    plan.shared_source().clone(),
                    Some(plan.source_properties().clone()),
                    None,
                )
            }
        };
        Ok(named(buffer, plan))
    }

    /// The plan's exporting device (importer `i`) allocates the buffer; its layout must be
    /// the requested image and suit every device.
    fn export_from(&self, plan: &Plan, i: usize) -> Result<crate::Exported> {
        let exporter = &plan.importers()[i];
        let exported = exporter.export(plan.request(), plan.merged())?;
        let got = exported.layout();
        let want = plan.layout();
        if (got.fourcc, got.width, got.height) != (want.fourcc, want.width, want.height) {
            return Err(Error::Incompatible {
                device: exporter.name().to_owned(),
                kind: crate::ConstraintKind::Format,
                reason: format!(
                    "it exported {:?} {}x{}, the request is {:?} {}x{}",
                    got.fourcc.map(crate::format::fourcc_name),
                    got.width,
                    got.height,
                    want.fourcc.map(crate::format::fourcc_name),
                    want.width,
                    want.height
                ),
            });
        }
        got.check(&plan.merged().constraints)
            .map_err(|(kind, reason)| Error::Incompatible {
                device: exporter.name().to_owned(),
                kind,
                reason: format!("its exported layout does not suit every device: {reason}"),
            })?;
        Ok(exported)
    }
}

/// Names the dma-buf after the plan; a buffer that cannot be named is still a good buffer.
fn named(buffer: Buffer, plan: &Plan) -> Buffer {
    if let Err(e) = buffer.set_name(plan.name()) {
        log::debug!("could not name the buffer {:?}: {e}", plan.name());
    }
    buffer
}

fn layout_sentence(layout: &Layout) -> String {
    let planes: Vec<String> = layout
        .planes
        .iter()
        .map(|p| format!("offset {} stride {}", p.offset, p.stride))
        .collect();
    if layout.has_separate_planes() {
        let sizes: Vec<String> = layout.dma_buf_sizes().iter().map(u64::to_string).collect();
        format!(
            "layout: one dma-buf per plane, of {} bytes; planes [{}]",
            sizes.join(", "),
            planes.join("; ")
        )
    } else {
        format!(
            "layout: {} bytes, planes [{}]",
            layout.size,
            planes.join("; ")
        )
    }
}
