//! Finding V4L2 nodes by name and describing what they are and what they need of a buffer.
//!
//! # Contiguity
//! No V4L2 ioctl says whether a queue needs physically contiguous memory (vb2-dma-contig
//! without an IOMMU) or takes scattered pages (vb2-vmalloc, vb2-dma-sg, an IOMMU). It is
//! found by behaviour, once per node and cached: a dma-buf made by `/dev/udmabuf` from every
//! other page of a memfd (so no two of its pages can be neighbours in physical memory) is
//! queued with VIDIOC_QBUF(V4L2_MEMORY_DMABUF). vb2-dma-contig maps it at QBUF and refuses it
//! with EFAULT ("contiguous chunk is too small"); an importer that takes scattered memory
//! accepts it. The buffer is freed again right away (REQBUFS 0).
//!
//! When the trial cannot run (no `/dev/udmabuf`, the queue is owned by another file, the
//! driver rejects the trial for another reason), a driver table decides:
//! - `vivid`: its `allocators` module parameter (1 = dma-contig) for the node's instance;
//! - `vicodec`, `vim2m`, `visl`, `vimc`, `uvcvideo`: vmalloc, no contiguity needed;
//! - anything else: contiguous, the choice that works everywhere (at the price of CMA).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cenalloc::{Error, Result};
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;

use crate::device::{Device, Direction};
use crate::format::{v4l2_to_drm, PixelFormat};
use crate::sys;

/// What a V4L2 node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Role {
    /// Captures frames (capture queue only).
    Camera,
    /// Shows frames written by userspace (output queue only).
    VideoOutput,
    /// Decodes a compressed bitstream (output queue compressed, capture queue raw).
    Decoder,
    /// Encodes frames (output queue raw, capture queue compressed).
    Encoder,
    /// A memory-to-memory device (codecs are also listed as `m2m`).
    M2m,
}

/// One format of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FormatReport {
    /// V4L2 code, e.g. `YUYV`.
    pub v4l2: PixelFormat,
    /// The DRM fourcc with the same memory layout, if any.
    pub drm: Option<String>,
    /// A compressed format.
    pub compressed: bool,
    /// The driver's description.
    pub description: String,
}

/// How `needs_contiguous` was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ContiguityEvidence {
    /// A non-contiguous dma-buf was queued and the driver accepted it.
    TrialAccepted,
    /// A non-contiguous dma-buf was queued and the driver refused it with EFAULT.
    TrialRefused,
    /// The driver table (see the module docs).
    DriverTable,
}

/// What cenalloc knows about a V4L2 node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DeviceReport {
    /// Device node.
    pub path: PathBuf,
    /// sysfs name, e.g. `vivid-000-vid-cap`.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Card name.
    pub card: String,
    /// Bus info.
    pub bus_info: String,
    /// What the node is for.
    pub roles: Vec<Role>,
    /// Multi-planar API.
    pub multiplanar: bool,
    /// Streaming I/O.
    pub streaming: bool,
    /// Formats of the capture queue.
    pub capture_formats: Vec<FormatReport>,
    /// Formats of the output queue.
    pub output_formats: Vec<FormatReport>,
    /// The node's video queues import dma-bufs (`V4L2_BUF_CAP_SUPPORTS_DMABUF`).
    pub can_import: bool,
    /// The node can export its own buffers (VIDIOC_EXPBUF of MMAP buffers).
    pub can_export: bool,
    /// The node needs physically contiguous memory.
    pub needs_contiguous: bool,
    /// How `needs_contiguous` was decided.
    pub contiguity_evidence: ContiguityEvidence,
}

