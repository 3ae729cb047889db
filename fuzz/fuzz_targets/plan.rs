//! The core's decision path on arbitrary devices, requests and memory sources: `merge`,
//! `Layout::compute` with every modifier the devices agree on, and `Allocator::plan` (and
//! `plan_with_source`) over mock importers and mock sources, so no device is needed.
//!
//! The input is decoded with `arbitrary::Unstructured`; small values (0, 1, odd alignments,
//! the supported formats, LINEAR) are favoured, huge ones still reach the overflow checks.
//!
//! Checks, beyond "no panic":
//! - merged constraints: every alignment is a multiple of each device's, every maximum is the
//!   smallest one given, the modifiers are accepted by every device (and the request), and
//!   contiguity, protection and the must-export list follow the devices;
//! - a computed layout passes `Layout::check` against the merged constraints and against
//!   every device's own, holds its planes in order inside its size (or, for a device that
//!   takes planes separately, each plane inside a dma-buf of its own), and its size is a
//!   multiple of the page size and of the merged size alignment;
//! - a plan on a memory source: its layout passes every device's check, the source gives what
//!   the merged constraints need (contiguity, protection, cache policy, address limit), and
//!   planning again gives the same plan; a plan on a device: that device can export and the
//!   layout's modifier is accepted by every device.

#![no_main]

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use cenalloc::format::SUPPORTED;
use cenalloc::{
    Allocator, Buffer, BufferKind, BufferRequest, CachePolicy, Constraints, Error, Fourcc,
    Importer, Layout, MemorySource, Modifier, PlaneConstraint, SourceKind, SourceProperties, Usage,
};
use libfuzzer_sys::fuzz_target;

/// A memory source that exists only for planning.
#[derive(Debug)]
struct MockSource {
    name: String,
    kind: SourceKind,
    properties: SourceProperties,
}

impl MemorySource for MockSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        self.kind
    }
    fn path(&self) -> Option<&Path> {
        None
    }
    fn properties(&self) -> &SourceProperties {
        &self.properties
    }
    fn allocate(&self, size: u64) -> cenalloc::Result<OwnedFd> {
        Err(Error::Allocation {
            source_name: self.name.clone(),
            size,
            error: std::io::Error::from(std::io::ErrorKind::Unsupported),
        })
    }
}

/// A device answering with fixed constraints, or refusing the request.
#[derive(Debug)]
struct MockDevice {
    name: String,
    answer: Option<Constraints>,
}

impl Importer for MockDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn constraints(&self, _: &BufferRequest) -> cenalloc::Result<Constraints> {
        self.answer.clone().ok_or_else(|| Error::Unsupported {
            device: self.name.clone(),
            kind: cenalloc::ConstraintKind::Format,
            detail: "refuses every request".into(),
        })
    }
    fn import(&self, _: &Buffer) -> cenalloc::Result<cenalloc::Import> {
        Err(Error::Unsupported {
            device: self.name.clone(),
            kind: cenalloc::ConstraintKind::Import,
            detail: "planning only".into(),
        })
    }
}

/// An alignment: mostly small or a power of two, sometimes anything.
fn align(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=7)? {
        0 => u.int_in_range(0..=5)?,
        1..=3 => u.int_in_range(1..=300)?,
        4 => 1 << u.int_in_range(0..=24)?,
        5 => 4096,
        _ => u.arbitrary()?,
    })
}

fn small_or_any_u64(u: &mut Unstructured, small: u64) -> Result<u64> {
    if u.ratio(3, 4)? {
        u.int_in_range(0..=small)
    } else {
        u.arbitrary()
    }
}

fn limit64(u: &mut Unstructured, small: u64) -> Result<Option<u64>> {
    if u.ratio(2, 3)? {
        Ok(None)
    } else {
        small_or_any_u64(u, small).map(Some)
    }
}

fn limit32(u: &mut Unstructured, small: u32) -> Result<Option<u32>> {
    if u.ratio(2, 3)? {
        Ok(None)
    } else if u.ratio(3, 4)? {
        u.int_in_range(0..=small).map(Some)
    } else {
        u.arbitrary().map(Some)
    }
}

