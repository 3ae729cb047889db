//! udmabuf (`/dev/udmabuf`): dma-bufs made of memfd pages.
//!
//! A sealed memfd (`MFD_ALLOW_SEALING`, `F_SEAL_SHRINK`, size rounded to pages) is wrapped by
//! `UDMABUF_CREATE`. Plain memfds give scattered, cached pages. A hugetlb-backed memfd
//! (`MFD_HUGETLB | MFD_HUGE_2MB`) gives 2 MiB huge pages, each physically contiguous, so a
//! buffer up to one huge page is contiguous; that variant exists only when the system has
//! 2 MiB huge pages reserved (`/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages` or
//! `/proc/sys/vm/nr_hugepages` above zero), and it is scarce like CMA.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{MemfdFlags, SealFlags};

use super::{open_node, unavailable_from_open_error, SystemRoot};
use crate::UnavailableSource;
use crate::{CachePolicy, Error, MemorySource, Result, SourceKind, SourceProperties};

/// Size of the huge pages the hugetlb variant uses.
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;

/// `/dev/udmabuf`, with plain or hugetlb-backed memfds.
#[derive(Debug)]
pub struct UdmabufSource {
    name: String,
    path: PathBuf,
    hugetlb: bool,
    properties: SourceProperties,
    fd: OwnedFd,
    meminfo: Option<PathBuf>,
}

impl UdmabufSource {
    /// Opens the udmabuf node at `path`; `hugetlb` selects 2 MiB huge-page memfds.
    pub fn open(path: &Path, hugetlb: bool) -> std::io::Result<UdmabufSource> {
        let fd = open_node(path)?;
        Ok(UdmabufSource {
            name: if hugetlb {
                "udmabuf-hugetlb".to_owned()
            } else {
                "udmabuf".to_owned()
            },
            path: path.to_owned(),
            hugetlb,
            properties: udmabuf_properties(hugetlb),
            fd,
            meminfo: None,
        })
    }

    /// True for the hugetlb-backed variant.
    pub fn is_hugetlb(&self) -> bool {
        self.hugetlb
    }
}

/// The properties of plain (`hugetlb == false`) or hugetlb-backed udmabuf.
pub fn udmabuf_properties(hugetlb: bool) -> SourceProperties {
    SourceProperties {
        contiguous: hugetlb,
        max_contiguous: hugetlb.then_some(HUGE_PAGE_SIZE),
        cache: CachePolicy::Cached,
        max_address: None,
        protected: false,
        scarce: hugetlb,
        explicit_only: false,
    }
}

/// Whether 2 MiB huge pages are available under `root`.
pub fn hugepages_available(root: &SystemRoot) -> bool {
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    match read("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") {
        Some(n) => n > 0,
        None => read("proc/sys/vm/nr_hugepages").is_some_and(|n| n > 0),
    }
}

fn round_up(size: u64, to: u64) -> Option<u64> {
    size.checked_next_multiple_of(to)
}

impl MemorySource for UdmabufSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Udmabuf
    }
    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
    fn properties(&self) -> &SourceProperties {
        &self.properties
    }
    fn allocate(&self, size: u64) -> Result<OwnedFd> {
        let fail = |error: std::io::Error| Error::Allocation {
            source_name: self.name.clone(),
            size,
            error,
        };
        let granule = if self.hugetlb {
            HUGE_PAGE_SIZE
        } else {
            super::page_size()
        };
        let rounded = round_up(size.max(1), granule).ok_or_else(|| {
            fail(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "size overflows",
            ))
        })?;
        if let Some(meminfo) = self.meminfo.as_deref().filter(|_| !self.hugetlb) {
            super::check_available(meminfo, rounded).map_err(fail)?;
        }
        let mut flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        if self.hugetlb {
            flags |= MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB;
        }
        let memfd =
            rustix::fs::memfd_create("cenalloc-udmabuf", flags).map_err(|e| fail(e.into()))?;
        rustix::fs::ftruncate(&memfd, rounded).map_err(|e| fail(e.into()))?;
        rustix::fs::fcntl_add_seals(&memfd, SealFlags::SHRINK).map_err(|e| fail(e.into()))?;
        crate::sys::udmabuf_create(self.fd.as_fd(), memfd.as_fd(), 0, rounded).map_err(fail)
    }
}

/// `/dev/udmabuf` under `root` (plain, and hugetlb-backed when huge pages exist).
pub(crate) fn discover_udmabuf(
    root: &SystemRoot,
) -> Vec<std::result::Result<UdmabufSource, UnavailableSource>> {
    let path = root.join("dev/udmabuf");
    if !path.exists() {
        log::debug!("no udmabuf: {} does not exist", path.display());
        return Vec::new();
    }
    let mut variants = vec![false];
    if hugepages_available(root) {
        variants.push(true);
    }
    // memfd pages, huge or not, may lie anywhere in RAM.
    let top = super::placement::ram_top(root);
    variants
        .into_iter()
        .map(|huge| {
            UdmabufSource::open(&path, huge)
                .map(|mut u| {
                    u.meminfo = Some(root.join("proc/meminfo"));
                    u.properties.max_address = top;
                    u
                })
                .map_err(|e| {
                    let u = unavailable_from_open_error(&path, "misc", "udmabuf", &e);
                    log::warn!("udmabuf left out, unusable: {}; fix: {}", u.reason, u.fix);
                    u
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugetlb_variant_only_with_huge_pages() {
        let dir = std::env::temp_dir().join(format!("cenalloc-udmabuf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::create_dir_all(dir.join("proc/sys/vm")).unwrap();
        std::fs::write(dir.join("dev/udmabuf"), b"").unwrap();
        std::fs::write(dir.join("proc/sys/vm/nr_hugepages"), "0\n").unwrap();
        let root = SystemRoot(dir.clone());
        let found = discover_udmabuf(&root);
        assert_eq!(found.len(), 1);
        std::fs::write(dir.join("proc/sys/vm/nr_hugepages"), "16\n").unwrap();
        let found: Vec<_> = discover_udmabuf(&root)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(found.len(), 2);
        assert!(found[1].is_hugetlb());
        assert_eq!(found[1].properties().max_contiguous, Some(HUGE_PAGE_SIZE));
        assert!(found[1].properties().contiguous && !found[0].properties().contiguous);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
