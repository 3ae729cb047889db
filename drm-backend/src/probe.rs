//! What the kernel reports about a DRM device: caps, mode-config limits, planes and their
//! IN_FORMATS, cursor size, IOMMU — plus the one-time trial import.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Mutex;

use cenalloc::Modifier;
use drm::control::Device as _;
use drm::{ClientCapability, Device as _, DriverCapability};

use crate::blob::{parse_in_formats, FormatModifiers};
use crate::device::{NodeKind, SysfsInfo};
use crate::DrmDevice;

/// DRM_CAP_PRIME bits (include/uapi/drm/drm.h).
const PRIME_CAP_IMPORT: u64 = 1;
const PRIME_CAP_EXPORT: u64 = 2;

/// Driver capabilities (DRM_IOCTL_GET_CAP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Caps {
    /// DRM_CAP_PRIME & DRM_PRIME_CAP_IMPORT.
    pub prime_import: bool,
    /// DRM_CAP_PRIME & DRM_PRIME_CAP_EXPORT.
    pub prime_export: bool,
    /// DRM_CAP_ADDFB2_MODIFIERS.
    pub addfb2_modifiers: bool,
    /// DRM_CAP_DUMB_BUFFER.
    pub dumb_buffer: bool,
}

/// Framebuffer size limits from DRM_IOCTL_MODE_GETRESOURCES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ModeLimits {
    /// Narrowest framebuffer.
    pub min_width: u32,
    /// Widest framebuffer.
    pub max_width: u32,
    /// Shortest framebuffer.
    pub min_height: u32,
    /// Tallest framebuffer.
    pub max_height: u32,
}

/// A plane's `type` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum PlaneKind {
    /// DRM_PLANE_TYPE_OVERLAY.
    Overlay,
    /// DRM_PLANE_TYPE_PRIMARY.
    Primary,
    /// DRM_PLANE_TYPE_CURSOR.
    Cursor,
}

/// One plane: type, formats (legacy list) and format × modifier pairs (IN_FORMATS).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PlaneReport {
    /// KMS object id.
    pub id: u32,
    /// Primary, overlay or cursor.
    pub kind: PlaneKind,
    /// Formats from DRM_IOCTL_MODE_GETPLANE, as fourcc names.
    pub formats: Vec<String>,
    /// Modifiers per format from IN_FORMATS (empty if the plane has no IN_FORMATS blob).
    pub in_formats: BTreeMap<String, Vec<Modifier>>,
    /// Raw fourccs from DRM_IOCTL_MODE_GETPLANE.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub raw_formats: Vec<u32>,
    /// Parsed IN_FORMATS, if the plane has the property.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub format_modifiers: Option<FormatModifiers>,
}

impl PlaneReport {
    /// Modifiers this plane accepts for `fourcc`: from IN_FORMATS, or LINEAR if only the legacy
    /// format list names it.
    pub fn modifiers_for(&self, fourcc: u32) -> Vec<Modifier> {
        match &self.format_modifiers {
            Some(fm) => fm.modifiers_for(fourcc).to_vec(),
            None if self.raw_formats.contains(&fourcc) => vec![Modifier::LINEAR],
            None => Vec::new(),
        }
    }

    /// The plane accepts `fourcc` with `modifier` (same sources as [`Self::modifiers_for`]).
    pub fn accepts(&self, fourcc: u32, modifier: Modifier) -> bool {
        match &self.format_modifiers {
            Some(fm) => fm.modifiers_for(fourcc).contains(&modifier),
            None => modifier == Modifier::LINEAR && self.raw_formats.contains(&fourcc),
        }
    }
}

/// The result of the one-time trial import of a foreign dma-buf.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", tag = "result", content = "detail")
)]
pub enum ImportTrial {
    /// PRIME import of a heap/udmabuf dma-buf succeeded.
    Accepted(String),
    /// The kernel refused it.
    Refused(String),
    /// No trial was possible (no dma-buf source, or no PRIME import cap).
    NotRun(String),
}

impl ImportTrial {
    /// The device imports foreign dma-bufs (or, untested, claims to).
    pub fn accepted(&self) -> bool {
        matches!(self, ImportTrial::Accepted(_))
    }
}

/// Everything probed about one device.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Probe {
    /// DRM driver name.
    pub driver: String,
    /// Node path.
    pub path: Option<String>,
    /// Card or render node.
    pub node: NodeKind,
    /// What sysfs says (IOMMU, DMA mask, bus).
    pub sysfs: SysfsInfo,
    /// Driver caps.
    pub caps: Caps,
    /// Mode-config limits (card nodes with KMS).
    pub limits: Option<ModeLimits>,
    /// Every plane.
    pub planes: Vec<PlaneReport>,
    /// DRM_CAP_CURSOR_WIDTH/HEIGHT.
    pub cursor_size: Option<(u64, u64)>,
    /// Number of CRTCs.
    pub crtcs: usize,
    /// Connector names (e.g. `Virtual-1`, `Writeback-1`).
    pub connectors: Vec<String>,
}

