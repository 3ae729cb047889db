//! A V4L2 queue as a cenalloc [`Importer`]: constraints from VIDIOC_TRY_FMT and the probe,
//! and checked imports that a [`crate::Queue`] can queue.

use std::sync::Arc;

use cenalloc::{
    Buffer, BufferKind, BufferRequest, ConstraintKind, Constraints, Error, Exported, Imported,
    Importer, Layout, MergedConstraints, Modifier, PlaneConstraint, PlaneLayout, Result,
    SourceKind,
};

use crate::device::{Device, Direction, QueueFormat};
use crate::format::{self, drm_to_v4l2, PixelFormat};
use crate::probe;

/// One queue of a V4L2 device taking part in an allocation.
#[derive(Debug, Clone)]
pub struct V4l2Importer {
    dev: Arc<Device>,
    dir: Direction,
    name: String,
    contiguous: bool,
    can_import: bool,
    /// The queue's formats (VIDIOC_ENUM_FMT), listed once on first use: `constraints` and
    /// `import` consult them for every buffer.
    formats: std::sync::OnceLock<Vec<crate::device::FormatDesc>>,
    can_export: bool,
    /// The V4L2 code to use for the DRM format it stands for, over the preferred one.
    chosen: Option<PixelFormat>,
}

/// A buffer checked against a V4L2 queue's format; hand it to [`crate::Queue::queue_buffer`]
/// via [`V4l2Import::buffer`]. Holds the buffer (and so its dma-buf) alive; the driver's own
/// reference lives from QBUF until the buffer is dequeued or the queue freed.
#[derive(Debug, Clone)]
pub struct V4l2Import {
    device: String,
    buffer: Buffer,
    format: QueueFormat,
}

impl V4l2Import {
    /// The imported buffer.
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// The V4L2 format the buffer was checked against (set it on the queue before QBUF).
    pub fn format(&self) -> &QueueFormat {
        &self.format
    }
}

impl Imported for V4l2Import {
    fn device(&self) -> &str {
        &self.device
    }
}

impl V4l2Importer {
    /// The queue of `dev` in direction `dir`; probes contiguity (cached) and DMABUF support.
    /// The queue's formats are listed once, on first use: for a decoder's CAPTURE queue,
    /// create the importer after the source-change event.
    pub fn new(dev: Arc<Device>, dir: Direction) -> Self {
        let (contiguous, _) = probe::needs_contiguous(&dev);
        let can_import = dev.supports_dmabuf(dir);
        let can_export = dev
            .buffer_caps(dir)
            .is_ok_and(|c| c & crate::sys::BUF_CAP_SUPPORTS_MMAP != 0);
        V4l2Importer {
            name: dev.display_name(),
            dev,
            dir,
            contiguous,
            can_import,
            can_export,
            formats: std::sync::OnceLock::new(),
            chosen: None,
        }
    }

