//! Host tests of planning, allocation, delayed allocation and pools, with mock sources.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use crate::source::heap::heap_properties;
use crate::source::heap::HeapClass;
use crate::testutil::{dynimp, MockImporter, MockSource};
use crate::{
    Allocator, BufferRequest, CachePolicy, ConstraintKind, Constraints, CpuAccess, Error, Fourcc,
    Importer, MemorySource, Modifier, Pool, SourceKind, Usage,
};

fn system_allocator() -> (Allocator, Arc<MockSource>, Arc<MockSource>, Arc<MockSource>) {
    let system = MockSource::heap("system", HeapClass::System);
    let cma = MockSource::heap("reserved", HeapClass::Cma);
    let uncached = MockSource::heap("system-uncached", HeapClass::SystemUncached);
    let udmabuf = MockSource::udmabuf();
    let weird = MockSource::heap("carveout", HeapClass::Unknown);
    let sources: Vec<Arc<dyn MemorySource>> = vec![
        cma.clone(),
        udmabuf,
        weird,
        uncached.clone(),
        system.clone(),
    ];
    (Allocator::from_sources(sources), system, cma, uncached)
}

fn nv12() -> BufferRequest {
    BufferRequest::image(
        1920,
        1080,
        Fourcc::Nv12,
        Usage::CAMERA_WRITE | Usage::SCANOUT,
    )
}

#[test]
fn system_heap_wins_when_nothing_special_is_needed() {
    let (a, ..) = system_allocator();
    let d = MockImporter::new(
        "vkms",
        Constraints {
            pitch_align: 64,
            ..Default::default()
        },
    );
    let plan = a.plan(&nv12(), &[dynimp(&d)]).unwrap();
    assert_eq!(plan.source().name, "system");
    assert_eq!(plan.source().kind, SourceKind::Heap);
    assert_eq!(plan.modifier(), Modifier::LINEAR);
    assert!(
        plan.reasons()
            .iter()
            .any(|r| r.contains("reserved not used")),
        "{:#?}",
        plan.reasons()
    );
    assert!(plan
        .reasons()
        .iter()
        .any(|r| r.contains("pitch alignment 64: required by vkms")));
}

