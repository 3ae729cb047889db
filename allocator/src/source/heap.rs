//! dma-buf heaps (`/dev/dma_heap/*`): discovery, classification and allocation.
//!
//! The kernel exposes no "kind" for a heap, only its name, so heaps are classified by name,
//! helped by `/sys/kernel/mm/cma/<area>` (CONFIG_CMA_SYSFS) and the device tree's
//! `reserved-memory` nodes under `/sys/firmware/devicetree/base`. What the kernel names:
//! - `system`: page-backed, CPU-cached, not contiguous (drivers/dma-buf/heaps/system_heap.c,
//!   `system_heap_create`).
//! - The default CMA area's heap. Up to 6.16 it is named after the area
//!   (drivers/dma-buf/heaps/cma_heap.c, `__add_cma_heap`: `cma_get_name()`): `reserved` when
//!   the area comes from `cma=` or CONFIG_CMA_SIZE_* (kernel/dma/contiguous.c,
//!   `dma_contiguous_reserve_area`), or the device-tree node's name (`linux,cma`,
//!   `default-pool`, ...) when a `linux,cma-default` node declares it (`rmem_cma_setup`).
//!   Since 6.17 (commit 854acbe75ff4, "dma-buf: heaps: Give default CMA heap a fixed name")
//!   it is `default_cma_region`, with the old name kept as a second heap on the same area when
//!   CONFIG_DMABUF_HEAPS_CMA_LEGACY is set.
//! - Since 6.19 (commit 4f5f8baf7341, "dma-buf: heaps: cma: Create CMA heap for each CMA
//!   reserved region"), one heap per reusable `shared-dma-pool` reserved-memory region, named
//!   after the full device-tree node name (e.g. `memory@42000000`), with the semantics of
//!   `default_cma_region` (Documentation/userspace-api/dma-buf-heaps.rst).
//! - `system-uncached` (Android's common kernel and vendor trees; proposed upstream as
//!   "dma-buf: system_heap: Add a system-uncached heap re-using the system heap"), also seen
//!   as `system_uncached`: the system heap's pages mapped write-combined.
//! - `system_cc_shared`: in confidential-computing guests, system pages shared with
//!   (decrypted for) the host ("dma-buf: heaps: system: add system_cc_shared heap for
//!   explicitly shared memory", applied to the dma-mapping tree in 2026). Their contents are
//!   visible outside the guest, so the heap is used only by name.
//! - Protected heaps: the TEE's `protected,secure-video`, `protected,trusted-ui` and
//!   `protected,secure-video-record` (drivers/tee/tee_heap.c, `heap_id_2_name`), and vendor
//!   heaps with `secure` or `restricted` in their name. Listed, used only for requests that
//!   ask for protected memory.
//!
//! The rules, in order:
//! 1. `system` is [`HeapClass::System`]; `system-uncached` or `system_uncached` is
//!    [`HeapClass::SystemUncached`]; `system_cc_shared` is [`HeapClass::CcShared`].
//! 2. A name containing `protected`, `secure` or `restricted` is [`HeapClass::Protected`],
//!    even when it also says `cma` (a protected pool carved from CMA is still protected).
//! 3. A CMA heap: `default_cma_region`, `reserved`, `linux,cma`, `default-pool`, a name
//!    containing `cma`, a name with a CMA area in `/sys/kernel/mm/cma/`, or a name with a
//!    reusable `shared-dma-pool` node in the device tree's `reserved-memory`. Its area is
//!    the one of the same name; for `default_cma_region`, the `linux,cma-default` node's, else
//!    `reserved`, else the only area. Its size bound is the area's `total_pages`, else
//!    `CmaTotal` from `/proc/meminfo`.
//! 4. Anything else is listed but used only when asked for by name (`explicit_only`).

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
    /// `system_cc_shared`: cached pages shared with the host of a confidential-computing
    /// guest; used only on request.
    CcShared,
    /// A CMA area: physically contiguous, scarce.
    Cma,
    /// Protected (secure) memory.
    Protected,
    /// A heap cenalloc does not know: used only on request.
    Unknown,
}

