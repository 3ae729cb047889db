//! Importing a cenalloc buffer: PRIME fd → GEM handle for each of its dma-bufs (one handle for
//! every plane, or one per plane when each plane has a dma-buf of its own), then ADDFB2 (with
//! the modifier when it is explicit) → framebuffer on KMS devices.
//!
//! PRIME returns the same GEM handle each time one dma-buf is imported into one fd, and the
//! kernel does not count those imports, so the device counts them (`gem_handles.rs`) and
//! closes each handle exactly once, after its last user. A buffer the device allocated itself
//! carries its handle (kept alive with the export), so importing it back makes no
//! PRIME call.

use std::fmt;
use std::os::fd::AsFd as _;
use std::sync::Arc;

use cenalloc::format::FormatInfo;
use cenalloc::{Buffer, Imported, Importer, Modifier};
use drm::buffer::{Handle as GemHandle, PlanarBuffer};
use drm::control::{framebuffer, Device as _, FbCmd2Flags};

use crate::device::Shared;
use crate::probe::{fourcc_code_name, PlaneKind};
use crate::{DrmDevice, DrmError};

/// A device's own GEM handle of a buffer it allocated itself, kept with the exported buffer;
/// released when the buffer goes (closed unless imports still use it).
pub(crate) struct GemRef {
    shared: Arc<Shared>,
    handle: GemHandle,
}

impl GemRef {
    /// Counts `handle`, which the device has just created for a buffer it allocated itself.
    pub(crate) fn adopt(shared: &Arc<Shared>, handle: GemHandle) -> GemRef {
        shared.gem.add_user(handle);
        GemRef {
            shared: shared.clone(),
            handle,
        }
    }
}

impl Drop for GemRef {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.gem.release(&shared.node, &shared.name, self.handle);
    }
}

/// The device's own handle of `buffer` when this device allocated the buffer itself.
fn own_handle(buffer: &Buffer, shared: &Arc<Shared>) -> Option<GemHandle> {
    let gem = buffer.keepalive()?.downcast_ref::<GemRef>()?;
    Arc::ptr_eq(&gem.shared, shared).then_some(gem.handle)
}

/// A buffer imported into a DRM device: a GEM handle per dma-buf and, on KMS devices, a
/// framebuffer. Dropping it removes the framebuffer and releases the handles.
pub struct DrmImport {
    shared: Arc<Shared>,
    buffer: Buffer,
    /// One per dma-buf of the buffer, in its order (at most one per plane).
    handles: arrayvec::ArrayVec<GemHandle, { cenalloc::Layout::MAX_PLANES }>,
    fb: Option<framebuffer::Handle>,
}

/// One more counted user of the handle of `dma_buf` (a dma-buf of `buffer`) on the device's
/// fd: the device's own handle when it allocated the buffer, else PRIME_FD_TO_HANDLE's.
fn acquire(
    shared: &Arc<Shared>,
    buffer: &Buffer,
    dma_buf: std::os::fd::BorrowedFd<'_>,
) -> Result<GemHandle, DrmError> {
    if let Some(handle) = own_handle(buffer, shared) {
        shared.gem.add_user(handle);
        return Ok(handle);
    }
    shared
        .gem
        .acquire(|| shared.node.prime_fd_to_buffer(dma_buf))
        .map_err(|source| DrmError::ImportRefused {
            device: shared.name.clone(),
            step: "PRIME fd to handle",
            source,
        })
}

impl fmt::Debug for DrmImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrmImport")
            .field("device", &self.shared.name)
            .field(
                "gem_handles",
                &self
                    .handles
                    .iter()
                    .map(|h| u32::from(*h))
                    .collect::<Vec<_>>(),
            )
            .field("framebuffer", &self.fb.map(u32::from))
            .finish()
    }
}

impl DrmImport {
    /// The GEM handle of the buffer's dma-buf on the device's fd (plane 0's when each plane
    /// has its own; [`DrmImport::gem_handles`] gives them all).
    pub fn gem_handle(&self) -> u32 {
        u32::from(self.handles[0])
    }

    /// The GEM handle of each of the buffer's dma-bufs, in order.
    pub fn gem_handles(&self) -> Vec<u32> {
        self.handles.iter().map(|h| u32::from(*h)).collect()
    }

    /// The framebuffer, on devices with KMS and for image buffers.
    pub fn framebuffer(&self) -> Option<framebuffer::Handle> {
        self.fb
    }