#[test]
fn contiguous_goes_to_cma_and_too_big_is_no_source() {
    let (a, ..) = system_allocator();
    let cam = MockImporter::new(
        "vivid-000",
        Constraints {
            contiguous: true,
            ..Default::default()
        },
    );
    let plan = a.plan(&nv12(), &[dynimp(&cam)]).unwrap();
    assert_eq!(plan.source().name, "reserved");
    assert!(plan.reasons()[..].iter().any(|r| r.contains("vivid-000")));
    let huge = BufferRequest::image(8192, 8192, Fourcc::Xrgb8888, Usage::CAMERA_WRITE);
    match a.plan(&huge, &[dynimp(&cam)]).unwrap_err() {
        Error::NoSource { reasons } => {
            let all = reasons.join("\n");
            assert!(
                all.contains("system: is not physically contiguous, which vivid-000 needs"),
                "{all}"
            );
            assert!(all.contains("reserved: gives at most"), "{all}");
            assert!(all.contains("carveout: unknown heap"), "{all}");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn uncached_and_explicit_sources() {
    let (a, ..) = system_allocator();
    let d = MockImporter::new(
        "disp",
        Constraints {
            cache: CachePolicy::Uncached,
            ..Default::default()
        },
    );
    assert_eq!(
        a.plan(&nv12(), &[dynimp(&d)]).unwrap().source().name,
        "system-uncached"
    );
    let plan = a.plan_with_source(&nv12(), &[], "carveout").unwrap();
    assert_eq!(plan.source().name, "carveout");
    assert!(matches!(
        a.plan_with_source(&nv12(), &[], "nope"),
        Err(Error::NoSource { .. })
    ));
    let prot = MockImporter::new(
        "sec",
        Constraints {
            protected: true,
            ..Default::default()
        },
    );
    assert!(matches!(
        a.plan(&nv12(), &[dynimp(&prot)]),
        Err(Error::NoSource { .. })
    ));
}

#[test]
fn allocate_map_and_import_everyone() {
    let (a, system, ..) = system_allocator();
    let d1 = MockImporter::new("d1", Constraints::default());
    let d2 = MockImporter::new(
        "d2",
        Constraints {
            offset_align: 4096,
            ..Default::default()
        },
    );
    let shared = a
        .allocate_and_import(&nv12(), &[dynimp(&d1), dynimp(&d2)])
        .unwrap();
    assert_eq!(system.count(), 1);
    assert_eq!((d1.live(), d2.live()), (1, 1));
    assert_eq!(shared.buffer().layout().planes[1].offset % 4096, 0);
    {
        let mut m = shared.buffer().map(CpuAccess::Write).unwrap();
        m.as_mut_slice()[0] = 9;
    }
    assert_eq!(
        shared.buffer().map(CpuAccess::Read).unwrap().as_slice()[0],
        9
    );
    assert!(shared.import_for("d2").is_some());
    drop(shared);
    assert_eq!((d1.live(), d2.live()), (0, 0));
}

#[test]
fn a_failed_import_releases_the_others_and_names_the_device() {
    let (a, ..) = system_allocator();
    let ok = MockImporter::new("vkms", Constraints::default());
    let bad = MockImporter::failing("vivid-001");
    let e = a
        .allocate_and_import(&nv12(), &[dynimp(&ok), dynimp(&bad)])
        .unwrap_err();
    assert!(e.to_string().contains("vivid-001"), "{e}");
    assert_eq!(ok.live(), 0);
}

#[test]
fn device_must_export() {
    let (a, ..) = system_allocator();
    let virtio = MockImporter::new(
        "virtio-gpu",
        Constraints {
            can_import: false,
            can_export: true,
            ..Default::default()
        },
    );
    let plan = a
        .plan(
            &nv12(),
            &[
                dynimp(&MockImporter::new("vkms", Constraints::default())),
                dynimp(&virtio),
            ],
        )
        .unwrap();
    assert_eq!(plan.source().kind, SourceKind::Device);
    assert_eq!(plan.exporter(), Some(1));
    assert_eq!(plan.source().name, "virtio-gpu");
    // The mock does not implement export: allocation fails with a typed error.
    let e = a.allocate(&plan).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
}

#[test]
fn delayed_allocation_late_attach_and_migrate() {
    let (a, system, cma, _) = system_allocator();
    let mut pending = a.describe(nv12());
    pending.attach(dynimp(&MockImporter::new("vkms", Constraints::default())));
    let mut shared = pending.realize().unwrap();
    assert_eq!(system.count(), 1);

    // A device whose needs the buffer meets attaches fine.
    let easy = MockImporter::new(
        "gpu",
        Constraints {
            pitch_align: 64,
            ..Default::default()
        },
    );
    shared.attach_late(dynimp(&easy)).unwrap();
    assert_eq!(easy.live(), 1);

    // One that needs contiguous memory does not: the system heap is scattered.
    let cam = MockImporter::new(
        "vivid-000",
        Constraints {
            contiguous: true,
            ..Default::default()
        },
    );
    match shared.attach_late(dynimp(&cam)).unwrap_err() {
        Error::Incompatible {
            device,
            kind,
            reason,
        } => {
            assert_eq!(device, "vivid-000");
            assert_eq!(kind, ConstraintKind::Contiguous);
            assert!(reason.contains("system"), "{reason}");
        }
        e => panic!("{e}"),
    }
    let tiled = MockImporter::new(
        "tiler",
        Constraints {
            modifiers: vec![Modifier(7)],
            ..Default::default()
        },
    );
    assert!(matches!(
        shared.attach_late(dynimp(&tiled)),
        Err(Error::Incompatible {
            kind: ConstraintKind::Modifier,
            ..
        })
    ));
    let pitch = MockImporter::new(
        "pitchy",
        Constraints {
            pitch_align: 1000,
            ..Default::default()
        },
    );
    assert!(matches!(
        shared.attach_late(dynimp(&pitch)),
        Err(Error::Incompatible {
            kind: ConstraintKind::Alignment,
            ..
        })
    ));
    assert_eq!(shared.imports().len(), 2);

    // Write a pattern, hold a clone: migrate is refused.
    {
        let mut m = shared.buffer().map(CpuAccess::Write).unwrap();
        for (i, b) in m.as_mut_slice().iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
    }
    let clone = shared.buffer().clone();
    assert!(matches!(shared.migrate(&a), Err(Error::Busy(_))));
    assert_eq!(easy.live(), 1, "imports restored after a refused migration");
    drop(clone);

    // Migrating keeps contents and re-imports everyone.
    shared.migrate(&a).unwrap();
    assert_eq!(system.count(), 2);
    assert_eq!(cma.count(), 0);
    assert_eq!(easy.live(), 1);
    let m = shared.buffer().map(CpuAccess::Read).unwrap();
    assert!(m.as_slice()[..3_110_400]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 251) as u8));
}

#[test]
fn pool_reuses_buffers() {
    let (a, system, ..) = system_allocator();
    let d = MockImporter::new("vkms", Constraints::default());
    let pool = Pool::new(&a, nv12(), vec![dynimp(&d)], 3).unwrap();
    for _ in 0..100 {
        let f1 = pool.acquire().unwrap();
        let f2 = pool.acquire().unwrap();
        assert!(!f1.buffer().same_as(f2.buffer()));
    }
    assert_eq!(
        system.count(),
        2,
        "a steady pipeline allocates nothing per frame"
    );
    let held: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    assert!(matches!(pool.acquire(), Err(Error::Busy(_))));
    assert_eq!(system.count(), 3);
    assert_eq!(d.live(), 3);
    drop(held);
    assert_eq!(pool.free(), 3);
    drop(pool);
    assert_eq!(d.live(), 0);
}

#[test]
fn discovery_lists_unavailable_nodes() {
    let dir = std::env::temp_dir().join(format!("cenalloc-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("dev/dma_heap")).unwrap();
    // A dangling symlink cannot be opened: it is reported, not fatal.
    std::os::unix::fs::symlink(dir.join("missing"), dir.join("dev/dma_heap/system")).unwrap();
    let a = Allocator::with_root(&dir);
    assert!(a.sources().is_empty());
    assert_eq!(a.unavailable().len(), 1);
    assert!(a.unavailable()[0].reason.contains("system"));
    let e = a.plan(&nv12(), &[]).unwrap_err();
    assert!(matches!(e, Error::NoSource { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exporter_layouts_are_validated() {
    let (a, ..) = system_allocator();
    let vkms = MockImporter::new(
        "vkms",
        Constraints {
            pitch_align: 256,
            ..Default::default()
        },
    );
    let only_export = Constraints {
        can_import: false,
        can_export: true,
        ..Default::default()
    };
    let plan = a
        .plan(
            &nv12(),
            &[
                dynimp(&vkms),
                dynimp(&MockImporter::new("gpu", only_export.clone())),
            ],
        )
        .unwrap();
    // The device's own layout breaks vkms's pitch alignment: refused, naming the exporter.
    let mut bad = plan.layout().clone();
    bad.planes[0].stride = 1928;
    let gpu = MockImporter::exporter("gpu", only_export.clone(), bad);
    let plan = a.plan(&nv12(), &[dynimp(&vkms), dynimp(&gpu)]).unwrap();
    let e = a.allocate(&plan).unwrap_err();
    match e {
        Error::Incompatible { device, kind, .. } => {
            assert_eq!(device, "gpu");
            assert_eq!(kind, ConstraintKind::Alignment);
        }
        e => panic!("{e}"),
    }
    // A fitting layout is taken: the buffer comes from the device and vkms imports it.
    let gpu = MockImporter::exporter("gpu", only_export, plan.layout().clone());
    let plan = a.plan(&nv12(), &[dynimp(&vkms), dynimp(&gpu)]).unwrap();
    let shared = a.allocate(&plan).unwrap();
    assert_eq!(shared.buffer().source().kind, SourceKind::Device);
    assert_eq!(shared.imports().len(), 2);
}

#[test]
fn late_attach_to_a_cma_buffer_and_plan_json() {
    let (a, _, cma, _) = system_allocator();
    let cam = MockImporter::new(
        "vivid-000",
        Constraints {
            contiguous: true,
            ..Default::default()
        },
    );
    let mut shared = a.allocate_and_import(&nv12(), &[dynimp(&cam)]).unwrap();
    assert_eq!(cma.count(), 1);
    assert!(shared.buffer().source_properties().unwrap().contiguous);
    let other = MockImporter::new(
        "vivid-000-out",
        Constraints {
            contiguous: true,
            ..Default::default()
        },
    );
    shared.attach_late(dynimp(&other)).unwrap();
    let uncached = MockImporter::new(
        "wc",
        Constraints {
            cache: CachePolicy::Uncached,
            ..Default::default()
        },
    );
    assert!(matches!(
        shared.attach_late(dynimp(&uncached)),
        Err(Error::Incompatible {
            kind: ConstraintKind::Cache,
            ..
        })
    ));
    #[cfg(feature = "serde")]
    {
        let json = serde_json::to_value(shared.plan()).unwrap();
        assert_eq!(json["source"]["kind"], "heap");
        assert_eq!(json["source"]["name"], "reserved");
        assert_eq!(json["layout"]["planes"][1]["offset"], 1920 * 1080);
        assert_eq!(json["layout"]["fourcc"], "NV12");
        assert_eq!(json["modifier"], 0);
        assert!(json["size"].as_u64().unwrap() >= 3_110_400);
        assert!(json["reasons"].as_array().unwrap().len() >= 3);
    }
}

#[test]
fn a_device_alone_allocates_its_own_buffer_unless_the_cpu_maps_it_or_others_share_it() {
    let (a, ..) = system_allocator();
    let prefers = Constraints {
        can_export: true,
        prefers_own_memory: true,
        ..Default::default()
    };
    let vkms = MockImporter::new("vkms", prefers.clone());
    let scanout = BufferRequest::image(64, 64, Fourcc::Xrgb8888, Usage::SCANOUT);
    let plan = a.plan(&scanout, &[dynimp(&vkms)]).unwrap();
    assert_eq!(plan.source().kind, SourceKind::Device);
    assert_eq!(plan.source().name, "vkms");
    assert_eq!(plan.exporter(), Some(0));
    assert!(
        plan.reasons().iter().any(|r| r.contains("only device")),
        "{:#?}",
        plan.reasons()
    );

    // The CPU maps it: a heap (mapped up front, cached).
    let cpu = BufferRequest::image(64, 64, Fourcc::Xrgb8888, Usage::SCANOUT | Usage::CPU_WRITE);
    assert_eq!(
        a.plan(&cpu, &[dynimp(&vkms)]).unwrap().source().name,
        "system"
    );

    // Another device shares it: a heap, even if both prefer their own memory.
    let gpu = MockImporter::new("gpu", prefers.clone());
    let plan = a.plan(&scanout, &[dynimp(&vkms), dynimp(&gpu)]).unwrap();
    assert_eq!(plan.source().name, "system");
    assert_eq!(plan.exporter(), None);

    // A device that can export but does not prefer to, or an explicit source: a heap.
    let plain = MockImporter::new(
        "vgem",
        Constraints {
            can_export: true,
            ..Default::default()
        },
    );
    assert_eq!(
        a.plan(&scanout, &[dynimp(&plain)]).unwrap().source().name,
        "system"
    );
    let explicit = a
        .plan_with_source(&scanout, &[dynimp(&vkms)], "system")
        .unwrap();
    assert_eq!(explicit.source().kind, SourceKind::Heap);
}

#[test]
fn allocate_and_import_plans_anew_and_a_kept_plan_is_reused_as_it_is() {
    let (a, system, ..) = system_allocator();
    let camera = MockImporter::new(
        "camera",
        Constraints {
            pitch_align: 64,
            ..Default::default()
        },
    );
    let request = BufferRequest::image(100, 16, Fourcc::Xrgb8888, Usage::CAMERA_WRITE);
    let importers = [dynimp(&camera)];
    let stride = |s: &crate::SharedBuffer| s.buffer().layout().planes()[0].stride;

    // Every call asks the devices again: nothing depends on earlier calls.
    let first = a.allocate_and_import(&request, &importers).unwrap();
    assert_eq!((stride(&first), camera.queries()), (448, 1));
    camera.constraints.lock().unwrap().pitch_align = 256;
    let second = a.allocate_and_import(&request, &importers).unwrap();
    assert_eq!((stride(&second), camera.queries()), (512, 2));

    // A plan the caller keeps is the decision reused: no device is asked again.
    let plan = a.plan(&request, &importers).unwrap();
    assert_eq!(camera.queries(), 3);
    let buffers: Vec<_> = (0..3).map(|_| a.allocate(&plan).unwrap()).collect();
    assert_eq!(camera.queries(), 3);
    assert!(buffers.iter().all(|b| stride(b) == 512));
    assert_eq!(system.count(), 5);
    assert_eq!(camera.live(), 5);
}

#[test]
fn a_dma_address_limit_rules_out_memory_that_may_lie_above_it() {
    // RAM reaches 25 GiB; the CMA area lies at 1 GiB..1.125 GiB; where the carve-out lies is
    // unknown.
    let placed = |name: &str, class, top: Option<u64>| {
        let mut props = heap_properties(class, Some(64 << 20));
        props.max_address = top;
        Arc::new(MockSource {
            name: name.into(),
            kind: SourceKind::Heap,
            props,
            allocations: Default::default(),
        })
    };
    let system = placed("system", HeapClass::System, Some((25 << 30) - 1));
    let cma = placed("reserved", HeapClass::Cma, Some((9 << 27) - 1));
    let a = Allocator::from_sources(vec![system.clone(), cma.clone()]);
    let dma32 = MockImporter::new(
        "isp",
        Constraints {
            dma_addr_limit: Some(u32::MAX.into()),
            ..Default::default()
        },
    );
    let plan = a.plan(&nv12(), &[dynimp(&dma32)]).unwrap();
    assert_eq!(plan.source().name, "reserved", "{:#?}", plan.reasons());
    assert!(
        plan.reasons()
            .iter()
            .any(|r| r.contains("system") && r.contains("0xffffffff") && r.contains("isp")),
        "{:#?}",
        plan.reasons()
    );

    // A 40-bit device reaches all of RAM: the system heap.
    let wide = MockImporter::new(
        "gpu",
        Constraints {
            dma_addr_limit: Some((1 << 40) - 1),
            ..Default::default()
        },
    );
    assert_eq!(
        a.plan(&nv12(), &[dynimp(&wide)]).unwrap().source().name,
        "system"
    );

    // Below every source's top: no source, and the error says why for each.
    let dma24 = MockImporter::new(
        "old-dma",
        Constraints {
            dma_addr_limit: Some((1 << 24) - 1),
            ..Default::default()
        },
    );
    let e = a.plan(&nv12(), &[dynimp(&dma24)]).unwrap_err();
    assert!(matches!(e, Error::NoSource { .. }), "{e}");
    assert!(e.to_string().contains("old-dma"), "{e}");
}

#[test]
fn a_device_that_takes_planes_separately_gets_one_dma_buf_per_plane() {
    let (a, system, ..) = system_allocator();
    let camera = MockImporter::new(
        "vivid-002",
        Constraints {
            separate_planes: true,
            pitch_align: 64,
            ..Default::default()
        },
    );
    let display = MockImporter::new("vkms", Constraints::default());
    let plan = a
        .plan(&nv12(), &[dynimp(&camera), dynimp(&display)])
        .unwrap();
    let layout = plan.layout();
    assert!(layout.has_separate_planes());
    let page = crate::source::page_size();
    // Y: 1920 × 1080; CbCr: 1920 × 540, each in a page-rounded dma-buf of its own from offset 0.
    assert_eq!(
        layout.planes().iter().map(|p| p.offset).collect::<Vec<_>>(),
        [0, 0]
    );
    assert_eq!(
        layout.dma_buf_sizes(),
        [
            (1920 * 1080u64).next_multiple_of(page),
            (1920 * 540u64).next_multiple_of(page)
        ]
    );
    assert_eq!(layout.size(), layout.dma_buf_sizes().iter().sum::<u64>());
    assert_eq!(
        (layout.dma_buf_of_plane(0), layout.dma_buf_of_plane(1)),
        (0, 1)
    );
    assert!(
        plan.reasons()
            .iter()
            .any(|r| r.contains("one dma-buf per plane: required by vivid-002")),
        "{:#?}",
        plan.reasons()
    );
    assert!(
        plan.reasons()
            .iter()
            .any(|r| r.starts_with("layout: one dma-buf per plane")),
        "{:#?}",
        plan.reasons()
    );
    let shared = a.allocate(&plan).unwrap();
    assert_eq!(system.count(), 2, "one allocation per plane");
    let buffer = shared.buffer();
    assert_eq!(buffer.dma_bufs().count(), 2);
    assert_eq!(
        buffer.plane_fd(0).map(|fd| fd.as_raw_fd()),
        Some(buffer.fd().as_raw_fd())
    );
    assert_ne!(
        buffer.plane_fd(1).map(|fd| fd.as_raw_fd()),
        Some(buffer.fd().as_raw_fd())
    );
    assert!(buffer.plane_fd(2).is_none());
    {
        let mut m = buffer.map(CpuAccess::Write).unwrap();
        m.plane_mut(0).unwrap()[0] = 0x10;
        m.plane_mut(1).unwrap()[0] = 0x80;
        assert_eq!(m.plane(1).unwrap().len() as u64, layout.planes()[1].size);
    }
    let m = buffer.map(CpuAccess::Read).unwrap();
    assert_eq!(
        (m.plane(0).unwrap()[0], m.plane(1).unwrap()[0]),
        (0x10, 0x80)
    );
    assert_eq!(m.as_slice()[0], 0x10, "as_slice is plane 0's dma-buf");
    assert!(m.plane(2).is_none());
    drop(m);

    // The device refuses a layout whose planes share one dma-buf, saying why.
    let shared_layout = crate::Layout::new(
        layout.fourcc(),
        1920,
        1080,
        Modifier::LINEAR,
        &[
            layout.planes()[0],
            crate::PlaneLayout {
                offset: layout.dma_buf_sizes()[0],
                ..layout.planes()[1]
            },
        ],
        layout.size(),
    )
    .unwrap();
    let (kind, why) = shared_layout
        .check(&camera.constraints(&nv12()).unwrap())
        .unwrap_err();
    assert_eq!(kind, ConstraintKind::Plane);
    assert!(why.contains("dma-buf of its own"), "{why}");
}

#[test]
fn a_per_plane_layout_is_checked_plane_by_plane() {
    let p = crate::PlaneLayout {
        offset: 0,
        stride: 64,
        size: 4096,
    };
    let l = crate::Layout::new_per_plane(
        Fourcc::Nv12,
        64,
        64,
        Modifier::LINEAR,
        &[p, crate::PlaneLayout { size: 2048, ..p }],
        &[4096, 4096],
    )
    .unwrap();
    assert!(l.has_separate_planes());
    assert_eq!(l.size(), 8192);
    let e = crate::Layout::new_per_plane(
        Fourcc::Nv12,
        64,
        64,
        Modifier::LINEAR,
        &[p, p],
        &[4096, 1024],
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::InvalidLayout { plane: Some(1), .. }),
        "{e:?}"
    );
    let e = crate::Layout::new_per_plane(Fourcc::Nv12, 64, 64, Modifier::LINEAR, &[p, p], &[4096])
        .unwrap_err();
    assert!(
        e.to_string().contains("2 planes but 1 dma-buf sizes"),
        "{e}"
    );
}
