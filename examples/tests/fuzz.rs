//! Bounded fuzzing in every `cargo test`: property tests over arbitrary inputs that must never
//! panic (256 cases each; `PROPTEST_CASES=100000 cargo test -p cenalloc-examples --test fuzz`
//! for a longer run). The coverage-guided libFuzzer targets in `fuzz/` (`cargo xtask fuzz`)
//! go deeper on the same code; these stay as the quick, build-free check. They add what the
//! crates' own unit tests do not already cover:
//!
//! - the IN_FORMATS blob parser is fuzzed in `drm-backend/src/blob.rs` (arbitrary bytes,
//!   arbitrary headers, round trips), so it is not repeated here;
//! - the core: `Allocator::plan` end to end (request validation, merge of any number of
//!   arbitrary devices, choice among mock memory sources, exporting devices, layout) for
//!   images *and* blobs, any modifier list (empty included), any usage; `Layout::check` of
//!   arbitrary layouts against arbitrary constraints; and, when a plan succeeds on a memory
//!   source, that its layout satisfies every device;
//! - V4L2: the pixel format mapping on arbitrary codes, `struct v4l2_format` read back from
//!   arbitrary bytes (what a driver could return), and the plane geometry helpers.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use cenalloc::format::SUPPORTED;
use cenalloc::{
    Allocator, Buffer, BufferKind, BufferRequest, CachePolicy, Constraints, Error, Fourcc,
    Importer, Layout, MemorySource, Modifier, PlaneConstraint, PlaneLayout, SourceKind,
    SourceProperties, Usage,
};
use cenalloc_v4l2::format::{
    color_planes, drm_to_v4l2, memory_planes, plane_stride, plane_vsub, v4l2_to_drm, PixelFormat,
};
use proptest::prelude::*;

/// A memory source that only exists for planning.
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

/// A device answering with fixed constraints (or refusing the request).
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

/// Small values hit the interesting cases (0, 1, odd alignments) far more often than
/// uniform u64s; big ones hit the overflow checks.
fn align() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..=5, 1u64..300, Just(4096), Just(1 << 21), any::<u64>()]
}

fn limit64() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(prop_oneof![0u64..100_000, any::<u64>()])
}

fn limit32() -> impl Strategy<Value = Option<u32>> {
    proptest::option::of(prop_oneof![0u32..10_000, any::<u32>()])
}

fn modifier() -> impl Strategy<Value = Modifier> {
    prop_oneof![
        Just(Modifier::LINEAR),
        Just(Modifier::INVALID),
        (1u64..4).prop_map(Modifier),
        any::<u64>().prop_map(Modifier),
    ]
}

fn plane_constraint() -> impl Strategy<Value = PlaneConstraint> {
    (
        prop_oneof![0u64..20_000, any::<u64>()],
        prop_oneof![0u64..50_000_000, any::<u64>()],
        proptest::option::of(prop_oneof![0u64..20_000, any::<u64>()]),
    )
        .prop_map(|(min_stride, min_size, exact_stride)| PlaneConstraint {
            min_stride,
            min_size,
            exact_stride,
        })
}

