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
//! driver rejects the trial for another reason), the driver table [`DRIVERS`] decides from the
//! vb2 memory operations each driver's queues use, as the kernel source at [`KERNEL_TAG`]
//! shows them (each entry cites file and function):
//! - vb2-dma-contig: contiguous (an IOMMU would make scattered memory fine, which only the
//!   trial can tell);
//! - vb2-vmalloc, vb2-dma-sg: no contiguity needed;
//! - `vivid` and `vimc`: their allocator module parameter (1 = dma-contig);
//! - a driver not in the table: contiguous, the choice that works everywhere (at the price of
//!   CMA).
//!
//! Pitch and size alignment and the maximum sizes are not in the table: VIDIOC_TRY_FMT and
//! VIDIOC_ENUM_FRAMESIZES report them.

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

pub use cenalloc::citation::{Citation, KERNEL_TAG};

const fn cite(file: &'static str, symbol: &'static str, says: &'static str) -> Citation {
    Citation::new(file, symbol, says)
}

/// The vb2 memory operations a driver's video queues use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VbMemory {
    /// `vb2_dma_contig_memops`: one DMA range per plane, so physically contiguous memory
    /// unless an IOMMU maps it.
    DmaContig,
    /// `vb2_dma_sg_memops`: scatter-gather.
    DmaSg,
    /// `vb2_vmalloc_memops`: the CPU touches the pages; any memory.
    Vmalloc,
    /// Chosen by a module parameter, `/sys/module/<module>/parameters/<param>`: 1 means
    /// dma-contig, anything else vmalloc. With `per_instance`, the parameter is a list with one
    /// value per instance, and the instance is the number in the node name (`vivid-001-...`).
    Parameter {
        /// The module.
        module: &'static str,
        /// The parameter.
        param: &'static str,
        /// One value per driver instance.
        per_instance: bool,
    },
}

/// What the kernel source says about one V4L2 driver's buffer memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverEntry {
    /// The driver name VIDIOC_QUERYCAP reports.
    pub driver: &'static str,
    /// Its video queues' memory operations.
    pub memory: VbMemory,
    /// The kernel source behind the entry (at [`KERNEL_TAG`]).
    pub sources: &'static [Citation],
}

