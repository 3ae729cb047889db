//! `cenalloc_buffer`: one allocated dma-buf imported into every device of its plan, either
//! owned or lent by a pool (returned when destroyed), with at most one CPU mapping at a time.

use std::sync::{Mutex, MutexGuard};

use cenalloc::{CpuAccess, Mapping, PooledBuffer, SharedBuffer};
use cenalloc_drm::DrmImport;
use rustix::io::Errno;

use crate::device::Device;
use crate::error::CError;

/// A buffer as the C API holds it.
pub struct BufferObject {
    held: Held,
    mapping: Mutex<Option<Mapping>>,
}

/// How the buffer is held: on its own, or lent by a pool.
enum Held {
    Own(SharedBuffer),
    Pooled(PooledBuffer),
}

impl BufferObject {
    /// A buffer the C caller owns.
    pub fn own(shared: SharedBuffer) -> BufferObject {
        BufferObject {
            held: Held::Own(shared),
            mapping: Mutex::new(None),
        }
    }

    /// A buffer lent by a pool.
    pub fn pooled(pooled: PooledBuffer) -> BufferObject {
        BufferObject {
            held: Held::Pooled(pooled),
            mapping: Mutex::new(None),
        }
    }

    /// The buffer and its imports.
    pub fn shared(&self) -> &SharedBuffer {
        match &self.held {
            Held::Own(s) => s,
            Held::Pooled(p) => p,
        }
    }

    /// The layout's plane `plane`, or an error naming the plane count.
    pub fn plane(&self, plane: u32) -> Result<cenalloc::PlaneLayout, CError> {
        let planes = self.shared().buffer().layout().planes();
        planes.get(plane as usize).copied().ok_or_else(|| {
            CError::invalid(format!(
                "plane {plane} does not exist: the buffer has {} plane(s)",
                planes.len()
            ))
        })
    }

    /// The KMS framebuffer id `display` made when it imported the buffer.
    pub fn framebuffer(&self, display: &Device) -> Result<u32, CError> {
        let drm = display.as_drm()?;
        self.shared()
            .import_for(drm.name())
            .and_then(|i| i.downcast_ref::<DrmImport>())
            .and_then(DrmImport::framebuffer)
            .map(u32::from)
            .ok_or_else(|| {
                CError::new(
                    Errno::NOENT,
                    format!(
                        "{}: the buffer has no framebuffer there (was the display among the \
                         plan's devices, with CENALLOC_USAGE_SCANOUT?)",
                        drm.name()
                    ),
                )
            })
    }

    fn mapping(&self) -> MutexGuard<'_, Option<Mapping>> {
        self.mapping.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Maps the whole buffer for `access` (DMA_BUF_IOCTL_SYNC start); its address and length.
    pub fn map(&self, access: CpuAccess) -> Result<(*mut u8, usize), CError> {
        let mut slot = self.mapping();
        if slot.is_some() {
            return Err(CError::new(
                Errno::BUSY,
                "the buffer is already mapped; cenalloc_buffer_unmap it first",
            ));
        }
        if self.shared().buffer().layout().has_separate_planes() {
            return Err(CError::new(
                Errno::NOTSUP,
                "the buffer keeps each plane in a dma-buf of its own; map each plane's \
                 cenalloc_buffer_fd(buffer, plane) instead",
            ));
        }
        let mut mapping = self.shared().buffer().map(access)?;
        let (ptr, len) = if access == CpuAccess::Read {
            let bytes = mapping.as_slice();
            (bytes.as_ptr().cast_mut(), bytes.len())
        } else {
            let bytes = mapping.as_mut_slice();
            (bytes.as_mut_ptr(), bytes.len())
        };
        *slot = Some(mapping);
        Ok((ptr, len))
    }

    /// Ends CPU access (DMA_BUF_IOCTL_SYNC end) and unmaps.
    pub fn unmap(&self) -> Result<(), CError> {
        self.mapping()
            .take()
            .map(drop)
            .ok_or_else(|| CError::invalid("the buffer is not mapped"))
    }
}
