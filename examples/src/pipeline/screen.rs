//! Showing framebuffers on a display output at a chosen mode size with atomic KMS.
//!
//! Written here rather than with `cenalloc_drm::kms::Display`, which always takes the
//! connector's preferred mode: a camera frame is scanned out as it is, so the mode must have
//! the frame's size (primary planes cannot be scaled or positioned on most drivers).

use std::collections::HashMap;

use cenalloc_drm::{DrmDevice, PlaneKind};
use drm::control::{
    atomic::AtomicModeReq, connector, crtc, framebuffer, plane, property, AtomicCommitFlags,
    Device as _, Mode, ResourceHandle,
};
use drm::{ClientCapability, Device as _};

use crate::pipeline::PipelineError;

/// One connector, the CRTC driving it and the CRTC's primary plane, lit at one mode.
#[derive(Debug)]
pub struct Screen {
    dev: DrmDevice,
    connector: connector::Handle,
    crtc: crtc::Handle,
    plane: plane::Handle,
    mode: Mode,
    fb_id: property::Handle,
    lit: bool,
}

fn kms_error(dev: &DrmDevice, what: &str, e: std::io::Error) -> PipelineError {
    PipelineError::Setup(format!("{}: {what}: {e}", dev.name()))
}

fn prop<H: ResourceHandle>(
    dev: &DrmDevice,
    handle: H,
    name: &str,
) -> Result<property::Handle, PipelineError> {
    let props = dev
        .get_properties(handle)
        .map_err(|e| kms_error(dev, "OBJ_GETPROPERTIES", e))?;
    let map: HashMap<String, property::Info> = props
        .as_hashmap(dev)
        .map_err(|e| kms_error(dev, "GETPROPERTY", e))?;
    map.get(name)
        .map(|p| p.handle())
        .ok_or_else(|| PipelineError::Setup(format!("{}: no {name} property", dev.name())))
}

impl Screen {
    /// Finds a connected, non-writeback connector offering a `width`×`height` mode, a CRTC
    /// for it and that CRTC's primary plane.
    pub fn new(dev: &DrmDevice, (width, height): (u32, u32)) -> Result<Screen, PipelineError> {
        dev.set_client_capability(ClientCapability::UniversalPlanes, true)
            .and_then(|_| dev.set_client_capability(ClientCapability::Atomic, true))
            .map_err(|e| kms_error(dev, "DRM_CLIENT_CAP_ATOMIC", e))?;
        let res = dev
            .resource_handles()
            .map_err(|e| kms_error(dev, "GETRESOURCES", e))?;
        let mut offered = Vec::new();
        for &c in res.connectors() {
            let Ok(info) = dev.get_connector(c, true) else {
                continue;
            };
            if info.state() != connector::State::Connected
                || info.interface() == connector::Interface::Writeback
            {
                continue;
            }
            let Some(mode) = info.modes().iter().find(|m| {
                let (w, h) = m.size();
                (u32::from(w), u32::from(h)) == (width, height)
            }) else {
                offered.extend(info.modes().iter().map(|m| format!("{:?}", m.size())));
                continue;
            };
            for &e in info.encoders() {
                let Ok(enc) = dev.get_encoder(e) else {
                    continue;
                };
                for crtc in res.filter_crtcs(enc.possible_crtcs()) {
                    let primary = dev.probe().planes.iter().find_map(|p| {
                        let h = drm::control::from_u32::<plane::Handle>(p.id)?;
                        let info = dev.get_plane(h).ok()?;
                        (p.kind == PlaneKind::Primary
                            && res.filter_crtcs(info.possible_crtcs()).contains(&crtc))
                        .then_some(h)
                    });
                    if let Some(plane) = primary {
                        let fb_id = prop(dev, plane, "FB_ID")?;
                        return Ok(Screen {
                            fb_id,
                            dev: dev.clone(),
                            connector: c,
                            crtc,
                            plane,
                            mode: *mode,
                            lit: false,
                        });
                    }
                }
            }
        }
        Err(PipelineError::Setup(format!(
            "{}: no connected output offers a {width}x{height} mode with a primary plane \
             (modes: {})",
            dev.name(),
            offered.join(" ")
        )))
    }

