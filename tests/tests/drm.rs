//! DRM backend against the guest's real drivers: vkms (KMS + writeback), vgem, virtio-gpu.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use cenalloc::{
    Buffer, BufferRequest, CpuAccess, Fourcc, Importer, Layout, Modifier, PlaneLayout,
    SourceChoice, SourceKind, Usage,
};
use cenalloc_drm::{DrmDevice, DrmError, DrmImport, NodeKind, PlaneKind};
use cenalloc_raw_ioctl::heap::alloc as heap_alloc;
use cenalloc_vmtests::devices::heap;
use cenalloc_vmtests::fds::open_fd_count;
use cenalloc_vmtests::{dri_debugfs_framebuffers, drm_device};
use drm::control::Device as _;

fn card(driver: &str) -> DrmDevice {
    drm_device(driver, NodeKind::Card)
}

/// A w×h XRGB8888 buffer with `stride` from the system heap.
fn xrgb_buffer(w: u32, h: u32, stride: u64, modifier: Modifier) -> Buffer {
    let size = (stride * u64::from(h)).next_multiple_of(4096);
    let fd: OwnedFd = heap_alloc(&heap("system"), size).expect("system heap allocation");
    let layout = Layout::new(
        Some(Fourcc::Xrgb8888),
        w,
        h,
        modifier,
        &[PlaneLayout {
            offset: 0,
            stride,
            size: stride * u64::from(h),
        }],
        size,
    )
    .expect("the plane lies inside the buffer");
    let source = SourceChoice {
        kind: SourceKind::Heap,
        name: "system".into(),
        path: Some(heap("system")),
    };
    Buffer::from_fd(fd, layout, source).expect("a heap fd is a dma-buf")
}

fn pattern(x: u32, y: u32) -> u32 {
    0xff00_0000 | ((x * 7 + y * 3) & 0xff) << 16 | ((x ^ y) & 0xff) << 8 | ((x + 2 * y) & 0xff)
}

/// Writes `pattern` into every pixel of an XRGB8888 buffer through a CPU mapping.
fn fill_with_pattern(buffer: &Buffer) {
    let stride = buffer.layout().planes()[0].stride as usize;
    let width = buffer.layout().width() as usize;
    let mut map = buffer.map(CpuAccess::Write).unwrap();
    for (y, row) in map.as_mut_slice().chunks_exact_mut(stride).enumerate() {
        for (x, px) in row[..width * 4].chunks_exact_mut(4).enumerate() {
            px.copy_from_slice(&pattern(x as u32, y as u32).to_le_bytes());
        }
    }
}