/// Every V4L2 node in `/sys/class/video4linux`: (`/dev/` path, sysfs name), sorted by name.
pub fn list_devices() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/video4linux") else {
        return out;
    };
    for entry in dir.flatten() {
        let node = entry.file_name().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(entry.path().join("name"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        out.push((PathBuf::from("/dev").join(&node), name));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    out
}

/// The `/dev` node whose sysfs name is exactly `name` (e.g. `vivid-001-vid-cap`).
pub fn find_by_name(name: &str) -> Result<PathBuf> {
    list_devices()
        .into_iter()
        .find(|(_, n)| n == name)
        .map(|(p, _)| p)
        .ok_or_else(|| Error::Unsupported {
            device: name.to_owned(),
            kind: cenalloc::ConstraintKind::Import,
            detail: "no V4L2 node with this name in /sys/class/video4linux".to_owned(),
        })
}

/// Opens a V4L2 device as a user names it: a node path (`/dev/video3`), a node name from
/// `/sys/class/video4linux/*/name` (`vivid-000-vid-cap`, `stateful-decoder`), or a card name
/// whose video capture node is meant (`vivid-000` → `vivid-000-vid-cap`). An unknown name is
/// an error that lists the nodes there are.
pub fn open_named(spec: &str) -> Result<Device> {
    if spec.starts_with('/') {
        return Device::open(std::path::Path::new(spec));
    }
    let names = list_devices();
    let capture = format!("{spec}-vid-cap");
    let path = names
        .iter()
        .find(|(_, n)| n == spec)
        .or_else(|| names.iter().find(|(_, n)| *n == capture))
        .map(|(p, _)| p.clone())
        .ok_or_else(|| Error::Unsupported {
            device: spec.to_owned(),
            kind: cenalloc::ConstraintKind::Import,
            detail: format!(
                "no V4L2 node named {spec} or {capture} (found: {})",
                names
                    .iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    Device::open(&path)
}

fn report_formats(dev: &Device, dir: Direction) -> Vec<FormatReport> {
    dev.formats(dir)
        .into_iter()
        .map(|f| FormatReport {
            v4l2: f.pixelformat,
            drm: v4l2_to_drm(f.pixelformat).map(|d| d.to_string().trim_end().to_owned()),
            compressed: f.compressed,
            description: f.description,
        })
        .collect()
}

/// The roles of a node from its queues and their formats.
pub fn roles(dev: &Device) -> Vec<Role> {
    let all_compressed = |dir| {
        let f = dev.formats(dir);
        !f.is_empty() && f.iter().all(|f| f.compressed)
    };
    derive_roles(
        dev.is_m2m(),
        dev.buf_type(Direction::Capture).is_some(),
        dev.buf_type(Direction::Output).is_some(),
        dev.is_m2m() && all_compressed(Direction::Capture),
        dev.is_m2m() && all_compressed(Direction::Output),
    )
}

/// Roles from the queues a node has and whether each carries only compressed formats.
fn derive_roles(
    m2m: bool,
    has_capture: bool,
    has_output: bool,
    capture_compressed: bool,
    output_compressed: bool,
) -> Vec<Role> {
    if m2m {
        return match (output_compressed, capture_compressed) {
            (true, false) => vec![Role::Decoder, Role::M2m],
            (false, true) => vec![Role::Encoder, Role::M2m],
            _ => vec![Role::M2m],
        };
    }
    let mut r = Vec::new();
    if has_capture {
        r.push(Role::Camera);
    }
    if has_output {
        r.push(Role::VideoOutput);
    }
    r
}

/// Describes `dev`: identity, roles, formats, dma-buf support and contiguity.
pub fn probe(dev: &Device) -> DeviceReport {
    let dirs = [Direction::Capture, Direction::Output];
    let caps: Vec<u32> = dirs
        .iter()
        .filter_map(|&d| dev.buffer_caps(d).ok())
        .collect();
    let (needs_contiguous, contiguity_evidence) = needs_contiguous(dev);
    DeviceReport {
        path: dev.path().to_owned(),
        name: dev.name().to_owned(),
        driver: dev.driver().to_owned(),
        card: dev.card().to_owned(),
        bus_info: dev.bus_info().to_owned(),
        roles: roles(dev),
        multiplanar: dev.caps()
            & (sys::CAP_VIDEO_CAPTURE_MPLANE
                | sys::CAP_VIDEO_OUTPUT_MPLANE
                | sys::CAP_VIDEO_M2M_MPLANE)
            != 0,
        streaming: dev.streaming(),
        capture_formats: report_formats(dev, Direction::Capture),
        output_formats: report_formats(dev, Direction::Output),
        can_import: !caps.is_empty() && caps.iter().all(|c| c & sys::BUF_CAP_SUPPORTS_DMABUF != 0),
        can_export: !caps.is_empty() && caps.iter().all(|c| c & sys::BUF_CAP_SUPPORTS_MMAP != 0),
        needs_contiguous,
        contiguity_evidence,
    }
}

/// Probes every V4L2 node that has a video capture or output queue (skipping radio, VBI,
/// SDR, touch and metadata nodes), sorted by name. Nodes that cannot be opened are logged.
pub fn probe_all() -> Vec<DeviceReport> {
    let mut out = Vec::new();
    for (path, name) in list_devices() {
        match Device::open(&path) {
            Ok(dev) => {
                if dev.buf_type(Direction::Capture).is_some()
                    || dev.buf_type(Direction::Output).is_some()
                {
                    out.push(probe(&dev));
                }
            }
            Err(e) => log::info!("{name} ({}): {e}", path.display()),
        }
    }
    out
}

/// Opens and probes the node at `path`.
pub fn probe_path(path: impl AsRef<Path>) -> Result<DeviceReport> {
    Ok(probe(&Device::open(path)?))
}

type CacheKey = (String, String, String);

fn cache() -> &'static Mutex<HashMap<CacheKey, (bool, ContiguityEvidence)>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, (bool, ContiguityEvidence)>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Whether `dev` needs physically contiguous memory, and how that was found (see the module
/// docs). Cached per node for the life of the process.
pub fn needs_contiguous(dev: &Device) -> (bool, ContiguityEvidence) {
    let key = (
        dev.driver().to_owned(),
        dev.name().to_owned(),
        dev.bus_info().to_owned(),
    );
    if let Some(v) = cache().lock().ok().and_then(|c| c.get(&key).copied()) {
        return v;
    }
    // The trial runs on a file of its own: on m2m devices every open is its own context, so
    // the caller's queues are left alone; on other devices REQBUFS fails with EBUSY while
    // another file owns buffers, and the driver table decides.
    let own = Device::open(dev.path());
    let trial_dev = own.as_ref().unwrap_or(dev);
    let result = match contiguity_trial(trial_dev) {
        Some(true) => (true, ContiguityEvidence::TrialRefused),
        Some(false) => (false, ContiguityEvidence::TrialAccepted),
        None => (driver_table(dev), ContiguityEvidence::DriverTable),
    };
    log::debug!("{}: needs_contiguous = {result:?}", dev.display_name());
    if let Ok(mut c) = cache().lock() {
        c.insert(key, result);
    }
    result
}

/// The driver table fallback (see the module docs).
pub fn driver_table(dev: &Device) -> bool {
    match dev.driver() {
        "vivid" => vivid_uses_dma_contig(dev.name()).unwrap_or(true),
        "vicodec" | "vim2m" | "visl" | "vimc" | "uvcvideo" => false,
        _ => true,
    }
}

/// Reads vivid's `allocators` parameter for the instance in a node name like `vivid-001-...`.
fn vivid_uses_dma_contig(name: &str) -> Option<bool> {
    let inst: usize = name.strip_prefix("vivid-")?.get(..3)?.parse().ok()?;
    let param = std::fs::read_to_string("/sys/module/vivid/parameters/allocators").ok()?;
    let value = param.trim().split(',').nth(inst).unwrap_or("0").trim();
    Some(value == "1")
}

const PAGE: u64 = 4096;
const UDMABUF_LIST_LIMIT: u64 = 1024;

/// Builds a dma-buf of at least `size` bytes (through `/dev/udmabuf`) whose page chunks are
/// never physically adjacent: every other chunk of a memfd. Returns it with its real size.
/// Used for the contiguity trial; also handy to prove a device refuses scattered memory.
pub fn scattered_dmabuf(size: u64) -> std::io::Result<(OwnedFd, u64)> {
    let pages = size.div_ceil(PAGE).max(2);
    let chunk_pages = pages.div_ceil(UDMABUF_LIST_LIMIT - 1);
    let chunks = pages.div_ceil(chunk_pages);
    let chunk = chunk_pages * PAGE;
    let memfd = rustix::fs::memfd_create(
        "cenalloc-contiguity-trial",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    rustix::fs::ftruncate(&memfd, 2 * chunks * chunk)?;
    rustix::fs::fcntl_add_seals(&memfd, SealFlags::SHRINK)?;
    let udmabuf = rustix::fs::open(
        "/dev/udmabuf",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let items: Vec<sys::UdmabufItem> = (0..chunks)
        .map(|k| sys::UdmabufItem {
            memfd: sys::raw(&memfd) as u32,
            pad: 0,
            offset: 2 * k * chunk,
            size: chunk,
        })
        .collect();
    let fd = sys::udmabuf_create_list(udmabuf.as_fd(), &items)?;
    Ok((fd, chunks * chunk))
}

/// Queues a scattered dma-buf: `Some(true)` if the driver refused it as non-contiguous,
/// `Some(false)` if it accepted it, `None` if the trial was inconclusive.
fn contiguity_trial(dev: &Device) -> Option<bool> {
    for dir in [Direction::Capture, Direction::Output] {
        let Some(ty) = dev.buf_type(dir) else {
            continue;
        };
        if !dev.supports_dmabuf(dir) {
            continue;
        }
        let Ok(fmt) = dev.format(dir) else {
            continue;
        };
        if fmt.planes.len() != 1 || fmt.planes[0].sizeimage == 0 {
            continue;
        }
        let (fd, len) = match scattered_dmabuf(u64::from(fmt.planes[0].sizeimage)) {
            Ok(v) => v,
            Err(e) => {
                log::info!("{}: contiguity trial impossible: {e}", dev.display_name());
                return None;
            }
        };
        let outcome = trial_qbuf(dev, ty, &fd, len as u32, fmt.planes[0].sizeimage);
        log::debug!("{}: trial QBUF on {dir:?}: {outcome:?}", dev.display_name());
        match outcome {
            Ok(()) => return Some(false),
            Err(Errno::FAULT) => return Some(true),
            Err(_) => continue,
        }
    }
    None
}

/// `payload` is the queue's sizeimage: for single-planar output queues vb2 checks bytesused
/// against the buffer's previous length, which before the first QBUF is the sizeimage.
fn trial_qbuf(
    dev: &Device,
    ty: u32,
    fd: &OwnedFd,
    len: u32,
    payload: u32,
) -> rustix::io::Result<()> {
    let mut r = sys::RequestBuffers {
        count: 1,
        type_: ty,
        memory: sys::MEMORY_DMABUF,
        ..Default::default()
    };
    sys::reqbufs(dev.fd(), &mut r)?;
    let mut b = sys::BufferWithPlanes::new(ty, sys::MEMORY_DMABUF, 0);
    b.buf.field = sys::FIELD_NONE;
    if sys::is_mplane(ty) {
        b.buf.length = 1;
        b.set_plane_fd(0, sys::raw(fd));
        b.planes[0].length = len;
        b.planes[0].bytesused = payload;
    } else {
        b.set_fd(sys::raw(fd));
        b.buf.length = len;
        b.buf.bytesused = payload;
    }
    let result = sys::qbuf(dev.fd(), &mut b);
    let mut free = sys::RequestBuffers {
        count: 0,
        type_: ty,
        memory: sys::MEMORY_DMABUF,
        ..Default::default()
    };
    if let Err(e) = sys::reqbufs(dev.fd(), &mut free) {
        log::warn!("{}: freeing the trial buffer: {e}", dev.display_name());
    }
    result
}

impl DeviceReport {
    /// The DRM-equivalent formats the capture queue can produce.
    pub fn capture_drm_formats(&self) -> Vec<String> {
        self.capture_formats
            .iter()
            .filter_map(|f| f.drm.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vivid_instance_parsing() {
        // No vivid on the build host: the parameter file is absent.
        if !Path::new("/sys/module/vivid").exists() {
            assert_eq!(vivid_uses_dma_contig("vivid-000-vid-cap"), None);
        }
        assert_eq!(vivid_uses_dma_contig("vim2m"), None);
    }

    #[test]
    fn roles_follow_queues_and_compression() {
        assert_eq!(
            derive_roles(false, true, false, false, false),
            [Role::Camera]
        );
        assert_eq!(
            derive_roles(false, false, true, false, false),
            [Role::VideoOutput]
        );
        assert_eq!(
            derive_roles(true, true, true, false, true),
            [Role::Decoder, Role::M2m]
        );
        assert_eq!(
            derive_roles(true, true, true, true, false),
            [Role::Encoder, Role::M2m]
        );
        assert_eq!(derive_roles(true, true, true, false, false), [Role::M2m]);
    }

    #[test]
    fn report_lists_drm_equivalents_of_capture_formats() {
        let fmt = |v4l2: PixelFormat, drm: Option<&str>| FormatReport {
            v4l2,
            drm: drm.map(str::to_owned),
            compressed: false,
            description: String::new(),
        };
        let r = DeviceReport {
            path: "/dev/video0".into(),
            name: "vivid-000-vid-cap".into(),
            driver: "vivid".into(),
            card: "vivid".into(),
            bus_info: "platform:vivid-000".into(),
            roles: vec![Role::Camera],
            multiplanar: false,
            streaming: true,
            capture_formats: vec![
                fmt(PixelFormat::YUYV, Some("YUYV")),
                fmt(PixelFormat::from_chars(b"HSV3"), None),
            ],
            output_formats: vec![],
            can_import: true,
            can_export: true,
            needs_contiguous: true,
            contiguity_evidence: ContiguityEvidence::TrialRefused,
        };
        assert_eq!(r.capture_drm_formats(), ["YUYV"]);
    }
}
