//! A three-device chain, camera → converter → display: the camera and the converter's OUTPUT
//! queue share one set of buffers, the converter's CAPTURE queue and the display another. Each
//! set is planned by cenalloc for its own pair of devices, so each hop gets the memory its two
//! devices can both use (a contiguous camera's hop comes from CMA even when the display's hop
//! does not need to). A memory-to-memory converter such as vim2m turns the camera's format
//! into one the display scans out; no CPU touches pixels.

use std::sync::Arc;

use cenalloc::{Allocator, Buffer, BufferRequest, CpuAccess, Fourcc, Importer, Plan, Pool};
use cenalloc::{PooledBuffer, Usage};
use cenalloc_drm::DrmDevice;
use cenalloc_v4l2::{Dequeued, Device, Direction, Queue, V4l2Importer};
use drm::control::framebuffer;

use crate::pipeline::camera::{FrameSink, FRAME_TIMEOUT};
use crate::pipeline::frames::{framebuffer_of, pool_of, set_exact_format};
use crate::pipeline::PipelineError;

/// The format the converter writes and the display scans out: vim2m's one output format that
/// KMS drivers commonly scan out (its others are 24-bit RGB, YUYV and Bayer).
pub const DISPLAY_FORMAT: Fourcc = Fourcc::Rgb565;

/// The three devices of a chain.
pub struct ChainDevices<'a> {
    /// The V4L2 camera (its capture queue).
    pub camera: Arc<Device>,
    /// The V4L2 memory-to-memory converter (both its queues).
    pub converter: Arc<Device>,
    /// The KMS display.
    pub display: &'a DrmDevice,
}

/// Camera → converter → display, each hop with its own pool.
pub struct CameraViaConverter {
    // Field order is drop order: the V4L2 queues let go of the buffers first, then the
    // buffers return to their pools, whose drop removes framebuffers and GEM handles.
    camera_queue: Queue,
    converter_input: Queue,
    converter_output: Queue,
    captured: Vec<PooledBuffer>,
    converted: Vec<PooledBuffer>,
    framebuffers: Vec<framebuffer::Handle>,
    camera_pool: Pool,
    display_pool: Pool,
    camera: Arc<Device>,
    converter: Arc<Device>,
    /// Converted frames whose pixels are the converter's conversion of the captured frame it
    /// read (counted by [`CameraViaConverter::run`] when asked to check conversions).
    pub conversions_matched: u32,
}

