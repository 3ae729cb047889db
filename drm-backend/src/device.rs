//! Opening DRM nodes (by path or from a caller's fd) and finding them by driver via sysfs.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use drm::Device as _;

use crate::probe::{ImportTrial, Probe};
use crate::DrmError;

/// The character-device major number of every DRM node (include/drm/drm.h: DRM_MAJOR).
const DRM_MAJOR: u32 = 226;

/// Primary (KMS-capable, `cardN`) or render (`renderDN`) node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum NodeKind {
    /// `/dev/dri/cardN`: modesetting and (for master) everything else.
    Card,
    /// `/dev/dri/renderDN`: rendering and buffer sharing only.
    Render,
}

/// The fd of a DRM node; implements the drm crate's device traits.
#[derive(Debug)]
pub struct Node(OwnedFd);

impl AsFd for Node {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for Node {}
impl drm::control::Device for Node {}

/// What sysfs says about the device behind a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SysfsInfo {
    /// Node name (`card1`, `renderD128`).
    pub node: String,
    /// Basename of `device/driver`, when a driver is bound (PCI devices; platform devices
    /// registered without a driver, like vkms and vgem in 6.12, have none).
    pub driver: Option<String>,
    /// Basename of `device` (e.g. `vkms`, `vgem`, `0000:00:02.0`).
    pub device: Option<String>,
    /// Basename of `device/subsystem` (`pci`, `platform`, `faux`).
    pub bus: Option<String>,
    /// `device/iommu_group` exists: DMA goes through an IOMMU.
    pub iommu: bool,
    /// `device/dma_mask_bits`, where the bus exposes it (PCI).
    pub dma_mask_bits: Option<u32>,
    /// Sibling nodes of the same device (`card0`, `renderD128`).
    pub siblings: Vec<String>,
    /// For a virtio transport device (`driver` is `virtio-pci`/`virtio-mmio`): the driver of
    /// its virtio child device (`virtio_gpu`).
    pub virtio_driver: Option<String>,
}

pub(crate) struct Shared {
    pub(crate) node: Node,
    pub(crate) name: String,
    pub(crate) path: Option<PathBuf>,
    pub(crate) driver: String,
    pub(crate) kind: NodeKind,
    /// Device number of the node (major:minor), the key of process-wide caches.
    pub(crate) rdev: u64,
    pub(crate) sysfs: SysfsInfo,
    pub(crate) probe: OnceLock<Probe>,
    pub(crate) trial: OnceLock<ImportTrial>,
    /// Who holds which GEM handle on `node`.
    pub(crate) gem: crate::gem_handles::GemHandles,
}

/// An open DRM device node. Cheap to clone (shared fd); imports keep it alive.
#[derive(Clone)]
pub struct DrmDevice {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for DrmDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrmDevice")
            .field("name", &self.shared.name)
            .field("fd", &self.shared.node.0.as_raw_fd())
            .finish()
    }
}

impl AsFd for DrmDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.node.as_fd()
    }
}
impl drm::Device for DrmDevice {}
impl drm::control::Device for DrmDevice {}

fn link_basename(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

fn read_sysfs(major: u32, minor: u32) -> SysfsInfo {
    let base = PathBuf::from(format!("/sys/dev/char/{major}:{minor}"));
    let node = std::fs::canonicalize(&base)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let device = base.join("device");
    let mut siblings: Vec<String> = std::fs::read_dir(device.join("drm"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("card") || n.starts_with("renderD"))
                .collect()
        })
        .unwrap_or_default();
    siblings.sort();
    let driver = link_basename(&device.join("driver"));
    let virtio_driver = driver
        .as_deref()
        .filter(|d| d.starts_with("virtio"))
        .and_then(|_| std::fs::read_dir(&device).ok())
        .and_then(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("virtio"))
                .find_map(|e| link_basename(&e.path().join("driver")))
        });
    SysfsInfo {
        node,
        virtio_driver,
        driver,
        device: link_basename(&device),
        bus: link_basename(&device.join("subsystem")),
        iommu: device.join("iommu_group").exists(),
        dma_mask_bits: std::fs::read_to_string(device.join("dma_mask_bits"))
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        siblings,
    }
}

