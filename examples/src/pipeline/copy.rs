//! What users do without cenalloc, for comparison: the camera fills its own MMAP buffers, the
//! CPU copies each frame into a dumb buffer of the display, which shows it.

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{Buffer, CpuAccess, Fourcc, Mapping, SourceChoice, SourceKind};
use cenalloc_drm::{DrmDevice, DrmImport};
use cenalloc_v4l2::{Device, Direction, PixelFormat, Queue};

use crate::pipeline::screen::Screen;
use crate::pipeline::PipelineError;

/// Runs the copy loop for `count` frames at `size` with `buffers` MMAP buffers and two dumb
/// buffers, mapped once for the whole run. `measure` is called once the loop is streaming
/// (before the first frame) and once after the last, to bracket the steady state.
pub fn run_copy_loop(
    camera: Arc<Device>,
    display: &DrmDevice,
    (width, height): (u32, u32),
    buffers: u32,
    count: u32,
    measure: &mut dyn FnMut(),
) -> Result<u32, PipelineError> {
    let fmt = camera.set_format(Direction::Capture, PixelFormat::XBGR32, width, height)?;
    let cam_stride = fmt.planes[0].bytesperline as usize;
    let mut queue = Queue::new(camera.clone(), Direction::Capture)?;
    let exported = queue.request_exported(buffers)?;
    let layout = |stride: u64, size: u64| {
        let plane = cenalloc::PlaneLayout {
            offset: 0,
            stride,
            size,
        };
        let modifier = cenalloc::Modifier::LINEAR;
        cenalloc::Layout::new(
            Some(Fourcc::Xrgb8888),
            width,
            height,
            modifier,
            &[plane],
            size,
        )
    };
    let source = |name: &str| SourceChoice {
        kind: SourceKind::Device,
        name: name.to_owned(),
        path: None,
    };
    let cam_buffers = exported
        .into_iter()
        .map(|mut planes| {
            let fd = planes.remove(0);
            let size = u64::from(fmt.planes[0].sizeimage);
            Buffer::from_fd(fd, layout(cam_stride as u64, size)?, source("camera MMAP"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dumb = (0..2)
        .map(|_| {
            let e = cenalloc_drm::export::export_dumb(display, width, height, Fourcc::Xrgb8888)?;
            let buffer = Buffer::from_export(e, source("dumb"), None);
            let import = display.import_buffer(&buffer)?;
            Ok((buffer, import))
        })
        .collect::<Result<Vec<(Buffer, DrmImport)>, PipelineError>>()?;
    let fbs = dumb
        .iter()
        .map(|(_, i)| {
            i.framebuffer()
                .ok_or_else(|| PipelineError::Setup("dumb buffer without framebuffer".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cam_maps = cam_buffers
        .iter()
        .map(|b| b.map(CpuAccess::Read))
        .collect::<Result<Vec<Mapping>, _>>()?;
    let mut dumb_maps = dumb
        .iter()
        .map(|(b, _)| b.map(CpuAccess::Write))
        .collect::<Result<Vec<Mapping>, _>>()?;
    let dumb_stride = dumb[0].0.layout().planes()[0].stride as usize;
    let mut screen = Screen::new(display, (width, height))?;
    for i in 0..queue.count() {
        queue.queue_exported(i, &[])?;
    }
    queue.stream_on()?;
    measure();
    let row = width as usize * 4;
    let mut back = 0;
    for frames in 0..count {
        let d = queue.dequeue(Duration::from_secs(5))?.ok_or_else(|| {
            PipelineError::ProducerStopped {
                device: camera.display_name(),
                frames,
                detail: "no frame within 5 s".into(),
            }
        })?;
        let src = cam_maps[d.index as usize].as_slice();
        let dst = dumb_maps[back].as_mut_slice();
        if cam_stride == dumb_stride {
            let n = cam_stride * height as usize;
            dst[..n].copy_from_slice(&src[..n]);
        } else {
            for y in 0..height as usize {
                dst[y * dumb_stride..][..row].copy_from_slice(&src[y * cam_stride..][..row]);
            }
        }
        queue.queue_exported(d.index, &[])?;
        screen.show(fbs[back])?;
        back ^= 1;
    }
    measure();
    queue.stream_off()?;
    drop(screen);
    drop(dumb_maps);
    drop(cam_maps);
    Ok(count)
}