fn constraints() -> impl Strategy<Value = Constraints> {
    (
        (
            any::<bool>(),
            limit32(),
            limit64(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            align(),
            align(),
            align(),
            prop_oneof![0u32..=4, 1u32..64, any::<u32>()],
            align(),
        ),
        (limit32(), limit32(), limit64(), limit64()),
        proptest::collection::vec(modifier(), 0..4),
        (0usize..3, any::<bool>(), any::<bool>()),
        proptest::collection::vec(plane_constraint(), 0..4),
    )
        .prop_map(|(a, b, c, modifiers, d, planes)| Constraints {
            contiguous: a.0,
            max_segments: a.1,
            dma_addr_limit: a.2,
            protected: a.3 && a.4,
            base_align: b.0,
            offset_align: b.1,
            pitch_align: b.2,
            height_align: b.3,
            size_align: b.4,
            max_width: c.0,
            max_height: c.1,
            max_pitch: c.2,
            max_size: c.3,
            modifiers,
            cache: [CachePolicy::Any, CachePolicy::Cached, CachePolicy::Uncached][d.0],
            can_import: d.1 || !d.2,
            can_export: d.2,
            prefers_own_memory: d.2 && d.1,
            separate_planes: a.3 && !a.4,
            planes,
        })
}

/// Constraints a real device could give: small alignments, LINEAR among the modifiers, few
/// limits. They make successful plans common, so the layout property gets exercised.
fn plausible_constraints() -> impl Strategy<Value = Constraints> {
    (
        (any::<bool>(), 1u64..300, 1u64..300, 1u64..300, 1u32..33),
        proptest::option::of(1000u32..10_000),
        proptest::collection::vec(modifier(), 0..2),
        proptest::collection::vec((0u64..20_000, 0u64..50_000_000), 0..2),
    )
        .prop_map(|(a, max_width, extra, planes)| Constraints {
            contiguous: a.0,
            base_align: a.1,
            offset_align: a.2,
            pitch_align: a.3,
            height_align: a.4,
            max_width,
            modifiers: std::iter::once(Modifier::LINEAR).chain(extra).collect(),
            planes: planes
                .into_iter()
                .map(|(min_stride, min_size)| PlaneConstraint {
                    min_stride,
                    min_size,
                    exact_stride: None,
                })
                .collect(),
            ..Constraints::default()
        })
}

fn source_properties() -> impl Strategy<Value = SourceProperties> {
    (
        any::<bool>(),
        limit64(),
        0usize..3,
        limit64(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(contiguous, max_contiguous, cache, max_address, f)| SourceProperties {
                contiguous,
                max_contiguous,
                cache: [CachePolicy::Any, CachePolicy::Cached, CachePolicy::Uncached][cache],
                max_address,
                protected: f.0,
                scarce: f.1,
                explicit_only: f.2,
            },
        )
}

fn sources() -> impl Strategy<Value = Vec<Arc<dyn MemorySource>>> {
    let plain = SourceProperties {
        contiguous: false,
        max_contiguous: None,
        cache: CachePolicy::Cached,
        max_address: None,
        protected: false,
        scarce: false,
        explicit_only: false,
    };
    let cma = SourceProperties {
        contiguous: true,
        max_contiguous: Some(128 << 20),
        scarce: true,
        ..plain.clone()
    };
    proptest::collection::vec(
        (
            prop_oneof![1 => Just(plain), 1 => Just(cma), 2 => source_properties()],
            prop_oneof![Just(SourceKind::Heap), Just(SourceKind::Udmabuf)],
        ),
        0..4,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (properties, kind))| {
                Arc::new(MockSource {
                    name: format!("source{i}"),
                    kind,
                    properties,
                }) as Arc<dyn MemorySource>
            })
            .collect()
    })
}

fn devices() -> impl Strategy<Value = Vec<Arc<dyn Importer>>> {
    let answer = prop_oneof![
        3 => plausible_constraints().prop_map(Some),
        2 => constraints().prop_map(Some),
        1 => Just(None),
    ];
    proptest::collection::vec(answer, 0..5).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, answer)| {
                Arc::new(MockDevice {
                    name: format!("device{i}"),
                    answer,
                }) as Arc<dyn Importer>
            })
            .collect()
    })
}

/// Any fourcc: the supported ones most of the time, sometimes a code cenalloc does not know.
fn fourcc() -> impl Strategy<Value = Fourcc> {
    prop_oneof![
        9 => (0..SUPPORTED.len()).prop_map(|i| SUPPORTED[i]),
        1 => any::<u32>().prop_map(|c| Fourcc::try_from(c).unwrap_or(Fourcc::Xrgb8888)),
    ]
}

fn request() -> impl Strategy<Value = BufferRequest> {
    let dim = || prop_oneof![1 => 0u32..=2, 8 => 1u32..5000, 1 => any::<u32>()];
    let kind = prop_oneof![
        (dim(), dim(), fourcc()).prop_map(|(width, height, fourcc)| BufferKind::Image {
            width,
            height,
            fourcc
        }),
        prop_oneof![1 => 0u64..=1, 8 => 1u64..100_000_000, 1 => any::<u64>()]
            .prop_map(|size| BufferKind::Blob { size }),
    ];
    (
        kind,
        any::<u32>(),
        proptest::option::weighted(0.2, proptest::collection::vec(modifier(), 0..3)),
    )
        .prop_map(|(kind, usage, modifiers)| BufferRequest {
            kind,
            usage: Usage::from_bits_truncate(usage),
            modifiers,
            name: None,
        })
}

fn plane_layout() -> impl Strategy<Value = PlaneLayout> {
    let n = || prop_oneof![0u64..100_000, any::<u64>()];
    (n(), n(), n()).prop_map(|(offset, stride, size)| PlaneLayout {
        offset,
        stride,
        size,
    })
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        proptest::option::of(fourcc()),
        any::<u32>(),
        any::<u32>(),
        modifier(),
        proptest::collection::vec(plane_layout(), 1..5),
        prop_oneof![0u64..100_000_000, any::<u64>()],
    )
        .prop_map(|(fourcc, width, height, modifier, planes, extra)| {
            // The buffer holds every plane, and `extra` bytes more where that fits in 64 bits.
            let end = planes
                .iter()
                .filter_map(|p| p.offset.checked_add(p.size))
                .max()
                .unwrap_or(0);
            let size = end.saturating_add(extra);
            let planes: Vec<PlaneLayout> = planes
                .into_iter()
                .filter(|p| p.offset.checked_add(p.size).is_some())
                .collect();
            Layout::new(fourcc, width, height, modifier, &planes, size).ok()
        })
        .prop_filter_map("a layout has 1 to 4 planes inside the buffer", |layout| {
            layout
        })
}

