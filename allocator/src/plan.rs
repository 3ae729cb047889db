//! The decision cenalloc makes for a request, before allocating anything.
//!
//! The planner ranks the memory sources from cheapest to dearest (plentiful before scarce,
//! cached before uncached, heaps before udmabuf) and takes the first that satisfies the merged
//! constraints; every source ruled out gets a sentence saying why.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{
    BufferKind, BufferRequest, CachePolicy, Importer, Layout, MemorySource, MergedConstraints,
    SourceKind, SourceProperties,
};

/// Which memory source a plan chose.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SourceChoice {
    /// Heap, udmabuf or device.
    pub kind: SourceKind,
    /// Heap name (`system`, `reserved`, ...), `udmabuf`, or the exporting device's name.
    pub name: String,
    /// Node of the heap/udmabuf/device, if any.
    pub path: Option<PathBuf>,
}

/// The decision for one request shared by a set of devices: merged constraints, chosen
/// source, layout, and one human-readable reason per choice. Made by
/// [`crate::Allocator::plan`] without allocating; [`crate::Allocator::allocate`] allocates
/// from it as often as asked, for the same devices. Cloning is cheap (the plan is shared).
#[derive(Debug, Clone)]
pub struct Plan {
    inner: Arc<PlanInner>,
}

#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
struct PlanInner {
    #[cfg_attr(feature = "serde", serde(skip))]
    request: BufferRequest,
    #[cfg_attr(feature = "serde", serde(skip))]
    importers: Vec<Arc<dyn Importer>>,
    merged: MergedConstraints,
    source: Arc<SourceChoice>,
    source_properties: SourceProperties,
    exporter: Option<usize>,
    layout: Layout,
    size: u64,
    modifier: crate::Modifier,
    reasons: Vec<String>,
    name: String,
}

#[cfg(feature = "serde")]
impl serde::Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

/// The parts of a plan, as the allocator decided them.
pub(crate) struct PlanParts {
    pub(crate) request: BufferRequest,
    pub(crate) importers: Vec<Arc<dyn Importer>>,
    pub(crate) merged: MergedConstraints,
    pub(crate) source: SourceChoice,
    pub(crate) source_properties: SourceProperties,
    pub(crate) exporter: Option<usize>,
    pub(crate) layout: Layout,
    pub(crate) reasons: Vec<String>,
}

impl Plan {
    pub(crate) fn new(parts: PlanParts) -> Plan {
        let name = buffer_name(&parts.request);
        Plan {
            inner: Arc::new(PlanInner {
                size: parts.layout.size,
                modifier: parts.layout.modifier,
                request: parts.request,
                importers: parts.importers,
                merged: parts.merged,
                source: Arc::new(parts.source),
                source_properties: parts.source_properties,
                exporter: parts.exporter,
                layout: parts.layout,
                reasons: parts.reasons,
                name,
            }),
        }
    }

    /// The request planned for.
    pub fn request(&self) -> &BufferRequest {
        &self.inner.request
    }

    /// The devices the plan was made for, in the order given.
    pub fn importers(&self) -> &[Arc<dyn Importer>] {
        &self.inner.importers
    }

    /// The merged constraints of every device.
    pub fn merged(&self) -> &MergedConstraints {
        &self.inner.merged
    }

    /// Where the memory comes from.
    pub fn source(&self) -> &SourceChoice {
        &self.inner.source
    }

    /// [`Plan::source`], shared with every buffer allocated from the plan.
    pub(crate) fn shared_source(&self) -> &Arc<SourceChoice> {
        &self.inner.source
    }

    /// What the chosen source gives (for a device exporter: what the merged constraints ask).
    pub fn source_properties(&self) -> &SourceProperties {
        &self.inner.source_properties
    }

    /// Index (among [`Plan::importers`]) of the device that allocates the buffer itself,
    /// when the source is a device.
    pub fn exporter(&self) -> Option<usize> {
        self.inner.exporter
    }

