//! Deriving cenalloc [`Constraints`] from a device's probe, trial import and quirks.
//!
//! SCANOUT concerns the primary and overlay planes, CURSOR the cursor plane (both only on
//! devices with planes); RENDER/TEXTURE concern devices that can render. A device whose
//! usages the request does not name still imports the buffer, so it contributes its import
//! and memory constraints with linear layout.

use cenalloc::format::FormatInfo;
use cenalloc::{
    BufferKind, BufferRequest, ConstraintKind, Constraints, Modifier, PlaneConstraint, Usage,
};

use crate::probe::{fourcc_code_name, ImportTrial, PlaneKind, Probe};
use crate::quirks::{quirk_for, Pitch};
use crate::DrmError;

/// Whether the device imports foreign dma-bufs: the trial decides when it ran; otherwise the
/// PRIME cap and the quirk table.
pub fn can_import(probe: &Probe, trial: &ImportTrial) -> bool {
    match trial {
        ImportTrial::Accepted(_) => true,
        ImportTrial::Refused(_) => false,
        ImportTrial::NotRun(_) => {
            probe.caps.prime_import
                && !quirk_for(&probe.driver)
                    .is_some_and(|q| q.refuses_foreign_import(probe.sysfs.iommu))
        }
    }
}

/// Whether the device can allocate a buffer itself and export it (dumb buffer + PRIME export,
/// which only primary nodes may create).
pub fn can_export(probe: &Probe) -> bool {
    probe.caps.dumb_buffer && probe.caps.prime_export && probe.node == crate::NodeKind::Card
}

/// Whether the device needs physically contiguous memory (a driver that maps imports as one
/// DMA range, without an IOMMU).
pub fn needs_contiguous(probe: &Probe) -> bool {
    quirk_for(&probe.driver).is_some_and(|q| q.needs_contiguous(probe.sysfs.iommu))
}

