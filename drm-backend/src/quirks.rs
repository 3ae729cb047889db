//! Driver knowledge the kernel's uAPI does not report, in one table with one entry per DRM
//! driver. Each entry cites the Linux source it was checked against ([`KERNEL_TAG`]): file and
//! function, so the claim can be re-read. The entries come from reading that source, not from
//! hardware. The trial import ([`crate::probe::ImportTrial`]) always has the last word on
//! import; the mode-config limits (maximum width and height) and the planes' formats and
//! modifiers come from the probe, not from this table.
//!
//! Two kernel facts recur:
//! - `drm_gem_dma_prime_import_sg_table()` (drivers/gpu/drm/drm_gem_dma_helper.c) refuses an
//!   sg-table whose DMA addresses are not contiguous. Behind an IOMMU the mapping is contiguous
//!   in I/O virtual addresses whatever the pages; without one, the pages themselves must be.
//! - `drm_gem_dma_dumb_create()` gives the tightest pitch (`width * bpp / 8`), so a driver that
//!   needs more says so in its own `dumb_create` or in its plane code.

pub use cenalloc::citation::{Citation, KERNEL_TAG};

const fn cite(file: &'static str, symbol: &'static str, says: &'static str) -> Citation {
    Citation::new(file, symbol, says)
}

/// What the display needs of a framebuffer's row pitch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pitch {
    /// Any pitch the format allows.
    Any,
    /// A multiple of this many bytes.
    Bytes(u64),
    /// A whole number of this many pixels in every plane (the hardware counts the pitch in
    /// pixels).
    Pixels(u32),
    /// Exactly the width times the bytes per pixel of the first plane: no padding.
    Tight,
}

/// How the driver takes a foreign dma-buf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Any dma-buf: its pages are used through an sg-table, vmap or the driver's own MMU.
    Pages,
    /// Physically contiguous memory, unless the device sits behind an IOMMU.
    ContiguousWithoutIommu,
    /// Any dma-buf behind an IOMMU; none at all without one.
    OnlyWithIommu,
    /// No foreign dma-buf (expectation only; the trial import decides).
    NoForeignImport,
}

/// What one driver needs beyond what it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirk {
    /// DRM driver name (DRM_IOCTL_VERSION).
    pub driver: &'static str,
    /// Row pitch requirement of a linear framebuffer.
    pub pitch: Pitch,
    /// Largest row pitch the scanout engine's pitch register holds, in bytes.
    pub max_pitch: Option<u64>,
    /// Which dma-bufs the driver imports.
    pub memory: Memory,
    /// The kernel source behind the entry (at [`KERNEL_TAG`]).
    pub sources: &'static [Citation],
}

impl Quirk {
    /// Whether the driver is expected to refuse foreign dma-bufs on a device with (`iommu`) or
    /// without an IOMMU.
    pub fn refuses_foreign_import(&self, iommu: bool) -> bool {
        match self.memory {
            Memory::NoForeignImport => true,
            Memory::OnlyWithIommu => !iommu,
            Memory::Pages | Memory::ContiguousWithoutIommu => false,
        }
    }

    /// Whether the driver needs physically contiguous memory on a device with (`iommu`) or
    /// without an IOMMU.
    pub fn needs_contiguous(&self, iommu: bool) -> bool {
        self.memory == Memory::ContiguousWithoutIommu && !iommu
    }
}

const GEM_DMA: Citation = cite(
    "drivers/gpu/drm/drm_gem_dma_helper.c",
    "drm_gem_dma_prime_import_sg_table",
    "refuses an sg-table whose contiguous size is below the dma-buf's size",
);