/// The driver table, one entry per driver, sorted by driver name.
pub const DRIVERS: &[DriverEntry] = &[
    DriverEntry {
        driver: "cedrus",
        memory: VbMemory::DmaContig,
        sources: &[
            cite(
                "drivers/staging/media/sunxi/cedrus/cedrus_video.c",
                "cedrus_queue_init",
                "both queues: vb2_dma_contig_memops",
            ),
            cite(
                "drivers/staging/media/sunxi/cedrus/cedrus_video.c",
                "cedrus_prepare_format",
                "NV12: bytesperline = ALIGN(width, 16), height ALIGN(16); tiled: 32",
            ),
        ],
    },
    DriverEntry {
        driver: "hantro-vpu",
        memory: VbMemory::DmaContig,
        sources: &[
            cite(
                "drivers/media/platform/verisilicon/hantro_drv.c",
                "queue_init",
                "both queues: vb2_dma_contig_memops",
            ),
            cite(
                "drivers/media/platform/verisilicon/hantro_v4l2.c",
                "hantro_try_fmt",
                "sizes from the variant's frmsize (macroblock steps)",
            ),
        ],
    },
    DriverEntry {
        driver: "imx-capture",
        memory: VbMemory::DmaContig,
        sources: &[
            cite(
                "drivers/media/platform/nxp/imx7-media-csi.c",
                "imx7_csi_video_init",
                "vb2_dma_contig_memops",
            ),
            cite(
                "drivers/media/platform/nxp/imx7-media-csi.c",
                "__imx7_csi_video_try_fmt",
                "width a multiple of 8 bytes, at most 65535 pixels wide and high",
            ),
        ],
    },
    DriverEntry {
        driver: "mxc-isi",
        memory: VbMemory::DmaContig,
        sources: &[
            cite(
                "drivers/media/platform/nxp/imx8-isi/imx8-isi-video.c",
                "mxc_isi_video_register",
                "vb2_dma_contig_memops",
            ),
            cite(
                "drivers/media/platform/nxp/imx8-isi/imx8-isi-video.c",
                "mxc_isi_format_try",
                "width at most 2048 (4096 chained), height at most 8191",
            ),
        ],
    },
    DriverEntry {
        driver: "rkisp1",
        memory: VbMemory::DmaContig,
        sources: &[cite(
            "drivers/media/platform/rockchip/rkisp1/rkisp1-capture.c",
            "rkisp1_register_capture",
            "frame queues: vb2_dma_contig_memops (params and stats: vmalloc)",
        )],
    },
    DriverEntry {
        driver: "rkvdec",
        memory: VbMemory::DmaContig,
        sources: &[
            cite(
                "drivers/staging/media/rkvdec/rkvdec.c",
                "rkvdec_queue_init",
                "both queues: vb2_dma_contig_memops",
            ),
            cite(
                "drivers/staging/media/rkvdec/rkvdec.c",
                "rkvdec_coded_fmts",
                "H.264 up to 4096x2560 in steps of 16, VP9 up to 4096x2304 in steps of 64",
            ),
        ],
    },
    DriverEntry {
        driver: "s5p-mfc",
        memory: VbMemory::DmaContig,
        sources: &[cite(
            "drivers/media/platform/samsung/s5p-mfc/s5p_mfc.c",
            "s5p_mfc_open",
            "both queues: vb2_dma_contig_memops",
        )],
    },
    DriverEntry {
        driver: "sun6i-csi",
        memory: VbMemory::DmaContig,
        sources: &[
            cite(
                "drivers/media/platform/sunxi/sun6i-csi/sun6i_csi_capture.c",
                "sun6i_csi_capture_setup",
                "vb2_dma_contig_memops",
            ),
            cite(
                "drivers/media/platform/sunxi/sun6i-csi/sun6i_csi_capture.c",
                "sun6i_csi_capture_format_prepare",
                "at most 4800x4800, no pitch alignment",
            ),
        ],
    },
    DriverEntry {
        driver: "uvcvideo",
        memory: VbMemory::Vmalloc,
        sources: &[cite(
            "drivers/media/usb/uvc/uvc_queue.c",
            "uvc_queue_init",
            "vb2_vmalloc_memops: the driver copies USB payloads into the buffer",
        )],
    },
    DriverEntry {
        driver: "vicodec",
        memory: VbMemory::Vmalloc,
        sources: &[cite(
            "drivers/media/test-drivers/vicodec/vicodec-core.c",
            "queue_init",
            "both queues: vb2_vmalloc_memops",
        )],
    },
    DriverEntry {
        driver: "vim2m",
        memory: VbMemory::Vmalloc,
        sources: &[cite(
            "drivers/media/test-drivers/vim2m.c",
            "queue_init",
            "both queues: vb2_vmalloc_memops",
        )],
    },
    DriverEntry {
        driver: "vimc",
        memory: VbMemory::Parameter {
            module: "vimc",
            param: "allocator",
            per_instance: false,
        },
        sources: &[
            cite(
                "drivers/media/test-drivers/vimc/vimc-capture.c",
                "vimc_capture_add",
                "vb2_dma_contig_memops when vimc_allocator is VIMC_ALLOCATOR_DMA_CONTIG",
            ),
            cite(
                "drivers/media/test-drivers/vimc/vimc-common.h",
                "vimc_allocator_type",
                "0 = vmalloc (the default), 1 = dma-contig",
            ),
        ],
    },
    DriverEntry {
        driver: "visl",
        memory: VbMemory::Vmalloc,
        sources: &[cite(
            "drivers/media/test-drivers/visl/visl-video.c",
            "visl_queue_init",
            "both queues: vb2_vmalloc_memops",
        )],
    },
    DriverEntry {
        driver: "vivid",
        memory: VbMemory::Parameter {
            module: "vivid",
            param: "allocators",
            per_instance: true,
        },
        sources: &[cite(
            "drivers/media/test-drivers/vivid/vivid-core.c",
            "vivid_create_queue",
            "vb2_dma_contig_memops when allocators[inst] == 1, else vb2_vmalloc_memops",
        )],
    },
];

