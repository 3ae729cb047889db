//! Finding the producer and the display: by path, or by name/driver through sysfs (node
//! numbers follow probe order and are never assumed).

use std::path::Path;
use std::sync::Arc;

use cenalloc_drm::{DrmDevice, NodeKind};
use cenalloc_v4l2::Device;

use crate::pipeline::PipelineError;

/// Opens a V4L2 node: `spec` is a path (`/dev/video3`), a node name from
/// `/sys/class/video4linux/*/name` (`vivid-000-vid-cap`, `stateful-decoder`), or a card name
/// whose video capture node is meant (`vivid-000` → `vivid-000-vid-cap`).
pub fn open_video(spec: &str) -> Result<Arc<Device>, PipelineError> {
    let path = if spec.starts_with('/') {
        Path::new(spec).to_path_buf()
    } else {
        let names = cenalloc_v4l2::list_devices();
        let capture = format!("{spec}-vid-cap");
        names
            .iter()
            .find(|(_, n)| n == spec)
            .or_else(|| names.iter().find(|(_, n)| *n == capture))
            .map(|(p, _)| p.clone())
            .ok_or_else(|| {
                PipelineError::Setup(format!(
                    "no V4L2 node named {spec} or {capture} (found: {})",
                    names
                        .iter()
                        .map(|(_, n)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?
    };
    Ok(Arc::new(Device::open(&path)?))
}

/// Opens a KMS display: `spec` is a DRM node path or a driver name (`vkms`); for a driver
/// the primary (`cardN`) node is taken.
pub fn open_display(spec: &str) -> Result<DrmDevice, PipelineError> {
    if spec.starts_with('/') {
        return Ok(DrmDevice::open(spec)?);
    }
    cenalloc_drm::device::find(spec, NodeKind::Card).ok_or_else(|| {
        let found: Vec<String> = cenalloc_drm::enumerate()
            .iter()
            .map(|d| d.name().to_owned())
            .collect();
        PipelineError::Setup(format!(
            "no DRM card with driver {spec} (found: {})",
            found.join(", ")
        ))
    })
}