    /// Planes, strides, offsets. For a device exporter this is cenalloc's linear estimate;
    /// the device's own layout replaces it at allocation.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// The chosen modifier.
    pub fn modifier(&self) -> crate::Modifier {
        self.inner.modifier
    }

    /// One sentence per decision: why this source, why this modifier, which device imposed
    /// which alignment.
    pub fn reasons(&self) -> &[String] {
        &self.inner.reasons
    }

    /// The name each buffer of the plan gets (DMA_BUF_SET_NAME; the kernel keeps 31 bytes):
    /// the request's, or `cenalloc FOURCC WxH`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The same plan with `importer` added, its merged constraints and one more reason
    /// (a late attach that the existing buffer satisfies).
    pub(crate) fn with_late_importer(
        &self,
        importer: Arc<dyn Importer>,
        merged: MergedConstraints,
        reason: String,
    ) -> Plan {
        let mut inner = (*self.inner).clone();
        inner.importers.push(importer);
        inner.merged = merged;
        inner.reasons.push(reason);
        Plan {
            inner: Arc::new(inner),
        }
    }

    /// The same plan with one more reason.
    pub(crate) fn with_reason(&self, reason: String) -> Plan {
        let mut inner = (*self.inner).clone();
        inner.reasons.push(reason);
        Plan {
            inner: Arc::new(inner),
        }
    }
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

/// Why `source` cannot hold a buffer of `size` bytes under `merged`, if it cannot.
pub fn source_rejection(
    source: &dyn MemorySource,
    merged: &MergedConstraints,
    size: u64,
) -> Option<String> {
    let p = source.properties();
    let c = &merged.constraints;
    let who = |i: Option<usize>| merged.party(i);
    if c.protected && !p.protected {
        return Some(format!(
            "gives no protected memory, which {} needs",
            who(merged.origins.protected)
        ));
    }
    if !c.protected && p.protected {
        return Some("gives protected memory, which no device asked for".into());
    }
    if c.contiguous && !p.contiguous {
        return Some(format!(
            "is not physically contiguous, which {} needs",
            who(merged.origins.contiguous)
        ));
    }
    if c.contiguous {
        if let Some(max) = p.max_contiguous.filter(|&max| size > max) {
            return Some(format!(
                "gives at most {max} contiguous bytes, the buffer needs {size}"
            ));
        }
    }
    match (c.cache, p.cache) {
        (CachePolicy::Cached, CachePolicy::Uncached)
        | (CachePolicy::Uncached, CachePolicy::Cached) => {
            return Some(format!(
                "gives {} memory, {} needs {}",
                format!("{:?}", p.cache).to_lowercase(),
                who(merged.origins.cache),
                format!("{:?}", c.cache).to_lowercase()
            ));
        }
        _ => {}
    }
    let page = crate::source::page_size();
    if !p.contiguous {
        if let Some(max) = c.max_segments {
            let pages = size.div_ceil(page);
            if pages > u64::from(max) {
                return Some(format!(
                    "may scatter the buffer over {pages} pages, {} maps at most {max} segments",
                    who(merged.origins.max_segments)
                ));
            }
        }
        if c.base_align > page && !page.is_multiple_of(c.base_align) {
            return Some(format!(
                "only aligns its pages to {page} bytes, the buffer needs base alignment {}",
                c.base_align
            ));
        }
    } else if c.base_align > (1 << 20)
        || !c.base_align.max(1).is_power_of_two() && c.base_align > page
    {
        return Some(format!(
            "cannot promise base alignment {} (contiguous allocations align to powers of two up to 1 MiB)",
            c.base_align
        ));
    }
    if let (Some(limit), Some(top)) = (c.dma_addr_limit, p.max_address) {
        if top > limit {
            return Some(format!(
                "may place memory up to {top:#x}, above {limit:#x} that {} can reach",
                who(merged.origins.dma_addr_limit)
            ));
        }
    }
    None
}

/// Sort key: cheapest first.
fn cost(source: &dyn MemorySource) -> (bool, bool, bool, u8, String) {
    let p = source.properties();
    (
        p.explicit_only,
        p.scarce,
        p.cache == CachePolicy::Uncached,
        match source.kind() {
            SourceKind::Heap => 0,
            SourceKind::Udmabuf => 1,
            SourceKind::Device => 2,
        },
        source.name().to_owned(),
    )
}

/// The outcome of choosing among memory sources.
pub(crate) struct SourceDecision {
    pub(crate) chosen: Option<Arc<dyn MemorySource>>,
    pub(crate) reasons: Vec<String>,
    pub(crate) rejected: Vec<String>,
}

/// Picks the cheapest source that satisfies `merged` for `size` bytes. With `only`, considers
/// just the source of that name (explicit-only heaps included).
pub(crate) fn choose_source(
    sources: &[Arc<dyn MemorySource>],
    merged: &MergedConstraints,
    size: u64,
    only: Option<&str>,
) -> SourceDecision {
    let mut ranked: Vec<&Arc<dyn MemorySource>> = sources.iter().collect();
    ranked.sort_by_key(|s| cost(s.as_ref()));
    let mut rejected = Vec::new();
    let mut chosen: Option<&Arc<dyn MemorySource>> = None;
    let mut scarce_ok: Option<&Arc<dyn MemorySource>> = None;
    let mut not_used = Vec::new();
    let c = &merged.constraints;
    for s in ranked {
        let p = s.properties();
        match only {
            Some(name) if s.name() != name => continue,
            None if p.explicit_only => {
                rejected.push(format!(
                    "{}: unknown heap, used only when asked for by name",
                    s.name()
                ));
                continue;
            }
            _ => {}
        }
        if let Some(why) = source_rejection(s.as_ref(), merged, size) {
            rejected.push(format!("{}: {why}", s.name()));
            continue;
        }
        if p.scarce && !c.contiguous && !c.protected && only.is_none() {
            not_used.push(format!(
                "source {} not used: it is scarce and no device needs contiguous memory",
                s.name()
            ));
            scarce_ok.get_or_insert(s);
            continue;
        }
        if chosen.is_some() {
            not_used.push(format!(
                "source {} not used: dearer than the one chosen",
                s.name()
            ));
            continue;
        }
        chosen = Some(s);
    }
    let why = |s: &Arc<dyn MemorySource>| {
        if only.is_some() {
            "asked for by name".to_owned()
        } else if c.contiguous {
            format!(
                "it gives physically contiguous memory, which {} needs",
                merged.party(merged.origins.contiguous)
            )
        } else if c.cache == CachePolicy::Uncached {
            format!(
                "it gives uncached memory, which {} needs",
                merged.party(merged.origins.cache)
            )
        } else if s.properties().scarce {
            "scarce, but no plentiful source satisfies every device".to_owned()
        } else {
            "it is the cheapest source that satisfies every device".to_owned()
        }
    };
    if let Some(s) = chosen.or(scarce_ok) {
        let mut reasons = vec![format!("source {}: {}", s.name(), why(s))];
        reasons.extend(
            not_used
                .into_iter()
                .filter(|r| !r.contains(&format!("source {} ", s.name()))),
        );
        reasons.extend(rejected.iter().map(|r| format!("source {r}")));
        return SourceDecision {
            chosen: Some(Arc::clone(s)),
            reasons,
            rejected,
        };
    }
    if let Some(name) = only {
        if !sources.iter().any(|s| s.name() == name) {
            rejected.push(format!("{name}: no such memory source"));
        }
    }
    if sources.is_empty() {
        rejected.push("no memory source found (no /dev/dma_heap heap, no /dev/udmabuf)".into());
    }
    SourceDecision {
        chosen: None,
        reasons: Vec::new(),
        rejected,
    }
}