/// The name of the default CMA area's heap since Linux 6.17.
pub const DEFAULT_CMA_HEAP: &str = "default_cma_region";

/// Names the default CMA area's heap had before 6.17 (and keeps as a legacy duplicate).
const LEGACY_CMA_NAMES: &[&str] = &["reserved", "linux,cma", "default-pool"];

/// The directory of the device tree's reserved-memory nodes.
const RESERVED_MEMORY: &str = "sys/firmware/devicetree/base/reserved-memory";

/// Decides the class of the heap `name` (see the module docs for the rules).
pub fn classify_heap(name: &str, root: &SystemRoot) -> HeapClass {
    let lower = name.to_ascii_lowercase();
    if lower == "system" {
        HeapClass::System
    } else if lower == "system-uncached" || lower == "system_uncached" {
        HeapClass::SystemUncached
    } else if lower == "system_cc_shared" {
        HeapClass::CcShared
    } else if ["protected", "secure", "restricted"]
        .iter()
        .any(|w| lower.contains(w))
    {
        HeapClass::Protected
    } else if lower == DEFAULT_CMA_HEAP
        || LEGACY_CMA_NAMES.contains(&lower.as_str())
        || lower.contains("cma")
        || is_cma_area(name, root)
        || is_reusable_dma_pool(name, root)
    {
        HeapClass::Cma
    } else {
        HeapClass::Unknown
    }
}

fn cma_dir(root: &SystemRoot) -> PathBuf {
    root.join("sys/kernel/mm/cma")
}

/// The system shows a CMA area `name`: `/sys/kernel/mm/cma/<name>` (CONFIG_CMA_SYSFS,
/// mm/cma_sysfs.c) or `/sys/kernel/debug/cma/<name>` (CONFIG_CMA_DEBUGFS, mm/cma_debug.c);
/// both name the directory after the area, and a kernel may have either alone.
fn is_cma_area(name: &str, root: &SystemRoot) -> bool {
    !name.contains('/')
        && (cma_dir(root).join(name).is_dir()
            || root.join("sys/kernel/debug/cma").join(name).is_dir())
}

/// The device tree has a reserved-memory node `name` that the kernel turns into a CMA area:
/// compatible with `shared-dma-pool`, `reusable` and not `no-map` (kernel/dma/contiguous.c,
/// `rmem_cma_setup`).
fn is_reusable_dma_pool(name: &str, root: &SystemRoot) -> bool {
    if name.contains('/') {
        return false;
    }
    let node = root.join(RESERVED_MEMORY).join(name);
    let compatible = std::fs::read(node.join("compatible")).unwrap_or_default();
    compatible
        .split(|b| *b == 0)
        .any(|c| c == b"shared-dma-pool")
        && node.join("reusable").exists()
        && !node.join("no-map").exists()
}

/// The CMA area behind the heap `name`, if the system shows it (see the module docs).
pub fn cma_area(name: &str, root: &SystemRoot) -> Option<String> {
    if is_cma_area(name, root) {
        return Some(name.to_owned());
    }
    if name != DEFAULT_CMA_HEAP {
        return None;
    }
    // The area a `linux,cma-default` node declared (kernel/dma/contiguous.c, rmem_cma_setup).
    let declared = std::fs::read_dir(root.join(RESERVED_MEMORY))
        .into_iter()
        .flatten()
        .flatten()
        .find(|e| e.path().join("linux,cma-default").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    if let Some(area) = declared.filter(|a| is_cma_area(a, root)) {
        return Some(area);
    }
    // The area `cma=` or CONFIG_CMA_SIZE_* made (kernel/dma/contiguous.c,
    // dma_contiguous_reserve_area).
    if is_cma_area("reserved", root) {
        return Some("reserved".to_owned());
    }
    let mut areas = std::fs::read_dir(cma_dir(root))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir());
    match (areas.next(), areas.next()) {
        (Some(only), None) => Some(only.file_name().to_string_lossy().into_owned()),
        _ => None,
    }
}

