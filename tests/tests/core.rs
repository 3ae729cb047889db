//! The allocator core against the guest's real memory sources: the system heap, the CMA heap
//! (`reserved` in the guest), udmabuf; CPU mappings bracketed by DMA_BUF_IOCTL_SYNC; names and
//! sync_files; bad input giving typed errors without leaking fds.

use std::os::fd::AsFd;
use std::sync::Arc;

use cenalloc::source::HeapClass;
use cenalloc::{
    Allocator, Buffer, BufferRequest, Constraints, CpuAccess, Error, FenceAccess, Fourcc, Imported,
    Importer, Layout, Modifier, PlaneLayout, SourceChoice, SourceKind, Usage,
};
use cenalloc_vmtests::{devices, fds};

/// Stands for a device with fixed constraints: the memory and the dma-bufs are real, only
/// the constraint answer is fixed (to steer the choice of source).
#[derive(Debug)]
struct FixedConstraints {
    name: String,
    constraints: Constraints,
}

#[derive(Debug)]
struct Held(#[allow(dead_code)] Buffer, String);

impl Imported for Held {
    fn device(&self) -> &str {
        &self.1
    }
}

impl Importer for FixedConstraints {
    fn name(&self) -> &str {
        &self.name
    }
    fn constraints(&self, _: &BufferRequest) -> cenalloc::Result<Constraints> {
        Ok(self.constraints.clone())
    }
    fn import(&self, buffer: &Buffer) -> cenalloc::Result<cenalloc::Import> {
        Ok(Box::new(Held(buffer.clone(), self.name.clone())))
    }
}

fn device(name: &str, constraints: Constraints) -> Arc<dyn Importer> {
    Arc::new(FixedConstraints {
        name: name.into(),
        constraints,
    })
}

fn allocator() -> Allocator {
    let a = Allocator::new();
    for name in ["system", "reserved"] {
        devices::heap(name);
        assert!(
            a.source(name).is_some(),
            "heap {name} exists but was not discovered: sources {:?}, unavailable {:?}",
            a.sources(),
            a.unavailable()
        );
    }
    assert!(
        a.source("udmabuf").is_some(),
        "no udmabuf source (is /dev/udmabuf there?): {:?}",
        a.unavailable()
    );
    a
}

/// Writes a pattern through one mapping, reads it back through another.
fn write_and_read_back(buffer: &Buffer) {
    let len = buffer.layout().size() as usize;
    {
        let mut m = buffer.map(CpuAccess::Write).expect("map for writing");
        assert_eq!(m.as_slice().len(), len);
        for (i, b) in m.as_mut_slice().iter_mut().enumerate() {
            *b = (i % 253) as u8 ^ 0x5a;
        }
    }
    let m = buffer.map(CpuAccess::Read).expect("map for reading");
    let bad = m
        .as_slice()
        .iter()
        .enumerate()
        .position(|(i, b)| *b != (i % 253) as u8 ^ 0x5a);
    assert_eq!(bad, None, "pattern differs at byte {bad:?}");
}

fn fdinfo_name(buffer: &Buffer) -> Option<String> {
    use std::os::fd::AsRawFd;
    let info =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", buffer.fd().as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("name:").map(|n| n.trim().to_owned()))
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn heaps_are_discovered_and_classified() {
    let a = allocator();
    let system = a.source("system").unwrap();
    assert!(!system.properties().contiguous && !system.properties().scarce);
    let cma = a.source("reserved").unwrap();
    assert!(cma.properties().contiguous && cma.properties().scarce);
    assert!(
        cma.properties().max_contiguous.unwrap_or(0) >= 64 << 20,
        "CMA size unknown: {:?}",
        cma.properties()
    );
    assert_eq!(
        cenalloc::source::heap::classify_heap("reserved", &cenalloc::source::SystemRoot::real()),
        HeapClass::Cma
    );
    assert!(a.unavailable().is_empty(), "{:?}", a.unavailable());
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn sources_say_up_to_where_their_pages_may_lie() {
    let a = allocator();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    // System memory may lie anywhere in RAM: up to the top of the highest zone.
    let top = a.source("system").unwrap().properties().max_address;
    let top = top.expect("the system heap knows the top of RAM (/proc/zoneinfo)");
    assert!(
        top + 1 >= total * 1024 && top < 1 << 40,
        "RAM top {top:#x}, MemTotal {total} KiB"
    );
    assert_eq!(
        a.source("udmabuf").unwrap().properties().max_address,
        Some(top)
    );
    // The CMA area lies where the kernel reserved it at boot, as its log says; cenalloc reads
    // it from debugfs (CONFIG_CMA_DEBUGFS, which the guest kernel has).
    let (base, size) = cma_reservation_in_kernel_log();
    let cma = a.source("reserved").unwrap().properties().max_address;
    assert_eq!(
        cma,
        Some(base + size - 1),
        "the kernel reserved {} MiB at {base:#x}",
        size >> 20
    );
    assert!(base + size - 1 <= top, "CMA area above RAM's top {top:#x}");
    // A device reaching less than all of RAM cannot get system memory.
    let narrow = device(
        "dma-limited",
        Constraints {
            dma_addr_limit: Some(top / 2),
            ..Constraints::default()
        },
    );
    let request = BufferRequest::image(64, 64, Fourcc::Xrgb8888, Usage::CAMERA_WRITE);
    let plan = a.plan_with_source(&request, &[narrow], "system");
    let err = plan.expect_err("system memory above the limit was accepted");
    assert!(err.to_string().contains("dma-limited"), "{err}");
}

/// (base, size) of the default CMA area from the kernel log: `cma: Reserved 128 MiB at
/// 0x0000000077e00000 on node -1` (mm/cma.c).
fn cma_reservation_in_kernel_log() -> (u64, u64) {
    let out = std::process::Command::new("dmesg")
        .output()
        .expect("cannot run dmesg");
    let log = String::from_utf8_lossy(&out.stdout);
    log.lines()
        .find_map(|l| {
            let rest = &l[l.find("cma: Reserved ")? + "cma: Reserved ".len()..];
            let (mib, rest) = rest.split_once(" MiB at 0x")?;
            let hex = rest.split_whitespace().next()?;
            let base = u64::from_str_radix(hex, 16).ok()?;
            Some((base, mib.parse::<u64>().ok()? << 20))
        })
        .unwrap_or_else(|| panic!("no CMA reservation in the kernel log:\n{log}"))
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn system_heap_allocates_maps_and_names() {
    let a = allocator();
    let req = BufferRequest::image(
        1920,
        1080,
        Fourcc::Xrgb8888,
        Usage::RENDER | Usage::CPU_WRITE,
    )
    .with_name("core-test system");
    let shared = a
        .allocate_and_import(&req, &[device("plain", Constraints::default())])
        .expect("allocate from the system heap");
    assert_eq!(shared.plan().source().name, "system");
    assert_eq!(shared.plan().source().kind, SourceKind::Heap);
    assert!(shared.buffer().layout().size() >= 1 << 20);
    write_and_read_back(shared.buffer());
    assert_eq!(
        fdinfo_name(shared.buffer()).as_deref(),
        Some("core-test system")
    );
    // A buffer cenalloc made is a dma-buf for Buffer::from_fd too.
    let dup = shared.buffer().fd().try_clone_to_owned().unwrap();
    Buffer::from_fd(
        dup,
        shared.buffer().layout().clone(),
        shared.plan().source().clone(),
    )
    .expect("a heap dma-buf is recognised");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn cma_heap_when_contiguous_memory_is_needed() {
    let a = allocator();
    let req = BufferRequest::image(1280, 720, Fourcc::Nv12, Usage::CAMERA_WRITE);
    let dma_contig = device(
        "dma-contig device",
        Constraints {
            contiguous: true,
            ..Default::default()
        },
    );
    let shared = a
        .allocate_and_import(&req, &[dma_contig])
        .expect("allocate from CMA");
    assert_eq!(
        shared.plan().source().name,
        "reserved",
        "{:#?}",
        shared.plan().reasons()
    );
    assert!(shared.buffer().layout().size() >= 1 << 20);
    write_and_read_back(shared.buffer());
    assert!(fdinfo_name(shared.buffer())
        .unwrap_or_default()
        .starts_with("cenalloc NV12"));
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn udmabuf_allocates_and_maps() {
    let a = allocator();
    let req = BufferRequest::blob(3 << 20, Usage::VIDEO_DECODE | Usage::CPU_READ);
    let plan = a
        .plan_with_source(&req, &[], "udmabuf")
        .expect("plan udmabuf");
    assert_eq!(plan.source().kind, SourceKind::Udmabuf);
    let shared = a.allocate(&plan).expect("allocate udmabuf");
    let buffer = shared.buffer();
    write_and_read_back(buffer);
    let dup = buffer.fd().try_clone_to_owned().unwrap();
    Buffer::from_fd(dup, buffer.layout().clone(), buffer.source().clone())
        .expect("a udmabuf is a dma-buf");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn sync_files_export_and_import() {
    let a = allocator();
    let plan = a
        .plan(&BufferRequest::blob(1 << 20, Usage::CPU_WRITE), &[])
        .unwrap();
    let shared = a.allocate(&plan).unwrap();
    let buffer = shared.buffer();
    let fence = buffer
        .export_sync_file(FenceAccess::Write)
        .expect("export a sync_file");
    buffer
        .import_sync_file(FenceAccess::Write, fence.as_fd())
        .expect("import it back");
    write_and_read_back(buffer);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn bad_input_gives_typed_errors_and_leaks_no_fd() {
    let a = allocator();
    let none: &[Arc<dyn Importer>] = &[];
    let before = fds::open_fd_count();

    let zero = BufferRequest::blob(0, Usage::CPU_WRITE);
    assert!(matches!(
        a.allocate_and_import(&zero, none),
        Err(Error::InvalidRequest(_))
    ));
    let zero_w = BufferRequest::image(0, 16, Fourcc::Xrgb8888, Usage::SCANOUT);
    assert!(matches!(
        a.allocate_and_import(&zero_w, none),
        Err(Error::InvalidRequest(_))
    ));

    // 16 GiB in a 2 GiB guest: planned, refused by the heap.
    let huge = BufferRequest::image(65536, 65536, Fourcc::Xrgb8888, Usage::RENDER);
    match a.allocate_and_import(&huge, none) {
        Err(Error::Allocation {
            source_name, size, ..
        }) => {
            assert!(source_name.contains("system"), "{source_name}");
            assert_eq!(size, 65536 * 65536 * 4);
        }
        other => panic!("expected an allocation error, got {other:?}"),
    }
    // With a device limit, the same request is a conflict naming the device.
    let limited = device(
        "limited",
        Constraints {
            max_width: Some(16384),
            ..Default::default()
        },
    );
    let e = a.allocate_and_import(&huge, &[limited]).unwrap_err();
    assert!(
        matches!(e, Error::Conflict { .. }) && e.to_string().contains("limited"),
        "{e}"
    );

    let unknown = BufferRequest::image(64, 64, Fourcc::Q410, Usage::RENDER);
    assert!(matches!(
        a.allocate_and_import(&unknown, none),
        Err(Error::InvalidRequest(_))
    ));
    let no_modifiers = BufferRequest::image(64, 64, Fourcc::Xrgb8888, Usage::RENDER)
        .with_modifiers(std::iter::empty::<Modifier>());
    assert!(matches!(
        a.allocate_and_import(&no_modifiers, none),
        Err(Error::InvalidRequest(_))
    ));

    let memfd = rustix::fs::memfd_create("not-a-dmabuf", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, 4096).unwrap();
    let layout = Layout::new(
        None,
        0,
        0,
        Modifier::LINEAR,
        &[PlaneLayout {
            offset: 0,
            stride: 0,
            size: 4096,
        }],
        4096,
    )
    .expect("the plane lies inside the buffer");
    let source = SourceChoice {
        kind: SourceKind::Heap,
        name: "memfd".into(),
        path: None,
    };
    assert!(matches!(
        Buffer::from_fd(memfd, layout, source),
        Err(Error::NotDmabuf { .. })
    ));

    // A failed import releases what was imported and the buffer itself.
    #[derive(Debug)]
    struct Refuses;
    impl Importer for Refuses {
        fn name(&self) -> &str {
            "refuses"
        }
        fn constraints(&self, _: &BufferRequest) -> cenalloc::Result<Constraints> {
            Ok(Constraints::default())
        }
        fn import(&self, _: &Buffer) -> cenalloc::Result<cenalloc::Import> {
            Err(Error::io("import", std::io::Error::from_raw_os_error(22)))
        }
    }
    let both: Vec<Arc<dyn Importer>> =
        vec![device("ok", Constraints::default()), Arc::new(Refuses)];
    let e = a
        .allocate_and_import(&BufferRequest::blob(1 << 20, Usage::RENDER), &both)
        .unwrap_err();
    assert!(e.to_string().contains("refuses"), "{e}");

    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn hugetlb_udmabuf_is_contiguous_up_to_a_huge_page() {
    let nr = "/proc/sys/vm/nr_hugepages";
    std::fs::write(nr, "4\n").expect("reserving huge pages (the guest runs as root)");
    let a = Allocator::new();
    let huge = a.source("udmabuf-hugetlb").unwrap_or_else(|| {
        panic!(
            "no udmabuf-hugetlb source with huge pages reserved: {:?}",
            a.sources()
        )
    });
    assert!(huge.properties().contiguous);
    assert_eq!(huge.properties().max_contiguous, Some(2 << 20));
    let contiguous = device(
        "dma-contig device",
        Constraints {
            contiguous: true,
            ..Default::default()
        },
    );
    let small = BufferRequest::blob(1536 << 10, Usage::CAMERA_WRITE);
    let plan = a
        .plan_with_source(&small, std::slice::from_ref(&contiguous), "udmabuf-hugetlb")
        .expect("a contiguous buffer up to 2 MiB from huge pages");
    let shared = a.allocate(&plan).expect("allocate");
    write_and_read_back(shared.buffer());
    let big = BufferRequest::blob(3 << 20, Usage::CAMERA_WRITE);
    match a.plan_with_source(&big, std::slice::from_ref(&contiguous), "udmabuf-hugetlb") {
        Err(Error::NoSource { reasons }) => {
            assert!(
                reasons
                    .join(" ")
                    .contains("at most 2097152 contiguous bytes"),
                "{reasons:?}"
            )
        }
        other => panic!("expected NoSource, got {other:?}"),
    }
    drop(shared);
    std::fs::write(nr, "0\n").unwrap();
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn late_contiguous_device_is_refused_then_migrated_to_cma() {
    let a = allocator();
    let before = fds::open_fd_count();
    {
        let req = BufferRequest::image(1024, 768, Fourcc::Xrgb8888, Usage::RENDER);
        let mut pending = a.describe(req);
        pending.attach(device("plain", Constraints::default()));
        let mut shared = pending.realize().expect("realize from the system heap");
        assert_eq!(shared.plan().source().name, "system");
        write_and_read_back(shared.buffer());

        let contiguous = device(
            "dma-contig device",
            Constraints {
                contiguous: true,
                ..Default::default()
            },
        );
        match shared.attach_late(contiguous.clone()) {
            Err(Error::Incompatible { device, kind, .. }) => {
                assert_eq!(device, "dma-contig device");
                assert_eq!(kind, cenalloc::ConstraintKind::Contiguous);
            }
            other => panic!("expected Incompatible, got {other:?}"),
        }
        let held = shared.buffer().clone();
        assert!(matches!(
            shared.migrate_with(&a, contiguous.clone()),
            Err(Error::Busy(_))
        ));
        drop(held);
        shared
            .migrate_with(&a, contiguous)
            .expect("migrate to contiguous memory");
        assert_eq!(shared.plan().source().name, "reserved");
        assert_eq!(shared.imports().len(), 2);
        // The pattern written before the migration survived the copy.
        let m = shared.buffer().map(CpuAccess::Read).unwrap();
        let bad = m
            .as_slice()
            .iter()
            .enumerate()
            .position(|(i, b)| *b != (i % 253) as u8 ^ 0x5a);
        assert_eq!(bad, None);
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn pool_reuses_heap_buffers() {
    let a = allocator();
    let req = BufferRequest::image(640, 480, Fourcc::Nv12, Usage::CAMERA_WRITE);
    let pool = cenalloc::Pool::new(&a, req, vec![device("plain", Constraints::default())], 2)
        .expect("pool");
    let first = pool.acquire().unwrap();
    let first_buffer = first.buffer().clone();
    drop(first);
    for _ in 0..50 {
        let f = pool.acquire().unwrap();
        assert!(f.buffer().same_as(&first_buffer));
    }
    assert_eq!(pool.allocated(), 1);
}
