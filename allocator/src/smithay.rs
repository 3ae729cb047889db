//! Interop with smithay 0.7: cenalloc buffers as smithay `Dmabuf`s, cenalloc as a smithay
//! `Allocator`.
//!
//! smithay uses drm-fourcc's types for formats and modifiers, the same crate cenalloc uses, so
//! formats convert directly. A smithay `Dmabuf` owns one fd per plane: each plane gets a
//! duplicate of the buffer's single dma-buf fd.

use std::sync::Arc;

use smithay::backend::allocator::dmabuf::{AsDmabuf, Dmabuf, DmabufFlags};
use smithay::backend::allocator::{
    Allocator as SmithayAllocator, Buffer as SmithayBuffer, Format, Fourcc as SmithayFourcc,
    Modifier as SmithayModifier,
};
use smithay::utils::{Buffer as BufferCoords, Size};

use crate::{
    Allocator, Buffer, BufferRequest, ConstraintKind, Error, Importer, Modifier, Result,
    SharedBuffer, Usage,
};

impl Buffer {
    /// The buffer as a smithay [`Dmabuf`] (one duplicated fd per plane: of the buffer's one
    /// dma-buf, or of each plane's own). Blobs have no format and cannot be converted.
    pub fn to_dmabuf(&self) -> Result<Dmabuf> {
        let layout = self.layout();
        let fourcc = layout.fourcc.ok_or_else(|| Error::Unsupported {
            device: "smithay".into(),
            kind: ConstraintKind::Format,
            detail: "a blob buffer has no pixel format".into(),
        })?;
        let too_big = |what: &str, v: u64| {
            Error::Overflow(format!("{what} {v} does not fit smithay's 32-bit field"))
        };
        let width =
            i32::try_from(layout.width).map_err(|_| too_big("width", layout.width.into()))?;
        let height =
            i32::try_from(layout.height).map_err(|_| too_big("height", layout.height.into()))?;
        let mut builder = Dmabuf::builder(
            Size::<i32, BufferCoords>::from((width, height)),
            fourcc,
            layout.modifier.into(),
            DmabufFlags::empty(),
        );
        for (idx, plane) in layout.planes.iter().enumerate() {
            let offset =
                u32::try_from(plane.offset).map_err(|_| too_big("offset", plane.offset))?;
            let stride =
                u32::try_from(plane.stride).map_err(|_| too_big("stride", plane.stride))?;
            let fd = self
                .plane_fd(idx)
                .unwrap_or(self.fd())
                .try_clone_to_owned()
                .map_err(|e| Error::io("duplicating the dma-buf fd for smithay", e))?;
            if !builder.add_plane(fd, idx as u32, offset, stride) {
                return Err(Error::Unsupported {
                    device: "smithay".into(),
                    kind: ConstraintKind::Plane,
                    detail: format!("{} planes exceed smithay's maximum", layout.planes.len()),
                });
            }
        }
        builder.build().ok_or_else(|| Error::Unsupported {
            device: "smithay".into(),
            kind: ConstraintKind::Plane,
            detail: "a buffer without planes".into(),
        })
    }
}

impl TryFrom<&Buffer> for Dmabuf {
    type Error = Error;
    fn try_from(buffer: &Buffer) -> Result<Dmabuf> {
        buffer.to_dmabuf()
    }
}

/// A smithay [`Allocator`](SmithayAllocator) backed by cenalloc: every buffer is allocated
/// from the merged constraints of `importers` and imported into each of them.
#[derive(Debug, Clone)]
pub struct CenallocAllocator {
    allocator: Allocator,
    importers: Vec<Arc<dyn Importer>>,
    usage: Usage,
}

impl CenallocAllocator {
    /// Allocates with `allocator` for `importers`, requesting `usage`.
    pub fn new(allocator: Allocator, importers: Vec<Arc<dyn Importer>>, usage: Usage) -> Self {
        CenallocAllocator {
            allocator,
            importers,
            usage,
        }
    }
}

/// A buffer made by [`CenallocAllocator`]: the shared buffer with every device's import.
#[derive(Debug)]
pub struct CenallocBuffer {
    shared: SharedBuffer,
}

impl CenallocBuffer {
    /// The buffer and its imports.
    pub fn shared(&self) -> &SharedBuffer {
        &self.shared
    }
}

