//! The zero-copy decoder → display loop: vicodec's stateful decoder writes frames into a pool
//! of buffers imported into the decoder and the display, which scans them out as they are.
//! The FWHT stream it decodes is made first by vicodec's stateful encoder from a generated
//! pattern, optionally changing resolution partway; at such a change the loop plans and
//! allocates a new pool at the new size and the display follows with a new mode.

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{Allocator, Buffer, BufferRequest, CpuAccess, Fourcc, Importer, Plan, Usage};
use cenalloc_drm::DrmDevice;
use cenalloc_v4l2::{
    Device, Direction, LastBuffer, PixelFormat, QueueFormat, StatefulDecoder, StatefulEncoder,
    V4l2Importer,
};

use crate::pipeline::camera::FrameSink;
use crate::pipeline::frames::{shared_frames, SharedFrames};
use crate::pipeline::{plan_text, PipelineError};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Pixel (x, y) of generated frame `n`, as XRGB8888: colour gradients over a still 4×4
/// checkerboard, with a bar moving right. The checkerboard gives the encoder blocks that are
/// cheaper to code from the frame before than on their own, so the stream has P-frames.
pub fn pattern(n: u32, x: u32, y: u32, width: u32) -> u32 {
    let bar = (n * 16) % width;
    if x >= bar && x < bar + 32 {
        return 0x00ff_ffff;
    }
    let texture = if (x / 4 + y / 4).is_multiple_of(2) {
        32
    } else {
        0
    };
    let channel = |v: u32| (v & 0xff).saturating_add(texture).min(0xff);
    let r = channel(x * 255 / width.max(1));
    let g = channel(y * 255 / 480);
    let b = channel(n * 8);
    (r << 16) | (g << 8) | b
}

fn blob(
    allocator: &Allocator,
    importer: &Arc<dyn Importer>,
    size: u64,
    usage: Usage,
) -> Result<Buffer, PipelineError> {
    Ok(allocator
        .allocate_and_import(
            &BufferRequest::blob(size, usage),
            std::slice::from_ref(importer),
        )?
        .buffer()
        .clone())
}

/// Encodes generated XRGB8888 frames number `frames` of `size` with vicodec's stateful
/// encoder (`encoder`) and returns one FWHT bitstream chunk per frame.
pub fn encode_pattern(
    allocator: &Allocator,
    encoder: Arc<Device>,
    (width, height): (u32, u32),
    frames: std::ops::Range<u32>,
) -> Result<Vec<Vec<u8>>, PipelineError> {
    let mut enc = StatefulEncoder::new(
        encoder.clone(),
        PixelFormat::XBGR32,
        width,
        height,
        PixelFormat::FWHT,
    )?;
    let raw: Arc<dyn Importer> = Arc::new(V4l2Importer::new(encoder.clone(), Direction::Output));
    let coded: Arc<dyn Importer> = Arc::new(V4l2Importer::new(encoder, Direction::Capture));
    let request = BufferRequest::image(
        width,
        height,
        Fourcc::Xrgb8888,
        Usage::VIDEO_ENCODE | Usage::CPU_WRITE,
    );
    let input = allocator
        .allocate_and_import(&request, std::slice::from_ref(&raw))?
        .buffer()
        .clone();
    let coded_size = u64::from(enc.coded_format().planes[0].sizeimage);
    let output = blob(allocator, &coded, coded_size, Usage::CPU_READ)?;
    enc.start(1, std::slice::from_ref(&output))?;
    let stride = input.layout().planes()[0].stride as usize;
    let mut chunks = Vec::new();
    for n in frames {
        {
            let mut map = input.map(CpuAccess::Write)?;
            let data = map.as_mut_slice();
            for y in 0..height {
                let row = &mut data[y as usize * stride..][..width as usize * 4];
                for (x, px) in row.chunks_exact_mut(4).enumerate() {
                    px.copy_from_slice(&pattern(n, x as u32, y, width).to_le_bytes());
                }
            }
        }
        enc.encode(0, &input)?;
        let d = enc.dequeue_bitstream(TIMEOUT)?.ok_or_else(|| {
            PipelineError::Setup(format!("the encoder gave no bitstream for frame {n}"))
        })?;
        let bytes = d.bytesused[0] as usize;
        {
            let map = output.map(CpuAccess::Read)?;
            chunks.push(map.as_slice()[..bytes].to_vec());
        }
        enc.dequeue_frame(TIMEOUT)?.ok_or_else(|| {
            PipelineError::Setup(format!("the encoder did not return raw frame {n}"))
        })?;
        enc.requeue_bitstream(d.index, &output)?;
    }
    Ok(chunks)
}

