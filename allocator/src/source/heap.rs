//! dma-buf heaps (`/dev/dma_heap/*`): discovery, classification and allocation.
//!
//! How a heap is classified (the kernel exposes no "kind" for a heap, only its name):
//! - `system` is page-backed, CPU-cached, not contiguous, cheap.
//! - `system-uncached` (or `system_uncached`) is the same memory mapped write-combined.
//! - A CMA heap is named after its CMA area: `linux,cma` or `reserved` for the default area
//!   (depending on how it was declared), `default_cma_region` on some vendor kernels, and one
//!   heap per extra area when the kernel exports them. A heap is CMA if its name is one of those,
//!   contains `cma`, or matches an area listed in `/sys/kernel/mm/cma/<name>`. Its size bound
//!   is the area's `total_pages` when sysfs has it, else `CmaTotal` from `/proc/meminfo`.
//! - Names containing `secure`, `protected` or `restricted` are protected-memory heaps, used
//!   only for protected requests.
//! - Anything else is listed but used only when asked for by name (`explicit_only`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{open_node, unavailable_from_open_error, SystemRoot};
use crate::UnavailableSource;
use crate::{CachePolicy, Error, MemorySource, Result, SourceKind, SourceProperties};

/// What kind of memory a heap gives, decided from its name and sysfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum HeapClass {
    /// The `system` heap: cached pages, not contiguous.
    System,
    /// `system-uncached`: write-combined pages, not contiguous.
    SystemUncached,
    /// A CMA area: physically contiguous, scarce.
    Cma,
    /// Protected (secure) memory.
    Protected,
    /// A heap cenalloc does not know: used only on request.
    Unknown,
}

/// Decides the class of the heap `name` (see the module docs for the rules).
pub fn classify_heap(name: &str, root: &SystemRoot) -> HeapClass {
    let lower = name.to_ascii_lowercase();
    if lower == "system" {
        HeapClass::System
    } else if lower == "system-uncached" || lower == "system_uncached" {
        HeapClass::SystemUncached
    } else if matches!(
        lower.as_str(),
        "linux,cma" | "reserved" | "default_cma_region"
    ) || lower.contains("cma")
        || root.join("sys/kernel/mm/cma").join(name).is_dir()
    {
        HeapClass::Cma
    } else if ["secure", "protected", "restricted"]
        .iter()
        .any(|w| lower.contains(w))
    {
        HeapClass::Protected
    } else {
        HeapClass::Unknown
    }
}

/// The largest allocation a CMA heap named `name` can give, if the system says.
fn cma_capacity(name: &str, root: &SystemRoot) -> Option<u64> {
    let area = root
        .join("sys/kernel/mm/cma")
        .join(name)
        .join("total_pages");
    if let Some(pages) = std::fs::read_to_string(area)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        return pages.checked_mul(super::page_size());
    }
    let meminfo = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("CmaTotal:")?;
        let kib = rest
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        kib.checked_mul(1024).filter(|&b| b > 0)
    })
}

/// The properties a heap of `class` gives.
pub fn heap_properties(class: HeapClass, max_contiguous: Option<u64>) -> SourceProperties {
    SourceProperties {
        contiguous: class == HeapClass::Cma,
        max_contiguous: if class == HeapClass::Cma {
            max_contiguous
        } else {
            None
        },
        cache: match class {
            HeapClass::SystemUncached => CachePolicy::Uncached,
            HeapClass::Unknown | HeapClass::Protected => CachePolicy::Any,
            _ => CachePolicy::Cached,
        },
        max_address: None,
        protected: class == HeapClass::Protected,
        scarce: matches!(class, HeapClass::Cma | HeapClass::Protected),
        explicit_only: class == HeapClass::Unknown,
    }
}

/// An open dma-buf heap.
#[derive(Debug)]
pub struct HeapSource {
    name: String,
    path: PathBuf,
    class: HeapClass,
    properties: SourceProperties,
    fd: OwnedFd,
    meminfo: PathBuf,
}

