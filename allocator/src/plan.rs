//! The decision cenalloc makes for a request, before allocating anything.
//!
//! The planner ranks the memory sources from cheapest to dearest (plentiful before scarce,
//! cached before uncached, heaps before udmabuf) and takes the first that satisfies the merged
//! constraints; every source ruled out gets a sentence saying why.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::Arc;

use crate::{
    BufferRequest, CachePolicy, Layout, MemorySource, MergedConstraints, SourceKind,
    SourceProperties,
};

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
    /// What the chosen source gives (for a device exporter: what the merged constraints ask).
    pub source_properties: SourceProperties,
    /// Index of the importer that will export the buffer, when the source is a device.
    pub exporter: Option<usize>,
    /// Planes, strides, offsets. For a device exporter this is cenalloc's linear estimate;
    /// the device's own layout replaces it at allocation.
    pub layout: Layout,
    /// Total size in bytes (same as `layout.size`).
    pub size: u64,
    /// Chosen modifier (same as `layout.modifier`).
    pub modifier: crate::Modifier,
    /// One sentence per decision: why this source, why this modifier, which device imposed
    /// which alignment.
    pub reasons: Vec<String>,
    /// The name each buffer of the plan gets (DMA_BUF_SET_NAME; the kernel keeps 31 bytes):
    /// the request's, or `cenalloc FOURCC WxH`.
    pub name: String,
    /// For a plan whose device lays the buffer out itself: the estimate, if planning found
    /// that it satisfies `merged`. An exported layout equal to it needs no check per buffer.
    /// Kept apart from `layout`, which callers may edit.
    #[serde(skip)]
    pub(crate) verified_layout: Option<Layout>,
    /// `name` as the kernel keeps it, made once per plan.
    #[serde(skip)]
    pub(crate) kernel_name: KernelName,
    /// Where `source` was among the planning allocator's sources: looked at first (and
    /// checked by name) when a buffer is allocated.
    #[serde(skip)]
    pub(crate) source_index: Option<usize>,
}

impl Plan {
    /// The layout a device exported for this plan was already checked against the merged
    /// constraints at planning.
    #[inline(always)]
    pub(crate) fn verified(&self, exported: &Layout) -> bool {
        // Field by field rather than the derived comparison, which calls out for the planes.
        let Some(v) = &self.verified_layout else {
            return false;
        };
        v.fourcc == exported.fourcc
            && v.width == exported.width
            && v.height == exported.height
            && v.modifier == exported.modifier
            && v.size == exported.size
            && v.planes.len() == exported.planes.len()
            && same_planes(&v.planes, &exported.planes)
    }

    /// The NUL-terminated name DMA_BUF_SET_NAME takes: made at planning, made again here if
    /// the caller has renamed the plan since.
    #[inline(always)]
    pub(crate) fn kernel_name(&self) -> std::borrow::Cow<'_, CStr> {
        if self.kernel_name.is_of(&self.name) {
            std::borrow::Cow::Borrowed(&self.kernel_name.0)
        } else {
            std::borrow::Cow::Owned(KernelName::new(&self.name).0)
        }
    }
}

/// Planes `a` and `b` (of equal count) have the same offsets, strides and sizes; a plain
/// loop, which stays inline where the slice comparison would call out.
#[inline(always)]
fn same_planes(a: &[crate::PlaneLayout], b: &[crate::PlaneLayout]) -> bool {
    for i in 0..a.len().min(b.len()) {
        let (a, b) = (&a[i], &b[i]);
        if a.offset != b.offset || a.stride != b.stride || a.size != b.size {
            return false;
        }
    }
    true
}

/// A dma-buf name as the kernel keeps it: at most 31 bytes (DMA_BUF_NAME_LEN - 1), cut at
/// the first NUL.
#[derive(Debug, Clone, Default)]
pub(crate) struct KernelName(pub(crate) CString);

impl KernelName {
    /// Cuts `name` to what the kernel keeps.
    pub(crate) fn new(name: &str) -> KernelName {
        let bytes = &name.as_bytes()[..name.len().min(31)];
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        // No NUL in bytes[..end], so CString::new cannot fail.
        KernelName(CString::new(&bytes[..end]).unwrap_or_default())
    }

    /// This is what `name` is cut to (without cutting it again: a prefix comparison).
    #[inline(always)]
    fn is_of(&self, name: &str) -> bool {
        let kept = self.0.as_bytes();
        let name = name.as_bytes();
        let Some(prefix) = name.get(..kept.len()) else {
            return false;
        };
        same_bytes(kept, prefix)
            && (name.len() == kept.len() || kept.len() == 31 || name.get(kept.len()) == Some(&0))
    }
}

/// `a == b` for the short strings compared on every buffer (names), eight bytes at a time and
/// inline: the slice comparison calls the C library's vectorised memcmp, which costs more
/// than the comparison itself (and far more under emulation).
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (words_a, words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let (tail_a, tail_b) = (words_a.remainder(), words_b.remainder());
    // As integers: compared as slices, the words may become a memcmp call again.
    let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8]));
    for (x, y) in words_a.zip(words_b) {
        if word(x) != word(y) {
            return false;
        }
    }
    for (x, y) in tail_a.iter().zip(tail_b) {
        if x != y {
            return false;
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::KernelName;

    #[test]
    fn kernel_names_are_cut_as_the_kernel_cuts_them() {
        assert_eq!(
            KernelName::new("cenalloc XR24 32x32").0.to_bytes(),
            b"cenalloc XR24 32x32"
        );
        let long = "a name far longer than the thirty-one bytes the kernel keeps";
        assert_eq!(KernelName::new(long).0.to_bytes(), &long.as_bytes()[..31]);
        assert_eq!(KernelName::new("cut\0here").0.to_bytes(), b"cut");
        assert_eq!(KernelName::new("").0.to_bytes(), b"");
    }

    #[test]
    fn a_kernel_name_knows_the_name_it_was_cut_from() {
        let long = "a name far longer than the thirty-one bytes the kernel keeps";
        for name in ["camera0", long, "cut\0here", ""] {
            assert!(KernelName::new(name).is_of(name), "{name:?}");
        }
        assert!(!KernelName::new("camera0").is_of("camera1"));
        assert!(!KernelName::new("camera").is_of("camera0"));
        assert!(!KernelName::new(long).is_of("a name"));
    }
}