fn modifier(u: &mut Unstructured) -> Result<Modifier> {
    Ok(match u.int_in_range(0..=5)? {
        0..=2 => Modifier::LINEAR,
        3 => Modifier::INVALID,
        4 => Modifier(u.int_in_range(1..=3)?),
        _ => Modifier(u.arbitrary()?),
    })
}

fn cache(u: &mut Unstructured) -> Result<CachePolicy> {
    Ok(*u.choose(&[CachePolicy::Any, CachePolicy::Cached, CachePolicy::Uncached])?)
}

fn constraints(u: &mut Unstructured) -> Result<Constraints> {
    let plausible = u.ratio(1, 2)?;
    let mut modifiers = Vec::new();
    if plausible {
        modifiers.push(Modifier::LINEAR);
    }
    for _ in 0..u.int_in_range(0..=3)? {
        modifiers.push(modifier(u)?);
    }
    let mut planes = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        planes.push(PlaneConstraint {
            min_stride: small_or_any_u64(u, 20_000)?,
            min_size: small_or_any_u64(u, 50_000_000)?,
            exact_stride: if u.ratio(1, 4)? {
                Some(small_or_any_u64(u, 20_000)?)
            } else {
                None
            },
        });
    }
    let can_export = u.ratio(1, 4)?;
    Ok(Constraints {
        contiguous: u.arbitrary()?,
        max_segments: limit32(u, 64)?,
        dma_addr_limit: limit64(u, 1 << 32)?,
        base_align: align(u)?,
        offset_align: align(u)?,
        pitch_align: align(u)?,
        height_align: if u.ratio(3, 4)? {
            u.int_in_range(0..=64)?
        } else {
            u.arbitrary()?
        },
        size_align: align(u)?,
        max_width: limit32(u, 10_000)?,
        max_height: limit32(u, 10_000)?,
        max_pitch: limit64(u, 100_000)?,
        max_size: limit64(u, 100_000_000)?,
        modifiers,
        cache: cache(u)?,
        can_import: !can_export || u.ratio(3, 4)?,
        can_export,
        prefers_own_memory: can_export && u.arbitrary()?,
        protected: u.ratio(1, 8)?,
        separate_planes: u.ratio(1, 4)?,
        planes,
    })
}

fn source_properties(u: &mut Unstructured) -> Result<SourceProperties> {
    Ok(match u.int_in_range(0..=3)? {
        // the system heap
        0 => SourceProperties {
            contiguous: false,
            max_contiguous: None,
            cache: CachePolicy::Cached,
            max_address: None,
            protected: false,
            scarce: false,
            explicit_only: false,
        },
        // a CMA heap
        1 => SourceProperties {
            contiguous: true,
            max_contiguous: Some(128 << 20),
            cache: CachePolicy::Cached,
            max_address: None,
            protected: false,
            scarce: true,
            explicit_only: false,
        },
        _ => SourceProperties {
            contiguous: u.arbitrary()?,
            max_contiguous: limit64(u, 256 << 20)?,
            cache: cache(u)?,
            max_address: limit64(u, 1 << 33)?,
            protected: u.ratio(1, 4)?,
            scarce: u.arbitrary()?,
            explicit_only: u.ratio(1, 4)?,
        },
    })
}

fn fourcc(u: &mut Unstructured) -> Result<Fourcc> {
    if u.ratio(9, 10)? {
        u.choose(SUPPORTED).copied()
    } else {
        Ok(Fourcc::try_from(u.arbitrary::<u32>()?).unwrap_or(Fourcc::Xrgb8888))
    }
}

fn dimension(u: &mut Unstructured) -> Result<u32> {
    Ok(match u.int_in_range(0..=9)? {
        0 => u.int_in_range(0..=2)?,
        9 => u.arbitrary()?,
        _ => u.int_in_range(1..=5000)?,
    })
}

