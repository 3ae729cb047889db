//! The zero-copy stateless decoder → display loop: vicodec's stateless decoder, driven through
//! the media request API, writes frames into a pool of buffers imported into the decoder and
//! the display; each decoded frame is shown as it is and stays the reference of the next.

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{Buffer, BufferRequest, CpuAccess, Importer, Plan, Usage};
use cenalloc_v4l2::fwht::Frame;
use cenalloc_v4l2::{Direction, PixelFormat, StatelessFwhtDecoder, V4l2Importer};

use crate::pipeline::camera::FrameSink;
use crate::pipeline::decode::{fidelity, DecodeSetup};
use crate::pipeline::frames::{framebuffer_of, pool_of, SharedFrames};
use crate::pipeline::PipelineError;

const TIMEOUT: Duration = Duration::from_secs(10);

/// OUTPUT slots for coded data: one frame is decoded while the next is written.
const CODED_SLOTS: u32 = 2;

/// A stateless decoder and a display sharing a pool of XRGB8888 frames.
pub struct StatelessDecodeToDisplay {
    // Field order is drop order: the decoder's queues let go of the buffers first.
    decoder: StatelessFwhtDecoder,
    shared: SharedFrames,
    coded: Vec<Buffer>,
    chunks: Vec<Vec<u8>>,
    /// With [`StatelessDecodeToDisplay::measure_fidelity`]: PSNR in dB of each shown frame
    /// against the pattern it was encoded from.
    pub psnr: Option<Vec<f64>>,
    /// How many of the frames shown were intra frames (the others were decoded from a
    /// reference frame kept in the pool).
    pub intra_frames: u32,
}

impl StatelessDecodeToDisplay {
    /// Opens a stateless session on the setup's decoder for its chunks (all of `size`), lets
    /// cenalloc plan for decoder + display and gives the decoder `buffers` frames imported
    /// into both (at least 2: the frame on screen is the next frame's reference).
    pub fn new(setup: DecodeSetup<'_>) -> Result<StatelessDecodeToDisplay, PipelineError> {
        let DecodeSetup {
            allocator,
            decoder,
            display,
            size,
            chunks,
            buffers,
            usage,
        } = setup;
        let mut dec = StatelessFwhtDecoder::new(
            decoder.clone(),
            PixelFormat::XBGR32,
            size.0,
            size.1,
            CODED_SLOTS,
        )?;
        let importers: Vec<Arc<dyn Importer>> = vec![
            Arc::new(V4l2Importer::new(decoder.clone(), Direction::Capture)),
            Arc::new(display.clone()),
        ];
        let request = BufferRequest::image(
            size.0,
            size.1,
            cenalloc::Fourcc::Xrgb8888,
            Usage::VIDEO_DECODE | Usage::SCANOUT | usage,
        )
        .with_name("stateless-decode-to-display");
        let devices = format!("{} and {}", decoder.display_name(), display.name());
        let (pool, frames) = pool_of(allocator, request, importers, buffers, &devices)?;
        let framebuffers = frames
            .iter()
            .map(|f| framebuffer_of(f, display))
            .collect::<Result<Vec<_>, _>>()?;
        let coded_importer: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(decoder.clone(), Direction::Output));
        let coded_size = u64::from(dec.output_format()?.planes[0].sizeimage);
        let coded = (0..CODED_SLOTS)
            .map(|_| {
                Ok(allocator
                    .allocate_and_import(
                        &BufferRequest::blob(coded_size, Usage::VIDEO_DECODE | Usage::CPU_WRITE),
                        std::slice::from_ref(&coded_importer),
                    )?
                    .buffer()
                    .clone())
            })
            .collect::<Result<Vec<_>, PipelineError>>()?;
        let plain: Vec<Buffer> = frames.iter().map(|f| f.buffer().clone()).collect();
        dec.start(&plain)?;
        Ok(StatelessDecodeToDisplay {
            decoder: dec,
            shared: SharedFrames {
                frames,
                framebuffers,
                pool,
            },
            coded,
            chunks,
            psnr: None,
            intra_frames: 0,
        })
    }

    /// Also compares every shown frame with the pattern it was encoded from (a CPU read after
    /// the frame is on screen; FWHT is lossy, so the result is a PSNR).
    pub fn measure_fidelity(&mut self) {
        self.psnr = Some(Vec::new());
    }

    /// The plan every frame buffer follows.
    pub fn plan(&self) -> &Plan {
        self.shared.pool.plan()
    }

    /// The media device the decoder's requests come from.
    pub fn media_device(&self) -> String {
        self.decoder.media().path().display().to_string()
    }

    /// Decodes every chunk, one request per frame, and shows each decoded frame: the frame
    /// shown before is given back to the decoder only once the frame that references it is
    /// decoded. Returns the number of frames shown.
    pub fn run(&mut self, sink: &mut dyn FrameSink) -> Result<u32, PipelineError> {
        let name = self.decoder.device().display_name();
        let mut shown: Option<u32> = None;
        let mut frames = 0;
        for (n, chunk) in self.chunks.iter().enumerate() {
            let frame = Frame::parse(chunk)?;
            log::debug!("FWHT frame {n}: {:?}", frame.header);
            let slot = (n % self.coded.len()) as u32;
            {
                let coded = &self.coded[slot as usize];
                let mut map = coded.map(CpuAccess::Write)?;
                let target = map
                    .as_mut_slice()
                    .get_mut(..frame.data.len())
                    .ok_or_else(|| {
                        PipelineError::Setup(format!(
                            "FWHT frame {n}: {} bytes of coded data, more than the {}-byte OUTPUT \
                         buffer",
                            frame.data.len(),
                            coded.layout().size()
                        ))
                    })?;
                target.copy_from_slice(frame.data);
            }
            self.decoder
                .decode(slot, &self.coded[slot as usize], &frame.header)?;
            self.decoder.finish(slot, TIMEOUT)?;
            let stopped = |detail: String| PipelineError::ProducerStopped {
                device: name.clone(),
                frames,
                detail,
            };
            let d = self
                .decoder
                .dequeue_frame(TIMEOUT)?
                .ok_or_else(|| stopped(format!("no decoded frame within {TIMEOUT:?}")))?;
            let index = d.index as usize;
            let Some(buffer) = self.shared.frames.get(index).map(|f| f.buffer().clone()) else {
                return Err(stopped(format!("dequeued unknown buffer index {index}")));
            };
            if d.is_error() {
                return Err(stopped(format!(
                    "frame {n} ({}) flagged as corrupted",
                    if frame.header.is_intra() {
                        "intra"
                    } else {
                        "P-frame"
                    }
                )));
            }
            sink.show(self.shared.framebuffers[index], &buffer)?;
            if let Some(psnr) = &mut self.psnr {
                psnr.push(fidelity(&buffer, n as u32)?);
            }
            if frame.header.is_intra() {
                self.intra_frames += 1;
            }
            // The frame shown before is off screen now, and the frame just decoded (its only
            // reader) is done with it.
            if let Some(prev) = shown.replace(d.index) {
                let prev_buffer = self.shared.frames[prev as usize].buffer().clone();
                self.decoder.requeue_frame(prev, &prev_buffer)?;
            }
            frames += 1;
        }
        Ok(frames)
    }
}
