//! Where buffer memory comes from: dma-buf heaps, udmabuf, or an exporting device.

use std::fmt::Debug;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::{CachePolicy, Result};

/// The kind of a memory source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SourceKind {
    /// A dma-buf heap in `/dev/dma_heap`.
    Heap,
    /// memfd pages wrapped by `/dev/udmabuf`.
    Udmabuf,
    /// A device that allocates the buffer itself and exports it.
    Device,
}

/// What a memory source can give.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SourceProperties {
    /// Every allocation is physically contiguous.
    pub contiguous: bool,
    /// Largest contiguous allocation it can give, if contiguous and known.
    pub max_contiguous: Option<u64>,
    /// Cache policy of its memory.
    pub cache: CachePolicy,
    /// Highest physical address its memory may lie at, if known.
    pub max_address: Option<u64>,
    /// Gives protected memory.
    pub protected: bool,
    /// A scarce resource (CMA): used only when its properties are needed.
    pub scarce: bool,
    /// Used only when asked for by name (unknown heaps).
    pub explicit_only: bool,
}

/// A place buffers can be allocated from.
pub trait MemorySource: Send + Sync + Debug {
    /// Name, e.g. `system`, `reserved`, `udmabuf`.
    fn name(&self) -> &str;
    /// Heap, udmabuf or device.
    fn kind(&self) -> SourceKind;
    /// Device node, if any.
    fn path(&self) -> Option<&Path>;
    /// What it gives.
    fn properties(&self) -> &SourceProperties;
    /// Allocates `size` bytes (already page-aligned) and returns the dma-buf.
    fn allocate(&self, size: u64) -> Result<OwnedFd>;
}

/// A source that exists but cannot be used (e.g. a heap node root can read but we cannot).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct UnavailableSource {
    /// The node.
    pub path: PathBuf,
    /// Why it cannot be used.
    pub reason: String,
    /// What fixes it (e.g. a udev rule).
    pub fix: String,
}

pub mod heap;
mod placement;
pub mod udmabuf;

pub use heap::{HeapClass, HeapSource};
pub use udmabuf::UdmabufSource;

use std::sync::Arc;

/// Where discovery looks: `/` on a real system, a scratch directory in tests. Paths below it
/// are `dev/dma_heap`, `dev/udmabuf`, `sys/kernel/mm/cma`, `sys/kernel/mm/hugepages`,
/// `proc/meminfo` and `proc/sys/vm/nr_hugepages`.
#[derive(Debug, Clone)]
pub struct SystemRoot(pub PathBuf);

impl SystemRoot {
    /// The real system (`/`).
    pub fn real() -> Self {
        SystemRoot(PathBuf::from("/"))
    }

    /// A path below the root, e.g. `dev/dma_heap`.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
}

/// Every memory source found under `root`, plus the ones that exist but cannot be opened.
pub fn discover(root: &SystemRoot) -> (Vec<Arc<dyn MemorySource>>, Vec<UnavailableSource>) {
    let mut sources: Vec<Arc<dyn MemorySource>> = Vec::new();
    let mut unavailable = Vec::new();
    for found in heap::discover_heaps(root) {
        match found {
            Ok(h) => sources.push(Arc::new(h)),
            Err(u) => unavailable.push(u),
        }
    }
    for found in udmabuf::discover_udmabuf(root) {
        match found {
            Ok(u) => sources.push(Arc::new(u)),
            Err(u) => unavailable.push(u),
        }
    }
    (sources, unavailable)
}

/// Describes why a device node could not be opened, and the udev rule that fixes it.
pub(crate) fn unavailable_from_open_error(
    path: &Path,
    subsystem: &str,
    kernel_name: &str,
    error: &std::io::Error,
) -> UnavailableSource {
    let fix = match error.raw_os_error() {
        Some(code)
            if code == rustix::io::Errno::ACCESS.raw_os_error()
                || code == rustix::io::Errno::PERM.raw_os_error() =>
        {
            format!(
                "add a udev rule such as `SUBSYSTEM==\"{subsystem}\", KERNEL==\"{kernel_name}\", \
                 GROUP=\"video\", MODE=\"0660\"` (e.g. in /etc/udev/rules.d/72-dma-heap.rules), \
                 reload udev and add the user to group video"
            )
        }
        _ => "check that the node is a working character device (dmesg may say more)".to_owned(),
    };
    UnavailableSource {
        path: path.to_owned(),
        reason: format!("cannot open {}: {error}", path.display()),
        fix,
    }
}

/// Opens a device node read-write (falling back to read-only) with close-on-exec.
pub(crate) fn open_node(path: &Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let rw = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty());
    match rw {
        Ok(fd) => Ok(fd),
        Err(_) => Ok(rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?),
    }
}

/// Requests below this size are left to the kernel's own ENOMEM: reading `meminfo` costs more
/// than allocating a small buffer (about 90 us of the 140 us of a 4 KiB allocation in the test
/// guest), and no such request can drive a system into the OOM killer on its own.
const CHECK_AVAILABLE_FROM: u64 = 64 << 20;

/// Refuses an allocation of `size` bytes from ordinary system memory when it exceeds
/// `MemAvailable` in `meminfo`: the kernel would otherwise try, and the OOM killer end the
/// process instead of an error coming back. Only requests of 64 MiB and more are checked.
pub(crate) fn check_available(meminfo: &Path, size: u64) -> std::io::Result<()> {
    if size < CHECK_AVAILABLE_FROM {
        return Ok(());
    }
    let Ok(text) = std::fs::read_to_string(meminfo) else {
        return Ok(());
    };
    let available = text.lines().find_map(|l| {
        let kib = l
            .strip_prefix("MemAvailable:")?
            .trim()
            .trim_end_matches("kB")
            .trim();
        kib.parse::<u64>().ok()?.checked_mul(1024)
    });
    match available {
        Some(avail) if size > avail => Err(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("{size} bytes exceed the {avail} bytes of memory available"),
        )),
        _ => Ok(()),
    }
}

/// The system page size.
pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_come_with_a_udev_rule() {
        let e = std::io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error());
        let u = unavailable_from_open_error(
            Path::new("/dev/dma_heap/system"),
            "dma_heap",
            "system",
            &e,
        );
        assert!(u.reason.contains("/dev/dma_heap/system"), "{}", u.reason);
        assert!(
            u.fix
                .contains(r#"SUBSYSTEM=="dma_heap", KERNEL=="system", GROUP="video", MODE="0660""#),
            "{}",
            u.fix
        );
    }
}