fn request(u: &mut Unstructured) -> Result<BufferRequest> {
    let kind = if u.ratio(4, 5)? {
        BufferKind::Image {
            width: dimension(u)?,
            height: dimension(u)?,
            fourcc: fourcc(u)?,
        }
    } else {
        BufferKind::Blob {
            size: match u.int_in_range(0..=9)? {
                0 => u.int_in_range(0..=1)?,
                9 => u.arbitrary()?,
                _ => u.int_in_range(1..=100_000_000)?,
            },
        }
    };
    let modifiers = if u.ratio(1, 5)? {
        let mut list = Vec::new();
        for _ in 0..u.int_in_range(0..=2)? {
            list.push(modifier(u)?);
        }
        Some(list)
    } else {
        None
    };
    Ok(BufferRequest {
        kind,
        usage: Usage::from_bits_truncate(u.arbitrary()?),
        modifiers,
        name: None,
    })
}

struct Case {
    request: BufferRequest,
    devices: Vec<(String, Option<Constraints>)>,
    sources: Vec<(SourceKind, SourceProperties)>,
    pick: usize,
}

fn case(u: &mut Unstructured) -> Result<Case> {
    let request = request(u)?;
    let mut devices = Vec::new();
    for i in 0..u.int_in_range(0..=4)? {
        let answer = if u.ratio(1, 8)? {
            None
        } else {
            Some(constraints(u)?)
        };
        devices.push((format!("device{i}"), answer));
    }
    let mut sources = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let kind = *u.choose(&[SourceKind::Heap, SourceKind::Udmabuf])?;
        sources.push((kind, source_properties(u)?));
    }
    Ok(Case {
        request,
        devices,
        sources,
        pick: u.int_in_range(0..=4)?,
    })
}

/// Layout invariants that hold whatever the constraints: planes in order inside the one
/// dma-buf, or each inside its own (and then the dma-bufs add up to the size).
fn check_layout_shape(layout: &Layout) {
    if layout.has_separate_planes() {
        assert_eq!(
            layout.dma_buf_sizes().len(),
            layout.planes().len(),
            "{layout:?}"
        );
        assert_eq!(
            layout.dma_buf_sizes().iter().sum::<u64>(),
            layout.size(),
            "{layout:?}"
        );
        for (i, p) in layout.planes().iter().enumerate() {
            assert_eq!(
                layout.dma_buf_sizes()[i] % cenalloc::source::page_size(),
                0,
                "{layout:?}"
            );
            let end = p.offset.checked_add(p.size).expect("plane end fits");
            assert!(
                end <= layout.dma_buf_sizes()[i],
                "plane {i} beyond its dma-buf: {layout:?}"
            );
        }
        return;
    }
    assert_eq!(layout.dma_buf_sizes(), [layout.size()], "{layout:?}");
    let mut end = 0;
    for p in layout.planes() {
        assert!(p.offset >= end, "planes overlap: {layout:?}");
        end = p.offset.checked_add(p.size).expect("plane end fits");
        assert!(end <= layout.size(), "plane beyond the buffer: {layout:?}");
    }
}

fn check_merge_and_layouts(case: &Case) {
    let named: Vec<(&str, &Constraints)> = case
        .devices
        .iter()
        .filter_map(|(n, c)| c.as_ref().map(|c| (n.as_str(), c)))
        .collect();
    let Ok(merged) = cenalloc::merge(&case.request, named.iter().copied()) else {
        return;
    };
    let m = &merged.constraints;
    assert!(!m.modifiers.is_empty(), "merge kept no modifier");
    if let Some(wanted) = &case.request.modifiers {
        assert!(m.modifiers.iter().all(|x| wanted.contains(x)));
    }
    for (name, d) in &named {
        for (what, merged_align, own) in [
            ("base", m.base_align, d.base_align),
            ("offset", m.offset_align, d.offset_align),
            ("pitch", m.pitch_align, d.pitch_align),
            ("size", m.size_align, d.size_align),
            (
                "height",
                u64::from(m.height_align),
                u64::from(d.height_align),
            ),
        ] {
            assert!(
                merged_align % own.max(1) == 0,
                "{what} alignment {merged_align} is not a multiple of {name}'s {own}"
            );
        }
        assert!(m.modifiers.iter().all(|x| d.modifiers.contains(x)));
        assert!(!d.contiguous || m.contiguous);
        assert!(!d.protected || m.protected);
        for (merged_max, own) in [
            (m.max_width.map(u64::from), d.max_width.map(u64::from)),
            (m.max_height.map(u64::from), d.max_height.map(u64::from)),
            (m.max_pitch, d.max_pitch),
            (m.max_size, d.max_size),
            (m.dma_addr_limit, d.dma_addr_limit),
            (m.max_segments.map(u64::from), d.max_segments.map(u64::from)),
        ] {
            if let Some(own) = own {
                assert!(merged_max.is_some_and(|m| m <= own), "a maximum was lost");
            }
        }
    }
    assert!(merged.must_export.len() <= 1);
    for modifier in m.modifiers.clone() {
        let Ok(layout) = Layout::compute(&case.request.kind, modifier, &merged) else {
            continue;
        };
        check_layout_shape(&layout);
        assert_eq!(layout.modifier(), modifier);
        assert!(layout.size() % cenalloc::source::page_size() == 0);
        assert!(layout.size() % m.size_align.max(1) == 0);
        if let Err(e) = layout.check(m) {
            panic!("computed layout fails the merged constraints: {e:?}\n{layout:?}");
        }
        for (name, d) in &named {
            if let Err(e) = layout.check(d) {
                panic!("computed layout fails {name}: {e:?}\n{layout:?}\n{d:?}");
            }
        }
    }
}