impl SmithayBuffer for CenallocBuffer {
    fn size(&self) -> Size<i32, BufferCoords> {
        let l = self.shared.buffer().layout();
        Size::from((
            i32::try_from(l.width).unwrap_or(i32::MAX),
            i32::try_from(l.height).unwrap_or(i32::MAX),
        ))
    }

    fn format(&self) -> Format {
        let l = self.shared.buffer().layout();
        Format {
            code: l.fourcc.unwrap_or(SmithayFourcc::R8),
            modifier: l.modifier.into(),
        }
    }
}

impl AsDmabuf for CenallocBuffer {
    type Error = Error;
    fn export(&self) -> Result<Dmabuf> {
        self.shared.buffer().to_dmabuf()
    }
}

impl SmithayAllocator for CenallocAllocator {
    type Buffer = CenallocBuffer;
    type Error = Error;

    /// `Modifier::Invalid` (implicit modifier) in `modifiers` also admits LINEAR, the layout
    /// cenalloc's memory sources give.
    fn create_buffer(
        &mut self,
        width: u32,
        height: u32,
        fourcc: SmithayFourcc,
        modifiers: &[SmithayModifier],
    ) -> Result<CenallocBuffer> {
        let mut mods: Vec<Modifier> = modifiers.iter().map(|&m| Modifier::from(m)).collect();
        if mods.contains(&Modifier::INVALID) && !mods.contains(&Modifier::LINEAR) {
            mods.push(Modifier::LINEAR);
        }
        let request = BufferRequest::image(width, height, fourcc, self.usage).with_modifiers(mods);
        let shared = self
            .allocator
            .allocate_and_import(&request, &self.importers)?;
        Ok(CenallocBuffer { shared })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::heap::HeapClass;
    use crate::testutil::MockSource;
    use crate::MemorySource;

    #[test]
    fn smithay_allocator_and_dmabuf() {
        let system = MockSource::heap("system", HeapClass::System);
        let a = Allocator::from_sources(vec![system.clone() as Arc<dyn MemorySource>]);
        let mut sa = CenallocAllocator::new(a, Vec::new(), Usage::RENDER);
        let b = sa
            .create_buffer(64, 32, SmithayFourcc::Nv12, &[SmithayModifier::Invalid])
            .unwrap();
        assert_eq!(b.width(), 64);
        assert_eq!(b.format().code, SmithayFourcc::Nv12);
        assert_eq!(b.format().modifier, SmithayModifier::Linear);
        let d = b.export().unwrap();
        assert_eq!(d.num_planes(), 2);
        let offsets: Vec<u32> = d.offsets().collect();
        let strides: Vec<u32> = d.strides().collect();
        assert_eq!(offsets, [0, 64 * 32]);
        assert_eq!(strides, [64, 64]);
        assert_eq!(system.count(), 1);
        let e = sa.create_buffer(64, 32, SmithayFourcc::Nv12, &[SmithayModifier::from(5u64)]);
        assert!(e.is_err());
    }

    #[test]
    fn a_buffer_with_separate_planes_becomes_a_dmabuf_with_an_fd_per_plane() {
        let system = MockSource::heap("system", HeapClass::System);
        let a = Allocator::from_sources(vec![system.clone() as Arc<dyn MemorySource>]);
        let camera = crate::testutil::MockImporter::new(
            "camera",
            crate::Constraints {
                separate_planes: true,
                ..Default::default()
            },
        );
        let request = crate::BufferRequest::image(64, 32, SmithayFourcc::Nv12, Usage::CAMERA_WRITE);
        let shared = a
            .allocate_and_import(&request, &[camera as Arc<dyn Importer>])
            .unwrap();
        assert_eq!(system.count(), 2);
        let d = shared.buffer().to_dmabuf().unwrap();
        assert_eq!(d.num_planes(), 2);
        assert_eq!(d.offsets().collect::<Vec<_>>(), [0, 0]);
        let inode = |fd: std::os::fd::BorrowedFd<'_>| rustix::fs::fstat(fd).unwrap().st_ino;
        let handles: Vec<_> = d.handles().map(inode).collect();
        let own: Vec<_> = shared.buffer().dma_bufs().map(inode).collect();
        assert_eq!(handles, own, "each plane carries its own dma-buf");
        assert_ne!(handles[0], handles[1]);
    }
}