impl DrmDevice {
    /// Opens the DRM node at `path` read-write.
    pub fn open(path: impl AsRef<Path>) -> Result<DrmDevice, DrmError> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| DrmError::NotDrm {
                what: path.display().to_string(),
                reason: format!("cannot open: {e}"),
            })?;
        Self::from_fd(OwnedFd::from(file))
    }

    /// Wraps a DRM node fd the caller already holds (e.g. from logind/libseat). Fails with
    /// [`DrmError::NotDrm`] if `fd` is not a DRM character device.
    pub fn from_fd(fd: OwnedFd) -> Result<DrmDevice, DrmError> {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok();
        let what = link
            .as_ref()
            .map(|p| format!("fd {} ({})", fd.as_raw_fd(), p.display()))
            .unwrap_or_else(|| format!("fd {}", fd.as_raw_fd()));
        let not = |reason: String| DrmError::NotDrm {
            what: what.clone(),
            reason,
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| not(format!("fstat failed: {e}")))?;
        let file_type = rustix::fs::FileType::from_raw_mode(stat.st_mode);
        if file_type != rustix::fs::FileType::CharacterDevice {
            return Err(not(format!(
                "it is a {file_type:?}, not a character device"
            )));
        }
        let (major, minor) = (
            rustix::fs::major(stat.st_rdev),
            rustix::fs::minor(stat.st_rdev),
        );
        if major != DRM_MAJOR {
            return Err(not(format!(
                "character device {major}:{minor} is not DRM (major {DRM_MAJOR})"
            )));
        }
        let node = Node(fd);
        let version = node
            .get_driver()
            .map_err(|e| not(format!("DRM_IOCTL_VERSION failed: {e}")))?;
        let driver = version.name().to_string_lossy().into_owned();
        let sysfs = read_sysfs(major, minor);
        let kind = if sysfs.node.starts_with("renderD") || (128..256).contains(&minor) {
            NodeKind::Render
        } else {
            NodeKind::Card
        };
        let path = link.filter(|p| p.starts_with("/dev"));
        let shown = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("/dev/dri/{}", sysfs.node));
        if let Some(sys_driver) = &sysfs.driver {
            if sys_driver != &driver && sys_driver != "faux_driver" {
                log::debug!("{shown}: sysfs driver {sys_driver}, DRM driver {driver}");
            }
        }
        Ok(DrmDevice {
            shared: Arc::new(Shared {
                name: format!("{driver} ({shown})"),
                node,
                path,
                driver,
                kind,
                rdev: stat.st_rdev,
                sysfs,
                probe: OnceLock::new(),
                trial: OnceLock::new(),
                gem: Default::default(),
            }),
        })
    }

    /// Device name for plans and errors, e.g. `vkms (/dev/dri/card1)`.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The node's path, if it was opened from (or its fd refers to) a /dev path.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The kernel driver's name (`vkms`, `vgem`, `virtio_gpu`), from DRM_IOCTL_VERSION.
    pub fn driver(&self) -> &str {
        &self.shared.driver
    }

    /// The driver identity sysfs gives: the bound driver, or for platform/faux devices
    /// registered without one (vkms, vgem) the device's own name.
    pub fn sysfs_driver(&self) -> Option<&str> {
        let s = &self.shared.sysfs;
        if let Some(d) = s.virtio_driver.as_deref() {
            return Some(d);
        }
        match s.driver.as_deref() {
            Some(d) if d != "faux_driver" => Some(d),
            _ => s.device.as_deref(),
        }
    }

    /// Card or render node.
    pub fn kind(&self) -> NodeKind {
        self.shared.kind
    }

    /// What sysfs says about the device.
    pub fn sysfs(&self) -> &SysfsInfo {
        &self.shared.sysfs
    }

    /// Opens a second, independent file on the same node (its own GEM handle namespace), so
    /// a library like libgbm can own handles the import refcount never sees. On a primary
    /// node the new file is authenticated through this one when the kernel asks for it.
    // Legacy magic authentication is deprecated in favour of render nodes, but GBM's
    // fallback allocator needs dumb buffers, which only primary nodes give.
    #[allow(deprecated)]
    pub(crate) fn reopen(&self) -> Result<Node, DrmError> {
        let path = format!("/proc/self/fd/{}", self.shared.node.0.as_raw_fd());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| DrmError::io(self.name(), "reopening the node", e))?;
        let node = Node(OwnedFd::from(file));
        if self.kind() == NodeKind::Card && !node.authenticated().unwrap_or(true) {
            let token = node
                .generate_auth_token()
                .map_err(|e| DrmError::io(self.name(), "DRM_IOCTL_GET_MAGIC", e))?;
            self.shared
                .node
                .authenticate_auth_token(token)
                .map_err(|e| DrmError::io(self.name(), "DRM_IOCTL_AUTH_MAGIC", e))?;
        }
        Ok(node)
    }

    /// Number of GEM handles in use on the device's file: held by imports or by buffers the
    /// device allocated itself (for leak checks).
    pub fn live_gem_handles(&self) -> usize {
        self.shared.gem.live()
    }
}