fn check_plan(case: &Case) {
    let sources: Vec<Arc<dyn MemorySource>> = case
        .sources
        .iter()
        .enumerate()
        .map(|(i, (kind, properties))| {
            Arc::new(MockSource {
                name: format!("source{i}"),
                kind: *kind,
                properties: properties.clone(),
            }) as Arc<dyn MemorySource>
        })
        .collect();
    let devices: Vec<Arc<dyn Importer>> = case
        .devices
        .iter()
        .map(|(name, answer)| {
            Arc::new(MockDevice {
                name: name.clone(),
                answer: answer.clone(),
            }) as Arc<dyn Importer>
        })
        .collect();
    let allocator = Allocator::from_sources(sources);
    let _ = allocator.plan_with_source(&case.request, &devices, &format!("source{}", case.pick));
    let Ok(plan) = allocator.plan(&case.request, &devices) else {
        return;
    };
    let layout = plan.layout();
    check_layout_shape(layout);
    assert_eq!(plan.size(), layout.size());
    let merged = &plan.merged().constraints;
    match plan.exporter() {
        None => {
            assert_eq!(layout.modifier(), Modifier::LINEAR);
            for (name, answer) in &case.devices {
                let c = answer
                    .as_ref()
                    .expect("a device that refuses fails the plan");
                if let Err(e) = layout.check(c) {
                    panic!("{name} rejects the planned layout: {e:?}\n{layout:?}\n{c:?}");
                }
            }
            let p = plan.source_properties();
            assert!(!merged.contiguous || p.contiguous, "contiguity lost");
            assert!(!merged.protected || p.protected, "protection lost");
            assert!(
                !merged.contiguous || p.max_contiguous.is_none_or(|max| layout.size() <= max),
                "contiguous source too small"
            );
            // A source whose placement is unknown is accepted under a limit, by design.
            if let (Some(limit), Some(top)) = (merged.dma_addr_limit, p.max_address) {
                assert!(
                    top <= limit,
                    "the source may lie above the limit {limit}: {p:?}"
                );
            }
            match (merged.cache, p.cache) {
                (CachePolicy::Any, _) => {}
                (want, have) => assert!(have == want || have == CachePolicy::Any),
            }
            let again = allocator
                .plan(&case.request, &devices)
                .expect("a second plan");
            assert_eq!(again.layout(), layout, "planning is not deterministic");
            assert_eq!(again.source().name, plan.source().name);
        }
        Some(i) => {
            let c = case.devices[i].1.as_ref().expect("the exporter answered");
            assert!(c.can_export, "device{i} exports but cannot");
            for (_, answer) in &case.devices {
                let c = answer
                    .as_ref()
                    .expect("a device that refuses fails the plan");
                assert!(c.modifiers.contains(&layout.modifier()));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = case(&mut Unstructured::new(data)) else {
        return;
    };
    check_merge_and_layouts(&case);
    check_plan(&case);
});
