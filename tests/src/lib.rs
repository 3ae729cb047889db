//! Helpers for the device tests that run inside the QEMU guest (`cargo xtask test`).
//!
//! Devices are found by driver or name, never by node number. A helper that cannot find the
//! device it is asked for panics with a message saying what is missing: in the guest a missing
//! device is a failure, never a skip. The bare kernel calls (the rig's smoke test, buffers made
//! behind cenalloc's back) come from `cenalloc-raw-ioctl`.

#![forbid(unsafe_code)]

pub mod compositor;
pub mod devices;
pub mod dma_buf;
pub mod fault;
pub mod fds;

/// Opens the DRM node of `kind` whose driver is `driver` with the DRM backend; panics if the
/// guest has none.
pub fn drm_device(driver: &str, kind: cenalloc_drm::NodeKind) -> cenalloc_drm::DrmDevice {
    cenalloc_drm::device::find(driver, kind).unwrap_or_else(|| {
        let found: Vec<String> = cenalloc_drm::enumerate()
            .iter()
            .map(|d| d.name().to_owned())
            .collect();
        panic!("no DRM {kind:?} node with driver {driver} (found {found:?})")
    })
}

/// Framebuffers the kernel lists for `dev` in debugfs (`/sys/kernel/debug/dri/N/framebuffer`,
/// N the card's minor); panics if debugfs is not mounted.
pub fn dri_debugfs_framebuffers(dev: &cenalloc_drm::DrmDevice) -> usize {
    let minor = dev
        .sysfs()
        .node
        .trim_start_matches("card")
        .trim_start_matches("renderD");
    let path = format!("/sys/kernel/debug/dri/{minor}/framebuffer");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (is debugfs mounted?)"))
        .lines()
        .filter(|l| l.starts_with("framebuffer["))
        .count()
}

/// The path of the workspace program `name` (from `$CENALLOC_BIN_DIR`, which `cargo xtask
/// test` sets, else `target/debug`); panics if it was not built.
pub fn program(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("CENALLOC_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/debug"));
    let path = dir.join(name);
    assert!(path.is_file(), "{} is not built", path.display());
    path
}