    /// Uses V4L2 code `pixel_format` for the DRM format it stands for, where a DRM format has
    /// several (NV12 is `NV12` in one buffer or `NM12` with a buffer per plane; by default
    /// the single-buffer code is used).
    pub fn with_pixel_format(mut self, pixel_format: PixelFormat) -> Self {
        self.chosen = Some(pixel_format);
        self
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The queue direction.
    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// Whether the device needs physically contiguous memory.
    pub fn needs_contiguous(&self) -> bool {
        self.contiguous
    }

    fn unsupported(&self, kind: ConstraintKind, detail: String) -> Error {
        Error::Unsupported {
            device: self.name.clone(),
            kind,
            detail,
        }
    }

    /// The V4L2 code the queue would use for DRM `fourcc`: the one chosen with
    /// [`V4l2Importer::with_pixel_format`] if it lists it, else the first equivalent it lists.
    pub fn pixel_format_for(&self, fourcc: cenalloc::Fourcc) -> Result<PixelFormat> {
        let listed = self.formats.get_or_init(|| self.dev.formats(self.dir));
        let mut codes = drm_to_v4l2(fourcc);
        if let Some(at) = codes.iter().position(|pf| Some(*pf) == self.chosen) {
            codes[..=at].rotate_right(1);
        }
        codes
            .into_iter()
            .find(|pf| listed.iter().any(|f| f.pixelformat == *pf))
            .ok_or_else(|| {
                self.unsupported(
                    ConstraintKind::Format,
                    format!(
                        "{fourcc} has no V4L2 equivalent on the {:?} queue (it lists {})",
                        self.dir,
                        listed
                            .iter()
                            .map(|f| f.pixelformat.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    /// VIDIOC_TRY_FMT for an image, failing if the driver changes the format or the size.
    fn tried(&self, width: u32, height: u32, fourcc: cenalloc::Fourcc) -> Result<QueueFormat> {
        let pf = self.pixel_format_for(fourcc)?;
        let f = self.dev.try_format(self.dir, pf, width, height)?;
        if f.pixelformat != pf {
            return Err(self.unsupported(
                ConstraintKind::Format,
                format!("driver replaced {pf} with {}", f.pixelformat),
            ));
        }
        if (f.width, f.height) != (width, height) {
            return Err(self.unsupported(
                ConstraintKind::Format,
                format!(
                    "{width}x{height} not supported; the driver offers {}x{}",
                    f.width, f.height
                ),
            ));
        }
        Ok(f)
    }

    /// The per-plane constraints (strides exactly as the driver gave them, and minimum plane
    /// sizes) that a queue in format `f` puts on an image of `fourcc`: one per memory plane
    /// of a multi-buffer format, else one per colour plane. Empty if `f` has no plane.
    pub fn plane_constraints(fourcc: cenalloc::Fourcc, f: &QueueFormat) -> Vec<PlaneConstraint> {
        if f.planes.len() > 1 {
            return f
                .planes
                .iter()
                .map(|p| PlaneConstraint {
                    min_stride: u64::from(p.bytesperline),
                    min_size: u64::from(p.sizeimage),
                    exact_stride: Some(u64::from(p.bytesperline)),
                })
                .collect();
        }
        let Some(p0) = f.planes.first() else {
            return Vec::new();
        };
        let bpl = u64::from(p0.bytesperline);
        let n = format::color_planes(fourcc);
        let offsets = Self::packed_offsets(fourcc, f);
        (0..n)
            .map(|i| {
                let stride = format::plane_stride(fourcc, i, bpl);
                let rows = u64::from(f.height.div_ceil(format::plane_vsub(fourcc, i)));
                // The buffer must hold sizeimage, which may exceed the packed planes (drivers
                // append data such as motion vectors): the last plane reaches that far.
                let to_sizeimage = match offsets.get(i) {
                    Some(&at) if i + 1 == n => u64::from(p0.sizeimage).saturating_sub(at),
                    _ => 0,
                };
                PlaneConstraint {
                    min_stride: stride,
                    min_size: stride.saturating_mul(rows).max(to_sizeimage),
                    exact_stride: Some(stride),
                }
            })
            .collect()
    }

    /// Expected plane offsets for a single-buffer V4L2 format with several colour planes:
    /// V4L2 packs them back to back. Empty if `f` has no plane.
    pub fn packed_offsets(fourcc: cenalloc::Fourcc, f: &QueueFormat) -> Vec<u64> {
        let Some(p0) = f.planes.first() else {
            return Vec::new();
        };
        let bpl = u64::from(p0.bytesperline);
        let mut offsets = Vec::new();
        let mut at: u64 = 0;
        for i in 0..format::color_planes(fourcc) {
            offsets.push(at);
            let rows = u64::from(f.height.div_ceil(format::plane_vsub(fourcc, i)));
            // Saturates: an offset past any real buffer is then refused as incompatible.
            at = at.saturating_add(format::plane_stride(fourcc, i, bpl).saturating_mul(rows));
        }
        offsets
    }

    /// Checks that `layout`, an image of `fourcc`, is one a queue in format `f` (the driver's
    /// answer for the same format and size) can take: plane 0's stride is the driver's
    /// bytesperline, colour planes of a single-buffer format lie where V4L2 packs them and the
    /// buffer holds sizeimage, and each memory plane of a multi-buffer format has the driver's
    /// stride and at least its sizeimage (in the plane's own dma-buf, or at its offset in the
    /// buffer's one). Says which requirement fails and why.
    pub fn check_image_layout(
        layout: &Layout,
        fourcc: cenalloc::Fourcc,
        f: &QueueFormat,
    ) -> std::result::Result<(), (ConstraintKind, String)> {
        let Some(driver_p0) = f.planes.first() else {
            return Err((
                ConstraintKind::Plane,
                format!("{} has no plane", f.pixelformat),
            ));
        };
        let Some(p0) = layout.planes().first() else {
            return Err((ConstraintKind::Plane, "no planes".to_owned()));
        };
        let bpl = u64::from(driver_p0.bytesperline);
        if p0.stride != bpl {
            return Err((
                ConstraintKind::Plane,
                format!(
                    "stride {} but the driver uses bytesperline {bpl}",
                    p0.stride
                ),
            ));
        }
        if f.planes.len() == 1 {
            if layout.has_separate_planes() {
                return Err((
                    ConstraintKind::Plane,
                    format!(
                        "its planes lie in separate dma-bufs, but V4L2 {} takes them all in one",
                        f.pixelformat
                    ),
                ));
            }
            let expected = Self::packed_offsets(fourcc, f);
            for (i, (p, want)) in layout.planes().iter().zip(&expected).enumerate() {
                if p.offset != *want {
                    return Err((
                        ConstraintKind::Plane,
                        format!(
                            "plane {i} at offset {} but V4L2 {} expects {want}",
                            p.offset, f.pixelformat
                        ),
                    ));
                }
            }
            let need = u64::from(driver_p0.sizeimage);
            if layout.size() < need {
                return Err((
                    ConstraintKind::Plane,
                    format!(
                        "buffer has {} bytes but the driver's sizeimage is {need}",
                        layout.size()
                    ),
                ));
            }
        } else {
            for (i, (p, want)) in layout.planes().iter().zip(&f.planes).enumerate() {
                if p.size < u64::from(want.sizeimage) || p.stride != u64::from(want.bytesperline) {
                    return Err((
                        ConstraintKind::Plane,
                        format!(
                            "plane {i}: stride {} size {}, driver needs {} and {}",
                            p.stride, p.size, want.bytesperline, want.sizeimage
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn incompatible(&self, kind: ConstraintKind, reason: String) -> Error {
        Error::Incompatible {
            device: self.name.clone(),
            kind,
            reason,
        }
    }
}

impl Importer for V4l2Importer {
    fn name(&self) -> &str {
        &self.name
    }

    fn constraints(&self, request: &BufferRequest) -> Result<Constraints> {
        if !self.can_import {
            return Err(self.unsupported(
                ConstraintKind::Import,
                format!(
                    "the {:?} queue does not support V4L2_MEMORY_DMABUF",
                    self.dir
                ),
            ));
        }
        if let Some(mods) = &request.modifiers {
            if !mods.contains(&Modifier::LINEAR) {
                return Err(self.unsupported(
                    ConstraintKind::Modifier,
                    "V4L2 buffers are linear; the request excludes LINEAR".to_owned(),
                ));
            }
        }
        // A capture queue writes each memory plane of a multi-buffer format (`NM12`) into
        // the dma-buf given for it, from its start: it needs one dma-buf per plane. (An
        // OUTPUT queue also takes the planes at offsets inside one, through data_offset.)
        let mut separate_planes = false;
        let planes = match request.kind {
            BufferKind::Image {
                width,
                height,
                fourcc,
            } => {
                let f = self.tried(width, height, fourcc)?;
                separate_planes = f.planes.len() > 1 && self.dir == Direction::Capture;
                Self::plane_constraints(fourcc, &f)
            }
            BufferKind::Blob { .. } => {
                let f = self.dev.format(self.dir)?;
                f.planes
                    .iter()
                    .map(|p| PlaneConstraint {
                        min_stride: 0,
                        min_size: u64::from(p.sizeimage),
                        exact_stride: None,
                    })
                    .collect()
            }
        };
        Ok(Constraints {
            contiguous: self.contiguous,
            modifiers: vec![Modifier::LINEAR],
            can_import: true,
            can_export: self.can_export,
            separate_planes,
            planes,
            ..Constraints::default()
        })
    }

    fn import(&self, buffer: &Buffer) -> Result<cenalloc::Import> {
        let layout = buffer.layout();
        if layout.modifier() != Modifier::LINEAR {
            return Err(self.incompatible(
                ConstraintKind::Modifier,
                format!("modifier {} is not LINEAR", layout.modifier()),
            ));
        }
        if self.contiguous {
            let src = buffer.source();
            let scattered = src.kind == SourceKind::Udmabuf
                || (src.kind == SourceKind::Heap && src.name == "system");
            if scattered {
                return Err(self.incompatible(
                    ConstraintKind::Contiguous,
                    format!(
                        "needs physically contiguous memory, but the buffer comes from {} \
                         ({:?}), which is not contiguous",
                        src.name, src.kind
                    ),
                ));
            }
        }
        let format = match layout.fourcc() {
            Some(fourcc) => {
                let pf = self.pixel_format_for(fourcc)?;
                let f = self
                    .dev
                    .try_format(self.dir, pf, layout.width(), layout.height())?;
                if f.pixelformat != pf || (f.width, f.height) != (layout.width(), layout.height()) {
                    return Err(self.incompatible(
                        ConstraintKind::Format,
                        format!(
                            "{fourcc} {}x{} becomes {} {}x{} on this queue",
                            layout.width(),
                            layout.height(),
                            f.pixelformat,
                            f.width,
                            f.height
                        ),
                    ));
                }
                Self::check_image_layout(layout, fourcc, &f)
                    .map_err(|(kind, reason)| self.incompatible(kind, reason))?;
                if f.planes.len() > 1
                    && self.dir == Direction::Capture
                    && !layout.has_separate_planes()
                {
                    return Err(self.incompatible(
                        ConstraintKind::Plane,
                        format!(
                            "{} has {} memory planes and a capture queue writes each into a \
                             dma-buf of its own, but the buffer's planes share one",
                            f.pixelformat,
                            f.planes.len()
                        ),
                    ));
                }
                f
            }
            None => {
                let f = self.dev.format(self.dir)?;
                let need: u64 = f.planes.iter().map(|p| u64::from(p.sizeimage)).sum();
                if layout.size() < need {
                    return Err(self.incompatible(
                        ConstraintKind::Plane,
                        format!(
                            "buffer has {} bytes but the driver's sizeimage is {need}",
                            layout.size()
                        ),
                    ));
                }
                f
            }
        };
        Ok(Box::new(V4l2Import {
            device: self.name.clone(),
            buffer: buffer.clone(),
            format,
        }))
    }

    /// Lets the driver allocate the buffer (V4L2_MEMORY_MMAP, one buffer, on a file of its
    /// own) and exports it with VIDIOC_EXPBUF. The V4L2 buffer is freed right away; the
    /// dma-buf keeps the memory (vb2 orphans exported buffers). cenalloc uses this when no
    /// memory source suits the device, e.g. a dma-contig device on a system without a CMA
    /// heap. Formats with several memory planes cannot be exported as one dma-buf.
    fn export(&self, request: &BufferRequest, merged: &MergedConstraints) -> Result<Exported> {
        let _ = merged;
        if !self.can_export {
            return Err(self.unsupported(
                ConstraintKind::Import,
                format!("the {:?} queue cannot allocate buffers itself", self.dir),
            ));
        }
        let own = Device::open(self.dev.path())?;
        let (format, fourcc, width, height) = match request.kind {
            BufferKind::Image {
                width,
                height,
                fourcc,
            } => {
                let pf = self.pixel_format_for(fourcc)?;
                let f = own.set_format(self.dir, pf, width, height)?;
                if f.pixelformat != pf || (f.width, f.height) != (width, height) {
                    return Err(self.unsupported(
                        ConstraintKind::Format,
                        format!(
                            "asked {pf} {width}x{height}, the driver set {} {}x{}",
                            f.pixelformat, f.width, f.height
                        ),
                    ));
                }
                (f, Some(fourcc), width, height)
            }
            BufferKind::Blob { .. } => (own.format(self.dir)?, None, 0, 0),
        };
        if format.planes.len() != 1 {
            return Err(self.unsupported(
                ConstraintKind::Plane,
                format!(
                    "{} has {} memory planes; one dma-buf cannot hold them",
                    format.pixelformat,
                    format.planes.len()
                ),
            ));
        }
        let mut queue = crate::Queue::new(Arc::new(own), self.dir)?;
        let mut fds = queue.request_exported(1)?;
        queue.release()?;
        let fd = fds
            .pop()
            .and_then(|mut planes| planes.pop())
            .ok_or_else(|| self.unsupported(ConstraintKind::Import, "no buffer".to_owned()))?;
        let size = rustix::fs::seek(&fd, rustix::fs::SeekFrom::End(0))
            .map_err(|e| Error::io(format!("{}: size of the exported dma-buf", self.name), e))?;
        let planes = match fourcc {
            Some(fourcc) => {
                let constraints = Self::plane_constraints(fourcc, &format);
                Self::packed_offsets(fourcc, &format)
                    .into_iter()
                    .zip(constraints)
                    .map(|(offset, c)| PlaneLayout {
                        offset,
                        stride: c.min_stride,
                        size: c.min_size,
                    })
                    .collect()
            }
            None => vec![PlaneLayout {
                offset: 0,
                stride: 0,
                size,
            }],
        };
        log::debug!(
            "{}: exported {size} bytes of {}",
            self.name,
            format.pixelformat
        );
        let layout = Layout::new(fourcc, width, height, Modifier::LINEAR, &planes, size)?;
        Ok(Exported::new(fd, layout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::PlaneFormat;

    fn single(pf: PixelFormat, w: u32, h: u32, bpl: u32, size: u32) -> QueueFormat {
        QueueFormat {
            pixelformat: pf,
            width: w,
            height: h,
            mplane: false,
            planes: vec![PlaneFormat {
                bytesperline: bpl,
                sizeimage: size,
            }],
        }
    }

    #[test]
    fn packed_yuyv_takes_bytesperline_and_sizeimage() {
        let f = single(PixelFormat::YUYV, 640, 360, 1280, 460_800);
        let p = V4l2Importer::plane_constraints(cenalloc::Fourcc::Yuyv, &f);
        assert_eq!(
            p,
            vec![PlaneConstraint {
                min_stride: 1280,
                min_size: 460_800,
                exact_stride: Some(1280)
            }]
        );
        assert_eq!(
            V4l2Importer::packed_offsets(cenalloc::Fourcc::Yuyv, &f),
            vec![0]
        );
    }

    #[test]
    fn single_buffer_yuv420_planes_are_packed_back_to_back() {
        let f = single(PixelFormat::YUV420, 640, 480, 640, 460_800);
        let p = V4l2Importer::plane_constraints(cenalloc::Fourcc::Yuv420, &f);
        let strides: Vec<u64> = p.iter().map(|c| c.min_stride).collect();
        let sizes: Vec<u64> = p.iter().map(|c| c.min_size).collect();
        assert_eq!(strides, vec![640, 320, 320]);
        assert_eq!(sizes, vec![307_200, 76_800, 76_800]);
        assert_eq!(
            V4l2Importer::packed_offsets(cenalloc::Fourcc::Yuv420, &f),
            vec![0, 307_200, 384_000]
        );
    }

    #[test]
    fn nv12_chroma_has_luma_stride_and_half_height() {
        let f = single(PixelFormat::NV12, 320, 240, 320, 115_200);
        let p = V4l2Importer::plane_constraints(cenalloc::Fourcc::Nv12, &f);
        assert_eq!(p[1].min_stride, 320);
        assert_eq!(p[1].min_size, 320 * 120);
        assert_eq!(
            V4l2Importer::packed_offsets(cenalloc::Fourcc::Nv12, &f),
            vec![0, 76_800]
        );
    }

    #[test]
    fn the_last_plane_reaches_a_sizeimage_beyond_the_packed_planes() {
        // Found by the fuzz target v4l2_format: NV12 whose sizeimage exceeds the two packed
        // planes (as decoders that append motion vectors give) was planned too small, and
        // the import then refused the buffer.
        let f = single(PixelFormat::NV12, 320, 240, 320, 29_500_160);
        let p = V4l2Importer::plane_constraints(cenalloc::Fourcc::Nv12, &f);
        assert_eq!(
            (p[0].min_size, p[1].min_size),
            (76_800, 29_500_160 - 76_800)
        );
    }

    #[test]
    fn huge_strides_and_heights_saturate() {
        // NV24's chroma stride is twice bytesperline: u32::MAX rows of it overflowed u64.
        let f = single(PixelFormat::from_chars(b"NV24"), 1, u32::MAX, u32::MAX, 0);
        let p = V4l2Importer::plane_constraints(cenalloc::Fourcc::Nv24, &f);
        assert_eq!(p[1].min_size, u64::MAX);
    }

    #[test]
    fn multi_buffer_formats_take_each_planes_numbers() {
        let f = QueueFormat {
            pixelformat: PixelFormat::from_chars(b"NM12"),
            width: 320,
            height: 240,
            mplane: true,
            planes: vec![
                PlaneFormat {
                    bytesperline: 320,
                    sizeimage: 76_800,
                },
                PlaneFormat {
                    bytesperline: 320,
                    sizeimage: 38_400,
                },
            ],
        };
        let p = V4l2Importer::plane_constraints(cenalloc::Fourcc::Nv12, &f);
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].min_stride, p[1].min_size), (320, 38_400));
    }
}