impl CameraViaConverter {
    /// Sets the camera's capture queue and the converter's OUTPUT queue to `camera_format`
    /// and the converter's CAPTURE queue to [`DISPLAY_FORMAT`], all at `size`; plans and
    /// allocates `buffers` buffers for each hop and gives them to the V4L2 queues. `usage`
    /// adds to both hops' usage (CPU reads when frames are verified).
    pub fn new(
        allocator: &Allocator,
        ChainDevices {
            camera,
            converter,
            display,
        }: ChainDevices<'_>,
        camera_format: Fourcc,
        size: (u32, u32),
        buffers: u32,
        usage: Usage,
    ) -> Result<CameraViaConverter, PipelineError> {
        if !converter.is_m2m() {
            return Err(PipelineError::Setup(format!(
                "{}: not a memory-to-memory device (it has no OUTPUT and CAPTURE queue pair)",
                converter.display_name()
            )));
        }
        let camera_side = V4l2Importer::new(camera.clone(), Direction::Capture);
        let converter_input = V4l2Importer::new(converter.clone(), Direction::Output);
        let converter_output = V4l2Importer::new(converter.clone(), Direction::Capture);
        // Each queue names the V4L2 code it would use; a format a queue does not list is a
        // typed error naming that device and queue.
        set_exact_format(
            &camera,
            Direction::Capture,
            camera_side.pixel_format_for(camera_format)?,
            size,
        )?;
        set_exact_format(
            &converter,
            Direction::Output,
            converter_input.pixel_format_for(camera_format)?,
            size,
        )?;
        set_exact_format(
            &converter,
            Direction::Capture,
            converter_output.pixel_format_for(DISPLAY_FORMAT)?,
            size,
        )?;
        // V4L2 has no usage for a converter's reads and writes; its queues' constraints come
        // from their direction. Both hops are written by a V4L2 capture queue.
        let (camera_pool, captured) = pool_of(
            allocator,
            BufferRequest::image(size.0, size.1, camera_format, Usage::CAMERA_WRITE | usage)
                .with_name("camera to converter"),
            vec![Arc::new(camera_side), Arc::new(converter_input)],
            buffers,
            &format!("{} and {}", camera.display_name(), converter.display_name()),
        )?;
        let display_side: Arc<dyn Importer> = Arc::new(display.clone());
        let (display_pool, converted) = pool_of(
            allocator,
            BufferRequest::image(
                size.0,
                size.1,
                DISPLAY_FORMAT,
                Usage::CAMERA_WRITE | Usage::SCANOUT | usage,
            )
            .with_name("converter to display"),
            vec![Arc::new(converter_output), display_side],
            buffers,
            &format!("{} and {}", converter.display_name(), display.name()),
        )?;
        let framebuffers = converted
            .iter()
            .map(|f| framebuffer_of(f, display))
            .collect::<Result<Vec<_>, _>>()?;
        let mut camera_queue = Queue::new(camera.clone(), Direction::Capture)?;
        let mut input_queue = Queue::new(converter.clone(), Direction::Output)?;
        let mut output_queue = Queue::new(converter.clone(), Direction::Capture)?;
        for (queue, dev) in [
            (&mut camera_queue, &camera),
            (&mut input_queue, &converter),
            (&mut output_queue, &converter),
        ] {
            let granted = queue.request_dmabuf(buffers)?;
            if granted != buffers {
                return Err(PipelineError::Setup(format!(
                    "{} ({:?} queue): asked for {buffers} V4L2 buffers, the driver granted \
                     {granted}",
                    dev.display_name(),
                    queue.direction()
                )));
            }
        }
        Ok(CameraViaConverter {
            camera_queue,
            converter_input: input_queue,
            converter_output: output_queue,
            captured,
            converted,
            framebuffers,
            camera_pool,
            display_pool,
            camera,
            converter,
            conversions_matched: 0,
        })
    }

    /// The plan of the camera → converter hop.
    pub fn camera_plan(&self) -> &Plan {
        self.camera_pool.plan()
    }

    /// The plan of the converter → display hop.
    pub fn display_plan(&self) -> &Plan {
        self.display_pool.plan()
    }

    /// Streams `count` frames: DQBUF from the camera, QBUF that buffer on the converter's
    /// OUTPUT queue, DQBUF the converted frame, give the captured buffer back to the camera,
    /// show the converted frame and QBUF the one shown before. With `check_conversions`, each
    /// converted frame is compared with the converter's conversion of the frame it read
    /// (counted in [`CameraViaConverter::conversions_matched`]). Returns the frames shown.
    pub fn run(
        &mut self,
        count: u32,
        sink: &mut dyn FrameSink,
        check_conversions: bool,
    ) -> Result<u32, PipelineError> {
        for (i, f) in self.captured.iter().enumerate() {
            self.camera_queue.queue_buffer(i as u32, f.buffer(), &[])?;
        }
        for (i, f) in self.converted.iter().enumerate() {
            self.converter_output
                .queue_buffer(i as u32, f.buffer(), &[])?;
        }
        self.converter_output.stream_on()?;
        self.converter_input.stream_on()?;
        self.camera_queue.stream_on()?;
        let mut shown: Option<u32> = None;
        let mut frames = 0;
        while frames < count {
            let captured = next(&mut self.camera_queue, &self.camera, frames)?;
            let input = &self.captured[captured.index as usize];
            if captured.is_error() {
                log::warn!("frame {} flagged as corrupted; dropped", captured.sequence);
                self.camera_queue
                    .queue_buffer(captured.index, input.buffer(), &[])?;
                continue;
            }
            self.converter_input.queue_buffer(
                captured.index,
                input.buffer(),
                &captured.bytesused,
            )?;
            let converted = next(&mut self.converter_output, &self.converter, frames)?;
            let read = next(&mut self.converter_input, &self.converter, frames)?;
            let (input, output) = (
                self.captured[read.index as usize].buffer(),
                self.converted[converted.index as usize].buffer(),
            );
            if check_conversions && is_conversion_of(output, input)? {
                self.conversions_matched += 1;
            }
            self.camera_queue.queue_buffer(read.index, input, &[])?;
            sink.show(self.framebuffers[converted.index as usize], output)?;
            if let Some(prev) = shown.replace(converted.index) {
                self.converter_output.queue_buffer(
                    prev,
                    self.converted[prev as usize].buffer(),
                    &[],
                )?;
            }
            frames += 1;
        }
        self.camera_queue.stream_off()?;
        self.converter_input.stream_off()?;
        self.converter_output.stream_off()?;
        Ok(frames)
    }
}