pub use cenalloc::format::fourcc_code_name;

fn bound(b: Bound<&u32>, default: u32) -> u32 {
    match b {
        Bound::Included(v) => *v,
        Bound::Excluded(v) => v.saturating_sub(1),
        Bound::Unbounded => default,
    }
}

fn plane_report(dev: &DrmDevice, handle: drm::control::plane::Handle) -> Option<PlaneReport> {
    let info = dev
        .get_plane(handle)
        .map_err(|e| log::debug!("{}: GETPLANE {handle:?}: {e}", dev.name()))
        .ok()?;
    let props = dev.get_properties(handle).ok()?;
    let mut kind = PlaneKind::Overlay;
    let mut format_modifiers = None;
    for (prop, value) in props.iter() {
        let Ok(pinfo) = dev.get_property(*prop) else {
            continue;
        };
        match pinfo.name().to_bytes() {
            b"type" => {
                kind = match *value {
                    1 => PlaneKind::Primary,
                    2 => PlaneKind::Cursor,
                    _ => PlaneKind::Overlay,
                }
            }
            b"IN_FORMATS" if *value != 0 => match dev.get_property_blob(*value) {
                Ok(data) => match parse_in_formats(&data) {
                    Ok(fm) => format_modifiers = Some(fm),
                    Err(e) => log::warn!("{}: plane {handle:?}: {e}", dev.name()),
                },
                Err(e) => log::warn!("{}: IN_FORMATS blob {value}: {e}", dev.name()),
            },
            _ => {}
        }
    }
    let raw_formats = info.formats().to_vec();
    let in_formats = format_modifiers
        .as_ref()
        .map(|fm: &FormatModifiers| {
            fm.modifiers
                .iter()
                .map(|(f, m)| (fourcc_code_name(*f), m.clone()))
                .collect()
        })
        .unwrap_or_default();
    Some(PlaneReport {
        id: u32::from(handle),
        kind,
        formats: raw_formats.iter().map(|f| fourcc_code_name(*f)).collect(),
        in_formats,
        raw_formats,
        format_modifiers,
    })
}

/// Reads caps, limits, planes and sysfs facts of `dev`. Never fails: what cannot be read is
/// left empty and logged (render nodes have no KMS).
pub fn probe(dev: &DrmDevice) -> Probe {
    let cap = |c| dev.get_driver_capability(c).unwrap_or(0);
    let prime = cap(DriverCapability::Prime);
    let caps = Caps {
        prime_import: prime & PRIME_CAP_IMPORT != 0,
        prime_export: prime & PRIME_CAP_EXPORT != 0,
        addfb2_modifiers: cap(DriverCapability::AddFB2Modifiers) != 0,
        dumb_buffer: cap(DriverCapability::DumbBuffer) != 0,
    };
    let mut limits = None;
    let mut planes = Vec::new();
    let mut crtcs = 0;
    let mut connectors = Vec::new();
    let mut cursor_size = None;
    if dev.kind() == NodeKind::Card {
        if let Err(e) = dev.set_client_capability(ClientCapability::UniversalPlanes, true) {
            log::debug!("{}: UNIVERSAL_PLANES: {e}", dev.name());
        }
        match dev.resource_handles() {
            Ok(res) if !res.crtcs().is_empty() => {
                let w = res.supported_fb_width();
                let h = res.supported_fb_height();
                limits = Some(ModeLimits {
                    min_width: bound(w.start_bound(), 0),
                    max_width: bound(w.end_bound(), u32::MAX),
                    min_height: bound(h.start_bound(), 0),
                    max_height: bound(h.end_bound(), u32::MAX),
                });
                crtcs = res.crtcs().len();
                for c in res.connectors() {
                    if let Ok(info) = dev.get_connector(*c, false) {
                        connectors.push(format!(
                            "{}-{}",
                            info.interface().as_str(),
                            info.interface_id()
                        ));
                    }
                }
                if let Ok(handles) = dev.plane_handles() {
                    planes = handles
                        .into_iter()
                        .filter_map(|p| plane_report(dev, p))
                        .collect();
                }
                let (w, h) = (
                    cap(DriverCapability::CursorWidth),
                    cap(DriverCapability::CursorHeight),
                );
                if w > 0 && h > 0 {
                    cursor_size = Some((w, h));
                }
            }
            Ok(_) => log::debug!("{}: no CRTCs: not a display", dev.name()),
            Err(e) => log::debug!("{}: GETRESOURCES: {e}", dev.name()),
        }
    }
    Probe {
        driver: dev.driver().to_owned(),
        path: dev.path().map(|p| p.display().to_string()),
        node: dev.kind(),
        sysfs: dev.sysfs().clone(),
        caps,
        limits,
        planes,
        cursor_size,
        crtcs,
        connectors,
    }
}

