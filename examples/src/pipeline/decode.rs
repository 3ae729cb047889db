//! The zero-copy decoder → display loop: vicodec's stateful decoder writes frames into a pool
//! of buffers imported into the decoder and the display, which scans them out as they are.
//! The FWHT stream it decodes is made first by vicodec's stateful encoder from a generated
//! pattern.

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{
    Allocator, Buffer, BufferRequest, CpuAccess, Fourcc, Importer, Plan, Pool, PooledBuffer, Usage,
};
use cenalloc_drm::DrmDevice;
use cenalloc_v4l2::{
    Device, Direction, PixelFormat, StatefulDecoder, StatefulEncoder, V4l2Importer,
};
use drm::control::framebuffer;

use crate::pipeline::camera::FrameSink;
use crate::pipeline::frames::{shared_frames, SharedFrames};
use crate::pipeline::PipelineError;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Pixel (x, y) of generated frame `n`, as XRGB8888: colour gradients with a bar moving right.
pub fn pattern(n: u32, x: u32, y: u32, width: u32) -> u32 {
    let bar = (n * 16) % width;
    if x >= bar && x < bar + 32 {
        return 0x00ff_ffff;
    }
    let r = (x * 255 / width.max(1)) & 0xff;
    let g = (y * 255 / 480) & 0xff;
    let b = (n * 8) & 0xff;
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

/// Encodes `frames` generated XRGB8888 frames of `size` with vicodec's stateful encoder
/// (`encoder`) and returns one FWHT bitstream chunk per frame.
pub fn encode_pattern(
    allocator: &Allocator,
    encoder: Arc<Device>,
    (width, height): (u32, u32),
    frames: u32,
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
    let stride = input.layout().planes[0].stride as usize;
    let mut chunks = Vec::new();
    for n in 0..frames {
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

/// A stateful decoder and a display sharing a pool of XRGB8888 buffers.
pub struct DecodeToDisplay {
    decoder: StatefulDecoder,
    frames: Vec<PooledBuffer>,
    framebuffers: Vec<framebuffer::Handle>,
    bitstream: Vec<Buffer>,
    chunks: Vec<Vec<u8>>,
    pool: Pool,
    size: (u32, u32),
    /// With [`DecodeToDisplay::measure_fidelity`]: PSNR in dB of each shown frame against the
    /// pattern it was encoded from.
    pub psnr: Option<Vec<f64>>,
}

impl DecodeToDisplay {
    /// Starts decoding `chunks` on `decoder`: queues the first, waits for the stream's format,
    /// asks for XR24 frames, lets cenalloc plan for decoder + display and gives the decoder a
    /// pool of `buffers` buffers imported into both.
    pub fn new(
        allocator: &Allocator,
        decoder: Arc<Device>,
        display: &DrmDevice,
        (width, height): (u32, u32),
        chunks: Vec<Vec<u8>>,
        buffers: u32,
        usage: Usage,
    ) -> Result<DecodeToDisplay, PipelineError> {
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
        let SharedFrames {
            frames,
            framebuffers,
            pool,
        } = shared_frames(
            allocator,
            &decoder,
            display,
            (width, height),
            buffers,
            Usage::VIDEO_DECODE | usage,
            "decode-to-display",
        )?;
        let plain: Vec<Buffer> = frames.iter().map(|f| f.buffer().clone()).collect();
        dec.start_capture(&plain)?;
        Ok(DecodeToDisplay {
            decoder: dec,
            frames,
            framebuffers,
            bitstream,
            chunks,
            pool,
            size: (width, height),
            psnr: None,
        })
    }

    /// Also compares every shown frame with the pattern it was encoded from (a CPU read after
    /// the frame is on screen; FWHT is lossy, so the result is a PSNR).
    pub fn measure_fidelity(&mut self) {
        self.psnr = Some(Vec::new());
    }

    /// The plan every frame buffer follows.
    pub fn plan(&self) -> &Plan {
        self.pool.plan()
    }

    /// Decodes every chunk and shows each decoded frame: DQBUF → show → QBUF the frame shown
    /// before. Returns the number of frames shown.
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
            let Some(buffer) = self.frames.get(index).map(|f| f.buffer().clone()) else {
                return Err(stopped(format!("dequeued unknown buffer index {index}")));
            };
            if d.is_error() || d.bytesused.first().copied().unwrap_or(0) == 0 {
                log::warn!("{name}: frame {} empty or corrupted; dropped", d.sequence);
                self.decoder.requeue_frame(d.index, &buffer)?;
                continue;
            }
            sink.show(self.framebuffers[index], &buffer)?;
            if let Some(psnr) = &mut self.psnr {
                psnr.push(fidelity(&buffer, frames, self.size)?);
            }
            if let Some(prev) = shown.replace(d.index) {
                let prev_buffer = self.frames[prev as usize].buffer().clone();
                self.decoder.requeue_frame(prev, &prev_buffer)?;
            }
            frames += 1;
        }
        Ok(frames)
    }
}

/// PSNR in dB of the 24 colour bits of `buffer` against generated frame `n`.
fn fidelity(buffer: &Buffer, n: u32, (width, height): (u32, u32)) -> Result<f64, PipelineError> {
    let map = buffer.map(CpuAccess::Read)?;
    let stride = buffer.layout().planes[0].stride as usize;
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