proptest! {
    /// Planning never panics, whatever the request, the devices and the sources; a plan that
    /// allocates from a memory source has a layout every device accepts.
    #[test]
    fn plan_never_panics_and_satisfies_every_device(
        request in request(),
        devices in devices(),
        sources in sources(),
    ) {
        let allocator = Allocator::from_sources(sources);
        let Ok(plan) = allocator.plan(&request, &devices) else {
            return Ok(());
        };
        if plan.exporter().is_none() {
            for d in &devices {
                let c = d.constraints(&request).expect("a device that refuses fails the plan");
                prop_assert_eq!(
                    plan.layout().check(&c),
                    Ok(()),
                    "{} rejects the planned layout {:?}",
                    d.name(),
                    plan.layout()
                );
            }
        }
    }

    /// Naming a source explicitly never panics either (unknown names included).
    #[test]
    fn plan_with_source_never_panics(
        request in request(),
        devices in devices(),
        sources in sources(),
        pick in 0usize..5,
    ) {
        let allocator = Allocator::from_sources(sources);
        let _ = allocator.plan_with_source(&request, &devices, &format!("source{pick}"));
    }

    /// Checking an arbitrary layout against arbitrary constraints never panics.
    #[test]
    fn layout_check_never_panics(layout in layout(), constraints in constraints()) {
        let _ = layout.check(&constraints);
    }

    /// Merging then laying out with any modifier (not only LINEAR) never panics.
    #[test]
    fn merge_and_layout_with_any_modifier_never_panic(
        request in request(),
        devices in proptest::collection::vec(constraints(), 0..5),
        modifier in modifier(),
    ) {
        let named: Vec<(String, Constraints)> = devices
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("device{i}"), c))
            .collect();
        if let Ok(merged) = cenalloc::merge(&request, named.iter().map(|(n, c)| (n.as_str(), c))) {
            let _ = Layout::compute(&request.kind, modifier, &merged);
        }
    }

    /// The V4L2 ↔ DRM pixel format mapping is total and consistent on arbitrary codes.
    #[test]
    fn v4l2_format_mapping_never_panics(code in any::<u32>()) {
        let pf = PixelFormat(code);
        let shown = pf.to_string();
        prop_assert_eq!(shown.chars().count(), 4);
        let _ = format!("{pf:?}");
        let planes = memory_planes(pf);
        prop_assert!((1..=3).contains(&planes));
        if let Some(drm) = v4l2_to_drm(pf) {
            prop_assert!(drm_to_v4l2(drm).contains(&pf), "{pf} → {drm:?} does not map back");
        }
        if let Ok(fourcc) = Fourcc::try_from(code) {
            for v in drm_to_v4l2(fourcc) {
                prop_assert_eq!(v4l2_to_drm(v), Some(fourcc));
            }
        }
    }

    /// Plane geometry helpers on any format, plane index and a bytesperline a driver can
    /// return (V4L2 reports it as a u32).
    #[test]
    fn v4l2_plane_geometry_never_panics(
        f in 0..SUPPORTED.len(),
        plane in 0usize..8,
        bytesperline in any::<u32>(),
    ) {
        let fourcc = SUPPORTED[f];
        let n = color_planes(fourcc);
        prop_assert!((1..=3).contains(&n));
        prop_assert!(plane_vsub(fourcc, plane) >= 1);
        let _ = plane_stride(fourcc, plane, u64::from(bytesperline));
    }

    /// A layout is made only when every plane lies inside the buffer; never a panic.
    #[test]
    fn layouts_hold_their_planes(
        planes in proptest::collection::vec(plane_layout(), 0..7),
        size in prop_oneof![0u64..100_000_000, any::<u64>()],
    ) {
        let fits = (1..=Layout::MAX_PLANES).contains(&planes.len())
            && planes
                .iter()
                .all(|p| p.offset.checked_add(p.size).is_some_and(|end| end <= size));
        let made = Layout::new(None, 0, 0, Modifier::LINEAR, &planes, size);
        prop_assert_eq!(made.is_ok(), fits);
    }
}

/// The plan property above is not vacuous: a fair share of the random cases do plan.
#[test]
fn random_cases_do_plan_sometimes() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (request(), devices(), sources());
    let (mut planned, mut on_source) = (0, 0);
    const CASES: usize = 400;
    for _ in 0..CASES {
        let (request, devices, sources) = strategy
            .new_tree(&mut runner)
            .expect("a value tree")
            .current();
        if let Ok(plan) = Allocator::from_sources(sources).plan(&request, &devices) {
            planned += 1;
            on_source += usize::from(plan.exporter().is_none());
        }
    }
    eprintln!("{planned} of {CASES} random cases planned, {on_source} on a memory source");
    assert!(
        on_source >= CASES / 20,
        "only {on_source} of {CASES} planned on a source"
    );
}