    /// The imported buffer.
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }
}

impl Drop for DrmImport {
    fn drop(&mut self) {
        let shared = &self.shared;
        if let Some(fb) = self.fb.take() {
            if let Err(e) = shared.node.destroy_framebuffer(fb) {
                log::warn!("{}: RMFB {}: {e}", shared.name, u32::from(fb));
            }
        }
        for handle in self.handles.drain(..) {
            shared.gem.release(&shared.node, &shared.name, handle);
        }
    }
}

impl Imported for DrmImport {
    fn device(&self) -> &str {
        &self.shared.name
    }
}

/// The ADDFB2 arguments of a buffer: GEM handle, pitch and offset per plane, for the drm
/// crate's `add_planar_framebuffer` on any DRM device.
#[derive(Debug, Clone, Copy)]
pub struct FramebufferPlanes {
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// Pixel format.
    pub format: drm_fourcc::DrmFourcc,
    /// Modifier; `None` for an implicit layout (ADDFB2 without DRM_MODE_FB_MODIFIERS).
    pub modifier: Option<drm_fourcc::DrmModifier>,
    /// GEM handle of each plane.
    pub handles: [Option<GemHandle>; 4],
    /// Pitch of each plane in bytes.
    pub pitches: [u32; 4],
    /// Offset of each plane in bytes.
    pub offsets: [u32; 4],
}

impl PlanarBuffer for FramebufferPlanes {
    fn size(&self) -> (u32, u32) {
        self.size
    }
    fn format(&self) -> drm_fourcc::DrmFourcc {
        self.format
    }
    fn modifier(&self) -> Option<drm_fourcc::DrmModifier> {
        self.modifier
    }
    fn pitches(&self) -> [u32; 4] {
        self.pitches
    }
    fn handles(&self) -> [Option<GemHandle>; 4] {
        self.handles
    }
    fn offsets(&self) -> [u32; 4] {
        self.offsets
    }
}

impl DrmDevice {
    /// Checks that `buffer` can become a framebuffer here: strides at least the format's
    /// minimum, a modifier some plane supports, at most four planes that fit in 32 bits.
    pub fn check_scanout_layout(&self, buffer: &Buffer) -> Result<(), DrmError> {
        let layout = buffer.layout();
        let Some(fourcc) = layout.fourcc() else {
            return Ok(());
        };
        // Built only on the error paths: this check runs on every import.
        let name = || fourcc_code_name(fourcc as u32);
        let device = || self.name().to_owned();
        let unsupported = |detail: String| DrmError::Unsupported {
            device: device(),
            what: cenalloc::ConstraintKind::Plane,
            detail,
        };
        if layout.planes().is_empty() || layout.planes().len() > 4 {
            return Err(unsupported(format!(
                "{} planes (a framebuffer takes 1 to 4)",
                layout.planes().len()
            )));
        }
        if let Some(info) = FormatInfo::of(fourcc) {
            if info.planes.len() != layout.planes().len() {
                return Err(unsupported(format!(
                    "{} has {} planes, the layout {}",
                    name(),
                    info.planes.len(),
                    layout.planes().len()
                )));
            }
            for (i, (geom, plane)) in info.planes.iter().zip(layout.planes()).enumerate() {
                let min = geom.min_row_bytes(layout.width()).unwrap_or(u64::MAX);
                if plane.stride < min {
                    return Err(DrmError::StrideTooSmall {
                        device: device(),
                        plane: i,
                        stride: plane.stride,
                        min,
                        format: name(),
                        width: layout.width(),
                    });
                }
            }
        }
        for plane in layout.planes() {
            if u32::try_from(plane.stride).is_err() || u32::try_from(plane.offset).is_err() {
                return Err(unsupported(format!(
                    "stride {} / offset {} do not fit ADDFB2's 32 bits",
                    plane.stride, plane.offset
                )));
            }
        }
        let probe = self.probe();
        if !probe.caps.addfb2_modifiers
            && !matches!(layout.modifier(), Modifier::LINEAR | Modifier::INVALID)
        {
            return Err(DrmError::ModifierUnsupported {
                device: device(),
                format: name(),
                modifier: layout.modifier(),
                supported: vec![Modifier::LINEAR],
            });
        }
        if probe.is_display() && layout.modifier() != Modifier::INVALID {
            let kinds = [PlaneKind::Primary, PlaneKind::Overlay, PlaneKind::Cursor];
            if !probe.accepts(fourcc as u32, layout.modifier(), &kinds) {
                let supported = probe.modifiers_for(fourcc as u32, &kinds);
                if supported.is_empty() {
                    return Err(DrmError::Unsupported {
                        device: device(),
                        what: cenalloc::ConstraintKind::Format,
                        detail: format!("no plane scans out {}", name()),
                    });
                }
                return Err(DrmError::ModifierUnsupported {
                    device: device(),
                    format: name(),
                    modifier: layout.modifier(),
                    supported,
                });
            }
        }
        Ok(())
    }

