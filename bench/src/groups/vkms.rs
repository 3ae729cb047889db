//! Group `vkms`: allocate + export + import into vkms by size, for a buffer vkms allocates
//! (display-only) and one from the system heap (CPU-written), against the raw floor.

use cenalloc::Usage;

use crate::context::{size_label, xrgb, Bench, Res};
use crate::floor::Node;

impl Bench {
    /// Buffers for vkms from 4 KiB to 32 MiB, display-only and CPU-written, against the raw
    /// floor.
    pub fn group_vkms_sizes(&mut self) -> Res<()> {
        let group = "allocate + export + import → vkms, by size";
        let nodes = [Node::Drm {
            path: self.vkms_path.clone(),
            kms: true,
        }];
        // What cenalloc does by default for each: a buffer only the display uses comes from
        // the display (a dumb buffer), one the CPU writes from the system heap.
        let kinds = [
            (Usage::SCANOUT, "vkms allocates"),
            (Usage::SCANOUT | Usage::CPU_WRITE, "CPU-written, heap"),
        ];
        for (usage, memory) in kinds {
            for (w, h) in [(32, 32), (128, 128), (512, 512), (1024, 2048), (2048, 4096)] {
                let case = format!("{} · {memory}", size_label(w, h));
                let r = self.against_raw(group, &case, xrgb(w, h, usage), &nodes);
                self.note_err(group, &case, r);
            }
        }
        Ok(())
    }
}
