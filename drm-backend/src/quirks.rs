//! Driver quirks the kernel's uAPI does not report, in one table. Each entry names the kernel
//! source that justifies it. The trial import ([`crate::probe::ImportTrial`]) always has the
//! last word on import; the table only adds what no ioctl tells.

/// What one driver needs beyond what it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirk {
    /// DRM driver name (DRM_IOCTL_VERSION).
    pub driver: &'static str,
    /// Pitch alignment for linear scanout, in bytes (1: none).
    pub pitch_align: u64,
    /// GEM-DMA helper driver: imports only contiguous dma-bufs unless behind an IOMMU.
    pub gem_dma: bool,
    /// Known to refuse foreign dma-bufs (expectation only; the trial import decides).
    pub refuses_foreign_import: bool,
}

const fn quirk(driver: &'static str, pitch_align: u64, gem_dma: bool, refuses: bool) -> Quirk {
    Quirk {
        driver,
        pitch_align,
        gem_dma,
        refuses_foreign_import: refuses,
    }
}

/// The table.
pub const QUIRKS: &[Quirk] = &[
    // drivers/gpu/drm/virtio/virtgpu_prime.c: virtgpu_gem_prime_import() hands foreign
    // dma-bufs to drm_gem_prime_import_dev(), whose import_sg_table
    // (virtgpu_gem_prime_import_sg_table) fails unless the host offers blob resources and 3D.
    quirk("virtio_gpu", 1, false, true),
    // drivers/gpu/drm/vkms/vkms_drv.c: DRM_GEM_SHMEM_DRIVER_OPS — shmem GEM, imports any
    // sg-table dma-buf, vmaps it for composition; no pitch requirement beyond the format.
    quirk("vkms", 1, false, false),
    // drivers/gpu/drm/vgem/vgem_drv.c: DRM_GEM_SHMEM_DRIVER_OPS, like vkms.
    quirk("vgem", 1, false, false),
    // drivers/gpu/drm/i915/display/intel_fb.c: intel_fb_stride_alignment() returns 64 for
    // linear surfaces (page alignment only above the plane's max stride).
    quirk("i915", 64, false, false),
    // drivers/gpu/drm/pl111/pl111_drv.c: DRM_GEM_DMA_DRIVER_OPS; drm_gem_dma_prime_import_sg_table()
    // (drivers/gpu/drm/drm_gem_dma_helper.c) rejects sg-tables that are not contiguous.
    quirk("pl111", 1, true, false),
    // drivers/gpu/drm/mxsfb/mxsfb_drv.c: DRM_GEM_DMA_DRIVER_OPS (see pl111).
    quirk("mxsfb-drm", 1, true, false),
    // drivers/gpu/drm/sun4i/sun4i_drv.c: DRM_GEM_DMA_DRIVER_OPS_VMAP (see pl111).
    quirk("sun4i-drm", 1, true, false),
    // drivers/gpu/drm/vc4/vc4_drv.c: vc4 (pre-BCM2711) allocates and imports through the
    // GEM-DMA helpers (vc4_bo.c: vc4_prime_import_sg_table → drm_gem_dma_prime_import_sg_table).
    quirk("vc4", 1, true, false),
];

/// The quirk entry of `driver`, if any.
pub fn quirk_for(driver: &str) -> Option<&'static Quirk> {
    QUIRKS.iter().find(|q| q.driver == driver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_driver() {
        for (i, q) in QUIRKS.iter().enumerate() {
            assert!(q.pitch_align >= 1, "{}", q.driver);
            assert!(
                QUIRKS[i + 1..].iter().all(|o| o.driver != q.driver),
                "{} listed twice",
                q.driver
            );
        }
        assert!(quirk_for("virtio_gpu").unwrap().refuses_foreign_import);
        assert!(quirk_for("nouveau").is_none());
    }
}
