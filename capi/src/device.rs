//! `cenalloc_device`: one device that will use the buffers (a DRM node, or one queue of a V4L2
//! node), with the usage it has for them. For a V4L2 queue it also keeps the queue, so that C
//! code can hand it buffers by index.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cenalloc::{Importer, Usage};
use cenalloc_drm::DrmDevice;
use cenalloc_v4l2::{Direction, Queue, V4l2Importer};
use rustix::io::Errno;

use crate::error::CError;

/// A device as the C API holds it.
pub struct Device {
    /// Its name, as plans and errors name it.
    pub name: CString,
    /// How it uses the buffers.
    pub usage: Usage,
    /// Its cenalloc importer.
    pub importer: Arc<dyn Importer>,
    /// What kind of device it is.
    pub kind: DeviceKind,
}

/// The device behind a [`Device`].
pub enum DeviceKind {
    /// A DRM node.
    Drm(DrmDevice),
    /// One queue of a V4L2 node.
    V4l2 {
        /// The node.
        device: Arc<cenalloc_v4l2::Device>,
        /// Which of its queues.
        direction: Direction,
        /// The queue, once buffers were requested on it.
        queue: Mutex<Option<Queue>>,
    },
}

/// A V4L2 device's queue slot, held locked, with its node and direction.
type LockedQueue<'a> = (
    MutexGuard<'a, Option<Queue>>,
    &'a Arc<cenalloc_v4l2::Device>,
    Direction,
);

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`, `..._OUTPUT`, `..._CAPTURE_MPLANE`, `..._OUTPUT_MPLANE`.
const VIDEO_CAPTURE: u32 = 1;
const VIDEO_OUTPUT: u32 = 2;
const VIDEO_CAPTURE_MPLANE: u32 = 9;
const VIDEO_OUTPUT_MPLANE: u32 = 10;

impl Device {
    /// The DRM node `name` names: a path (`/dev/dri/card1`) or a driver name (`vkms`).
    pub fn open_drm(name: &str, usage: u32) -> Result<Device, CError> {
        let usage = usage_of(usage)?;
        Ok(Device::drm(cenalloc_drm::device::open_named(name)?, usage))
    }

    /// The DRM node open on the caller's `fd`; cenalloc keeps its own duplicate of it.
    pub fn drm_from_fd(fd: BorrowedFd<'_>, usage: u32) -> Result<Device, CError> {
        let usage = usage_of(usage)?;
        let own = duplicate(fd)?;
        Ok(Device::drm(DrmDevice::from_fd(own)?, usage))
    }

    fn drm(dev: DrmDevice, usage: Usage) -> Device {
        Device {
            name: c_name(dev.name()),
            usage,
            importer: Arc::new(dev.clone()),
            kind: DeviceKind::Drm(dev),
        }
    }

    /// The queue `buf_type` of the V4L2 node `name` names: a path, a node name
    /// (`vivid-000-vid-cap`) or a card name (`vivid-000`, whose capture node is taken).
    pub fn open_v4l2(name: &str, buf_type: u32, usage: u32) -> Result<Device, CError> {
        let usage = usage_of(usage)?;
        let direction = direction_of(buf_type)?;
        let dev = cenalloc_v4l2::open_named(name).map_err(|e| match e {
            // The one refusal of a name: no node is called that.
            cenalloc::Error::Unsupported { detail, .. } => CError::new(Errno::NODEV, detail),
            other => CError::from(other),
        })?;
        Device::v4l2(Arc::new(dev), buf_type, direction, usage)
    }

    /// The queue `buf_type` of the V4L2 node open on the caller's `fd`; cenalloc keeps its own
    /// duplicate of it.
    pub fn v4l2_from_fd(fd: BorrowedFd<'_>, buf_type: u32, usage: u32) -> Result<Device, CError> {
        let usage = usage_of(usage)?;
        let direction = direction_of(buf_type)?;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap_or_else(|_| format!("fd {}", fd.as_raw_fd()).into());
        let own = duplicate(fd)?;
        let dev = cenalloc_v4l2::Device::from_fd(own, path)?;
        Device::v4l2(Arc::new(dev), buf_type, direction, usage)
    }

    fn v4l2(
        dev: Arc<cenalloc_v4l2::Device>,
        buf_type: u32,
        direction: Direction,
        usage: Usage,
    ) -> Result<Device, CError> {
        match dev.buf_type(direction) {
            Some(t) if t == buf_type => {}
            Some(t) => {
                return Err(CError::invalid(format!(
                    "{}: its {direction:?} queue has buffer type {t}, not {buf_type}",
                    dev.display_name()
                )))
            }
            None => {
                return Err(CError::new(
                    Errno::NOTSUP,
                    format!("{}: no video {direction:?} queue", dev.display_name()),
                ))
            }
        }
        Ok(Device {
            name: c_name(&dev.display_name()),
            usage,
            importer: Arc::new(V4l2Importer::new(dev.clone(), direction)),
            kind: DeviceKind::V4l2 {
                device: dev,
                direction,
                queue: Mutex::new(None),
            },
        })
    }

    /// The device's fd (cenalloc's own).
    pub fn raw_fd(&self) -> i32 {
        match &self.kind {
            DeviceKind::Drm(d) => d.as_fd().as_raw_fd(),
            DeviceKind::V4l2 { device, .. } => device.fd().as_raw_fd(),
        }
    }

    /// The DRM node, or an error naming this device when it is not one.
    pub fn as_drm(&self) -> Result<&DrmDevice, CError> {
        match &self.kind {
            DeviceKind::Drm(d) => Ok(d),
            DeviceKind::V4l2 { .. } => Err(CError::invalid(format!(
                "{} is a V4L2 device, not a DRM device",
                self.name.to_string_lossy()
            ))),
        }
    }

    /// The V4L2 queue (held locked) and its node, or an error when this is not a V4L2 device
    /// or `need_buffers` and no buffers were requested yet.
    fn queue(&self, need_buffers: bool) -> Result<LockedQueue<'_>, CError> {
        let DeviceKind::V4l2 {
            device,
            direction,
            queue,
        } = &self.kind
        else {
            return Err(CError::invalid(format!(
                "{} is a DRM device, not a V4L2 queue",
                self.name.to_string_lossy()
            )));
        };
        let guard = queue.lock().unwrap_or_else(|p| p.into_inner());
        if need_buffers && guard.is_none() {
            return Err(CError::invalid(format!(
                "{}: no buffers requested on its {direction:?} queue yet (cenalloc_v4l2_request_buffers)",
                device.display_name()
            )));
        }
        Ok((guard, device, *direction))
    }

    /// Sets up `count` DMABUF buffer slots on the V4L2 queue (VIDIOC_REQBUFS); returns how
    /// many the driver granted. A count of 0 frees them.
    pub fn request_buffers(&self, count: u32) -> Result<u32, CError> {
        let (mut queue, device, direction) = self.queue(false)?;
        if queue.is_none() {
            *queue = Some(Queue::new(device.clone(), direction)?);
        }
        let q = queue.as_mut().ok_or_else(|| CError::invalid("no queue"))?;
        Ok(q.request_dmabuf(count)?)
    }

    /// Queues `buffer` in slot `index` (VIDIOC_QBUF with its dma-buf).
    pub fn queue_buffer(&self, index: u32, buffer: &cenalloc::Buffer) -> Result<(), CError> {
        let (mut queue, _, _) = self.queue(true)?;
        let q = queue.as_mut().ok_or_else(|| CError::invalid("no queue"))?;
        Ok(q.queue_buffer(index, buffer, &[])?)
    }

    /// Starts (`on`) or stops streaming on the queue.
    pub fn stream(&self, on: bool) -> Result<(), CError> {
        let (mut queue, _, _) = self.queue(true)?;
        let q = queue.as_mut().ok_or_else(|| CError::invalid("no queue"))?;
        if on {
            Ok(q.stream_on()?)
        } else {
            Ok(q.stream_off()?)
        }
    }

    /// Waits up to `timeout` for a buffer the driver is done with; its (index, V4L2 flags).
    pub fn dequeue(&self, timeout: Duration) -> Result<(u32, u32), CError> {
        let (mut queue, device, _) = self.queue(true)?;
        let q = queue.as_mut().ok_or_else(|| CError::invalid("no queue"))?;
        match q.dequeue(timeout)? {
            Some(d) => Ok((d.index, d.flags)),
            None => Err(CError::new(
                Errno::TIMEDOUT,
                format!(
                    "{}: no buffer within {} ms",
                    device.display_name(),
                    timeout.as_millis()
                ),
            )),
        }
    }
}

/// The usage flags `bits` (`CENALLOC_USAGE_*`), refusing unknown bits.
fn usage_of(bits: u32) -> Result<Usage, CError> {
    Usage::from_bits(bits).ok_or_else(|| {
        CError::invalid(format!(
            "usage {bits:#x} has unknown bits {:#x}",
            bits & !Usage::all().bits()
        ))
    })
}

fn direction_of(buf_type: u32) -> Result<Direction, CError> {
    match buf_type {
        VIDEO_CAPTURE | VIDEO_CAPTURE_MPLANE => Ok(Direction::Capture),
        VIDEO_OUTPUT | VIDEO_OUTPUT_MPLANE => Ok(Direction::Output),
        other => Err(CError::invalid(format!(
            "V4L2 buffer type {other} is not a video capture or output type"
        ))),
    }
}

/// cenalloc's own duplicate of the caller's fd (close-on-exec); the caller keeps theirs.
fn duplicate(fd: BorrowedFd<'_>) -> Result<std::os::fd::OwnedFd, CError> {
    fd.try_clone_to_owned().map_err(|e| CError {
        errno: e.raw_os_error().unwrap_or(Errno::BADF.raw_os_error()),
        message: format!("fd {}: {e}", fd.as_raw_fd()),
    })
}

fn c_name(name: &str) -> CString {
    CString::new(name.replace('\0', "")).unwrap_or_default()
}
