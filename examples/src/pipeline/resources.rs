//! Counting what a pipeline holds (open fds, framebuffers the kernel lists) to show that
//! everything is released.

use cenalloc_drm::DrmDevice;

/// Entries in /proc/self/fd.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Framebuffers debugfs lists for `dev` (`/sys/kernel/debug/dri/N/framebuffer`), if readable.
pub fn framebuffers(dev: &DrmDevice) -> Option<usize> {
    let minor = dev
        .sysfs()
        .node
        .trim_start_matches("card")
        .trim_start_matches("renderD")
        .to_owned();
    let text =
        std::fs::read_to_string(format!("/sys/kernel/debug/dri/{minor}/framebuffer")).ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("framebuffer["))
            .count(),
    )
}

/// What was held at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Open fds.
    pub fds: usize,
    /// Framebuffers on the display (None without debugfs).
    pub framebuffers: Option<usize>,
}

impl Held {
    /// Counts now.
    pub fn now(dev: &DrmDevice) -> Held {
        Held {
            fds: open_fds(),
            framebuffers: framebuffers(dev),
        }
    }
}