/// The table, one entry per driver, sorted by driver name.
pub const QUIRKS: &[Quirk] = &[
    Quirk {
        driver: "i915",
        pitch: Pitch::Bytes(64),
        max_pitch: None,
        memory: Memory::Pages,
        sources: &[
            cite(
                "drivers/gpu/drm/i915/display/intel_fb.c",
                "intel_fb_stride_alignment",
                "linear: 64 bytes (a page above the plane's maximum stride)",
            ),
            cite(
                "drivers/gpu/drm/i915/gem/i915_gem_dmabuf.c",
                "i915_gem_prime_import",
                "imports any dma-buf as pages mapped through the GTT",
            ),
        ],
    },
    Quirk {
        driver: "imx-lcdif",
        pitch: Pitch::Any,
        max_pitch: Some(0xffff),
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/mxsfb/lcdif_drv.c",
                "lcdif_driver",
                "DRM_GEM_DMA_DRIVER_OPS",
            ),
            GEM_DMA,
            cite(
                "drivers/gpu/drm/mxsfb/lcdif_kms.c",
                "lcdif_set_mode",
                "writes the pitch through CTRLDESCL0_3_PITCH, a 16-bit field (lcdif_regs.h)",
            ),
        ],
    },
    Quirk {
        driver: "mediatek",
        pitch: Pitch::Any,
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/mediatek/mtk_gem.c",
                "mtk_gem_prime_import_sg_table",
                "refuses an sg-table that is not contiguous once mapped for the DMA device",
            ),
            cite(
                "drivers/gpu/drm/mediatek/mtk_gem.c",
                "mtk_gem_dumb_create",
                "pitch = width * bpp / 8, no alignment",
            ),
        ],
    },
    Quirk {
        driver: "meson",
        pitch: Pitch::Bytes(64),
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/meson/meson_drv.c",
                "meson_dumb_create",
                "\"We need 64bytes aligned stride, and PAGE aligned size\"; GEM-DMA helpers",
            ),
            GEM_DMA,
        ],
    },
    Quirk {
        driver: "msm",
        pitch: Pitch::Pixels(32),
        max_pitch: None,
        memory: Memory::OnlyWithIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/msm/msm_drv.h",
                "align_pitch",
                "\"adreno needs pitch aligned to 32 pixels\" (used by msm_gem_dumb_create)",
            ),
            cite(
                "drivers/gpu/drm/msm/msm_gem.c",
                "msm_gem_import",
                "\"cannot import without IOMMU\"; with one, any sg-table is mapped",
            ),
        ],
    },
    Quirk {
        driver: "mxsfb-drm",
        pitch: Pitch::Tight,
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/mxsfb/mxsfb_drv.c",
                "mxsfb_fb_create",
                "refuses a framebuffer whose pitch is not width * cpp",
            ),
            cite(
                "drivers/gpu/drm/mxsfb/mxsfb_drv.c",
                "mxsfb_driver",
                "DRM_GEM_DMA_DRIVER_OPS",
            ),
            GEM_DMA,
        ],
    },
    Quirk {
        driver: "pl111",
        pitch: Pitch::Tight,
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/pl111/pl111_display.c",
                "pl111_display_check",
                "no pitch register: the pitch must be hdisplay * cpp",
            ),
            cite(
                "drivers/gpu/drm/pl111/pl111_drv.c",
                "pl111_gem_import_sg_table",
                "drm_gem_dma_prime_import_sg_table, or nothing with device-specific memory",
            ),
            GEM_DMA,
        ],
    },
    Quirk {
        driver: "rockchip",
        pitch: Pitch::Bytes(4),
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/rockchip/rockchip_drm_gem.c",
                "rockchip_gem_prime_import_sg_table",
                "maps through the IOMMU domain, else refuses a non-contiguous sg-table",
            ),
            cite(
                "drivers/gpu/drm/rockchip/rockchip_drm_vop.c",
                "vop_plane_atomic_update",
                "the pitch register counts 32-bit words: DIV_ROUND_UP(pitch, 4)",
            ),
            cite(
                "drivers/gpu/drm/rockchip/rockchip_drm_vop2.c",
                "vop2_plane_atomic_update",
                "VOP2_WIN_YRGB_VIR = DIV_ROUND_UP(pitch, 4)",
            ),
        ],
    },
    Quirk {
        driver: "stm",
        pitch: Pitch::Any,
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/stm/drv.c",
                "stm_gem_dma_dumb_create",
                "GEM-DMA helpers; the 128-byte pitch there is for transfer speed only",
            ),
            GEM_DMA,
        ],
    },
    Quirk {
        driver: "sun4i-drm",
        pitch: Pitch::Bytes(2),
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/sun4i/sun4i_drv.c",
                "drm_sun4i_gem_dumb_create",
                "\"The hardware only allows even pitches for YUV buffers\"",
            ),
            cite(
                "drivers/gpu/drm/sun4i/sun4i_drv.c",
                "sun4i_drv_driver",
                "DRM_GEM_DMA_DRIVER_OPS_WITH_DUMB_CREATE",
            ),
            GEM_DMA,
        ],
    },
    Quirk {
        driver: "tidss",
        pitch: Pitch::Pixels(1),
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/tidss/tidss_dispc.c",
                "dispc_plane_setup",
                "the row increment is computed from pitch / cpp of each plane",
            ),
            cite(
                "drivers/gpu/drm/tidss/tidss_drv.c",
                "tidss_driver",
                "DRM_GEM_DMA_DRIVER_OPS_VMAP",
            ),
            GEM_DMA,
        ],
    },
    Quirk {
        driver: "vc4",
        pitch: Pitch::Any,
        max_pitch: None,
        memory: Memory::ContiguousWithoutIommu,
        sources: &[
            cite(
                "drivers/gpu/drm/vc4/vc4_drv.c",
                "vc4_dumb_fixup_args",
                "pitch raised to width * bpp / 8 at most, no alignment",
            ),
            cite(
                "drivers/gpu/drm/vc4/vc4_drv.c",
                "vc4_drm_driver",
                "DRM_GEM_DMA_DRIVER_OPS_WITH_DUMB_CREATE (vc5_drm_driver too)",
            ),
            GEM_DMA,
        ],
    },
    Quirk {
        driver: "vgem",
        pitch: Pitch::Any,
        max_pitch: None,
        memory: Memory::Pages,
        sources: &[cite(
            "drivers/gpu/drm/vgem/vgem_drv.c",
            "vgem_driver",
            "DRM_GEM_SHMEM_DRIVER_OPS: imports any sg-table",
        )],
    },
    Quirk {
        driver: "virtio_gpu",
        pitch: Pitch::Any,
        max_pitch: None,
        memory: Memory::NoForeignImport,
        sources: &[
            cite(
                "drivers/gpu/drm/virtio/virtgpu_prime.c",
                "virtgpu_gem_prime_import",
                "only its own dma-bufs stay its own; others go to drm_gem_prime_import",
            ),
            cite(
                "drivers/gpu/drm/virtio/virtgpu_prime.c",
                "virtgpu_gem_prime_import_sg_table",
                "returns -ENODEV for every foreign sg-table",
            ),
        ],
    },
    Quirk {
        driver: "vkms",
        pitch: Pitch::Any,
        max_pitch: None,
        memory: Memory::Pages,
        sources: &[cite(
            "drivers/gpu/drm/vkms/vkms_drv.c",
            "vkms_driver",
            "DRM_GEM_SHMEM_DRIVER_OPS: imports any sg-table and vmaps it",
        )],
    },
];