    /// Shows `fb` full-screen; the first call sets the mode. Returns once the flip is done,
    /// so the framebuffer shown before is no longer scanned out.
    pub fn show(&mut self, fb: framebuffer::Handle) -> Result<(), PipelineError> {
        let dev = &self.dev;
        let mut req = AtomicModeReq::new();
        req.add_property(
            self.plane,
            self.fb_id,
            property::Value::Framebuffer(Some(fb)),
        );
        let mut flags = AtomicCommitFlags::empty();
        if !self.lit {
            flags = AtomicCommitFlags::ALLOW_MODESET;
            self.add_routing(&mut req, true)?;
        }
        dev.atomic_commit(flags, req)
            .map_err(|e| kms_error(dev, "atomic commit (show frame)", e))?;
        self.lit = true;
        Ok(())
    }

    fn add_routing(&self, req: &mut AtomicModeReq, on: bool) -> Result<(), PipelineError> {
        let dev = &self.dev;
        let (w, h) = self.mode.size();
        let (w, h) = if on {
            (u64::from(w), u64::from(h))
        } else {
            (0, 0)
        };
        let crtc = on.then_some(self.crtc);
        // Take the CRTC from any other connector (e.g. the one fbdev emulation lit).
        let res = dev
            .resource_handles()
            .map_err(|e| kms_error(dev, "GETRESOURCES", e))?;
        if on {
            for &c in res.connectors().iter().filter(|&&c| c != self.connector) {
                let Ok(p) = prop(dev, c, "CRTC_ID") else {
                    continue;
                };
                let current = dev
                    .get_properties(c)
                    .ok()
                    .and_then(|s| s.iter().find(|(h, _)| **h == p).map(|(_, v)| *v));
                if current == Some(u64::from(u32::from(self.crtc))) {
                    req.add_property(c, p, property::Value::CRTC(None));
                }
            }
        }
        req.add_property(
            self.connector,
            prop(dev, self.connector, "CRTC_ID")?,
            property::Value::CRTC(crtc),
        );
        let blob = if on {
            dev.create_property_blob(&self.mode)
                .map_err(|e| kms_error(dev, "CREATEPROPBLOB (mode)", e))?
        } else {
            property::Value::Blob(0)
        };
        req.add_property(self.crtc, prop(dev, self.crtc, "MODE_ID")?, blob);
        req.add_property(
            self.crtc,
            prop(dev, self.crtc, "ACTIVE")?,
            property::Value::Boolean(on),
        );
        req.add_property(
            self.plane,
            prop(dev, self.plane, "CRTC_ID")?,
            property::Value::CRTC(crtc),
        );
        for (name, v) in [
            ("SRC_X", 0u64),
            ("SRC_Y", 0),
            ("SRC_W", w << 16),
            ("SRC_H", h << 16),
            ("CRTC_W", w),
            ("CRTC_H", h),
        ] {
            req.add_property(
                self.plane,
                prop(dev, self.plane, name)?,
                property::Value::UnsignedRange(v),
            );
        }
        for name in ["CRTC_X", "CRTC_Y"] {
            req.add_property(
                self.plane,
                prop(dev, self.plane, name)?,
                property::Value::SignedRange(0),
            );
        }
        Ok(())
    }

    /// Turns the output off and detaches the plane, so no framebuffer is in use.
    pub fn disable(&mut self) -> Result<(), PipelineError> {
        if !self.lit {
            return Ok(());
        }
        let mut req = AtomicModeReq::new();
        req.add_property(
            self.plane,
            prop(&self.dev, self.plane, "FB_ID")?,
            property::Value::Framebuffer(None),
        );
        self.add_routing(&mut req, false)?;
        self.dev
            .atomic_commit(AtomicCommitFlags::ALLOW_MODESET, req)
            .map_err(|e| kms_error(&self.dev, "atomic commit (display off)", e))?;
        self.lit = false;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if let Err(e) = self.disable() {
            log::warn!("turning the display off: {e}");
        }
    }
}
