//! Group `vivid`: allocate + export + import into vivid-001 by frame size, against the raw
//! floor.

use cenalloc::Usage;

use crate::context::{size_label, xrgb, Bench, Res};
use crate::floor::Node;

impl Bench {
    /// Camera buffers for vivid-001 at its webcam frame sizes, against the raw floor.
    pub fn group_vivid_sizes(&mut self) -> Res<()> {
        let group = "allocate + export + import → vivid-001, by size";
        let nodes = [Node::Video(self.vivid_path.clone())];
        // vivid's default input (a webcam) offers discrete frame sizes.
        for (w, h) in [
            (320, 180),
            (640, 480),
            (1280, 720),
            (1920, 1080),
            (3840, 2160),
        ] {
            let r = self.against_raw(
                group,
                &size_label(w, h),
                xrgb(w, h, Usage::CAMERA_WRITE),
                &nodes,
            );
            self.note_err(group, &size_label(w, h), r);
        }
        Ok(())
    }
}
