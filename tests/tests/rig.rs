//! The rig's smoke test: every device the project is tested against exists in the guest, found
//! by driver or name, and the memory sources give dma-bufs that map and hold a pattern.
//! It uses only the bare kernel interfaces (crate `cenalloc-raw-ioctl`), not cenalloc.

use std::os::fd::AsFd;

use cenalloc_raw_ioctl::{dmabuf, heap, udmabuf};
use cenalloc_vmtests::{devices, fds};

const MIB: u64 = 1 << 20;

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn drm_cards_by_driver() {
    for driver in ["vkms", "vgem", "virtio_gpu"] {
        let card = devices::drm_card(driver);
        assert!(card.exists(), "{driver}: {}", card.display());
    }
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn v4l2_nodes_by_name() {
    for name in [
        "vivid-000-vid-cap",
        "vivid-001-vid-cap",
        "stateful-decoder",
        "stateful-encoder",
        "visl",
        "vim2m",
    ] {
        let node = devices::video_node(name);
        assert!(node.exists(), "{name}: {}", node.display());
    }
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn heaps_allocate_map_and_hold_a_pattern() {
    let before = fds::open_fd_count();
    for name in ["system", "reserved"] {
        let heap = devices::heap(name);
        let buf = heap::alloc(&heap, MIB)
            .unwrap_or_else(|e| panic!("DMA_HEAP_IOCTL_ALLOC on {}: {e}", heap.display()));
        assert!(
            dmabuf::write_and_verify(buf.as_fd(), MIB as usize, pattern)
                .unwrap_or_else(|e| panic!("mmap of the {name} heap's dma-buf: {e}")),
            "{name} heap lost the pattern"
        );
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn udmabuf_allocates_maps_and_holds_a_pattern() {
    assert!(
        std::path::Path::new("/dev/udmabuf").exists(),
        "no /dev/udmabuf"
    );
    let before = fds::open_fd_count();
    let buf = udmabuf::alloc(MIB).expect("UDMABUF_CREATE");
    assert!(
        dmabuf::write_and_verify(buf.as_fd(), MIB as usize, pattern).expect("mmap of the udmabuf"),
        "udmabuf lost the pattern"
    );
    drop(buf);
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}
