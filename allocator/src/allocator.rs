//! The entry point: memory sources found on the system, planning and allocation.

use std::path::PathBuf;
use std::sync::Arc;

use crate::plan::{choose_source, KernelName};
use crate::plan_cache::PlanCache;
use crate::source::{discover, SystemRoot};
use crate::{
    merge, Buffer, BufferKind, BufferRequest, Constraints, Error, Importer, Layout, MemorySource,
    Modifier, PendingBuffer, Plan, Result, SharedBuffer, SourceChoice, SourceKind,
    SourceProperties, UnavailableSource, Usage,
};

/// Knows the memory sources of the system and turns requests into buffers.
#[derive(Debug, Clone)]
pub struct Allocator {
    sources: Vec<Arc<dyn MemorySource>>,
    unavailable: Vec<UnavailableSource>,
    plans: Arc<PlanCache>,
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
            plans: Arc::default(),
        }
    }

    /// An allocator over exactly these sources (explicit heaps, or mocks in tests).
    pub fn from_sources(sources: Vec<Arc<dyn MemorySource>>) -> Self {
        Allocator {
            sources,
            unavailable: Vec::new(),
            plans: Arc::default(),
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
    /// merged constraints, source, layout, and the reasons.
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
        let constraints = constraints_of(request, importers)?;
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
        let dmabuf_name = buffer_name(request);
        Ok(Plan {
            request: request.clone(),
            source: SourceChoice {
                kind: source.kind(),
                name: source.name().to_owned(),
                path: source.path().map(|p| p.to_owned()),
            },
            source_properties: source.properties().clone(),
            exporter: None,
            size: layout.size,
            modifier: layout.modifier,
            verified_layout: None,
            layout,
            merged,
            reasons,
            kernel_name: KernelName::new(&dmabuf_name),
            name: dmabuf_name,
            source_index: self.sources.iter().position(|s| Arc::ptr_eq(s, &source)),
        })
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
        let dmabuf_name = buffer_name(request);
        Ok(Plan {
            request: request.clone(),
            source: SourceChoice {
                kind: SourceKind::Device,
                name,
                path: None,
            },
            source_properties: SourceProperties {
                contiguous: c.contiguous,
                max_contiguous: None,
                cache: c.cache,
                max_address: c.dma_addr_limit,
                protected: c.protected,
                scarce: false,
                explicit_only: false,
            },
            exporter: Some(exporter),
            size: layout.size,
            modifier,
            verified_layout: layout
                .check(&merged.constraints)
                .is_ok()
                .then(|| layout.clone()),
            layout,
            merged,
            reasons,
            kernel_name: KernelName::new(&dmabuf_name),
            name: dmabuf_name,
            source_index: None,
        })
    }

    /// Allocates the buffer `plan` describes (from its memory source, or by asking the
    /// exporting device) and names it. `importers` must be the ones the plan was made for.
    pub fn allocate(&self, plan: &Plan, importers: &[Arc<dyn Importer>]) -> Result<Buffer> {
        let buffer = match plan.exporter {
            Some(i) => {
                let exported = self.export_from(plan, i, importers)?;
                Buffer::from_export(
                    exported,
                    plan.source.clone(),
                    Some(plan.source_properties.clone()),
                )?
            }
            None => {
                let fd = self.allocate_fd(plan)?;
                let mut buffer =
                    Buffer::new_unchecked(fd, plan.layout.clone(), plan.source.clone());
                buffer.set_source_properties(plan.source_properties.clone());
                buffer
            }
        };
        Ok(named(buffer, plan))
    }

    /// [`Allocator::allocate`] for a plan many buffers share: a buffer from a memory source
    /// refers to the plan for its layout and origin instead of copying them. Inlined, as is
    /// everything on the way of a planned buffer (see [`Allocator::realize_plan`]).
    #[inline(always)]
    fn allocate_planned(
        &self,
        plan: &Arc<Plan>,
        importers: &[Arc<dyn Importer>],
    ) -> Result<Buffer> {
        let buffer = match plan.exporter {
            Some(i) => {
                let exported = self.export_from(plan, i, importers)?;
                Buffer::exported(exported, plan.clone())?
            }
            None => Buffer::planned(self.allocate_fd(plan)?, plan.clone()),
        };
        Ok(named(buffer, plan))
    }

    /// The plan's memory source allocates `plan.size` bytes.
    #[inline(always)]
    fn allocate_fd(&self, plan: &Plan) -> Result<std::os::fd::OwnedFd> {
        // Where planning found it, unless the plan names another source now.
        let name = plan.source.name.as_bytes();
        let planned = plan
            .source_index
            .and_then(|i| self.sources.get(i))
            .filter(|s| crate::plan::same_bytes(s.name().as_bytes(), name));
        let source = match planned {
            Some(source) => source,
            None => self.source_named(plan)?,
        };
        source.allocate(plan.size)
    }

    /// The source the plan names, looked up by name.
    fn source_named(&self, plan: &Plan) -> Result<&Arc<dyn MemorySource>> {
        self.source(&plan.source.name)
            .ok_or_else(|| Error::NoSource {
                reasons: vec![format!(
                    "{}: not a source of this allocator",
                    plan.source.name
                )],
            })
    }

    /// The plan's exporting device (importer `i`) allocates the buffer; its layout must be
    /// the requested image and suit every device.
    #[inline(always)]
    fn export_from(
        &self,
        plan: &Plan,
        i: usize,
        importers: &[Arc<dyn Importer>],
    ) -> Result<crate::Exported> {
        let exporter = importers.get(i).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "the plan's exporter #{i} is not among the {} importers given",
                importers.len()
            ))
        })?;
        let exported = exporter.export(&plan.request, &plan.merged)?;
        let got = exported.layout();
        // The layout planning already checked (which is the requested image): the usual case.
        if plan.verified(got) {
            return Ok(exported);
        }
        let want = &plan.layout;
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
        exported
            .layout()
            .check(&plan.merged.constraints)
            .map_err(|(kind, reason)| Error::Incompatible {
                device: exporter.name().to_owned(),
                kind,
                reason: format!("its exported layout does not suit every device: {reason}"),
            })?;
        Ok(exported)
    }

    /// Plans, allocates once and imports the buffer into every importer. If any import fails,
    /// the imports already made are released and the error names the device.
    ///
    /// The plan of an identical earlier request for the same importer objects is reused while
    /// every importer gives the same constraints; how that is checked is the importer's
    /// choice ([`Importer::constraints_change`]): not at all, by its import, or by asking
    /// again.
    pub fn allocate_and_import(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
    ) -> Result<SharedBuffer> {
        let Some((plan, checked_on_import)) = self.plans.get(request, importers) else {
            return self.plan_and_realize(request, importers);
        };
        if !checked_on_import {
            return self.realize(plan, importers);
        }
        self.realize_checked_on_import(plan, request, importers)
    }

    /// Realizes a reused plan some importer checks on import: a refusal means its
    /// requirements changed since the plan was made (a V4L2 queue switched input or
    /// format), so the buffer is planned anew from what every device requires now, once.
    #[inline(never)]
    fn realize_checked_on_import(
        &self,
        plan: Arc<Plan>,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
    ) -> Result<SharedBuffer> {
        match self.realize_plan(plan, importers) {
            Err(refusal) if is_refusal(&refusal) => {
                log::debug!(
                    "a device refused a buffer of a reused plan ({refusal}); planning anew"
                );
                self.plan_and_realize(request, importers)
            }
            done => done,
        }
    }

    /// [`Allocator::allocate_and_import`] without a plan to reuse: plans, remembers the plan
    /// and realizes it.
    #[cold]
    #[inline(never)]
    fn plan_and_realize(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
    ) -> Result<SharedBuffer> {
        crate::merge::validate_request(request)?;
        let constraints = constraints_of(request, importers)?;
        let plan = self.plan_from(request, importers, &constraints, None)?;
        let plan = self.plans.keep(plan, importers, constraints);
        self.realize_plan(plan, importers)
    }

    /// Allocates the buffer of an existing plan and imports it into every importer.
    ///
    /// This is the path of every buffer of a pool or swapchain, so its steps are inlined into
    /// one function: under emulation (the guest benchmarks run under TCG) a call and return
    /// on this path cost 30–50 ns, as much as dozens of plain instructions.
    #[inline]
    pub fn realize_plan(
        &self,
        plan: impl Into<Arc<Plan>>,
        importers: &[Arc<dyn Importer>],
    ) -> Result<SharedBuffer> {
        self.realize(plan.into(), importers)
    }

    /// [`Allocator::realize_plan`], inlined into every caller on the path of each buffer.
    #[inline(always)]
    fn realize(&self, plan: Arc<Plan>, importers: &[Arc<dyn Importer>]) -> Result<SharedBuffer> {
        let buffer = self.allocate_planned(&plan, importers)?;
        SharedBuffer::import(buffer, importers, plan)
    }
}

