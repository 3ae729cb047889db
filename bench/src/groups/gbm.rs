//! Group `gbm`: a vkms scanout buffer made by cenalloc against the same made by libgbm.

use std::sync::Arc;

use cenalloc::{BufferRequest, Importer, Usage};
use cenalloc_raw_ioctl::{dmabuf, Card};

use crate::context::{size_label, xrgb, Bench, Res};
use crate::gbm_path::Gbm;
use crate::measure::Op;
use crate::report::Target;

impl Bench {
    /// A 1920x1080 vkms scanout buffer from libgbm and from cenalloc, untouched and with every
    /// page written; cenalloc's targets: no slower than libgbm.
    pub fn group_gbm(&mut self) -> Res<()> {
        let group = "vkms scanout buffer: cenalloc vs libgbm";
        let (w, h) = (1920, 1080);
        let case = size_label(w, h);
        let gbm = Gbm::open(&self.vkms_path).map_err(|e| {
            format!("gbm_create_device on vkms: {e} (Mesa has no GBM driver for vkms here)")
        })?;
        let display_raw = Card::open(&self.vkms_path, true).map_err(|e| e.to_string())?;
        let display: Arc<dyn Importer> = Arc::new(self.vkms.clone());
        let a = self.allocator.clone();
        let importers = vec![display];
        // Display-only (vkms allocates, as with GBM) and declared CPU-written (system heap).
        let display_only = xrgb(w, h, Usage::SCANOUT);
        let cpu_written = xrgb(w, h, Usage::SCANOUT | Usage::CPU_WRITE);
        let cenalloc_cycle = |request: &BufferRequest, touch: bool| -> Res<()> {
            let shared = a
                .allocate_and_import(request, &importers)
                .map_err(|e| format!("allocate_and_import: {e}"))?;
            if touch {
                let b = shared.buffer();
                dmabuf::touch_pages(b.fd(), b.layout().size() as usize)
                    .map_err(|e| format!("touching the cenalloc buffer: {e}"))?;
            }
            Ok(())
        };
        let timings = {
            let mut ops: Vec<Op<'_>> = vec![
                Box::new(|| gbm.scanout_cycle(&display_raw, w, h, false)),
                Box::new(|| cenalloc_cycle(&display_only, false)),
                Box::new(|| gbm.scanout_cycle(&display_raw, w, h, true)),
                Box::new(|| cenalloc_cycle(&cpu_written, true)),
                Box::new(|| cenalloc_cycle(&display_only, true)),
            ];
            self.time(&mut ops).map_err(|e| {
                format!(
                    "{e} (libgbm backend {:?}, vkms has no Mesa driver of its own)",
                    gbm.backend()
                )
            })?
        };
        let names = [
            "libgbm",
            "cenalloc allocate_and_import",
            "libgbm, every page written",
            "cenalloc CPU_WRITE, every page written",
            "cenalloc display-only, every page written",
        ];
        self.record(group, &case, &names, timings);
        self.ratio(&case, names[1], names[0], Some(Target::AtMost(1.0)));
        self.ratio(&case, names[3], names[2], Some(Target::AtMost(1.0)));
        self.ratio(&case, names[4], names[2], None);
        self.notes.push(format!(
            "libgbm backend: {:?} (GBM_BACKEND={:?}); vkms has no Mesa DRI driver, so \
             libgbm's DRI backend falls back to kms_swrast (dumb buffers)",
            gbm.backend(),
            std::env::var("GBM_BACKEND").ok()
        ));
        Ok(())
    }
}