/// Opens every DRM node in /dev/dri (`card*` and `renderD*`), sorted by path. Nodes that cannot
/// be opened are logged and left out. Find devices by [`DrmDevice::driver`], never by number.
pub fn enumerate() -> Vec<DrmDevice> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir("/dev/dri") {
        Ok(dir) => dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .is_some_and(|n| n.starts_with("card") || n.starts_with("renderD"))
            })
            .collect(),
        Err(e) => {
            log::debug!("/dev/dri: {e}");
            Vec::new()
        }
    };
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| match DrmDevice::open(&p) {
            Ok(d) => Some(d),
            Err(e) => {
                log::warn!("{} left out: {e}", p.display());
                None
            }
        })
        .collect()
}

/// Opens the first node of `kind` whose driver is `driver`.
pub fn find(driver: &str, kind: NodeKind) -> Option<DrmDevice> {
    enumerate()
        .into_iter()
        .find(|d| d.driver() == driver && d.kind() == kind)
}

/// Opens the DRM card whose bus id is `bus_id`, as libdrm's `drmOpen(NULL, bus_id)` (and so
/// kmssink's `bus-id`) finds it: compared without regard to case with the card's bus id (see
/// [`bus_id`]).
pub fn find_by_bus_id(bus_id: &str) -> Option<DrmDevice> {
    let wanted = bus_id.to_ascii_lowercase();
    enumerate().into_iter().find(|d| {
        d.kind() == NodeKind::Card
            && self::bus_id(d).is_some_and(|unique| unique.to_ascii_lowercase() == wanted)
    })
}

/// The card's bus id as libdrm gives it (`drmGetBusid`): the unique name of the device's
/// master (DRM_IOCTL_GET_UNIQUE; `vkms` for a platform device, `pci:0000:00:02.0` for a PCI
/// one). The kernel fills it in on the first DRM_IOCTL_SET_VERSION asking for interface 1.1 or
/// later (`drm_setversion` → `drm_set_busid`); libdrm asks for 1.4 before reading it, and so
/// does this when it is still empty. `None` when the card has none or will not say.
pub fn bus_id(dev: &DrmDevice) -> Option<String> {
    let read = || {
        drm::Device::get_bus_id(dev)
            .ok()
            .map(|u| u.to_string_lossy().into_owned())
            .filter(|u| !u.is_empty())
    };
    read().or_else(|| {
        let mut version = drm_ffi::drm_set_version {
            drm_di_major: 1,
            drm_di_minor: 4,
            drm_dd_major: -1,
            drm_dd_minor: -1,
        };
        // Needs the device's master: a node another process drives already has its bus id.
        drm_ffi::set_version(dev.as_fd(), &mut version).ok()?;
        read()
    })
}

/// Opens a display as a user names it: a DRM node path (`/dev/dri/card1`) or a driver name
/// (`vkms`), whose primary (`cardN`) node is taken. An unknown name is an error that lists the
/// devices there are.
pub fn open_named(spec: &str) -> Result<DrmDevice, DrmError> {
    if spec.starts_with('/') {
        return DrmDevice::open(spec);
    }
    find(spec, NodeKind::Card).ok_or_else(|| {
        let found: Vec<String> = enumerate().iter().map(|d| d.name().to_owned()).collect();
        DrmError::NotDrm {
            what: spec.to_owned(),
            reason: format!(
                "no DRM card with driver {spec} (found: {})",
                found.join(", ")
            ),
        }
    })
}
