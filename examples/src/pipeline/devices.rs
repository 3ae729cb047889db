//! Finding the producer and the display: by path, or by name/driver through sysfs (node
//! numbers follow probe order and are never assumed).

use std::sync::Arc;

use cenalloc_drm::DrmDevice;
use cenalloc_v4l2::Device;

use crate::pipeline::PipelineError;

/// Opens a V4L2 node: `spec` is a path (`/dev/video3`), a node name from
/// `/sys/class/video4linux/*/name` (`vivid-000-vid-cap`, `stateful-decoder`), or a card name
/// whose video capture node is meant (`vivid-000` → `vivid-000-vid-cap`).
pub fn open_video(spec: &str) -> Result<Arc<Device>, PipelineError> {
    Ok(Arc::new(cenalloc_v4l2::open_named(spec)?))
}

/// Opens a KMS display: `spec` is a DRM node path or a driver name (`vkms`); for a driver
/// the primary (`cardN`) node is taken.
pub fn open_display(spec: &str) -> Result<DrmDevice, PipelineError> {
    Ok(cenalloc_drm::device::open_named(spec)?)
}