/// What a decode → display loop starts from, stateful ([`DecodeToDisplay`]) or stateless
/// ([`crate::pipeline::stateless::StatelessDecodeToDisplay`]).
pub struct DecodeSetup<'a> {
    /// The allocator that plans and allocates the frames.
    pub allocator: &'a Allocator,
    /// The decoder's video node.
    pub decoder: Arc<Device>,
    /// The display the frames are shown on.
    pub display: &'a DrmDevice,
    /// The coded frames' width and height.
    pub size: (u32, u32),
    /// FWHT frames as vicodec's encoder wrote them, one per chunk.
    pub chunks: Vec<Vec<u8>>,
    /// How many frames the decoder and the display share.
    pub buffers: u32,
    /// Usage added to the frames' request (e.g. CPU_READ for verification).
    pub usage: Usage,
}

/// A stateful decoder and a display sharing a pool of XRGB8888 buffers, planned and allocated
/// anew when the stream changes resolution.
pub struct DecodeToDisplay {
    // Field order is drop order: the decoder's queues let go of the buffers first.
    decoder: StatefulDecoder,
    shared: SharedFrames,
    /// Frames of the sizes before a resolution change, kept until a frame of the new size is
    /// on screen: the display may still be scanning one of them out.
    retired: Vec<SharedFrames>,
    bitstream: Vec<Buffer>,
    chunks: Vec<Vec<u8>>,
    allocator: Allocator,
    display: DrmDevice,
    buffers: u32,
    usage: Usage,
    /// With [`DecodeToDisplay::measure_fidelity`]: PSNR in dB of each shown frame against the
    /// pattern it was encoded from.
    pub psnr: Option<Vec<f64>>,
    /// The stream's resolution changes, in order.
    pub changes: Vec<ResolutionChange>,
}

/// A resolution change the decode loop followed.
#[derive(Debug, Clone)]
pub struct ResolutionChange {
    /// Frames shown before it.
    pub after_frames: u32,
    /// The new frame size.
    pub size: (u32, u32),
    /// The plan of the new pool, as [`plan_text`] prints it.
    pub plan: String,
}