/// The constraints of the device described by `probe` for `request`.
pub fn derive(
    device: &str,
    probe: &Probe,
    trial: &ImportTrial,
    request: &BufferRequest,
) -> Result<Constraints, DrmError> {
    let quirk = quirk_for(&probe.driver);
    let mut c = Constraints {
        contiguous: needs_contiguous(probe),
        pitch_align: match quirk.map(|q| q.pitch) {
            Some(Pitch::Bytes(n)) => n,
            _ => 1,
        },
        max_pitch: quirk.and_then(|q| q.max_pitch),
        can_import: can_import(probe, trial),
        can_export: can_export(probe),
        // Behind an IOMMU the DMA mask limits the I/O virtual addresses the IOMMU hands
        // out, not where the pages lie.
        dma_addr_limit: probe
            .sysfs
            .dma_mask_bits
            .filter(|b| *b < 64 && !probe.sysfs.iommu)
            .map(|b| (1u64 << b) - 1),
        ..Constraints::default()
    };
    let scanout = request.usage.contains(Usage::SCANOUT) && probe.is_display();
    let cursor = request.usage.contains(Usage::CURSOR) && probe.has_cursor();
    let unsupported = |what, detail: String| DrmError::Unsupported {
        device: device.to_owned(),
        what,
        detail,
    };
    match request.kind {
        BufferKind::Blob { size } => {
            if scanout || cursor {
                return Err(unsupported(
                    ConstraintKind::Format,
                    format!("a {size}-byte blob cannot be scanned out"),
                ));
            }
        }
        BufferKind::Image {
            width,
            height,
            fourcc,
        } => {
            let code = fourcc as u32;
            let name = || fourcc_code_name(code);
            let mut modifiers: Option<Vec<Modifier>> = None;
            if scanout {
                let m = probe.modifiers_for(code, &[PlaneKind::Primary, PlaneKind::Overlay]);
                if m.is_empty() {
                    return Err(unsupported(
                        ConstraintKind::Format,
                        format!("no primary or overlay plane scans out {}", name()),
                    ));
                }
                modifiers = Some(m);
                if let Some(l) = probe.limits {
                    c.max_width = Some(l.max_width);
                    c.max_height = Some(l.max_height);
                }
            }
            if cursor {
                let m = probe.modifiers_for(code, &[PlaneKind::Cursor]);
                if m.is_empty() {
                    return Err(unsupported(
                        ConstraintKind::Format,
                        format!("the cursor plane does not take {}", name()),
                    ));
                }
                modifiers = Some(match modifiers {
                    Some(prev) => prev.into_iter().filter(|x| m.contains(x)).collect(),
                    None => m,
                });
                if let Some((w, h)) = probe.cursor_size {
                    let (w, h) = (
                        u32::try_from(w).unwrap_or(u32::MAX),
                        u32::try_from(h).unwrap_or(u32::MAX),
                    );
                    c.max_width = Some(c.max_width.map_or(w, |x| x.min(w)));
                    c.max_height = Some(c.max_height.map_or(h, |x| x.min(h)));
                }
            }
            let mut modifiers = modifiers.unwrap_or_else(|| vec![Modifier::LINEAR]);
            if request.usage.contains(Usage::LINEAR) {
                modifiers.retain(|m| *m == Modifier::LINEAR);
            }
            if modifiers.is_empty() {
                return Err(unsupported(
                    ConstraintKind::Modifier,
                    format!(
                        "no modifier for {} fits both scanout and cursor (or LINEAR)",
                        name()
                    ),
                ));
            }
            c.modifiers = modifiers;
            match (quirk.map(|q| q.pitch), FormatInfo::of(fourcc)) {
                (Some(Pitch::Pixels(n)), Some(info)) => {
                    c.pitch_align = pixel_pitch_align(&info, n).ok_or_else(|| {
                        unsupported(
                            ConstraintKind::Alignment,
                            format!("a pitch of whole {n}-pixel groups of {} overflows", name()),
                        )
                    })?;
                }
                (Some(Pitch::Tight), Some(info)) => {
                    let stride = info.planes[0].min_row_bytes(width).map_err(|_| {
                        unsupported(
                            ConstraintKind::MaxPitch,
                            format!("the row of a {width}-pixel {} overflows", name()),
                        )
                    })?;
                    c.planes = vec![PlaneConstraint {
                        min_stride: stride,
                        min_size: 0,
                        exact_stride: Some(stride),
                    }];
                }
                _ => {}
            }
            // A buffer only this display uses comes best from the display itself, as GBM
            // allocates it: a dumb buffer in the memory it scans out from.
            c.prefers_own_memory = (scanout || cursor)
                && c.can_export
                && c.modifiers.contains(&Modifier::LINEAR)
                && FormatInfo::of(fourcc).is_some_and(|i| i.planes.len() == 1);
            for (what, limit, value) in [
                (ConstraintKind::MaxWidth, c.max_width, width),
                (ConstraintKind::MaxHeight, c.max_height, height),
            ] {
                if limit.is_some_and(|l| value > l) {
                    return Err(unsupported(
                        what,
                        format!("{width}x{height} exceeds the limit {}", limit.unwrap_or(0)),
                    ));
                }
            }
        }
    }
    Ok(c)
}

/// The pitch alignment, in bytes of the first plane, that makes every plane's pitch a whole
/// number of `pixels`-pixel groups of that plane. A plane's pitch is the first plane's divided
/// by its stride divisor.
fn pixel_pitch_align(info: &FormatInfo, pixels: u32) -> Option<u64> {
    info.planes.iter().try_fold(1u64, |acc, p| {
        let width = u64::from(p.block_width.max(1));
        let bytes_per_pixel = if p.block_bytes % width == 0 {
            p.block_bytes / width
        } else {
            p.block_bytes
        };
        let need = bytes_per_pixel
            .checked_mul(u64::from(pixels.max(1)))?
            .checked_mul(p.stride_divisor.max(1))?;
        lcm(acc, need)
    })
}

