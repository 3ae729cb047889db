//! The zero-copy camera → display loop: a pool of buffers imported into both devices, each
//! captured by the camera and scanned out as it is.

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{Allocator, Buffer, Plan, Pool, PooledBuffer, Usage};
use cenalloc_drm::DrmDevice;
use cenalloc_v4l2::{Device, Direction, Queue};
use drm::control::framebuffer;

use crate::pipeline::frames::{shared_frames, SharedFrames};
use crate::pipeline::resources::Footprint;
use crate::pipeline::PipelineError;

/// How long to wait for the camera's next frame before declaring it gone.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Where captured frames go: shown on a screen, or shown and read back.
pub trait FrameSink {
    /// Shows `fb` (the framebuffer of `frame`) at the frame's size, following a change of
    /// size from one frame to the next, and returns once the frame shown before it is no
    /// longer read by the display.
    fn show(&mut self, fb: framebuffer::Handle, frame: &Buffer) -> Result<(), PipelineError>;
}

/// Shows each frame at a mode of the frame's size (a new mode when the size changes).
impl FrameSink for crate::pipeline::screen::Screen {
    fn show(&mut self, fb: framebuffer::Handle, frame: &Buffer) -> Result<(), PipelineError> {
        let layout = frame.layout();
        self.resize((layout.width(), layout.height()))?;
        crate::pipeline::screen::Screen::show(self, fb)
    }
}

pub use crate::pipeline::frames::framebuffer_of;

/// A camera and a display sharing a pool of XRGB8888 buffers.
pub struct CameraToDisplay {
    // Field order is drop order: the V4L2 queue lets go of the buffers first, then the
    // buffers return to the pool, whose drop removes framebuffers and GEM handles.
    queue: Queue,
    frames: Vec<PooledBuffer>,
    framebuffers: Vec<framebuffer::Handle>,
    pool: Pool,
    camera: Arc<Device>,
    display: DrmDevice,
    /// What the pipeline held after its first [`WARM_UP_FRAMES`] frames and after its last one
    /// (frame number, footprint): a steady pipeline holds the same at both.
    pub footprints: Vec<(u32, Footprint)>,
}

/// Frames after which a pipeline has allocated all it will: its footprint is taken there and
/// at the end.
pub const WARM_UP_FRAMES: u32 = 100;

impl CameraToDisplay {
    /// Sets the camera to XR24 at `size`, lets cenalloc plan for camera + display, allocates
    /// `buffers` buffers imported into both and gives them to the camera's queue. `usage`
    /// adds to camera write + scanout (e.g. CPU read when frames are verified).
    pub fn new(
        allocator: &Allocator,
        camera: Arc<Device>,
        display: &DrmDevice,
        (width, height): (u32, u32),
        buffers: u32,
        usage: Usage,
    ) -> Result<CameraToDisplay, PipelineError> {
        let SharedFrames {
            frames,
            framebuffers,
            pool,
        } = shared_frames(
            allocator,
            &camera,
            display,
            (width, height),
            buffers,
            Usage::CAMERA_WRITE | usage,
            "camera-to-display",
        )?;
        let mut queue = Queue::new(camera.clone(), Direction::Capture)?;
        let granted = queue.request_dmabuf(buffers)?;
        if granted != buffers {
            return Err(PipelineError::Setup(format!(
                "{}: asked for {buffers} V4L2 buffers, the driver granted {granted}",
                camera.display_name()
            )));
        }
        Ok(CameraToDisplay {
            queue,
            frames,
            framebuffers,
            pool,
            camera,
            display: display.clone(),
            footprints: Vec::new(),
        })
    }

    /// The plan every buffer follows.
    pub fn plan(&self) -> &Plan {
        self.pool.plan()
    }

    /// How many buffers the pool has allocated in total.
    pub fn allocated(&self) -> usize {
        self.pool.allocated()
    }

    /// The pool's buffers, indexed like the V4L2 buffers.
    pub fn buffers(&self) -> impl Iterator<Item = &Buffer> {
        self.frames.iter().map(|f| f.buffer())
    }

    /// Streams `count` frames: DQBUF from the camera, show that buffer's framebuffer, QBUF
    /// the buffer shown before (the display has flipped away from it). No CPU touches pixels.
    /// `stop_camera_after` stops the camera's queue after that many frames, as a camera
    /// that goes away would. Returns the number of frames shown.
    pub fn run(
        &mut self,
        count: u32,
        sink: &mut dyn FrameSink,
        stop_camera_after: Option<u32>,
    ) -> Result<u32, PipelineError> {
        for (i, f) in self.frames.iter().enumerate() {
            self.queue.queue_buffer(i as u32, f.buffer(), &[])?;
        }
        self.queue.stream_on()?;
        let mut shown: Option<u32> = None;
        let mut frames = 0;
        while frames < count {
            if stop_camera_after == Some(frames) {
                log::warn!(
                    "stopping {} after {frames} frames (--stop-camera-after)",
                    self.camera.display_name()
                );
                self.queue.stream_off()?;
            }
            let stopped = |detail: String| PipelineError::ProducerStopped {
                device: self.camera.display_name(),
                frames,
                detail,
            };
            let d = match self.queue.dequeue(FRAME_TIMEOUT) {
                Ok(Some(d)) => d,
                Ok(None) => return Err(stopped(format!("no frame within {FRAME_TIMEOUT:?}"))),
                Err(e) => return Err(stopped(e.to_string())),
            };
            let index = d.index as usize;
            let Some(buffer) = self.frames.get(index).map(|f| f.buffer()) else {
                return Err(stopped(format!("dequeued unknown buffer index {index}")));
            };
            if d.is_error() {
                log::warn!("frame {} flagged as corrupted; dropped", d.sequence);
                self.queue
                    .queue_buffer(d.index, buffer, &[])
                    .map_err(|e| stopped(e.to_string()))?;
                continue;
            }
            sink.show(self.framebuffers[index], buffer)?;
            if let Some(prev) = shown.replace(d.index) {
                let prev_buffer = self.frames[prev as usize].buffer();
                // A camera that cannot take a buffer back (unplugged between DQBUF and
                // QBUF) has stopped delivering frames, as one whose DQBUF fails.
                self.queue
                    .queue_buffer(prev, prev_buffer, &[])
                    .map_err(|e| stopped(e.to_string()))?;
            }
            frames += 1;
            if frames == WARM_UP_FRAMES.min(count) || frames == count {
                self.footprints
                    .push((frames, Footprint::now(&self.display)));
            }
        }
        self.queue.stream_off()?;
        Ok(frames)
    }
}