impl DecodeToDisplay {
    /// Starts decoding the setup's chunks on its decoder (`size` is a hint; the stream
    /// decides): queues the first, waits for the stream's format, asks for XR24 frames of its
    /// size, lets cenalloc plan for decoder + display and gives the decoder a pool of
    /// `buffers` buffers imported into both.
    pub fn new(setup: DecodeSetup<'_>) -> Result<DecodeToDisplay, PipelineError> {
        let DecodeSetup {
            allocator,
            decoder,
            display,
            size: (width, height),
            chunks,
            buffers,
            usage,
        } = setup;
        let first = chunks
            .first()
            .ok_or_else(|| PipelineError::Setup("no bitstream to decode".into()))?;
        let mut dec = StatefulDecoder::new(decoder.clone(), PixelFormat::FWHT, width, height, 2)?;
        let bs_importer: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(decoder.clone(), Direction::Output));
        let largest = chunks.iter().map(Vec::len).max().unwrap_or(0) as u64;
        let size = u64::from(dec.output_format()?.planes[0].sizeimage).max(largest);
        let bitstream = (0..2)
            .map(|_| {
                blob(
                    allocator,
                    &bs_importer,
                    size,
                    Usage::VIDEO_DECODE | Usage::CPU_WRITE,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        write_chunk(&bitstream[0], first)?;
        dec.queue_bitstream(0, &bitstream[0], first.len() as u32)?;
        let stream = dec.wait_source_change(TIMEOUT)?;
        log::info!("decoder CAPTURE format after SOURCE_CHANGE: {stream:?}");
        let usage = Usage::VIDEO_DECODE | usage;
        let shared = decoded_frames(allocator, &mut dec, display, &stream, buffers, usage)?;
        Ok(DecodeToDisplay {
            decoder: dec,
            shared,
            retired: Vec::new(),
            bitstream,
            chunks,
            allocator: allocator.clone(),
            display: display.clone(),
            buffers,
            usage,
            psnr: None,
            changes: Vec::new(),
        })
    }

    /// Also compares every shown frame with the pattern it was encoded from (a CPU read after
    /// the frame is on screen; FWHT is lossy, so the result is a PSNR).
    pub fn measure_fidelity(&mut self) {
        self.psnr = Some(Vec::new());
    }

    /// The plan every frame buffer of the current size follows.
    pub fn plan(&self) -> &Plan {
        self.shared.pool.plan()
    }

    /// Follows a resolution change to `format` after `shown` frames: frees the decoder's
    /// CAPTURE buffers, plans and allocates frames of the new size for decoder + display and
    /// restarts the decoder's CAPTURE queue with them. The old frames are kept (one may be on
    /// screen) until a new one is shown.
    fn follow(&mut self, format: &QueueFormat, shown: u32) -> Result<(), PipelineError> {
        self.decoder.release_capture()?;
        let next = decoded_frames(
            &self.allocator,
            &mut self.decoder,
            &self.display,
            format,
            self.buffers,
            self.usage,
        )?;
        self.retired.push(std::mem::replace(&mut self.shared, next));
        let change = ResolutionChange {
            after_frames: shown,
            size: (format.width, format.height),
            plan: plan_text(self.plan()),
        };
        log::info!("resolution change: {change:?}");
        self.changes.push(change);
        Ok(())
    }

    /// Decodes every chunk and shows each decoded frame: DQBUF → show → QBUF the frame shown
    /// before; at a resolution change (a buffer flagged LAST with a source-change event), new
    /// frames of the new size. Returns the number of frames shown.
    pub fn run(&mut self, sink: &mut dyn FrameSink) -> Result<u32, PipelineError> {
        let name = self.decoder.device().display_name();
        let total = self.chunks.len() as u32;
        // Slot 0 holds chunk 0 (queued in `new`); slot 1 is free.
        let mut free_slots = vec![1u32];
        let mut next_chunk = 1usize;
        let mut shown: Option<u32> = None;
        let mut frames = 0;
        while frames < total {
            while next_chunk < self.chunks.len() {
                let Some(slot) = free_slots.pop() else {
                    break;
                };
                let chunk = &self.chunks[next_chunk];
                write_chunk(&self.bitstream[slot as usize], chunk)?;
                self.decoder.queue_bitstream(
                    slot,
                    &self.bitstream[slot as usize],
                    chunk.len() as u32,
                )?;
                next_chunk += 1;
            }
            while let Some(d) = self.decoder.dequeue_bitstream(Duration::ZERO)? {
                free_slots.push(d.index);
            }
            let stopped = |detail: String| PipelineError::ProducerStopped {
                device: name.clone(),
                frames,
                detail,
            };
            let d = match self.decoder.dequeue_frame(Duration::from_millis(200)) {
                Ok(Some(d)) => d,
                Ok(None) if free_slots.is_empty() => {
                    // Wait for the decoder to consume bitstream instead.
                    if let Some(b) = self.decoder.dequeue_bitstream(TIMEOUT)? {
                        free_slots.push(b.index);
                        continue;
                    }
                    return Err(stopped(format!(
                        "no frame and no bitstream back within {TIMEOUT:?}"
                    )));
                }
                Ok(None) if next_chunk < self.chunks.len() => continue,
                Ok(None) => match self.decoder.dequeue_frame(TIMEOUT) {
                    Ok(Some(d)) => d,
                    Ok(None) => return Err(stopped(format!("no frame within {TIMEOUT:?}"))),
                    Err(e) => return Err(stopped(e.to_string())),
                },
                Err(e) => return Err(stopped(e.to_string())),
            };
            let index = d.index as usize;
            let Some(buffer) = self.shared.frames.get(index).map(|f| f.buffer().clone()) else {
                return Err(stopped(format!("dequeued unknown buffer index {index}")));
            };
            let empty = d.bytesused.first().copied().unwrap_or(0) == 0;
            if !d.is_error() && !empty {
                sink.show(self.shared.framebuffers[index], &buffer)?;
                // No frame of an older size is on screen any more.
                self.retired.clear();
                if let Some(psnr) = &mut self.psnr {
                    psnr.push(fidelity(&buffer, frames)?);
                }
                if let Some(prev) = shown.replace(d.index) {
                    let prev_buffer = self.shared.frames[prev as usize].buffer().clone();
                    self.decoder.requeue_frame(prev, &prev_buffer)?;
                }
                frames += 1;
            } else if !d.is_last() {
                log::warn!("{name}: frame {} empty or corrupted; dropped", d.sequence);
                self.decoder.requeue_frame(d.index, &buffer)?;
                continue;
            }
            if d.is_last() {
                match self.decoder.after_last(TIMEOUT)? {
                    LastBuffer::ResolutionChange(format) => {
                        self.follow(&format, frames)?;
                        // The frame on screen belongs to the old queue.
                        shown = None;
                    }
                    LastBuffer::Drained if frames == total => break,
                    // Nothing asked the decoder to drain: it ended the stream early.
                    LastBuffer::Drained => {
                        return Err(PipelineError::ProducerStopped {
                            device: name.clone(),
                            frames,
                            detail: format!(
                                "the decoder signalled the end of the stream (drained) after \
                                 {frames} of {total} frames without being asked to drain"
                            ),
                        })
                    }
                }
            }
        }
        Ok(frames)
    }
}

/// Sets up frames for the decoder's CAPTURE `format` (XR24 at its size) shared with `display`
/// and starts the decoder's CAPTURE queue with them.
fn decoded_frames(
    allocator: &Allocator,
    decoder: &mut StatefulDecoder,
    display: &DrmDevice,
    format: &QueueFormat,
    buffers: u32,
    usage: Usage,
) -> Result<SharedFrames, PipelineError> {
    let shared = shared_frames(
        allocator,
        decoder.device(),
        display,
        (format.width, format.height),
        buffers,
        usage,
        "decode-to-display",
    )?;
    let plain: Vec<Buffer> = shared.frames.iter().map(|f| f.buffer().clone()).collect();
    decoder.start_capture(&plain)?;
    Ok(shared)
}

/// PSNR in dB of the 24 colour bits of `buffer` (at its own size) against generated frame `n`.
pub fn fidelity(buffer: &Buffer, n: u32) -> Result<f64, PipelineError> {
    let (width, height) = (buffer.layout().width(), buffer.layout().height());
    let map = buffer.map(CpuAccess::Read)?;
    let stride = buffer.layout().planes()[0].stride as usize;
    let mut sum = 0f64;
    for y in 0..height {
        let row = &map.as_slice()[y as usize * stride..][..width as usize * 4];
        for (x, px) in row.chunks_exact(4).enumerate() {
            let want = pattern(n, x as u32, y, width).to_le_bytes();
            for c in 0..3 {
                let d = f64::from(px[c]) - f64::from(want[c]);
                sum += d * d;
            }
        }
    }
    let mse = sum / (f64::from(width) * f64::from(height) * 3.0);
    Ok(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    })
}

fn write_chunk(buffer: &Buffer, chunk: &[u8]) -> Result<(), PipelineError> {
    let mut map = buffer.map(CpuAccess::Write)?;
    map.as_mut_slice()[..chunk.len()].copy_from_slice(chunk);
    Ok(())
}
