//! What a libgbm user does for a scanout buffer: gbm_bo_create(SCANOUT | LINEAR) on the KMS
//! device, gbm_bo_get_fd, then PRIME import + ADDFB2 on the display's fd. Mesa picks the DRI
//! driver by the kernel driver's name; vkms has none, so libgbm falls back to kms_swrast
//! (dumb buffers), which is what runs in the guest.

use std::path::Path;

use drm::control::Device as _;

use cenalloc_raw_ioctl::Card;

/// A GBM device on its own fd of a KMS node.
pub struct Gbm {
    device: gbm::Device<Card>,
}

impl std::fmt::Debug for Gbm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gbm")
    }
}

impl Gbm {
    /// gbm_create_device on a new fd of `path`.
    pub fn open(path: &Path) -> std::io::Result<Gbm> {
        Ok(Gbm {
            device: gbm::Device::new(Card::open(path, false)?)?,
        })
    }

    /// The backend libgbm loaded (`drm` for Mesa's DRI backend).
    pub fn backend(&self) -> String {
        self.device.backend_name().to_owned()
    }

    /// One full cycle: create, export, import into `display` with a framebuffer, release.
    /// With `touch`, every page is written once through a mapping of the dma-buf first (a
    /// dumb buffer gets its pages only then).
    pub fn scanout_cycle(
        &self,
        display: &Card,
        width: u32,
        height: u32,
        touch: bool,
    ) -> Result<(), String> {
        let bo = self
            .device
            .create_buffer_object::<()>(
                width,
                height,
                gbm::Format::Xrgb8888,
                gbm::BufferObjectFlags::SCANOUT | gbm::BufferObjectFlags::LINEAR,
            )
            .map_err(|e| format!("gbm_bo_create: {e}"))?;
        let fd = if touch {
            // gbm_bo_get_fd exports read-only (DRM_CLOEXEC alone), which cannot be mapped
            // for writing: export the same GEM object with DRM_RDWR instead.
            let handle = drm::buffer::Buffer::handle(&bo);
            let fd = self
                .device
                .buffer_to_prime_fd(
                    handle,
                    (rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC).bits(),
                )
                .map_err(|e| format!("PRIME_HANDLE_TO_FD (DRM_RDWR): {e}"))?;
            let len = bo.stride() as usize * height as usize;
            cenalloc_raw_ioctl::dmabuf::touch_pages(std::os::fd::AsFd::as_fd(&fd), len)
                .map_err(|e| format!("touching the GBM buffer: {e}"))?;
            fd
        } else {
            bo.fd().map_err(|e| format!("gbm_bo_get_fd: {e}"))?
        };
        let import = display
            .import(std::os::fd::AsFd::as_fd(&fd), width, height, bo.stride())
            .map_err(|e| format!("PRIME import + ADDFB2 of the GBM buffer: {e}"))?;
        display
            .release(import)
            .map_err(|e| format!("RMFB / GEM_CLOSE: {e}"))?;
        Ok(())
    }
}