    /// Imports `buffer`: a GEM handle, plus a framebuffer if the device has KMS and the buffer
    /// is an image. Everything is validated before the first ioctl; a failing ADDFB2 releases
    /// the handle again.
    pub fn import_buffer(&self, buffer: &Buffer) -> Result<DrmImport, DrmError> {
        let layout = buffer.layout();
        let wants_fb = layout.fourcc().is_some() && self.probe().limits.is_some();
        if wants_fb {
            self.check_scanout_layout(buffer)?;
        }
        // From here on, the import releases the counted handles it holds if a step fails.
        let mut import = DrmImport {
            shared: self.shared.clone(),
            buffer: buffer.clone(),
            handles: arrayvec::ArrayVec::new(),
            fb: None,
        };
        // A buffer has at most one dma-buf per plane, and a layout at most MAX_PLANES planes.
        for dma_buf in buffer.dma_bufs() {
            let handle = acquire(&self.shared, buffer, dma_buf)?;
            import.handles.push(handle);
        }
        if let (true, Some(format)) = (wants_fb, layout.fourcc()) {
            let (mut handles, mut pitches, mut offsets, mut modifiers) =
                ([0u32; 4], [0u32; 4], [0u32; 4], [0u64; 4]);
            // Drivers without ADDFB2 modifier support reject the flag (drm_framebuffer.c:
            // drm_mode_addfb2 → -EINVAL); for them LINEAR is the implied layout.
            let explicit =
                layout.modifier() != Modifier::INVALID && self.probe().caps.addfb2_modifiers;
            for (i, plane) in layout.planes().iter().enumerate().take(4) {
                handles[i] = u32::from(import.handles[layout.dma_buf_of_plane(i)]);
                // Checked to fit by check_scanout_layout.
                pitches[i] = plane.stride as u32;
                offsets[i] = plane.offset as u32;
                if explicit {
                    modifiers[i] = layout.modifier().0;
                }
            }
            let flags = if explicit {
                FbCmd2Flags::MODIFIERS.bits()
            } else {
                0
            };
            // drm-ffi directly rather than drm's add_planar_framebuffer: the layout already
            // holds the raw values its PlanarBuffer trait would convert back and forth.
            let refused = |source| DrmError::ImportRefused {
                device: self.name().to_owned(),
                step: "ADDFB2",
                source,
            };
            let created = drm_ffi::mode::add_fb2(
                self.as_fd(),
                layout.width(),
                layout.height(),
                format as u32,
                &handles,
                &pitches,
                &offsets,
                &modifiers,
                flags,
            )
            .map_err(refused)?;
            let handle = drm::control::from_u32::<framebuffer::Handle>(created.fb_id)
                .ok_or_else(|| refused(std::io::Error::other("framebuffer id 0")))?;
            import.fb = Some(handle);
        }
        Ok(import)
    }
}

impl Importer for DrmDevice {
    fn name(&self) -> &str {
        DrmDevice::name(self)
    }

    fn constraints(
        &self,
        request: &cenalloc::BufferRequest,
    ) -> cenalloc::Result<cenalloc::Constraints> {
        crate::constraints::derive(self.name(), self.probe(), self.import_trial(), request)
            .map_err(Into::into)
    }

    fn import(&self, buffer: &Buffer) -> cenalloc::Result<cenalloc::Import> {
        Ok(Box::new(self.import_buffer(buffer)?))
    }

    fn export(
        &self,
        request: &cenalloc::BufferRequest,
        merged: &cenalloc::MergedConstraints,
    ) -> cenalloc::Result<cenalloc::Exported> {
        crate::export::export(self, request, merged).map_err(Into::into)
    }
}
