//! Presenting a framebuffer with atomic KMS: pick a connector, a CRTC it can drive and that
//! CRTC's primary plane, set a mode, commit, and flip to new framebuffers.
//!
//! Public because a program that owns the display without a compositor (a camera or decoder
//! kiosk, a test of a pipeline) needs exactly this much KMS to show the buffers cenalloc
//! allocated; compositors drive KMS themselves and need not use it.

use std::collections::HashMap;

use drm::control::{
    atomic::AtomicModeReq, connector, crtc, framebuffer, plane, property, AtomicCommitFlags,
    Device as _, Mode, ResourceHandle,
};
use drm::ClientCapability;
use drm::Device as _;

use crate::probe::PlaneKind;
use crate::{DrmDevice, DrmError};

/// Looks up a property of a KMS object by name.
pub(crate) fn prop<H: ResourceHandle>(
    dev: &DrmDevice,
    handle: H,
    name: &str,
) -> Result<property::Handle, DrmError> {
    let props = dev
        .get_properties(handle)
        .map_err(|e| DrmError::io(dev.name(), "OBJ_GETPROPERTIES", e))?;
    let map: HashMap<String, property::Info> = props
        .as_hashmap(dev)
        .map_err(|e| DrmError::io(dev.name(), "GETPROPERTY", e))?;
    map.get(name)
        .map(|p| p.handle())
        .ok_or_else(|| DrmError::Unsupported {
            device: dev.name().to_owned(),
            what: cenalloc::ConstraintKind::Format,
            detail: format!("object has no {name} property"),
        })
}

/// A connector, the CRTC driving it, and that CRTC's primary plane.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline {
    /// The connector.
    pub connector: connector::Handle,
    /// The CRTC.
    pub crtc: crtc::Handle,
    /// The CRTC's primary plane.
    pub plane: plane::Handle,
}

pub(crate) fn enable_atomic(dev: &DrmDevice, writeback: bool) -> Result<(), DrmError> {
    dev.set_client_capability(ClientCapability::UniversalPlanes, true)
        .and_then(|_| dev.set_client_capability(ClientCapability::Atomic, true))
        .map_err(|e| DrmError::io(dev.name(), "DRM_CLIENT_CAP_ATOMIC", e))?;
    if writeback {
        dev.set_client_capability(ClientCapability::WritebackConnectors, true)
            .map_err(|e| DrmError::io(dev.name(), "DRM_CLIENT_CAP_WRITEBACK_CONNECTORS", e))?;
    }
    Ok(())
}

/// Finds a pipeline through the first connector `accept` takes, returning its modes too.
pub(crate) fn find_pipeline(
    dev: &DrmDevice,
    accept: impl Fn(&connector::Info) -> bool,
) -> Result<(Pipeline, Vec<Mode>), DrmError> {
    let res = dev
        .resource_handles()
        .map_err(|e| DrmError::io(dev.name(), "GETRESOURCES", e))?;
    let none = |detail: &str| DrmError::Kms {
        device: dev.name().to_owned(),
        detail: detail.to_owned(),
    };
    for &c in res.connectors() {
        let Ok(info) = dev.get_connector(c, true) else {
            continue;
        };
        if !accept(&info) {
            continue;
        }
        for &e in info.encoders() {
            let Ok(enc) = dev.get_encoder(e) else {
                continue;
            };
            for crtc in res.filter_crtcs(enc.possible_crtcs()) {
                let primary = dev.probe().planes.iter().find(|p| {
                    p.kind == PlaneKind::Primary
                        && drm::control::from_u32::<plane::Handle>(p.id)
                            .and_then(|h| dev.get_plane(h).ok())
                            .is_some_and(|i| res.filter_crtcs(i.possible_crtcs()).contains(&crtc))
                });
                if let Some(p) = primary.and_then(|p| drm::control::from_u32(p.id)) {
                    return Ok((
                        Pipeline {
                            connector: c,
                            crtc,
                            plane: p,
                        },
                        info.modes().to_vec(),
                    ));
                }
            }
        }
    }
    Err(none("no connector with a CRTC and primary plane for it"))
}