/// The quirk entry of `driver`, if any.
pub fn quirk_for(driver: &str) -> Option<&'static Quirk> {
    QUIRKS.iter().find(|q| q.driver == driver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_driver_sorted() {
        for pair in QUIRKS.windows(2) {
            assert!(
                pair[0].driver < pair[1].driver,
                "{} before {}",
                pair[0].driver,
                pair[1].driver
            );
        }
        assert!(quirk_for("virtio_gpu")
            .unwrap()
            .refuses_foreign_import(true));
        assert!(quirk_for("nouveau").is_none());
    }

    #[test]
    fn every_entry_cites_the_kernel_source() {
        for q in QUIRKS {
            assert!(!q.sources.is_empty(), "{}: no citation", q.driver);
            for c in q.sources {
                if let Some(why) = c.malformed(&["drivers/gpu/drm/"]) {
                    panic!("{}: {why}", q.driver);
                }
            }
            // A requirement beyond the default names the driver's own code, not only a helper.
            if q.pitch != Pitch::Any || q.max_pitch.is_some() || q.memory != Memory::Pages {
                let own = q.sources.iter().filter(|c| *c != &GEM_DMA).count();
                assert!(own > 0, "{}: only generic citations", q.driver);
            }
            match q.pitch {
                Pitch::Bytes(n) => assert!(n > 1, "{}", q.driver),
                Pitch::Pixels(n) => assert!(n >= 1, "{}", q.driver),
                Pitch::Any | Pitch::Tight => {}
            }
        }
    }

    /// With `CENALLOC_KERNEL_SRC` pointing at a kernel tree of [`KERNEL_TAG`], every cited file
    /// exists and names the cited symbol. Without it the test checks nothing.
    #[test]
    fn citations_match_a_kernel_tree() {
        let Some(root) = std::env::var_os("CENALLOC_KERNEL_SRC") else {
            return;
        };
        let root = std::path::PathBuf::from(root);
        for q in QUIRKS {
            for c in q.sources {
                if let Err(why) = c.check_in_tree(&root) {
                    panic!("{}: {why}", q.driver);
                }
            }
        }
    }

    #[test]
    fn memory_decides_import_and_contiguity() {
        let q = |d| quirk_for(d).unwrap();
        assert!(q("pl111").needs_contiguous(false));
        assert!(!q("pl111").needs_contiguous(true));
        assert!(!q("vkms").needs_contiguous(false));
        assert!(q("msm").refuses_foreign_import(false));
        assert!(!q("msm").refuses_foreign_import(true));
        assert!(!q("sun4i-drm").refuses_foreign_import(false));
    }
}
