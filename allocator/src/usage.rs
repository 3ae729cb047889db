//! How a device will use a buffer (GBM-like usage flags).

use bitflags::bitflags;

bitflags! {
    /// How the devices attached to a buffer will use it. A request carries the union of all
    /// usages; each importer derives its constraints from the usages that concern it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct Usage: u32 {
        /// Scanned out by a display controller's primary or overlay plane.
        const SCANOUT = 1 << 0;
        /// Scanned out by a display controller's cursor plane.
        const CURSOR = 1 << 1;
        /// Rendered into by a GPU.
        const RENDER = 1 << 2;
        /// Sampled by a GPU.
        const TEXTURE = 1 << 3;
        /// Written by a camera (V4L2 capture).
        const CAMERA_WRITE = 1 << 4;
        /// Written by a video decoder.
        const VIDEO_DECODE = 1 << 5;
        /// Read by a video encoder.
        const VIDEO_ENCODE = 1 << 6;
        /// Read by the CPU through a mapping.
        const CPU_READ = 1 << 7;
        /// Written by the CPU through a mapping.
        const CPU_WRITE = 1 << 8;
        /// Must use the linear (untiled) layout.
        const LINEAR = 1 << 9;
        /// Must live in protected (secure) memory.
        const PROTECTED = 1 << 10;
    }
}
