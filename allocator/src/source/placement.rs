//! Where a memory source's pages lie in physical memory, so that a device's DMA address limit
//! (a device without IOMMU whose DMA mask is narrower than the machine's RAM) can rule a source
//! out.
//!
//! Ordinary memory (the system heaps, udmabuf's memfds) may come from anywhere in RAM: its top
//! is the end of the highest memory zone in `/proc/zoneinfo`, which every user may read (the
//! addresses in `/proc/iomem` read as zero without CAP_SYS_ADMIN). A CMA area's place is known
//! when the kernel has CONFIG_CMA_DEBUGFS (`/sys/kernel/debug/cma/<area>/base_pfn`, `count`);
//! otherwise it stays unknown and is not held against the area.

use super::SystemRoot;

/// The highest physical address of RAM under `root`, if `proc/zoneinfo` says.
pub(crate) fn ram_top(root: &SystemRoot) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("proc/zoneinfo")).ok()?;
    zoneinfo_top(&text, super::page_size())
}

/// The end of the highest non-empty zone in a `/proc/zoneinfo` text, as the address of its
/// last byte. Each zone block lists `spanned` (pages) and `start_pfn`.
pub(crate) fn zoneinfo_top(text: &str, page: u64) -> Option<u64> {
    let mut top: Option<u64> = None;
    let mut spanned: Option<u64> = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Node"), _) => spanned = None,
            (Some("spanned"), Some(n)) => spanned = n.parse().ok(),
            (Some("start_pfn:"), Some(n)) => {
                let end = n
                    .parse::<u64>()
                    .ok()
                    .zip(spanned.filter(|&s| s > 0))
                    .and_then(|(start, pages)| start.checked_add(pages)?.checked_mul(page));
                if let Some(end) = end {
                    top = Some(top.map_or(end - 1, |t| t.max(end - 1)));
                }
            }
            _ => {}
        }
    }
    top
}

/// The highest physical address of the CMA area `area`, if debugfs shows it.
pub(crate) fn cma_area_top(area: &str, root: &SystemRoot) -> Option<u64> {
    let dir = root.join("sys/kernel/debug/cma").join(area);
    let read = |file: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let (base, count) = (read("base_pfn")?, read("count")?);
    base.checked_add(count)?
        .checked_mul(super::page_size())?
        .checked_sub(1)
        .filter(|_| count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONEINFO: &str = "\
Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 1
  pages free     3840
        spanned  4095
        present  3998
  start_pfn:           1
Node 0, zone    DMA32
        spanned  1044480
        present  782336
  start_pfn:           4096
Node 0, zone   Normal
        spanned  5505024
        present  5505024
  start_pfn:           1048576
Node 0, zone  Movable
        spanned  0
        present  0
Node 0, zone   Device
        spanned  0
        present  0
";

    #[test]
    fn ram_top_is_the_end_of_the_highest_zone() {
        // Normal: pfn 1048576 + 5505024 pages of 4 KiB = 25 GiB.
        assert_eq!(zoneinfo_top(ZONEINFO, 4096), Some((25 << 30) - 1));
        let small = "Node 0, zone DMA32\n spanned 262144\n start_pfn: 4096\n";
        assert_eq!(
            zoneinfo_top(small, 4096),
            Some(((4096 + 262_144) << 12) - 1)
        );
        assert_eq!(zoneinfo_top("", 4096), None);
        assert_eq!(
            zoneinfo_top("Node 0\n spanned x\n start_pfn: 1\n", 4096),
            None
        );
        // A start before its spanned count (or none) is not a zone end.
        assert_eq!(zoneinfo_top("Node 0\n start_pfn: 5\n", 4096), None);
    }

    #[test]
    fn cma_area_from_debugfs() {
        let dir = std::env::temp_dir().join(format!("cenalloc-placement-{}", std::process::id()));
        let area = dir.join("sys/kernel/debug/cma/reserved");
        std::fs::create_dir_all(&area).unwrap();
        std::fs::write(area.join("base_pfn"), "262144\n").unwrap();
        std::fs::write(area.join("count"), "32768\n").unwrap();
        let root = SystemRoot(dir.clone());
        let page = super::super::page_size();
        assert_eq!(
            cma_area_top("reserved", &root),
            Some((262_144 + 32_768) * page - 1)
        );
        assert_eq!(cma_area_top("other", &root), None);
        std::fs::write(area.join("count"), "0\n").unwrap();
        assert_eq!(cma_area_top("reserved", &root), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