/// How many pixels of an XRGB8888 buffer differ from `pattern` (the first few are printed).
fn pixels_off_pattern(buffer: &Buffer) -> usize {
    let layout = buffer.layout();
    let stride = layout.planes()[0].stride as usize;
    let map = buffer.map(CpuAccess::Read).unwrap();
    let mut bad = 0usize;
    for y in 0..layout.height() {
        for x in 0..layout.width() {
            let at = y as usize * stride + x as usize * 4;
            let got = u32::from_le_bytes(map.as_slice()[at..at + 4].try_into().unwrap());
            if got != pattern(x, y) {
                if bad < 5 {
                    eprintln!("({x},{y}): got {got:#010x}, want {:#010x}", pattern(x, y));
                }
                bad += 1;
            }
        }
    }
    bad
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn probe_vkms_vgem_virtio_gpu() {
    let vkms = card("vkms");
    let p = vkms.probe();
    assert!(
        p.caps.prime_import && p.caps.prime_export && p.caps.dumb_buffer,
        "{p:?}"
    );
    assert!(p.is_display(), "vkms has planes: {p:?}");
    let primary = p
        .planes
        .iter()
        .find(|pl| pl.kind == PlaneKind::Primary)
        .expect("vkms primary plane");
    assert!(primary.formats.iter().any(|f| f == "XR24"), "{primary:?}");
    assert!(p.has_cursor(), "vkms has a cursor plane");
    assert!(p.limits.is_some());
    assert!(vkms.report().roles.contains(&"scanout"));

    let vgem = card("vgem");
    let vp = vgem.probe();
    assert!(!vp.is_display(), "vgem has no KMS: {vp:?}");
    assert!(vp.caps.prime_import && vp.caps.prime_export);

    let virtio = card("virtio_gpu");
    let gp = virtio.probe();
    assert!(gp.is_display(), "virtio-gpu scans out: {gp:?}");
    assert_eq!(gp.sysfs.bus.as_deref(), Some("pci"), "{:?}", gp.sysfs);
    assert_eq!(virtio.sysfs_driver(), Some("virtio_gpu"));
    assert_eq!(vkms.sysfs_driver(), Some("vkms"), "{:?}", vkms.sysfs());
    assert_eq!(vgem.sysfs_driver(), Some("vgem"), "{:?}", vgem.sysfs());
    for d in cenalloc_drm::enumerate() {
        eprintln!(
            "{}",
            serde_json::to_string(&d.report()).expect("report serialises")
        );
    }
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vkms_in_formats_match_the_plane_api() {
    let vkms = card("vkms");
    let mut checked = 0;
    for plane in &vkms.probe().planes {
        let handle = drm::control::from_u32(plane.id).expect("plane id");
        let info = vkms.get_plane(handle).expect("GETPLANE");
        let fm = plane
            .format_modifiers
            .as_ref()
            .unwrap_or_else(|| panic!("vkms plane {} has no IN_FORMATS", plane.id));
        let mut ours = fm.formats.clone();
        let mut kernel = info.formats().to_vec();
        ours.sort();
        kernel.sort();
        assert_eq!(ours, kernel, "plane {} ({:?})", plane.id, plane.kind);
        for f in &kernel {
            assert_eq!(
                fm.modifiers_for(*f),
                &[Modifier::LINEAR],
                "vkms is linear only"
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "vkms exposes primary and cursor planes");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn trial_import_vkms_accepts_virtio_gpu_refuses() {
    let vkms = card("vkms");
    assert!(
        vkms.import_trial().accepted(),
        "vkms: {:?}",
        vkms.import_trial()
    );
    let virtio = card("virtio_gpu");
    assert!(
        matches!(virtio.import_trial(), cenalloc_drm::ImportTrial::Refused(_)),
        "virtio_gpu: {:?}",
        virtio.import_trial()
    );
    let req = BufferRequest::image(64, 64, Fourcc::Xrgb8888, Usage::SCANOUT);
    assert!(vkms.constraints(&req).unwrap().can_import);
    let c = virtio.constraints(&req).unwrap();
    assert!(!c.can_import && c.can_export, "{c:?}");
    assert!(vkms.report().can_import && !virtio.report().can_import);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn importing_twice_shares_one_gem_handle_closed_once() {
    let vkms = card("vkms");
    let fds = open_fd_count();
    let fbs = dri_debugfs_framebuffers(&vkms);
    let buffer = xrgb_buffer(64, 64, 256, Modifier::LINEAR);
    let a = vkms.import_buffer(&buffer).expect("first import");
    let b = vkms.import_buffer(&buffer).expect("second import");
    assert_eq!(a.gem_handle(), b.gem_handle());
    assert_ne!(a.framebuffer(), b.framebuffer());
    assert_eq!(vkms.live_gem_handles(), 1);
    assert_eq!(dri_debugfs_framebuffers(&vkms), fbs + 2);
    drop(a);
    // The handle is still open: the second framebuffer is still valid, and a fresh import
    // gets the same handle.
    let fb = b.framebuffer().expect("vkms import has a framebuffer");
    vkms.get_planar_framebuffer(fb)
        .expect("second FB alive after first drop");
    assert_eq!(vkms.live_gem_handles(), 1);
    let handle = b.gem_handle();
    drop(b);
    assert_eq!(vkms.live_gem_handles(), 0);
    // GEM_CLOSE of the handle now fails: it was closed exactly once, by the last drop.
    let raw = drm::control::from_u32(handle).expect("handle");
    assert!(
        vkms.close_buffer(raw).is_err(),
        "handle {handle} already closed"
    );
    assert_eq!(dri_debugfs_framebuffers(&vkms), fbs);
    drop(buffer);
    assert_eq!(open_fd_count(), fds);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn bad_input_gives_typed_errors_and_leaks_nothing() {
    let vkms = card("vkms");
    let fds = open_fd_count();
    let fbs = dri_debugfs_framebuffers(&vkms);

    let not_drm: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    assert!(matches!(
        DrmDevice::from_fd(not_drm),
        Err(DrmError::NotDrm { .. })
    ));
    let memfd = rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let err = DrmDevice::from_fd(memfd).unwrap_err();
    assert!(matches!(err, DrmError::NotDrm { .. }), "{err}");

    let narrow = xrgb_buffer(64, 64, 128, Modifier::LINEAR);
    let err = vkms.import_buffer(&narrow).unwrap_err();
    assert!(
        matches!(
            err,
            DrmError::StrideTooSmall {
                min: 256,
                stride: 128,
                ..
            }
        ),
        "{err}"
    );
    let as_core: cenalloc::Error = err.into();
    assert!(as_core.to_string().contains("vkms"), "{as_core}");

    let x_tiled = Modifier(0x0100_0000_0000_0001);
    let tiled = xrgb_buffer(64, 64, 256, x_tiled);
    let err = vkms.import_buffer(&tiled).unwrap_err();
    assert!(
        matches!(err, DrmError::ModifierUnsupported { modifier, .. } if modifier == x_tiled),
        "{err}"
    );
    assert!(matches!(
        cenalloc::Error::from(err),
        cenalloc::Error::Unsupported {
            kind: cenalloc::ConstraintKind::Modifier,
            ..
        }
    ));

    // The kernel's own refusal (a buffer too small for its height) releases the handle.
    let short = {
        let b = xrgb_buffer(64, 16, 256, Modifier::LINEAR);
        let l = b.layout();
        let layout = Layout::new(
            l.fourcc(),
            l.width(),
            4096,
            l.modifier(),
            l.planes(),
            l.size(),
        )
        .unwrap();
        let fd = b.fd().try_clone_to_owned().unwrap();
        Buffer::from_fd(fd, layout, b.source().clone()).unwrap()
    };
    let err = vkms.import_buffer(&short).unwrap_err();
    assert!(
        matches!(err, DrmError::ImportRefused { step: "ADDFB2", .. }),
        "{err}"
    );

    drop((narrow, tiled, short));
    assert_eq!(vkms.live_gem_handles(), 0);
    assert_eq!(dri_debugfs_framebuffers(&vkms), fbs);
    assert_eq!(open_fd_count(), fds);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn pattern_presented_on_vkms_reads_back_bit_exact_through_writeback() {
    let vkms = card("vkms");
    let wb = cenalloc_drm::writeback::Writeback::new(&vkms).expect("vkms writeback connector");
    let (w, h) = (640u32, 480u32);
    assert!(wb.sizes().contains(&(w, h)), "{:?}", wb.sizes());
    let stride = u64::from(w) * 4;
    let source = xrgb_buffer(w, h, stride, Modifier::LINEAR);
    fill_with_pattern(&source);
    let target = xrgb_buffer(w, h, stride, Modifier::LINEAR);
    let src = vkms.import_buffer(&source).expect("import source");
    let dst = vkms.import_buffer(&target).expect("import target");
    wb.capture(
        src.framebuffer().unwrap(),
        dst.framebuffer().unwrap(),
        (w, h),
        Duration::from_secs(20),
    )
    .expect("writeback capture");
    let bad = pixels_off_pattern(&target);
    assert_eq!(bad, 0, "{bad} pixels differ");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn virtio_gpu_exports_a_dumb_buffer_that_vkms_and_itself_import() {
    let virtio = card("virtio_gpu");
    let vkms = card("vkms");
    let fds = open_fd_count();
    let req = BufferRequest::image(200, 64, Fourcc::Xrgb8888, Usage::SCANOUT | Usage::RENDER);
    let cv = virtio.constraints(&req).unwrap();
    let ck = vkms.constraints(&req).unwrap();
    let merged = cenalloc::merge(&req, [(virtio.name(), &cv), (vkms.name(), &ck)]).unwrap();
    let exported = virtio
        .export(&req, &merged)
        .expect("virtio-gpu dumb export");
    assert!(
        exported.layout().planes()[0].stride >= 200 * 4,
        "{:?}",
        exported.layout()
    );
    assert!(exported.layout().size() >= exported.layout().planes()[0].stride * 64);
    let source = SourceChoice {
        kind: SourceKind::Device,
        name: virtio.name().to_owned(),
        path: virtio.path().map(Into::into),
    };
    let buffer = Buffer::from_export(exported, source, None);
    let on_vkms = vkms
        .import_buffer(&buffer)
        .expect("vkms imports virtio-gpu's buffer");
    let on_virtio = virtio
        .import_buffer(&buffer)
        .expect("virtio-gpu imports its own buffer");
    assert!(on_vkms.framebuffer().is_some() && on_virtio.framebuffer().is_some());
    drop((on_vkms, on_virtio, buffer));
    assert_eq!(open_fd_count(), fds);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vkms_scanout_with_virtio_gpu_render_is_exported_by_virtio_gpu() {
    let virtio: Arc<dyn Importer> = Arc::new(card("virtio_gpu"));
    let vkms: Arc<dyn Importer> = Arc::new(card("vkms"));
    let allocator = cenalloc::Allocator::new();
    let req = BufferRequest::image(256, 64, Fourcc::Xrgb8888, Usage::SCANOUT | Usage::RENDER);
    let importers = [vkms.clone(), virtio.clone()];
    let plan = allocator.plan(&req, &importers).expect("plan");
    assert_eq!(
        plan.source().kind,
        SourceKind::Device,
        "{:?}",
        plan.reasons()
    );
    assert_eq!(plan.source().name, virtio.name(), "{:?}", plan.reasons());
    let shared = allocator.allocate(&plan).expect("allocate and import");
    let layout = shared.buffer().layout();
    assert!(layout.planes()[0].stride >= 256 * 4);
    for i in shared.imports() {
        let imp = i.downcast_ref::<DrmImport>().expect("a DRM import");
        assert!(imp.framebuffer().is_some(), "{imp:?}");
    }
    let _ = shared.buffer().fd().as_fd();
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gbm_exports_on_virtio_gpu_card_and_fails_cleanly_on_render_nodes() {
    let fds = open_fd_count();
    // Without host 3D, Mesa's GBM on virtio-gpu falls back to kms_swrast, which allocates
    // dumb buffers: it works on the primary node, not on the render node.
    let virtio = card("virtio_gpu");
    let vkms = card("vkms");
    let exported = cenalloc_drm::export::export_gbm(
        &virtio,
        64,
        64,
        Fourcc::Xrgb8888,
        &[Modifier::LINEAR],
        Usage::RENDER,
    )
    .expect("GBM on the virtio-gpu card");
    assert_eq!(exported.layout().modifier(), Modifier::LINEAR);
    assert!(exported.layout().planes()[0].stride >= 256);
    assert!(exported.keepalive().is_some());
    let source = SourceChoice {
        kind: SourceKind::Device,
        name: virtio.name().to_owned(),
        path: None,
    };
    let buffer = Buffer::from_export(exported, source, None);
    let on_vkms = vkms
        .import_buffer(&buffer)
        .expect("vkms imports the GBM buffer");
    assert!(on_vkms.framebuffer().is_some());
    // Importing into the allocating device itself gives a handle on the device's own file,
    // never one libgbm owns.
    let on_virtio = virtio
        .import_buffer(&buffer)
        .expect("virtio-gpu imports its GBM buffer");
    assert!(on_virtio.framebuffer().is_some());
    drop((on_vkms, on_virtio, buffer));
    assert_eq!(virtio.live_gem_handles(), 0);

    let render = drm_device("virtio_gpu", NodeKind::Render);
    let err = cenalloc_drm::export::export_gbm(
        &render,
        64,
        64,
        Fourcc::Xrgb8888,
        &[Modifier::LINEAR],
        Usage::RENDER,
    )
    .expect_err("no GBM allocation on a render node without host 3D");
    assert!(matches!(err, DrmError::Io { .. }), "{err}");
    drop((render, virtio, vkms));
    assert_eq!(open_fd_count(), fds);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vkms_presents_and_flips_through_the_atomic_helper() {
    let vkms = card("vkms");
    let display = cenalloc_drm::kms::Display::new(&vkms).expect("vkms Virtual-1 output");
    let (w, h) = display.size();
    let a = xrgb_buffer(w, h, u64::from(w) * 4, Modifier::LINEAR);
    let b = xrgb_buffer(w, h, u64::from(w) * 4, Modifier::LINEAR);
    let fa = vkms.import_buffer(&a).expect("import a");
    let fb = vkms.import_buffer(&b).expect("import b");
    let plane = display.pipeline().plane;
    display.present(fa.framebuffer().unwrap()).expect("modeset");
    assert_eq!(
        vkms.get_plane(plane).unwrap().framebuffer(),
        fa.framebuffer()
    );
    display.flip(fb.framebuffer().unwrap()).expect("flip");
    assert_eq!(
        vkms.get_plane(plane).unwrap().framebuffer(),
        fb.framebuffer()
    );
    display.disable().expect("off");
    assert_eq!(vkms.get_plane(plane).unwrap().framebuffer(), None);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vkms_scanout_alone_is_a_buffer_vkms_allocates_and_scans_out_bit_exact() {
    let vkms = card("vkms");
    let wb = cenalloc_drm::writeback::Writeback::new(&vkms).expect("vkms writeback connector");
    let display: Arc<dyn Importer> = Arc::new(vkms.clone());
    let importers = [display];
    let allocator = cenalloc::Allocator::new();
    let (fds, fbs) = (open_fd_count(), dri_debugfs_framebuffers(&vkms));
    let (w, h) = (640, 480);

    // Nobody but vkms uses it and the CPU does not map it: vkms allocates it (GBM's model).
    let req = BufferRequest::image(w, h, Fourcc::Xrgb8888, Usage::SCANOUT);
    let plan = allocator.plan(&req, &importers).expect("plan");
    assert_eq!(
        plan.source().kind,
        SourceKind::Device,
        "{:?}",
        plan.reasons()
    );
    assert_eq!(plan.source().name, vkms.name(), "{:?}", plan.reasons());
    let shown = allocator
        .allocate(&plan)
        .expect("allocate on vkms and import");
    // The import used the dumb buffer's own handle: one GEM handle for both.
    assert_eq!(vkms.live_gem_handles(), 1);
    assert!(shown.buffer().layout().planes()[0].stride >= u64::from(w) * 4);
    // The same dma-buf arriving as a foreign fd (a client's, say) goes through PRIME, which
    // hands out that same handle: counted once more, and closed only after its last user.
    let foreign = cenalloc::Buffer::from_fd(
        shown.buffer().fd().try_clone_to_owned().expect("dup"),
        shown.buffer().layout().clone(),
        shown.buffer().source().clone(),
    )
    .expect("a dma-buf");
    let again = vkms
        .import_buffer(&foreign)
        .expect("PRIME import of vkms's own dma-buf");
    let own = shown.imports()[0]
        .downcast_ref::<DrmImport>()
        .expect("a DRM import");
    assert_eq!(again.gem_handle(), own.gem_handle());
    assert_eq!(vkms.live_gem_handles(), 1);
    drop((again, foreign));
    assert_eq!(
        vkms.live_gem_handles(),
        1,
        "the shown buffer still holds it"
    );

    // A buffer the CPU maps comes from the system heap (pages mapped up front, cached).
    let readable = BufferRequest::image(w, h, Fourcc::Xrgb8888, Usage::SCANOUT | Usage::CPU_READ);
    let target = allocator
        .allocate_and_import(&readable, &importers)
        .expect("writeback target");
    assert_eq!(target.buffer().source().name, "system");
    assert_eq!(target.plan().source().kind, SourceKind::Heap);

    // What the display scans out of vkms's own buffer is what was written into it.
    fill_with_pattern(shown.buffer());
    let fb = |s: &cenalloc::SharedBuffer| {
        s.imports()[0]
            .downcast_ref::<DrmImport>()
            .and_then(DrmImport::framebuffer)
            .expect("a vkms framebuffer")
    };
    wb.capture(fb(&shown), fb(&target), (w, h), Duration::from_secs(20))
        .expect("writeback capture");
    let bad = pixels_off_pattern(target.buffer());
    assert_eq!(bad, 0, "{bad} pixels differ");

    drop((shown, target));
    assert_eq!(vkms.live_gem_handles(), 0);
    assert_eq!(dri_debugfs_framebuffers(&vkms), fbs);
    assert_eq!(open_fd_count(), fds);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vkms_scanout_with_contiguous_vivid_camera_comes_from_cma() {
    let vkms: Arc<dyn Importer> = Arc::new(card("vkms"));
    let cam =
        cenalloc_v4l2::Device::open(cenalloc_vmtests::devices::video_node("vivid-000-vid-cap"))
            .expect("open vivid-000");
    let cam: Arc<dyn Importer> = Arc::new(cenalloc_v4l2::V4l2Importer::new(
        Arc::new(cam),
        cenalloc_v4l2::Direction::Capture,
    ));
    let allocator = cenalloc::Allocator::new();
    let req = BufferRequest::image(
        640,
        480,
        Fourcc::Xrgb8888,
        Usage::SCANOUT | Usage::CAMERA_WRITE,
    );
    let importers = [vkms, cam];
    let plan = allocator.plan(&req, &importers).expect("plan");
    assert!(plan.merged().constraints.contiguous, "{:?}", plan.reasons());
    assert_eq!(plan.source().name, "reserved", "{:?}", plan.reasons());
    let shared = allocator
        .allocate(&plan)
        .expect("allocate and import into both");
    assert_eq!(shared.imports().len(), 2);
}