/// The largest allocation a CMA heap on `area` can give, if the system says: the area's size,
/// else every CMA area's size together.
fn cma_capacity(area: Option<&str>, root: &SystemRoot) -> Option<u64> {
    if let Some(pages) = area.and_then(|a| {
        std::fs::read_to_string(cma_dir(root).join(a).join("total_pages"))
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    }) {
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
            HeapClass::System | HeapClass::CcShared | HeapClass::Cma => CachePolicy::Cached,
        },
        max_address: None,
        protected: class == HeapClass::Protected,
        scarce: matches!(class, HeapClass::Cma | HeapClass::Protected),
        explicit_only: matches!(class, HeapClass::Unknown | HeapClass::CcShared),
    }
}

/// An open dma-buf heap.
#[derive(Debug)]
pub struct HeapSource {
    name: String,
    path: PathBuf,
    class: HeapClass,
    area: Option<String>,
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
        let area = if class == HeapClass::Cma {
            cma_area(&name, root)
        } else {
            None
        };
        let max = if class == HeapClass::Cma {
            cma_capacity(area.as_deref(), root)
        } else {
            None
        };
        let mut properties = heap_properties(class, max);
        properties.max_address = match class {
            HeapClass::Cma => area
                .as_deref()
                .and_then(|a| super::placement::cma_area_top(a, root)),
            HeapClass::System | HeapClass::SystemUncached | HeapClass::CcShared => {
                super::placement::ram_top(root)
            }
            HeapClass::Unknown | HeapClass::Protected => None,
        };
        Ok(HeapSource {
            properties,
            name,
            path: path.to_owned(),
            class,
            area,
            fd,
            meminfo: root.join("proc/meminfo"),
        })
    }

    /// What kind of heap it is.
    pub fn class(&self) -> HeapClass {
        self.class
    }

    /// The CMA area behind a CMA heap, when the system shows it. Two heaps on the same area
    /// (`default_cma_region` and its legacy name) share its memory.
    pub fn cma_area(&self) -> Option<&str> {
        self.area.as_deref()
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
            source_name: match self.class {
                HeapClass::Cma => format!("CMA heap {}", self.name),
                _ => format!("heap {}", self.name),
            },
            size,
            error,
        };
        if matches!(
            self.class,
            HeapClass::System | HeapClass::SystemUncached | HeapClass::CcShared
        ) {
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
        // A protected pool carved from CMA is protected first.
        assert_eq!(
            classify_heap("restricted_mtk_cma", &root),
            HeapClass::Protected
        );
        assert_eq!(
            classify_heap("system_cc_shared", &root),
            HeapClass::CcShared
        );
        assert!(heap_properties(HeapClass::CcShared, None).explicit_only);
        assert!(!heap_properties(HeapClass::Protected, None).explicit_only);
        assert!(heap_properties(HeapClass::Protected, None).protected);
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

    /// A scratch root laid out as a kernel presents heaps: `heaps` in `/dev/dma_heap`, CMA
    /// areas with their `total_pages` in `/sys/kernel/mm/cma` (CONFIG_CMA_SYSFS), device-tree
    /// reserved-memory nodes with their property files, and `CmaTotal` in `/proc/meminfo`.
    struct Layout<'a> {
        heaps: &'a [&'a str],
        areas: &'a [(&'a str, u64)],
        dt_nodes: &'a [(&'a str, &'a [&'a str])],
        cma_total_kib: u64,
    }

    fn build(tag: &str, l: &Layout) -> SystemRoot {
        let root = scratch(tag);
        for h in l.heaps {
            std::fs::write(root.join("dev/dma_heap").join(h), b"").unwrap();
        }
        for (area, pages) in l.areas {
            let dir = root.join("sys/kernel/mm/cma").join(area);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("total_pages"), format!("{pages}\n")).unwrap();
        }
        for (node, props) in l.dt_nodes {
            let dir = root.join(RESERVED_MEMORY).join(node);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("compatible"), b"shared-dma-pool\0").unwrap();
            for p in *props {
                std::fs::write(dir.join(p), b"").unwrap();
            }
        }
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/meminfo"),
            format!(
                "MemTotal: 4194304 kB\nMemAvailable: 2097152 kB\nCmaTotal: {} kB\n",
                l.cma_total_kib
            ),
        )
        .unwrap();
        root
    }

    /// (name, class, CMA area, size bound) of every heap found under `root`.
    fn survey(root: &SystemRoot) -> Vec<(String, HeapClass, Option<String>, Option<u64>)> {
        discover_heaps(root)
            .into_iter()
            .map(|r| r.unwrap())
            .map(|h| {
                (
                    h.name().to_owned(),
                    h.class(),
                    h.cma_area().map(str::to_owned),
                    h.properties().max_contiguous,
                )
            })
            .collect()
    }

    fn row(
        name: &str,
        class: HeapClass,
        area: Option<&str>,
        max: Option<u64>,
    ) -> (String, HeapClass, Option<String>, Option<u64>) {
        (name.to_owned(), class, area.map(str::to_owned), max)
    }

    fn pages(n: u64) -> Option<u64> {
        Some(n * super::super::page_size())
    }

    #[test]
    fn linux_6_12_names_the_cma_heap_after_its_area() {
        // The test guest: `cma=` on the command line makes the area `reserved`.
        let root = build(
            "k612",
            &Layout {
                heaps: &["system", "reserved"],
                areas: &[("reserved", 32768)],
                dt_nodes: &[],
                cma_total_kib: 131072,
            },
        );
        assert_eq!(
            survey(&root),
            [
                row("reserved", HeapClass::Cma, Some("reserved"), pages(32768)),
                row("system", HeapClass::System, None, None),
            ]
        );
        let _ = std::fs::remove_dir_all(&root.0);

        // The test guest's own kernel: CONFIG_CMA_DEBUGFS without CONFIG_CMA_SYSFS. The area
        // is found in debugfs, which also says where it lies.
        let root = build(
            "k612debugfs",
            &Layout {
                heaps: &["reserved", "system"],
                areas: &[],
                dt_nodes: &[],
                cma_total_kib: 131072,
            },
        );
        let debugfs = root.join("sys/kernel/debug/cma/reserved");
        std::fs::create_dir_all(&debugfs).unwrap();
        std::fs::write(debugfs.join("base_pfn"), "490496\n").unwrap();
        std::fs::write(debugfs.join("count"), "32768\n").unwrap();
        let heaps = discover_heaps(&root);
        let reserved = heaps[0].as_ref().unwrap();
        assert_eq!(reserved.class(), HeapClass::Cma);
        assert_eq!(reserved.cma_area(), Some("reserved"));
        let top = (490_496 + 32_768) * crate::source::page_size() - 1;
        assert_eq!(reserved.properties().max_address, Some(top));
        let _ = std::fs::remove_dir_all(&root.0);

        // A board whose device tree declares the default area as `linux,cma`, without
        // CONFIG_CMA_SYSFS: the size bound is CmaTotal.
        let root = build(
            "k612dt",
            &Layout {
                heaps: &["linux,cma", "system"],
                areas: &[],
                dt_nodes: &[("linux,cma", &["reusable", "linux,cma-default"])],
                cma_total_kib: 65536,
            },
        );
        assert_eq!(
            survey(&root),
            [
                row("linux,cma", HeapClass::Cma, None, Some(64 << 20)),
                row("system", HeapClass::System, None, None),
            ]
        );
        let _ = std::fs::remove_dir_all(&root.0);
    }

    #[test]
    fn linux_6_17_adds_default_cma_region_on_the_same_area() {
        // `default_cma_region` plus the legacy name (CONFIG_DMABUF_HEAPS_CMA_LEGACY), both on
        // the area `reserved`; a NUMA area without a heap must not be mistaken for it.
        let root = build(
            "k617",
            &Layout {
                heaps: &["default_cma_region", "reserved", "system"],
                areas: &[("reserved", 16384), ("numa0", 4096)],
                dt_nodes: &[],
                cma_total_kib: 81920,
            },
        );
        assert_eq!(
            survey(&root),
            [
                row(
                    "default_cma_region",
                    HeapClass::Cma,
                    Some("reserved"),
                    pages(16384)
                ),
                row("reserved", HeapClass::Cma, Some("reserved"), pages(16384)),
                row("system", HeapClass::System, None, None),
            ]
        );
        let _ = std::fs::remove_dir_all(&root.0);

        // Without the legacy heap and without CMA sysfs: still CMA, bounded by CmaTotal.
        let root = build(
            "k617min",
            &Layout {
                heaps: &["default_cma_region", "system"],
                areas: &[],
                dt_nodes: &[],
                cma_total_kib: 65536,
            },
        );
        assert_eq!(
            survey(&root)[0],
            row("default_cma_region", HeapClass::Cma, None, Some(64 << 20))
        );
        let _ = std::fs::remove_dir_all(&root.0);
    }

    #[test]
    fn linux_7_has_one_heap_per_cma_region_and_protected_heaps() {
        // A device-tree board: the default area `linux,cma`, a reusable pool per region
        // (named by its node), a `no-map` carve-out that is no CMA area, TEE protected heaps
        // and an uncached system heap from a vendor tree.
        let root = build(
            "k7",
            &Layout {
                heaps: &[
                    "default_cma_region",
                    "linux,cma",
                    "memory@42000000",
                    "video@50000000",
                    "protected,secure-video",
                    "protected,trusted-ui",
                    "system",
                    "system-uncached",
                    "carveout@60000000",
                ],
                areas: &[("linux,cma", 65536), ("memory@42000000", 8192)],
                dt_nodes: &[
                    ("linux,cma", &["reusable", "linux,cma-default"]),
                    ("memory@42000000", &["reusable"]),
                    ("video@50000000", &["reusable"]),
                    ("carveout@60000000", &["no-map"]),
                ],
                cma_total_kib: 327680,
            },
        );
        assert_eq!(
            survey(&root),
            [
                row("carveout@60000000", HeapClass::Unknown, None, None),
                row(
                    "default_cma_region",
                    HeapClass::Cma,
                    Some("linux,cma"),
                    pages(65536)
                ),
                row("linux,cma", HeapClass::Cma, Some("linux,cma"), pages(65536)),
                row(
                    "memory@42000000",
                    HeapClass::Cma,
                    Some("memory@42000000"),
                    pages(8192)
                ),
                row("protected,secure-video", HeapClass::Protected, None, None),
                row("protected,trusted-ui", HeapClass::Protected, None, None),
                row("system", HeapClass::System, None, None),
                row("system-uncached", HeapClass::SystemUncached, None, None),
                // Known from the device tree alone (no sysfs area): bounded by CmaTotal.
                row("video@50000000", HeapClass::Cma, None, Some(320 << 20)),
            ]
        );
        let found: Vec<_> = discover_heaps(&root)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let props = |n: &str| {
            found
                .iter()
                .find(|h| h.name() == n)
                .unwrap()
                .properties()
                .clone()
        };
        // Protected heaps are listed but only protected requests may use them; unknown ones
        // only by name.
        assert!(props("protected,secure-video").protected);
        assert!(!props("protected,secure-video").explicit_only);
        assert!(props("carveout@60000000").explicit_only);
        assert_eq!(props("system-uncached").cache, CachePolicy::Uncached);
        assert!(props("memory@42000000").contiguous && props("memory@42000000").scarce);
        let _ = std::fs::remove_dir_all(&root.0);

        // An x86 confidential-computing guest: the shared heap is used only by name.
        let root = build(
            "k7cc",
            &Layout {
                heaps: &["system", "system_cc_shared"],
                areas: &[],
                dt_nodes: &[],
                cma_total_kib: 0,
            },
        );
        let found: Vec<_> = discover_heaps(&root)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(found[1].class(), HeapClass::CcShared);
        assert!(found[1].properties().explicit_only && !found[1].properties().contiguous);
        let _ = std::fs::remove_dir_all(&root.0);
    }
}
