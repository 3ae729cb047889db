//! Framebuffers for DrmCompositor: the swapchain's cenalloc buffers and client dma-bufs alike
//! by ADDFB2 on the KMS fd (no GBM round trip). A client dma-buf is PRIME-imported here; a
//! swapchain buffer was already imported by cenalloc-drm on the same open file, so its GEM
//! handle is used as it is and left to cenalloc-drm to close (PRIME hands out one handle per
//! dma-buf and file: importing it again here and closing it would pull the handle from under
//! cenalloc-drm's import).
//!
//! Written here because cenalloc-drm's import module is not in place yet; it is the
//! `ExportFramebuffer` hook of smithay 0.7's DrmCompositor.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use cenalloc::smithay::CenallocBuffer;
use cenalloc_drm::{DrmImport, FramebufferPlanes};
use drm::buffer::Handle as GemHandle;
use drm::control::{framebuffer, Device as _, FbCmd2Flags};
use drm_fourcc::{DrmFormat, DrmFourcc, DrmModifier};
use smithay::backend::allocator::dmabuf::AsDmabuf;
use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::format::get_opaque;
use smithay::backend::allocator::Buffer as _;
use smithay::backend::drm::exporter::{ExportBuffer, ExportFramebuffer};
use smithay::backend::drm::{DrmDeviceFd, Framebuffer};
use smithay::wayland::dmabuf::get_dmabuf;