/// Adds the plane properties that show `fb` (w×h) full-screen on `crtc`.
pub(crate) fn add_plane(
    dev: &DrmDevice,
    req: &mut AtomicModeReq,
    p: &Pipeline,
    fb: Option<framebuffer::Handle>,
    (w, h): (u32, u32),
) -> Result<(), DrmError> {
    let crtc = fb.map(|_| p.crtc);
    req.add_property(
        p.plane,
        prop(dev, p.plane, "FB_ID")?,
        property::Value::Framebuffer(fb),
    );
    req.add_property(
        p.plane,
        prop(dev, p.plane, "CRTC_ID")?,
        property::Value::CRTC(crtc),
    );
    let (w, h) = if fb.is_some() { (w, h) } else { (0, 0) };
    for (name, v) in [
        ("SRC_X", 0u64),
        ("SRC_Y", 0),
        ("SRC_W", u64::from(w) << 16),
        ("SRC_H", u64::from(h) << 16),
        ("CRTC_W", u64::from(w)),
        ("CRTC_H", u64::from(h)),
    ] {
        req.add_property(
            p.plane,
            prop(dev, p.plane, name)?,
            property::Value::UnsignedRange(v),
        );
    }
    for name in ["CRTC_X", "CRTC_Y"] {
        req.add_property(
            p.plane,
            prop(dev, p.plane, name)?,
            property::Value::SignedRange(0),
        );
    }
    Ok(())
}

/// Detaches every other connector currently routed to the pipeline's CRTC (e.g. the one the
/// fbdev emulation lit up), so the commit drives the CRTC with `p.connector` alone.
pub(crate) fn detach_others(
    dev: &DrmDevice,
    req: &mut AtomicModeReq,
    p: &Pipeline,
) -> Result<(), DrmError> {
    let res = dev
        .resource_handles()
        .map_err(|e| DrmError::io(dev.name(), "GETRESOURCES", e))?;
    let ours = u64::from(u32::from(p.crtc));
    for &c in res.connectors().iter().filter(|c| **c != p.connector) {
        let Ok(crtc_prop) = prop(dev, c, "CRTC_ID") else {
            continue;
        };
        let current = dev
            .get_properties(c)
            .ok()
            .and_then(|set| set.iter().find(|(h, _)| **h == crtc_prop).map(|(_, v)| *v));
        if current == Some(ours) {
            req.add_property(c, crtc_prop, property::Value::CRTC(None));
        }
    }
    Ok(())
}

/// Adds connector → CRTC routing, the mode and ACTIVE (or their reset when `mode` is None).
pub(crate) fn add_modeset(
    dev: &DrmDevice,
    req: &mut AtomicModeReq,
    p: &Pipeline,
    mode: Option<&Mode>,
) -> Result<(), DrmError> {
    let crtc = mode.map(|_| p.crtc);
    req.add_property(
        p.connector,
        prop(dev, p.connector, "CRTC_ID")?,
        property::Value::CRTC(crtc),
    );
    let blob = match mode {
        Some(m) => dev
            .create_property_blob(m)
            .map_err(|e| DrmError::io(dev.name(), "CREATEPROPBLOB (mode)", e))?,
        None => property::Value::Blob(0),
    };
    req.add_property(p.crtc, prop(dev, p.crtc, "MODE_ID")?, blob);
    req.add_property(
        p.crtc,
        prop(dev, p.crtc, "ACTIVE")?,
        property::Value::Boolean(mode.is_some()),
    );
    Ok(())
}

pub(crate) fn commit(
    dev: &DrmDevice,
    flags: AtomicCommitFlags,
    req: AtomicModeReq,
    what: &str,
) -> Result<(), DrmError> {
    dev.atomic_commit(flags, req)
        .map_err(|e| DrmError::io(dev.name(), format!("atomic commit ({what})"), e))
}

