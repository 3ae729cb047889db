//! Finding the guest's devices by driver and name.

use std::path::PathBuf;

use drm::Device as _;

struct Card(std::fs::File);

impl std::os::fd::AsFd for Card {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for Card {}

/// DRM nodes (`/dev/dri/card*` or `renderD*` by `prefix`) and their kernel driver names, as
/// DRM_IOCTL_VERSION reports them.
pub fn drm_nodes(prefix: &str) -> Vec<(PathBuf, String)> {
    let mut nodes = Vec::new();
    let Ok(dir) = std::fs::read_dir("/dev/dri") else {
        return nodes;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        else {
            continue;
        };
        if let Ok(driver) = Card(file).get_driver() {
            nodes.push((path, driver.name().to_string_lossy().into_owned()));
        }
    }
    nodes.sort();
    nodes
}

/// The primary node (`/dev/dri/cardN`) of the DRM driver `driver`; panics if there is none.
pub fn drm_card(driver: &str) -> PathBuf {
    let nodes = drm_nodes("card");
    nodes
        .iter()
        .find(|(_, d)| d == driver)
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| panic!("no DRM card with driver {driver} (found {nodes:?})"))
}

/// V4L2 nodes and their names from `/sys/class/video4linux/*/name`.
pub fn video_nodes() -> Vec<(PathBuf, String)> {
    let mut nodes = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/video4linux") else {
        return nodes;
    };
    for entry in dir.flatten() {
        let node = entry.file_name().to_string_lossy().into_owned();
        if let Ok(name) = std::fs::read_to_string(entry.path().join("name")) {
            nodes.push((PathBuf::from("/dev").join(node), name.trim().to_owned()));
        }
    }
    nodes.sort();
    nodes
}

/// The V4L2 node whose name is exactly `name` (e.g. `vivid-000-vid-cap`); panics if absent.
pub fn video_node(name: &str) -> PathBuf {
    let nodes = video_nodes();
    nodes
        .iter()
        .find(|(_, n)| n == name)
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| panic!("no V4L2 node named {name} (found {nodes:?})"))
}

/// A dma-buf heap node; panics if absent.
pub fn heap(name: &str) -> PathBuf {
    let path = PathBuf::from("/dev/dma_heap").join(name);
    assert!(path.exists(), "no dma-buf heap {}", path.display());
    path
}
