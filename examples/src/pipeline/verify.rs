//! Reading displayed frames back through the vkms writeback connector and comparing them with
//! what the producer wrote. In vkms 6.12 the virtual connector and the writeback connector
//! cannot share the CRTC, so in this mode the writeback connector alone drives it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cenalloc::{
    Allocator, Buffer, BufferRequest, CpuAccess, Fourcc, Importer, SharedBuffer, Usage,
};
use cenalloc_drm::writeback::Writeback;
use cenalloc_drm::DrmDevice;
use drm::control::framebuffer;

use crate::pipeline::camera::{framebuffer_of, FrameSink};
use crate::pipeline::PipelineError;

/// Shows frames on the writeback connector's CRTC and checks each read-back frame bit-exact
/// against the source buffer: XRGB8888 frames by their 24 colour bits (the X byte is
/// undefined), RGB565 frames by the XRGB8888 colour vkms widens each pixel to. Each frame
/// is shown at a mode of its own size: when frames change size, the read-back targets follow.
pub struct Verifier {
    allocator: Allocator,
    display: DrmDevice,
    writeback: Writeback,
    targets: Vec<(SharedBuffer, framebuffer::Handle)>,
    next: usize,
    size: (u32, u32),
    /// Frames compared.
    pub checked: u32,
    /// Frames that matched.
    pub matched: u32,
    snapshots: Option<PathBuf>,
    snapshot_every: u32,
    /// Snapshot files written.
    pub written: Vec<PathBuf>,
}

impl Verifier {
    /// Sets up the writeback connector of `display` and two XRGB8888 target buffers of `size`.
    /// With `snapshots`, every `snapshot_every`-th read-back frame is written there as PNG.
    pub fn new(
        allocator: &Allocator,
        display: &DrmDevice,
        size: (u32, u32),
        snapshots: Option<PathBuf>,
        snapshot_every: u32,
    ) -> Result<Verifier, PipelineError> {
        let writeback = Writeback::new(display)?;
        if let Some(dir) = &snapshots {
            std::fs::create_dir_all(dir).map_err(|source| PipelineError::Io {
                what: dir.display().to_string(),
                source,
            })?;
        }
        let targets = targets(allocator, display, &writeback, size)?;
        Ok(Verifier {
            allocator: allocator.clone(),
            display: display.clone(),
            writeback,
            targets,
            next: 0,
            size,
            checked: 0,
            matched: 0,
            snapshots,
            snapshot_every: snapshot_every.max(1),
            written: Vec::new(),
        })
    }

    /// The verifier a pipeline program's options ask for: frames of `--size`, and with
    /// `--snapshots DIR` a snapshot of every quarter of `--frames`.
    pub fn for_options(
        allocator: &Allocator,
        display: &DrmDevice,
        opts: &crate::pipeline::args::Options,
    ) -> Result<Verifier, PipelineError> {
        let every = (opts.frames / 4).max(1);
        Verifier::new(allocator, display, opts.size, opts.snapshots.clone(), every)
    }

    /// Prints the path of every snapshot written.
    pub fn print_snapshots(&self) {
        for p in &self.written {
            println!("snapshot {}", p.display());
        }
    }

