//! Counting what a pipeline holds (open fds, framebuffers the kernel lists) to show that
//! everything is released.

use cenalloc_drm::DrmDevice;

use crate::pipeline::PipelineError;

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

/// Resident memory of this process (`VmRSS` of /proc/self/status) in KiB; 0 if unreadable.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What a running pipeline holds at one frame: fds, GEM handles and framebuffers on the
/// display, resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Open fds.
    pub fds: usize,
    /// GEM handles cenalloc holds on the display.
    pub gem_handles: usize,
    /// Framebuffers on the display (None without debugfs).
    pub framebuffers: Option<usize>,
    /// Resident memory in KiB.
    pub rss_kib: u64,
}

impl Footprint {
    /// Counts now.
    pub fn now(display: &DrmDevice) -> Footprint {
        Footprint {
            fds: open_fds(),
            gem_handles: display.live_gem_handles(),
            framebuffers: framebuffers(display),
            rss_kib: rss_kib(),
        }
    }
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fds {}, GEM handles {}, framebuffers {}, RSS {} KiB",
            self.fds,
            self.gem_handles,
            show_count(self.framebuffers),
            self.rss_kib
        )
    }
}

/// A count for printing, `?` when unknown.
pub fn show_count(n: Option<usize>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
}

/// Prints what `program` held `before` and holds now on `display`, and turns `outcome` into an
/// error if anything was not released (the pipeline must have been dropped already).
pub fn check_released<T>(
    program: &str,
    display: &DrmDevice,
    before: Held,
    outcome: Result<T, PipelineError>,
) -> Result<T, PipelineError> {
    let after = Held::now(display);
    println!(
        "released: open fds {} → {}, framebuffers on {} {} → {}",
        before.fds,
        after.fds,
        display.name(),
        show_count(before.framebuffers),
        show_count(after.framebuffers)
    );
    if after != before {
        eprintln!("{program}: not everything was released");
        return Err(outcome.err().unwrap_or_else(|| {
            PipelineError::Setup("resources leaked (see the released: line)".into())
        }));
    }
    outcome
}
