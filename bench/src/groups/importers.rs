//! Group `importers`: what one buffer costs against the number of devices importing it (1 to
//! 6: vkms, vivid-001, vgem, and each again), against the raw floor.

use std::path::Path;

use cenalloc::Usage;
use cenalloc_drm::NodeKind;

use crate::context::{xrgb, Bench, Res};
use crate::floor::Node;

impl Bench {
    /// A 1920x1080 buffer imported into 1 to 6 devices, each count against the raw floor.
    pub fn group_scaling_importers(&mut self) -> Res<()> {
        let group = "allocate + export + import 1920x1080 XR24, by number of importers";
        // Distinct fds: each has its own GEM handle space, so every import is real work.
        let vgem = cenalloc_drm::device::find("vgem", NodeKind::Card)
            .ok_or("no vgem card (needed for the importer scaling)")?;
        let vgem_path = vgem.path().ok_or("vgem has no path")?.to_owned();
        let kms = |path: &Path| Node::Drm {
            path: path.to_owned(),
            kms: true,
        };
        let render = |path: &Path| Node::Drm {
            path: path.to_owned(),
            kms: false,
        };
        let nodes = [
            kms(&self.vkms_path),
            Node::Video(self.vivid_path.clone()),
            render(&vgem_path),
            kms(&self.vkms_path),
            render(&vgem_path),
            kms(&self.vkms_path),
        ];
        let labels = [
            "vkms",
            "+ vivid-001",
            "+ vgem",
            "+ vkms #2",
            "+ vgem #2",
            "+ vkms #3",
        ];
        for (n, label) in labels.iter().enumerate() {
            let case = format!("{} importer(s): {label}", n + 1);
            let request = xrgb(1920, 1080, Usage::SCANOUT | Usage::CAMERA_WRITE);
            let r = self.against_raw(group, &case, request, &nodes[..=n]);
            self.note_err(group, &case, r);
        }
        Ok(())
    }
}