    /// Shows `fb` at the size of `frame`, reads the CRTC's output back and compares it with
    /// `frame`.
    pub fn check(
        &mut self,
        fb: framebuffer::Handle,
        frame: &Buffer,
    ) -> Result<bool, PipelineError> {
        let size = (frame.layout().width(), frame.layout().height());
        if size != self.size {
            // Replaced only once the new ones exist: an error leaves the verifier usable.
            self.targets = targets(&self.allocator, &self.display, &self.writeback, size)?;
            self.next = 0;
            self.size = size;
        }
        let (target, target_fb) = &self.targets[self.next];
        self.next = (self.next + 1) % self.targets.len();
        self.writeback
            .capture(fb, *target_fb, self.size, Duration::from_secs(10))?;
        let (w, h) = (self.size.0 as usize, self.size.1 as usize);
        let fourcc = frame.layout().fourcc();
        let (bytes_per_pixel, displayed_as) = match fourcc {
            Some(Fourcc::Xrgb8888) => (4, xrgb8888_colour as fn(&[u8]) -> [u8; 3]),
            Some(Fourcc::Rgb565) => (2, rgb565_colour as fn(&[u8]) -> [u8; 3]),
            other => {
                return Err(PipelineError::Setup(format!(
                    "{}: frames of {other:?} cannot be verified (XRGB8888 and RGB565 can)",
                    self.display.name()
                )))
            }
        };
        let src = frame.map(CpuAccess::Read)?;
        let dst = target.buffer().map(CpuAccess::Read)?;
        let (ss, ds) = (
            frame.layout().planes()[0].stride as usize,
            target.buffer().layout().planes()[0].stride as usize,
        );
        let mut differing = 0usize;
        let mut first = None;
        for y in 0..h {
            let a = &src.as_slice()[y * ss..y * ss + w * bytes_per_pixel];
            let b = &dst.as_slice()[y * ds..y * ds + w * 4];
            for (x, (pa, pb)) in a
                .chunks_exact(bytes_per_pixel)
                .zip(b.chunks_exact(4))
                .enumerate()
            {
                let want = displayed_as(pa);
                if want != pb[..3] {
                    differing += 1;
                    first.get_or_insert((x, y, want, [pb[0], pb[1], pb[2]]));
                }
            }
        }
        let index = self.checked;
        self.checked += 1;
        if let Some((x, y, want, got)) = first {
            log::error!(
                "frame {index}: {differing} pixels differ; first at ({x},{y}): captured BGR {want:?}, displayed {got:?}"
            );
        } else {
            self.matched += 1;
        }
        if let Some(dir) = &self.snapshots {
            if index.is_multiple_of(self.snapshot_every) {
                let path = dir.join(format!("frame-{index:03}.png"));
                crate::pipeline::snapshot::write_xrgb_png(&path, dst.as_slice(), self.size, ds)?;
                self.written.push(path);
            }
        }
        Ok(differing == 0)
    }
}

/// The B, G, R bytes vkms writes back for an XRGB8888 pixel: its own colour bytes (the X byte
/// is undefined).
fn xrgb8888_colour(px: &[u8]) -> [u8; 3] {
    [px[0], px[1], px[2]]
}

/// The B, G, R bytes vkms writes back (as XRGB8888) for an RGB565 pixel: each channel widened
/// to 8 bits, rounded to nearest. vkms composes in 16 bits per channel
/// (`drivers/gpu/drm/vkms/vkms_formats.c`, `RGB565_to_argb_u16`, then
/// `argb_u16_to_XRGB8888`: value × 65535 / max, rounded, then / 257, rounded); the
/// fixed-point error of the first step stays far from a rounding boundary of the second, so
/// the result is `round(value × 255 / max)` for every 5- and 6-bit value.
fn rgb565_colour(px: &[u8]) -> [u8; 3] {
    let v = u16::from_le_bytes([px[0], px[1]]) as u32;
    let widen = |c: u32, max: u32| ((c * 255 + max / 2) / max) as u8;
    [
        widen(v & 0x1f, 31),
        widen((v >> 5) & 0x3f, 63),
        widen(v >> 11, 31),
    ]
}

/// Two XRGB8888 read-back targets of `size` on `display`, which must offer a mode of that size
/// on its writeback connector.
fn targets(
    allocator: &Allocator,
    display: &DrmDevice,
    writeback: &Writeback,
    size: (u32, u32),
) -> Result<Vec<(SharedBuffer, framebuffer::Handle)>, PipelineError> {
    if !writeback.sizes().contains(&size) {
        return Err(PipelineError::Setup(format!(
            "{}: the writeback connector has no {}x{} mode",
            display.name(),
            size.0,
            size.1
        )));
    }
    let importers: Vec<Arc<dyn Importer>> = vec![Arc::new(display.clone())];
    let request = BufferRequest::image(
        size.0,
        size.1,
        Fourcc::Xrgb8888,
        Usage::SCANOUT | Usage::CPU_READ,
    )
    .with_name("writeback target");
    (0..2)
        .map(|_| {
            let shared = allocator.allocate_and_import(&request, &importers)?;
            let fb = framebuffer_of(&shared, display)?;
            Ok((shared, fb))
        })
        .collect()
}

impl FrameSink for Verifier {
    fn show(&mut self, fb: framebuffer::Handle, frame: &Buffer) -> Result<(), PipelineError> {
        self.check(fb, frame).map(|_| ())
    }
}