/// The table entry of `driver`, if any.
pub fn driver_entry(driver: &str) -> Option<&'static DriverEntry> {
    DRIVERS.iter().find(|d| d.driver == driver)
}

/// The driver table fallback (see the module docs).
pub fn driver_table(dev: &Device) -> bool {
    match driver_entry(dev.driver()).map(|d| d.memory) {
        Some(VbMemory::DmaContig) | None => true,
        Some(VbMemory::DmaSg | VbMemory::Vmalloc) => false,
        Some(VbMemory::Parameter {
            module,
            param,
            per_instance,
        }) => {
            let value = std::fs::read_to_string(format!("/sys/module/{module}/parameters/{param}"));
            value
                .ok()
                .and_then(|v| parameter_says_dma_contig(&v, per_instance, dev.name()))
                .unwrap_or(true)
        }
    }
}

/// Whether an allocator parameter's `value` selects dma-contig for the node `name`: the
/// value itself, or with `per_instance` the entry of the instance in a name like
/// `vivid-001-vid-cap` (a missing entry is the kernel's default, 0).
fn parameter_says_dma_contig(value: &str, per_instance: bool, name: &str) -> Option<bool> {
    let chosen = if per_instance {
        let (_, rest) = name.split_once('-')?;
        let inst: usize = rest.get(..3)?.parse().ok()?;
        value.trim().split(',').nth(inst).unwrap_or("0")
    } else {
        value
    };
    Some(chosen.trim() == "1")
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
    fn allocator_parameters_are_read_per_instance() {
        let says = parameter_says_dma_contig;
        assert_eq!(says("0,1\n", true, "vivid-001-vid-cap"), Some(true));
        assert_eq!(says("0,1\n", true, "vivid-000-vid-cap"), Some(false));
        // Fewer values than instances: the kernel's default, vmalloc.
        assert_eq!(says("1", true, "vivid-002-vid-out"), Some(false));
        assert_eq!(says("1", true, "vim2m"), None);
        assert_eq!(says("1\n", false, "Sensor A"), Some(true));
        assert_eq!(says("0\n", false, "Sensor A"), Some(false));
    }

    #[test]
    fn every_driver_entry_cites_the_kernel_source() {
        for pair in DRIVERS.windows(2) {
            assert!(
                pair[0].driver < pair[1].driver,
                "{} unsorted",
                pair[1].driver
            );
        }
        for d in DRIVERS {
            assert!(!d.sources.is_empty(), "{}: no citation", d.driver);
            for c in d.sources {
                if let Some(why) = c.malformed(&["drivers/media/", "drivers/staging/media/"]) {
                    panic!("{}: {why}", d.driver);
                }
            }
        }
        assert_eq!(driver_entry("uvcvideo").unwrap().memory, VbMemory::Vmalloc);
        assert_eq!(
            driver_entry("hantro-vpu").unwrap().memory,
            VbMemory::DmaContig
        );
        assert!(driver_entry("bcm2835-codec").is_none());
    }

    /// With `CENALLOC_KERNEL_SRC` pointing at a kernel tree of [`KERNEL_TAG`], every cited file
    /// exists and names the cited symbol. Without it the test checks nothing.
    #[test]
    fn driver_citations_match_a_kernel_tree() {
        let Some(root) = std::env::var_os("CENALLOC_KERNEL_SRC") else {
            return;
        };
        let root = PathBuf::from(root);
        for d in DRIVERS {
            for c in d.sources {
                let text = c
                    .check_in_tree(&root)
                    .unwrap_or_else(|why| panic!("{}: {why}", d.driver));
                if let VbMemory::Parameter { param, .. } = d.memory {
                    if c.file.ends_with("-core.c") {
                        assert!(text.contains(param), "{}: no parameter {param}", d.driver);
                    }
                }
            }
        }
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