/// Why a framebuffer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A swapchain buffer could not be described as a dma-buf.
    #[error("swapchain buffer as a dma-buf: {0}")]
    Swapchain(#[from] cenalloc::Error),
    /// PRIME import of a client's dma-buf failed.
    #[error("PRIME import of plane {plane} of a client dma-buf: {source}")]
    Import {
        /// Plane index.
        plane: usize,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// ADDFB2 refused the client's buffer.
    #[error("ADDFB2 for a client {format:?}/{modifier:?} {width}x{height}: {source}")]
    AddFb {
        /// Fourcc.
        format: DrmFourcc,
        /// Modifier.
        modifier: DrmModifier,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

/// Makes framebuffers on one KMS device.
#[derive(Debug, Clone)]
pub struct CenallocExporter {
    drm: DrmDeviceFd,
    registry: FramebufferRegistry,
    clients: ClientHoldings,
}

/// Framebuffers and GEM handles alive for clients' buffers (not the swapchain's): what a
/// client that goes away must leave at zero.
#[derive(Debug, Clone, Default)]
pub struct ClientHoldings {
    framebuffers: Arc<std::sync::atomic::AtomicUsize>,
    gem_handles: Arc<std::sync::atomic::AtomicUsize>,
}

impl ClientHoldings {
    /// (framebuffers, GEM handles) alive now for clients' buffers.
    pub fn now(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.framebuffers.load(SeqCst),
            self.gem_handles.load(SeqCst),
        )
    }

    fn add(&self, gem_handles: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        self.framebuffers.fetch_add(1, SeqCst);
        self.gem_handles.fetch_add(gem_handles, SeqCst);
    }

    fn remove(&self, gem_handles: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        self.framebuffers.fetch_sub(1, SeqCst);
        self.gem_handles.fetch_sub(gem_handles, SeqCst);
    }
}

/// The framebuffers the exporter made that are alive now: framebuffer id → GEM handles it was
/// made from.
pub type FramebufferRegistry = Arc<Mutex<HashMap<u32, Vec<GemHandle>>>>;

impl CenallocExporter {
    /// An exporter for the KMS device `drm`, recording its framebuffers in `registry`.
    pub fn new(drm: DrmDeviceFd, registry: FramebufferRegistry, clients: ClientHoldings) -> Self {
        CenallocExporter {
            drm,
            registry,
            clients,
        }
    }
}

impl AsRef<framebuffer::Handle> for DmabufFramebuffer {
    fn as_ref(&self) -> &framebuffer::Handle {
        &self.fb
    }
}

impl Framebuffer for DmabufFramebuffer {
    fn format(&self) -> DrmFormat {
        self.format
    }
}

/// A framebuffer over a dma-buf (a client's or a swapchain buffer). Holds the GEM handles of
/// its own PRIME import for its whole life (so a later PRIME import of the same dma-buf on
/// this fd yields the same handle) and closes them and the framebuffer on drop.
#[derive(Debug)]
pub struct DmabufFramebuffer {
    drm: DrmDeviceFd,
    fb: framebuffer::Handle,
    format: DrmFormat,
    /// GEM handles this framebuffer closes on drop: those of its own PRIME import, none when
    /// cenalloc-drm's import owns them.
    owned: Vec<GemHandle>,
    registry: FramebufferRegistry,
    /// Set for a client's buffer: counted there while alive.
    client: Option<ClientHoldings>,
}

impl Drop for DmabufFramebuffer {
    fn drop(&mut self) {
        if let Some(client) = &self.client {
            client.remove(self.owned.len());
        }
        if let Ok(mut r) = self.registry.lock() {
            r.remove(&u32::from(self.fb));
        }
        if let Err(e) = self.drm.destroy_framebuffer(self.fb) {
            log::warn!("cannot remove framebuffer {:?}: {e}", self.fb);
        }
        for h in &self.owned {
            if let Err(e) = self.drm.close_buffer(*h) {
                log::warn!("cannot close GEM handle {h:?}: {e}");
            }
        }
    }
}

/// PRIME-imports every plane of `dmabuf` on `drm` and adds a framebuffer for it.
pub fn framebuffer_for_dmabuf(
    drm: &DrmDeviceFd,
    dmabuf: &Dmabuf,
    use_opaque: bool,
    registry: &FramebufferRegistry,
) -> Result<DmabufFramebuffer, ExportError> {
    let mut handles: Vec<GemHandle> = Vec::new();
    let mut plane_handles = [None; 4];
    for (i, fd) in dmabuf.handles().enumerate().take(4) {
        let handle = match drm.prime_fd_to_buffer(fd) {
            Ok(h) => h,
            Err(source) => {
                close_all(drm, &handles);
                return Err(ExportError::Import { plane: i, source });
            }
        };
        // Planes in one dma-buf come back as one handle; close it once.
        if !handles.contains(&handle) {
            handles.push(handle);
        }
        plane_handles[i] = Some(handle);
    }
    match add_framebuffer(
        drm,
        dmabuf,
        plane_handles,
        use_opaque,
        registry,
        handles.clone(),
    ) {
        Ok(fb) => Ok(fb),
        Err(e) => {
            close_all(drm, &handles);
            Err(e)
        }
    }
}

fn close_all(drm: &DrmDeviceFd, handles: &[GemHandle]) {
    for h in handles {
        let _ = drm.close_buffer(*h);
    }
}

/// Adds a framebuffer for `dmabuf` whose planes are the GEM handles `plane_handles` on `drm`;
/// the framebuffer closes `owned` when it drops.
fn add_framebuffer(
    drm: &DrmDeviceFd,
    dmabuf: &Dmabuf,
    plane_handles: [Option<GemHandle>; 4],
    use_opaque: bool,
    registry: &FramebufferRegistry,
    owned: Vec<GemHandle>,
) -> Result<DmabufFramebuffer, ExportError> {
    let format = dmabuf.format();
    let fourcc = if use_opaque {
        get_opaque(format.code).unwrap_or(format.code)
    } else {
        format.code
    };
    let mut planes = FramebufferPlanes {
        size: (dmabuf.width(), dmabuf.height()),
        format: fourcc,
        modifier: Some(format.modifier),
        handles: plane_handles,
        pitches: [0; 4],
        offsets: [0; 4],
    };
    for (i, (offset, stride)) in dmabuf.offsets().zip(dmabuf.strides()).enumerate().take(4) {
        planes.pitches[i] = stride;
        planes.offsets[i] = offset;
    }
    let flags = if format.modifier == DrmModifier::Invalid {
        planes.modifier = None;
        FbCmd2Flags::empty()
    } else {
        FbCmd2Flags::MODIFIERS
    };
    let fb = drm
        .add_planar_framebuffer(&planes, flags)
        .map_err(|source| ExportError::AddFb {
            format: fourcc,
            modifier: format.modifier,
            width: planes.size.0,
            height: planes.size.1,
            source,
        })?;
    let handles: Vec<GemHandle> = plane_handles.iter().flatten().copied().collect();
    log::debug!("dma-buf {fourcc:?} -> framebuffer {fb:?} (GEM {handles:?})");
    if let Ok(mut r) = registry.lock() {
        r.insert(u32::from(fb), handles);
    }
    Ok(DmabufFramebuffer {
        registry: registry.clone(),
        drm: drm.clone(),
        fb,
        format: DrmFormat {
            code: fourcc,
            modifier: format.modifier,
        },
        owned,
        client: None,
    })
}

/// A framebuffer for a swapchain buffer on the GEM handle of cenalloc-drm's import of it (the
/// same open file as `drm`); `None` if the buffer has no such import.
fn framebuffer_for_swapchain(
    drm: &DrmDeviceFd,
    buffer: &CenallocBuffer,
    dmabuf: &Dmabuf,
    use_opaque: bool,
    registry: &FramebufferRegistry,
) -> Option<Result<DmabufFramebuffer, ExportError>> {
    let import = buffer
        .shared()
        .imports()
        .iter()
        .find_map(|i| i.downcast_ref::<DrmImport>())?;
    let gem = GemHandle::from(NonZeroU32::new(import.gem_handle())?);
    // One dma-buf: every plane lives in the one GEM object.
    let mut plane_handles = [None; 4];
    for slot in plane_handles.iter_mut().take(dmabuf.num_planes().min(4)) {
        *slot = Some(gem);
    }
    Some(add_framebuffer(
        drm,
        dmabuf,
        plane_handles,
        use_opaque,
        registry,
        Vec::new(),
    ))
}

impl ExportFramebuffer<CenallocBuffer> for CenallocExporter {
    type Framebuffer = DmabufFramebuffer;
    type Error = ExportError;

    fn add_framebuffer(
        &self,
        _drm: &DrmDeviceFd,
        buffer: ExportBuffer<'_, CenallocBuffer>,
        use_opaque: bool,
    ) -> Result<Option<DmabufFramebuffer>, ExportError> {
        match buffer {
            ExportBuffer::Allocator(buffer) => {
                let dmabuf = buffer.export()?;
                framebuffer_for_swapchain(&self.drm, buffer, &dmabuf, use_opaque, &self.registry)
                    .unwrap_or_else(|| {
                        framebuffer_for_dmabuf(&self.drm, &dmabuf, use_opaque, &self.registry)
                    })
                    .map(Some)
            }
            ExportBuffer::Wayland(wl_buffer) => match get_dmabuf(wl_buffer) {
                Ok(dmabuf) => {
                    let mut fb =
                        framebuffer_for_dmabuf(&self.drm, dmabuf, use_opaque, &self.registry)?;
                    self.clients.add(fb.owned.len());
                    fb.client = Some(self.clients.clone());
                    Ok(Some(fb))
                }
                Err(_) => Ok(None),
            },
        }
    }

    fn can_add_framebuffer(&self, buffer: &ExportBuffer<'_, CenallocBuffer>) -> bool {
        match buffer {
            ExportBuffer::Allocator(_) => true,
            ExportBuffer::Wayland(wl_buffer) => get_dmabuf(wl_buffer).is_ok(),
        }
    }
}