impl HeapSource {
    /// Opens the heap node at `path` (named after its file name) and classifies it.
    pub fn open(path: &Path, root: &SystemRoot) -> std::io::Result<HeapSource> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fd = open_node(path)?;
        let class = classify_heap(&name, root);
        let max = if class == HeapClass::Cma {
            cma_capacity(&name, root)
        } else {
            None
        };
        let mut properties = heap_properties(class, max);
        properties.max_address = match class {
            HeapClass::Cma => super::placement::cma_area_top(&name, root),
            HeapClass::System | HeapClass::SystemUncached => super::placement::ram_top(root),
            HeapClass::Unknown | HeapClass::Protected => None,
        };
        Ok(HeapSource {
            properties,
            name,
            path: path.to_owned(),
            class,
            fd,
            meminfo: root.join("proc/meminfo"),
        })
    }

    /// What kind of heap it is.
    pub fn class(&self) -> HeapClass {
        self.class
    }
}

impl MemorySource for HeapSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Heap
    }
    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
    fn properties(&self) -> &SourceProperties {
        &self.properties
    }
    fn allocate(&self, size: u64) -> Result<OwnedFd> {
        let fail = |error| Error::Allocation {
            source_name: format!("heap {}", self.name),
            size,
            error,
        };
        if matches!(self.class, HeapClass::System | HeapClass::SystemUncached) {
            super::check_available(&self.meminfo, size).map_err(fail)?;
        }
        crate::sys::dma_heap_alloc(self.fd.as_fd(), size).map_err(fail)
    }
}

/// Every heap node under `root/dev/dma_heap`, sorted by name: opened, or why not.
pub(crate) fn discover_heaps(
    root: &SystemRoot,
) -> Vec<std::result::Result<HeapSource, UnavailableSource>> {
    let dir = root.join("dev/dma_heap");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        log::debug!("no dma-buf heaps: {} does not exist", dir.display());
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            HeapSource::open(&p, root).map_err(|e| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let u = unavailable_from_open_error(&p, "dma_heap", &name, &e);
                log::warn!(
                    "heap {} left out, unusable: {}; fix: {}",
                    name,
                    u.reason,
                    u.fix
                );
                u
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> SystemRoot {
        let dir = std::env::temp_dir().join(format!("cenalloc-heap-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dev/dma_heap")).unwrap();
        SystemRoot(dir)
    }

    #[test]
    fn heap_names_are_classified() {
        let root = scratch("classify");
        std::fs::create_dir_all(root.join("sys/kernel/mm/cma/camera-area")).unwrap();
        assert_eq!(classify_heap("system", &root), HeapClass::System);
        assert_eq!(
            classify_heap("system-uncached", &root),
            HeapClass::SystemUncached
        );
        for cma in [
            "linux,cma",
            "reserved",
            "default_cma_region",
            "cma-video",
            "camera-area",
        ] {
            assert_eq!(classify_heap(cma, &root), HeapClass::Cma, "{cma}");
        }
        assert_eq!(classify_heap("secure_video", &root), HeapClass::Protected);
        assert_eq!(classify_heap("carveout_foo", &root), HeapClass::Unknown);
        assert!(heap_properties(HeapClass::Unknown, None).explicit_only);
        assert!(heap_properties(HeapClass::Cma, None).scarce);
        assert!(!heap_properties(HeapClass::System, None).contiguous);
    }

    #[test]
    fn discovery_under_a_scratch_root() {
        let root = scratch("discover");
        for n in ["system", "reserved", "weird"] {
            std::fs::write(root.join("dev/dma_heap").join(n), b"").unwrap();
        }
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/meminfo"),
            "MemTotal: 100 kB\nMemAvailable: 64 kB\nCmaTotal:  131072 kB\n",
        )
        .unwrap();
        let found: Vec<_> = discover_heaps(&root)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let names: Vec<_> = found.iter().map(|h| h.name().to_owned()).collect();
        assert_eq!(names, ["reserved", "system", "weird"]);
        assert_eq!(found[0].class(), HeapClass::Cma);
        assert_eq!(found[0].properties().max_contiguous, Some(128 << 20));
        assert!(found[2].properties().explicit_only);
        // A regular file is not a heap: allocation fails with a typed error naming the heap.
        match found[1].allocate(4096) {
            Err(Error::Allocation { source_name, .. }) => assert!(source_name.contains("system")),
            other => panic!("unexpected {other:?}"),
        }
        // A large request beyond MemAvailable: refused before the kernel (and the OOM killer)
        // sees it. (Small requests are left to the kernel's ENOMEM.)
        match found[1].allocate(64 << 20) {
            Err(Error::Allocation { error, .. }) => {
                assert_eq!(error.kind(), std::io::ErrorKind::OutOfMemory)
            }
            other => panic!("unexpected {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&root.0);
    }
}