/// The next buffer `queue` is done with, or the error that `dev` stopped after `frames`.
fn next(queue: &mut Queue, dev: &Device, frames: u32) -> Result<Dequeued, PipelineError> {
    let direction = queue.direction();
    let stopped = |detail: String| PipelineError::ProducerStopped {
        device: format!("{} ({direction:?} queue)", dev.display_name()),
        frames,
        detail,
    };
    match queue.dequeue(FRAME_TIMEOUT) {
        Ok(Some(d)) if (d.index as usize) < queue.count() as usize => Ok(d),
        Ok(Some(d)) => Err(stopped(format!(
            "dequeued unknown buffer index {}",
            d.index
        ))),
        Ok(None) => Err(stopped(format!("no frame within {FRAME_TIMEOUT:?}"))),
        Err(e) => Err(stopped(e.to_string())),
    }
}

/// True when `output` (RGB565) holds vim2m's conversion of `input` (24-bit RGB, or RGB565),
/// pixel for pixel. vim2m copies a frame of its output format as it is (`device_process`);
/// converting, it keeps each channel's top bits and, when it writes RGB565, gives both pixels
/// of a pair the colour of the first (`drivers/media/test-drivers/vim2m.c`,
/// `copy_two_pixels`: its RGB565 writer never advances to the pair's second pixel).
fn is_conversion_of(output: &Buffer, input: &Buffer) -> Result<bool, PipelineError> {
    let (width, height) = (
        input.layout().width() as usize,
        input.layout().height() as usize,
    );
    let fourcc = input.layout().fourcc();
    let bytes_per_pixel = match fourcc {
        Some(Fourcc::Bgr888 | Fourcc::Rgb888) => 3,
        _ => 2,
    };
    let rgb = |px: &[u8]| -> [u8; 3] {
        match fourcc {
            Some(Fourcc::Bgr888) => [px[0], px[1], px[2]],
            Some(Fourcc::Rgb888) => [px[2], px[1], px[0]],
            _ => {
                let v = u16::from_le_bytes([px[0], px[1]]);
                [(v >> 8) as u8 & 0xf8, (v >> 3) as u8 & 0xfc, (v << 3) as u8]
            }
        }
    };
    let src = input.map(CpuAccess::Read)?;
    let dst = output.map(CpuAccess::Read)?;
    let (ss, ds) = (
        input.layout().planes()[0].stride as usize,
        output.layout().planes()[0].stride as usize,
    );
    let mut differing = 0usize;
    for y in 0..height {
        let a = &src.as_slice()[y * ss..][..width * bytes_per_pixel];
        let b = &dst.as_slice()[y * ds..][..width * 2];
        for (x, pb) in b.chunks_exact(2).enumerate() {
            let source = if fourcc == Some(DISPLAY_FORMAT) {
                x
            } else {
                x & !1
            } * bytes_per_pixel;
            let [r, g, b] = rgb(&a[source..source + bytes_per_pixel]);
            let want =
                (u16::from(r) << 8) & 0xf800 | (u16::from(g) << 3) & 0x07e0 | u16::from(b) >> 3;
            if want.to_le_bytes() != pb {
                differing += 1;
            }
        }
    }
    if differing > 0 {
        log::error!("{differing} converted pixels are not the conversion of the captured frame");
    }
    Ok(differing == 0)
}