fn lcm(a: u64, b: u64) -> Option<u64> {
    let gcd = |mut x: u64, mut y: u64| {
        while y != 0 {
            (x, y) = (y, x % y);
        }
        x
    };
    (a / gcd(a, b)).checked_mul(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{build_in_formats, parse_in_formats};
    use crate::probe::{Caps, ModeLimits, PlaneReport};
    use cenalloc::Fourcc;

    const XR24: u32 = Fourcc::Xrgb8888 as u32;
    const AR24: u32 = Fourcc::Argb8888 as u32;

    fn plane(kind: PlaneKind, formats: &[u32], mods: &[(u64, u32, u64)]) -> PlaneReport {
        PlaneReport {
            id: 1,
            kind,
            formats: vec![],
            in_formats: Default::default(),
            raw_formats: formats.to_vec(),
            format_modifiers: Some(parse_in_formats(&build_in_formats(formats, mods)).unwrap()),
        }
    }

    fn display(driver: &str) -> Probe {
        Probe {
            driver: driver.into(),
            path: None,
            node: crate::NodeKind::Card,
            sysfs: Default::default(),
            caps: Caps {
                prime_import: true,
                prime_export: true,
                addfb2_modifiers: true,
                dumb_buffer: true,
            },
            limits: Some(ModeLimits {
                min_width: 1,
                max_width: 4096,
                min_height: 1,
                max_height: 4096,
            }),
            planes: vec![
                plane(
                    PlaneKind::Primary,
                    &[XR24, AR24],
                    &[(0b11, 0, 0), (0b01, 0, 7)],
                ),
                plane(PlaneKind::Cursor, &[AR24], &[(0b1, 0, 0)]),
            ],
            cursor_size: Some((64, 64)),
            crtcs: 1,
            connectors: vec![],
        }
    }

    #[test]
    fn scanout_takes_plane_modifiers_and_limits() {
        let p = display("vkms");
        let req = BufferRequest::image(640, 480, Fourcc::Xrgb8888, Usage::SCANOUT);
        let c = derive("d", &p, &ImportTrial::Accepted(String::new()), &req).unwrap();
        assert_eq!(c.modifiers, vec![Modifier::LINEAR, Modifier(7)]);
        assert_eq!(c.max_width, Some(4096));
        assert!(c.can_import && c.can_export && !c.contiguous);
        assert!(
            c.prefers_own_memory,
            "a display allocates its own scan-out buffers"
        );
        let render = BufferRequest::image(640, 480, Fourcc::Xrgb8888, Usage::RENDER);
        let c = derive("d", &p, &ImportTrial::Accepted(String::new()), &render).unwrap();
        assert!(!c.prefers_own_memory, "not a scan-out buffer");
    }

    #[test]
    fn a_narrow_dma_mask_limits_addresses_only_without_iommu() {
        let mut p = display("pl111");
        p.sysfs.dma_mask_bits = Some(32);
        let req = BufferRequest::image(64, 64, Fourcc::Xrgb8888, Usage::SCANOUT);
        let c = derive("d", &p, &ImportTrial::NotRun(String::new()), &req).unwrap();
        assert_eq!(c.dma_addr_limit, Some(0xffff_ffff));
        p.sysfs.iommu = true;
        let c = derive("d", &p, &ImportTrial::NotRun(String::new()), &req).unwrap();
        assert_eq!(c.dma_addr_limit, None);
        p.sysfs.dma_mask_bits = Some(64);
        p.sysfs.iommu = false;
        let c = derive("d", &p, &ImportTrial::NotRun(String::new()), &req).unwrap();
        assert_eq!(c.dma_addr_limit, None);
    }

    #[test]
    fn cursor_and_linear_narrow_the_modifiers() {
        let p = display("vkms");
        let req = BufferRequest::image(64, 64, Fourcc::Argb8888, Usage::CURSOR);
        let c = derive("d", &p, &ImportTrial::NotRun(String::new()), &req).unwrap();
        assert_eq!(c.modifiers, vec![Modifier::LINEAR]);
        assert_eq!(c.max_width, Some(64));
        let big = BufferRequest::image(65, 64, Fourcc::Argb8888, Usage::CURSOR);
        assert!(derive("d", &p, &ImportTrial::NotRun(String::new()), &big).is_err());
        let lin = BufferRequest::image(64, 64, Fourcc::Xrgb8888, Usage::SCANOUT | Usage::LINEAR);
        let c = derive("d", &p, &ImportTrial::NotRun(String::new()), &lin).unwrap();
        assert_eq!(c.modifiers, vec![Modifier::LINEAR]);
    }

    #[test]
    fn unsupported_format_and_blob_scanout_are_errors() {
        let p = display("vkms");
        let nv12 = BufferRequest::image(64, 64, Fourcc::Nv12, Usage::SCANOUT);
        assert!(matches!(
            derive("d", &p, &ImportTrial::NotRun(String::new()), &nv12),
            Err(DrmError::Unsupported {
                what: ConstraintKind::Format,
                ..
            })
        ));
        let blob = BufferRequest::blob(4096, Usage::SCANOUT);
        assert!(derive("d", &p, &ImportTrial::NotRun(String::new()), &blob).is_err());
    }

    #[test]
    fn quirk_pitches_follow_the_format() {
        let req = |w| BufferRequest::image(w, 64, Fourcc::Xrgb8888, Usage::SCANOUT);
        let trial = ImportTrial::NotRun(String::new());
        let of = |driver: &str, w| derive("d", &display(driver), &trial, &req(w)).unwrap();
        assert_eq!(of("i915", 64).pitch_align, 64);
        assert_eq!(of("sun4i-drm", 64).pitch_align, 2);
        assert_eq!(of("rockchip", 64).pitch_align, 4);
        // 32 pixels of 4 bytes.
        assert_eq!(of("msm", 64).pitch_align, 128);
        assert_eq!(of("tidss", 64).pitch_align, 4);
        assert_eq!(of("vkms", 64).pitch_align, 1);
        let tight = of("mxsfb-drm", 100);
        assert_eq!(tight.planes[0].exact_stride, Some(400));
        assert_eq!(of("pl111", 100).planes[0].exact_stride, Some(400));
        assert_eq!(of("imx-lcdif", 64).max_pitch, Some(0xffff));
        assert!(of("vc4", 64).planes.is_empty());

        let info = |f| FormatInfo::of(f).unwrap();
        // NV12: the chroma plane's pixels are 2 bytes and its pitch equals the luma pitch.
        assert_eq!(pixel_pitch_align(&info(Fourcc::Nv12), 1), Some(2));
        // YUV420: chroma pitch is half the luma pitch.
        assert_eq!(pixel_pitch_align(&info(Fourcc::Yuv420), 1), Some(2));
        assert_eq!(pixel_pitch_align(&info(Fourcc::Yuyv), 1), Some(2));
        assert_eq!(pixel_pitch_align(&info(Fourcc::Rgb888), 32), Some(96));
    }

    #[test]
    fn trial_and_quirks_decide_import_and_contiguity() {
        let mut p = display("virtio_gpu");
        let req = BufferRequest::image(64, 64, Fourcc::Xrgb8888, Usage::SCANOUT);
        let untested = derive("d", &p, &ImportTrial::NotRun(String::new()), &req).unwrap();
        assert!(!untested.can_import);
        let refused = derive(
            "d",
            &display("vkms"),
            &ImportTrial::Refused(String::new()),
            &req,
        );
        assert!(!refused.unwrap().can_import);
        p.driver = "pl111".into();
        assert!(
            derive("d", &p, &ImportTrial::NotRun(String::new()), &req)
                .unwrap()
                .contiguous
        );
        p.sysfs.iommu = true;
        assert!(
            !derive("d", &p, &ImportTrial::NotRun(String::new()), &req)
                .unwrap()
                .contiguous
        );
        // msm imports only through its IOMMU.
        p.driver = "msm".into();
        let untested = |p: &Probe| {
            derive("d", p, &ImportTrial::NotRun(String::new()), &req)
                .unwrap()
                .can_import
        };
        assert!(untested(&p));
        p.sysfs.iommu = false;
        assert!(!untested(&p));
    }
}