/// A device saying the buffer does not suit it (rather than failing to take it).
fn is_refusal(e: &Error) -> bool {
    matches!(e, Error::Incompatible { .. } | Error::Unsupported { .. })
}

/// What every importer requires for `request`, in importer order.
fn constraints_of(
    request: &BufferRequest,
    importers: &[Arc<dyn Importer>],
) -> Result<Vec<Constraints>> {
    importers.iter().map(|i| i.constraints(request)).collect()
}

/// Names the dma-buf after the plan; a buffer that cannot be named is still a good buffer.
#[inline(always)]
fn named(buffer: Buffer, plan: &Plan) -> Buffer {
    if let Err(e) = buffer.set_kernel_name(&plan.kernel_name()) {
        log::debug!("could not name the buffer {:?}: {e}", plan.name);
    }
    buffer
}

fn layout_sentence(layout: &Layout) -> String {
    let planes: Vec<String> = layout
        .planes
        .iter()
        .map(|p| format!("offset {} stride {}", p.offset, p.stride))
        .collect();
    format!(
        "layout: {} bytes, planes [{}]",
        layout.size,
        planes.join("; ")
    )
}

/// The request's name, or a descriptive one: `cenalloc NV12 1920x1080`.
fn buffer_name(request: &BufferRequest) -> String {
    if let Some(name) = &request.name {
        return name.clone();
    }
    match request.kind {
        BufferKind::Image {
            width,
            height,
            fourcc,
        } => format!(
            "cenalloc {} {width}x{height}",
            crate::format::fourcc_name(fourcc)
        ),
        BufferKind::Blob { size } => format!("cenalloc blob {size}"),
    }
}
