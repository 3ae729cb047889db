//! A capture queue's frame rate (VIDIOC_S_PARM): a camera streams at the interval it was
//! last given, which for vivid's default input at 640x480 is 5 frames per second.

use cenalloc::{ConstraintKind, Error, Result};

use crate::device::{Device, Direction};
use crate::sys;

impl Device {
    /// Asks the capture queue for `fps` frames per second. Returns the rate the driver set as
    /// (frames, seconds): `frames` every `seconds` (the inverse of V4L2's time per frame). A
    /// driver without `V4L2_CAP_TIMEPERFRAME` is an error. Drivers may reset the rate when the
    /// format changes, so set it after the format.
    pub fn set_frame_rate(&self, fps: u32) -> Result<(u32, u32)> {
        let ty = self
            .buf_type(Direction::Capture)
            .ok_or_else(|| Error::Unsupported {
                device: self.display_name(),
                kind: ConstraintKind::Import,
                detail: "no video capture queue".into(),
            })?;
        let mut parm = sys::StreamParm {
            type_: ty,
            capability: 0,
            capturemode: 0,
            numerator: 1,
            denominator: fps.max(1),
            extendedmode: 0,
            readbuffers: 0,
            reserved: [0; 4],
            padding: [0; 160],
        };
        sys::s_parm(self.fd(), &mut parm)
            .map_err(|e| Error::io(format!("VIDIOC_S_PARM on {}", self.display_name()), e))?;
        if parm.capability & sys::CAP_TIMEPERFRAME == 0 {
            return Err(Error::Unsupported {
                device: self.display_name(),
                kind: ConstraintKind::Import,
                detail: "the driver takes no frame interval (no V4L2_CAP_TIMEPERFRAME)".into(),
            });
        }
        Ok((parm.denominator, parm.numerator))
    }
}
