//! The frames a V4L2 producer's capture queue (camera, decoder) writes and a display scans out:
//! XR24 set on the queue, one cenalloc plan for both devices, a pool of buffers imported into
//! both, and each buffer's display framebuffer.

use std::sync::Arc;

use cenalloc::{Allocator, BufferRequest, Fourcc, Importer, Pool, PooledBuffer, Usage};
use cenalloc_drm::{DrmDevice, DrmImport};
use cenalloc_v4l2::{Device, Direction, PixelFormat, V4l2Importer};
use drm::control::framebuffer;

use crate::pipeline::PipelineError;

/// A pool of frames shared by a producer and a display, all acquired.
pub struct SharedFrames {
    /// The acquired frames, in pool order.
    pub frames: Vec<PooledBuffer>,
    /// The display's framebuffer of each frame.
    pub framebuffers: Vec<framebuffer::Handle>,
    /// The pool (and its plan).
    pub pool: Pool,
}

/// Sets `producer`'s capture queue to XR24 at `width`×`height` (refusing a driver that changes
/// either), lets cenalloc plan for producer + display with `usage`, and acquires `count`
/// buffers imported into both. `name` names the buffers.
pub fn shared_frames(
    allocator: &Allocator,
    producer: &Arc<Device>,
    display: &DrmDevice,
    (width, height): (u32, u32),
    count: u32,
    usage: Usage,
    name: &str,
) -> Result<SharedFrames, PipelineError> {
    set_exact_format(
        producer,
        Direction::Capture,
        PixelFormat::XBGR32,
        (width, height),
    )?;
    let importers: Vec<Arc<dyn Importer>> = vec![
        Arc::new(V4l2Importer::new(producer.clone(), Direction::Capture)),
        Arc::new(display.clone()),
    ];
    let request = BufferRequest::image(width, height, Fourcc::Xrgb8888, Usage::SCANOUT | usage)
        .with_name(name);
    let devices = format!("{} and {}", producer.display_name(), display.name());
    let (pool, frames) = pool_of(allocator, request, importers, count, &devices)?;
    let framebuffers = frames
        .iter()
        .map(|f| framebuffer_of(f, display))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SharedFrames {
        frames,
        framebuffers,
        pool,
    })
}

/// Sets `dev`'s `dir` queue to `format` at `width`×`height`, refusing a driver that changes
/// the format or the size.
pub fn set_exact_format(
    dev: &Device,
    dir: Direction,
    format: PixelFormat,
    (width, height): (u32, u32),
) -> Result<(), PipelineError> {
    let fmt = dev.set_format(dir, format, width, height)?;
    if fmt.pixelformat != format || (fmt.width, fmt.height) != (width, height) {
        return Err(PipelineError::Setup(format!(
            "{} ({dir:?} queue): asked for {format} {width}x{height}, the driver set {} {}x{}",
            dev.display_name(),
            fmt.pixelformat,
            fmt.width,
            fmt.height
        )));
    }
    Ok(())
}

/// A pool planned for `importers` (named `devices` in errors) with `count` buffers acquired.
pub fn pool_of(
    allocator: &Allocator,
    request: BufferRequest,
    importers: Vec<Arc<dyn Importer>>,
    count: u32,
    devices: &str,
) -> Result<(Pool, Vec<PooledBuffer>), PipelineError> {
    let pool = Pool::new(allocator, request, importers, count as usize)?;
    let frames = (0..count)
        .map(|i| {
            pool.acquire().map_err(|source| PipelineError::Allocation {
                index: i + 1,
                count,
                devices: devices.to_owned(),
                source: Box::new(source),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((pool, frames))
}

/// The framebuffer a display made when `shared` was imported into it.
pub fn framebuffer_of(
    shared: &cenalloc::SharedBuffer,
    display: &DrmDevice,
) -> Result<framebuffer::Handle, PipelineError> {
    shared
        .import_for(display.name())
        .and_then(|i| i.downcast_ref::<DrmImport>())
        .and_then(DrmImport::framebuffer)
        .ok_or_else(|| {
            PipelineError::Setup(format!(
                "{}: the buffer was imported without a framebuffer",
                display.name()
            ))
        })
}
