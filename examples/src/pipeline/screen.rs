//! Showing framebuffers full-screen on a display output at the frames' own size: a thin
//! wrapper of `cenalloc_drm::kms::Display` that sets the mode with the first frame and flips
//! after that, and sets a new mode when the frames change size.

use cenalloc_drm::kms::Display;
use cenalloc_drm::DrmDevice;
use drm::control::framebuffer;

use crate::pipeline::PipelineError;

/// One connector, the CRTC driving it and the CRTC's primary plane, lit at one mode.
#[derive(Debug)]
pub struct Screen {
    dev: DrmDevice,
    display: Display,
    lit: bool,
}

impl Screen {
    /// Finds a connected, non-writeback connector offering a `width`×`height` mode, a CRTC
    /// for it and that CRTC's primary plane.
    pub fn new(dev: &DrmDevice, size: (u32, u32)) -> Result<Screen, PipelineError> {
        Ok(Screen {
            dev: dev.clone(),
            display: Display::with_size(dev, size)?,
            lit: false,
        })
    }

    /// Switches to a `width`×`height` mode (on the first connected output offering one) for
    /// the frames that follow, which [`Screen::show`] then modesets to. The frame on screen
    /// stays there until then.
    pub fn resize(&mut self, size: (u32, u32)) -> Result<(), PipelineError> {
        if size != self.display.size() {
            self.display = Display::with_size(&self.dev, size)?;
            self.lit = false;
        }
        Ok(())
    }

    /// Shows `fb` full-screen; the first call sets the mode. Returns once the flip is done,
    /// so the framebuffer shown before is no longer scanned out.
    pub fn show(&mut self, fb: framebuffer::Handle) -> Result<(), PipelineError> {
        if self.lit {
            self.display.flip(fb)?;
        } else {
            self.display.present(fb)?;
            self.lit = true;
        }
        Ok(())
    }

    /// Turns the output off and detaches the plane, so no framebuffer is in use.
    pub fn disable(&mut self) -> Result<(), PipelineError> {
        if self.lit {
            self.display.disable()?;
            self.lit = false;
        }
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