/// A display output driven with atomic commits.
#[derive(Debug)]
pub struct Display {
    dev: DrmDevice,
    pipeline: Pipeline,
    mode: Mode,
    /// The primary plane's FB_ID property, looked up once: a flip sets only this.
    fb_id: property::Handle,
}

impl Display {
    /// Picks the first connected (non-writeback) connector, a CRTC for it, the CRTC's primary
    /// plane and the connector's preferred (first) mode.
    pub fn new(dev: &DrmDevice) -> Result<Display, DrmError> {
        Self::open(dev, None)
    }

    /// Like [`Display::new`], with a mode of exactly `width`×`height` from the first connected
    /// connector that offers one: to scan a frame out at its own size (primary planes cannot
    /// scale on most drivers).
    pub fn with_size(dev: &DrmDevice, size: (u32, u32)) -> Result<Display, DrmError> {
        Self::open(dev, Some(size))
    }

    fn open(dev: &DrmDevice, size: Option<(u32, u32)>) -> Result<Display, DrmError> {
        let fits = |m: &Mode| {
            size.is_none_or(|want| (u32::from(m.size().0), u32::from(m.size().1)) == want)
        };
        enable_atomic(dev, false)?;
        let (pipeline, modes) = find_pipeline(dev, |c| {
            c.state() == connector::State::Connected
                && c.interface() != connector::Interface::Writeback
                && c.modes().iter().any(fits)
        })
        .map_err(|e| match (e, size) {
            (DrmError::Kms { device, .. }, Some((w, h))) => DrmError::Kms {
                device,
                detail: format!("no connected output offers a {w}x{h} mode"),
            },
            (e, _) => e,
        })?;
        let mode = *modes
            .iter()
            .find(|m| fits(m))
            .ok_or_else(|| DrmError::Kms {
                device: dev.name().to_owned(),
                detail: "the chosen connector lost its mode".into(),
            })?;
        Ok(Display {
            dev: dev.clone(),
            pipeline,
            mode,
            fb_id: prop(dev, pipeline.plane, "FB_ID")?,
        })
    }

    /// The chosen connector, CRTC and plane.
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline
    }

    /// The mode's size in pixels.
    pub fn size(&self) -> (u32, u32) {
        let (w, h) = self.mode.size();
        (u32::from(w), u32::from(h))
    }

    /// Modesets and shows `fb` (which must be the mode's size) full-screen.
    pub fn present(&self, fb: framebuffer::Handle) -> Result<(), DrmError> {
        let mut req = AtomicModeReq::new();
        detach_others(&self.dev, &mut req, &self.pipeline)?;
        add_modeset(&self.dev, &mut req, &self.pipeline, Some(&self.mode))?;
        add_plane(&self.dev, &mut req, &self.pipeline, Some(fb), self.size())?;
        commit(&self.dev, AtomicCommitFlags::ALLOW_MODESET, req, "present")
    }

    /// Flips to `fb` without a modeset (blocking until the flip is done).
    pub fn flip(&self, fb: framebuffer::Handle) -> Result<(), DrmError> {
        let mut req = AtomicModeReq::new();
        req.add_property(
            self.pipeline.plane,
            self.fb_id,
            property::Value::Framebuffer(Some(fb)),
        );
        commit(&self.dev, AtomicCommitFlags::empty(), req, "flip")
    }

    /// Turns the output off and detaches the plane.
    pub fn disable(&self) -> Result<(), DrmError> {
        let mut req = AtomicModeReq::new();
        add_modeset(&self.dev, &mut req, &self.pipeline, None)?;
        add_plane(&self.dev, &mut req, &self.pipeline, None, (0, 0))?;
        commit(&self.dev, AtomicCommitFlags::ALLOW_MODESET, req, "disable")
    }
}
