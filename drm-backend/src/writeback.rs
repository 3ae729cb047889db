//! Reading back what a CRTC produced through a writeback connector (vkms). Public because it
//! is how a user proves what the display showed — that a frame went out zero-copy and
//! bit-exact — in CI on vkms, as cenalloc's own pipelines and compositor do. In 6.12 vkms the
//! virtual connector and the writeback connector cannot share the CRTC (possible_clones is
//! unset), so the CRTC is driven by the writeback connector alone.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use drm::control::{
    atomic::AtomicModeReq, connector, framebuffer, property, AtomicCommitFlags, Device, Mode,
};
use rustix::event::{poll, PollFd, PollFlags};

use crate::kms::{
    add_modeset, add_plane, commit, detach_others, enable_atomic, find_pipeline, prop, Pipeline,
};
use crate::{DrmDevice, DrmError};

/// A writeback connector with the CRTC and primary plane that feed it.
#[derive(Debug)]
pub struct Writeback {
    dev: DrmDevice,
    pipeline: Pipeline,
    modes: Vec<Mode>,
}

impl Writeback {
    /// Enables atomic and writeback client caps and finds the writeback connector.
    pub fn new(dev: &DrmDevice) -> Result<Writeback, DrmError> {
        enable_atomic(dev, true)?;
        let (pipeline, modes) =
            find_pipeline(dev, |c| c.interface() == connector::Interface::Writeback)?;
        Ok(Writeback {
            dev: dev.clone(),
            pipeline,
            modes,
        })
    }

    /// The writeback connector, its CRTC and the primary plane.
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline
    }

    /// Sizes the writeback connector offers modes for.
    pub fn sizes(&self) -> Vec<(u32, u32)> {
        self.modes
            .iter()
            .map(|m| (u32::from(m.size().0), u32::from(m.size().1)))
            .collect()
    }

    /// Shows `source` full-screen on the CRTC at a `size` mode and writes the CRTC's output
    /// into `target` (same size, a format the writeback connector takes, e.g. XRGB8888);
    /// waits for the writeback out fence up to `timeout`, then turns the CRTC off again.
    pub fn capture(
        &self,
        source: framebuffer::Handle,
        target: framebuffer::Handle,
        size: (u32, u32),
        timeout: Duration,
    ) -> Result<(), DrmError> {
        let mode = self
            .modes
            .iter()
            .find(|m| (u32::from(m.size().0), u32::from(m.size().1)) == size)
            .ok_or_else(|| DrmError::Kms {
                device: self.dev.name().to_owned(),
                detail: format!("writeback offers no {}x{} mode", size.0, size.1),
            })?;
        let p = &self.pipeline;
        let mut req = AtomicModeReq::new();
        detach_others(&self.dev, &mut req, p)?;
        add_modeset(&self.dev, &mut req, p, Some(mode))?;
        add_plane(&self.dev, &mut req, p, Some(source), size)?;
        req.add_property(
            p.connector,
            prop(&self.dev, p.connector, "WRITEBACK_FB_ID")?,
            drm::control::property::Value::Framebuffer(Some(target)),
        );
        let fence_prop = prop(&self.dev, p.connector, "WRITEBACK_OUT_FENCE_PTR")?;
        let fence = crate::sys::atomic_commit_with_out_fence(
            &self.dev,
            AtomicCommitFlags::ALLOW_MODESET,
            req,
            p.connector.into(),
            fence_prop,
        )
        .map_err(|e| DrmError::io(self.dev.name(), "atomic commit (writeback)", e));
        let waited = fence.and_then(|f| {
            wait_fence(&f, timeout)
                .map_err(|e| DrmError::io(self.dev.name(), "waiting for the writeback fence", e))
        });
        let off = self.disable();
        waited?;
        off
    }

    /// Turns the CRTC off and detaches plane and connector.
    pub fn disable(&self) -> Result<(), DrmError> {
        let mut req = AtomicModeReq::new();
        add_modeset(&self.dev, &mut req, &self.pipeline, None)?;
        add_plane(&self.dev, &mut req, &self.pipeline, None, (0, 0))?;
        commit(
            &self.dev,
            AtomicCommitFlags::ALLOW_MODESET,
            req,
            "writeback off",
        )
    }
}

/// Queues one writeback job on the frame the CRTC of `connector` shows now, on any DRM
/// device (cenalloc's or e.g. smithay's): sets `WRITEBACK_FB_ID` (`fb_prop`) to `target` and
/// asks for the out fence (`fence_prop`, `WRITEBACK_OUT_FENCE_PTR`), which signals when the
/// frame has been written. No modeset: the caller drives the CRTC.
pub fn queue_job(
    dev: &impl Device,
    connector: connector::Handle,
    fb_prop: property::Handle,
    fence_prop: property::Handle,
    target: framebuffer::Handle,
) -> io::Result<OwnedFd> {
    let mut req = AtomicModeReq::new();
    req.add_property(
        connector,
        fb_prop,
        property::Value::Framebuffer(Some(target)),
    );
    crate::sys::atomic_commit_with_out_fence(
        dev,
        AtomicCommitFlags::empty(),
        req,
        connector.into(),
        fence_prop,
    )
}

/// Waits until `fence` (a sync_file) signals, for at most `timeout`.
pub fn wait_fence(fence: &OwnedFd, timeout: Duration) -> io::Result<()> {
    let mut fds = [PollFd::new(fence, PollFlags::IN)];
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    match poll(&mut fds, ms)? {
        0 => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("fence did not signal within {} ms", timeout.as_millis()),
        )),
        _ => Ok(()),
    }
}
