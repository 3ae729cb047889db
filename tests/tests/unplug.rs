//! A device going away mid-use: virtio-gpu is removed while a buffer it exported is imported
//! into vkms. QEMU refuses to hot-unplug virtio-gpu-pci ("Device 'virtio-gpu-pci' does not
//! support hotplugging"), so the removal is driven from inside the guest by unbinding the PCI
//! device from virtio-pci in sysfs: the kernel runs the same remove path (virtio_gpu's remove →
//! drm_dev_unplug) as for a hot unplug. The device is bound again at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cenalloc::{Allocator, BufferRequest, CpuAccess, Fourcc, Importer, Usage};
use cenalloc_drm::{DrmDevice, DrmImport, NodeKind};
use cenalloc_vmtests::devices::drm_nodes;
use cenalloc_vmtests::drm_device;
use cenalloc_vmtests::fds::open_fd_count;

const VIRTIO_PCI: &str = "/sys/bus/pci/drivers/virtio-pci";

/// The PCI device (e.g. `0000:00:02.0`) behind a DRM card: the card's sysfs device itself
/// when virtio-gpu parents its DRM device on the PCI device (6.12), else the parent of the
/// virtio device.
fn pci_address(card: &Path) -> String {
    let name = card.file_name().unwrap().to_string_lossy().into_owned();
    let dev = std::fs::canonicalize(format!("/sys/class/drm/{name}/device"))
        .expect("the card has a sysfs device");
    let pci = if Path::new(VIRTIO_PCI)
        .join(dev.file_name().unwrap())
        .exists()
    {
        dev.as_path()
    } else {
        dev.parent().expect("a virtio device has a PCI parent")
    };
    pci.file_name().unwrap().to_string_lossy().into_owned()
}

fn virtio_gpu_present() -> bool {
    drm_nodes("card").iter().any(|(_, d)| d == "virtio_gpu")
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Binds the PCI device to virtio-pci again when dropped, so later tests in the same guest
/// boot find virtio-gpu whatever happened here.
struct Rebind(String);

impl Drop for Rebind {
    fn drop(&mut self) {
        if !Path::new(VIRTIO_PCI).join(&self.0).exists() {
            let _ = std::fs::write(Path::new(VIRTIO_PCI).join("bind"), &self.0);
        }
        let start = Instant::now();
        while !virtio_gpu_present() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What each open fd refers to, for a leak message.
fn fd_links() -> Vec<String> {
    let mut links: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|l| l.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    links
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(13) ^ (i >> 7)) as u8
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn virtio_gpu_removed_mid_use_leaves_vkms_working_and_reports_itself_gone() {
    let fds_before = open_fd_count();
    let links_before = fd_links();
    let vkms = drm_device("vkms", NodeKind::Card);
    let virtio = drm_device("virtio_gpu", NodeKind::Card);
    let card: PathBuf = virtio.path().expect("opened by path").to_path_buf();
    let pci = pci_address(&card);
    let (w, h) = (640u32, 480u32);
    let request = BufferRequest::image(w, h, Fourcc::Xrgb8888, Usage::SCANOUT | Usage::RENDER);
    let importers: [Arc<dyn Importer>; 2] = [Arc::new(vkms.clone()), Arc::new(virtio.clone())];
    let shared = Allocator::new()
        .allocate_and_import(&request, &importers)
        .expect("virtio-gpu exports, both import");
    assert_eq!(
        shared.buffer().source().name,
        virtio.name(),
        "virtio-gpu is the exporter"
    );
    let stride = shared.buffer().layout().planes()[0].stride as usize;
    {
        let mut map = shared
            .buffer()
            .map(CpuAccess::Write)
            .expect("map the export");
        for (i, b) in map.as_mut_slice().iter_mut().enumerate() {
            *b = pattern(i);
        }
    }

    let rebind = Rebind(pci.clone());
    std::fs::write(Path::new(VIRTIO_PCI).join("unbind"), &pci).expect("unbind virtio-gpu");
    wait_for("virtio-gpu to go away", || !virtio_gpu_present());

    // The gone device answers with typed errors naming it, never a panic.
    let err = virtio
        .import(shared.buffer())
        .expect_err("importing into a removed device fails");
    assert!(err.to_string().contains(virtio.name()), "{err}");
    let again = Allocator::new().allocate_and_import(&request, &importers);
    let err = again.expect_err("allocating with a removed exporter fails");
    assert!(err.to_string().contains("virtio_gpu"), "{err}");

    // vkms still scans the buffer out: its framebuffer, read back through writeback.
    let on_vkms = shared
        .imports()
        .iter()
        .filter_map(|i| i.downcast_ref::<DrmImport>())
        .find(|i| cenalloc::Imported::device(*i) == vkms.name())
        .expect("the vkms import");
    let target_request =
        BufferRequest::image(w, h, Fourcc::Xrgb8888, Usage::SCANOUT | Usage::CPU_READ);
    let vkms_only: [Arc<dyn Importer>; 1] = [Arc::new(vkms.clone())];
    let target = Allocator::new()
        .allocate_and_import(&target_request, &vkms_only)
        .expect("writeback target");
    let target_fb = target.imports()[0]
        .downcast_ref::<DrmImport>()
        .and_then(DrmImport::framebuffer)
        .expect("target framebuffer");
    let wb = cenalloc_drm::writeback::Writeback::new(&vkms).expect("vkms writeback");
    wb.capture(
        on_vkms.framebuffer().expect("vkms framebuffer"),
        target_fb,
        (w, h),
        Duration::from_secs(20),
    )
    .expect("vkms composes the removed device's buffer");
    let got = target
        .buffer()
        .map(CpuAccess::Read)
        .expect("map the capture");
    let tstride = target.buffer().layout().planes()[0].stride as usize;
    let mut bad = 0;
    for y in 0..h as usize {
        for x in 0..w as usize {
            // XR24: the X byte is undefined; compare B, G, R.
            for c in 0..3 {
                if got.as_slice()[y * tstride + x * 4 + c] != pattern(y * stride + x * 4 + c) {
                    bad += 1;
                }
            }
        }
    }
    assert_eq!(
        bad, 0,
        "{bad} colour bytes differ after the exporter went away"
    );
    drop(got);
    drop((target, wb, vkms_only));
    // Releasing the imports, including the one on the removed device, must not panic.
    drop(shared);
    drop(importers);
    drop((virtio, vkms));
    drop(rebind);
    assert!(virtio_gpu_present(), "virtio-gpu is bound again");
    let _ = DrmDevice::open(&card);
    assert_eq!(
        open_fd_count(),
        fds_before,
        "fds leaked: before {links_before:?}, after {:?}",
        fd_links()
    );
}