impl Probe {
    /// The device has planes to scan out from.
    pub fn is_display(&self) -> bool {
        self.planes
            .iter()
            .any(|p| matches!(p.kind, PlaneKind::Primary | PlaneKind::Overlay))
    }

    /// The device has a cursor plane.
    pub fn has_cursor(&self) -> bool {
        self.planes.iter().any(|p| p.kind == PlaneKind::Cursor)
    }

    /// The device can render (a render node, or a card whose device also has a render node).
    pub fn can_render(&self) -> bool {
        self.node == NodeKind::Render
            || self.sysfs.siblings.iter().any(|n| n.starts_with("renderD"))
    }

    /// Modifiers the planes of `kinds` accept for `fourcc`, in the order of first appearance.
    pub fn modifiers_for(&self, fourcc: u32, kinds: &[PlaneKind]) -> Vec<Modifier> {
        let mut out: Vec<Modifier> = Vec::new();
        for p in self.planes.iter().filter(|p| kinds.contains(&p.kind)) {
            for m in p.modifiers_for(fourcc) {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// Some plane of `kinds` accepts `fourcc` with `modifier`.
    pub fn accepts(&self, fourcc: u32, modifier: Modifier, kinds: &[PlaneKind]) -> bool {
        self.planes
            .iter()
            .any(|p| kinds.contains(&p.kind) && p.accepts(fourcc, modifier))
    }

    /// Roles the device can take: `scanout`, `cursor`, `render`.
    pub fn roles(&self) -> Vec<&'static str> {
        let mut roles = Vec::new();
        if self.is_display() {
            roles.push("scanout");
        }
        if self.has_cursor() {
            roles.push("cursor");
        }
        if self.can_render() {
            roles.push("render");
        }
        roles
    }
}

impl DrmDevice {
    /// The device's probe, read once and cached.
    pub fn probe(&self) -> &Probe {
        self.shared.probe.get_or_init(|| probe(self))
    }

    /// The result of the one-time trial import, run on first call and cached for the node
    /// for the life of the process (every fd opened on it shares the result).
    pub fn import_trial(&self) -> &ImportTrial {
        self.shared.trial.get_or_init(|| {
            static CACHE: Mutex<BTreeMap<u64, ImportTrial>> = Mutex::new(BTreeMap::new());
            let key = self.shared.rdev;
            if let Some(t) = CACHE.lock().ok().and_then(|c| c.get(&key).cloned()) {
                return t;
            }
            let t = trial_import(self);
            if let Ok(mut c) = CACHE.lock() {
                c.insert(key, t.clone());
            }
            t
        })
    }
}

/// The name of the one-page dma-buf the trial import allocates, as debugfs shows it.
pub const TRIAL_BUFFER_NAME: &str = "cenalloc import trial";

fn trial_import(dev: &DrmDevice) -> ImportTrial {
    if !dev.probe().caps.prime_import {
        return ImportTrial::NotRun("DRM_CAP_PRIME lacks IMPORT".into());
    }
    let (sources, _) = cenalloc::source::discover(&cenalloc::source::SystemRoot::real());
    let Some(source) = sources.iter().find(|s| {
        let p = s.properties();
        s.kind() != cenalloc::SourceKind::Device
            && !p.contiguous
            && !p.explicit_only
            && !p.protected
    }) else {
        return ImportTrial::NotRun("no dma-buf heap or udmabuf to allocate a trial buffer".into());
    };
    let size = cenalloc::source::page_size();
    let fd = match source.allocate(size) {
        Ok(fd) => fd,
        Err(e) => return ImportTrial::NotRun(format!("{}: {e}", source.name())),
    };
    // Named so that debugfs tells the trial apart from frames.
    if let Err(e) = cenalloc::buffer::name_dma_buf(std::os::fd::AsFd::as_fd(&fd), TRIAL_BUFFER_NAME)
    {
        log::debug!("{}: naming the trial buffer: {e}", dev.name());
    }
    let result = dev.prime_fd_to_buffer(std::os::fd::AsFd::as_fd(&fd));
    match result {
        Ok(handle) => {
            if let Err(e) = dev.close_buffer(handle) {
                log::warn!("{}: closing trial GEM handle: {e}", dev.name());
            }
            log::debug!(
                "{}: trial import from {} accepted",
                dev.name(),
                source.name()
            );
            ImportTrial::Accepted(format!("{} bytes from {}", size, source.name()))
        }
        Err(e) => {
            log::info!(
                "{}: trial import from {} refused: {e}",
                dev.name(),
                source.name()
            );
            ImportTrial::Refused(format!("{} buffer: {e}", source.name()))
        }
    }
}
