//! One V4L2 queue of a device, fed with cenalloc buffers (`V4L2_MEMORY_DMABUF`), or with
//! driver-allocated buffers exported as dma-bufs (`V4L2_MEMORY_MMAP` + VIDIOC_EXPBUF).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cenalloc::{Buffer, ConstraintKind, Error, Result};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::device::{Device, Direction, QueueFormat};
use crate::request::Request;
use crate::sys;

/// A buffer handed back by the driver (VIDIOC_DQBUF).
#[derive(Debug)]
pub struct Dequeued {
    /// Index of the V4L2 buffer.
    pub index: u32,
    /// `V4L2_BUF_FLAG_*`.
    pub flags: u32,
    /// Bytes used per memory plane.
    pub bytesused: Vec<u32>,
    /// Driver's frame sequence number.
    pub sequence: u32,
    /// The cenalloc buffer that was queued at this index (`None` for MMAP queues).
    pub buffer: Option<Buffer>,
}

impl Dequeued {
    /// The driver marked this as the last buffer before a drain or resolution change.
    pub fn is_last(&self) -> bool {
        self.flags & sys::BUF_FLAG_LAST != 0
    }

    /// The driver marked the buffer as corrupted.
    pub fn is_error(&self) -> bool {
        self.flags & sys::BUF_FLAG_ERROR != 0
    }
}

/// One queue (capture or output) of a V4L2 device. Dropping it stops streaming and frees the
/// V4L2 buffers, which releases every dma-buf the driver still held.
#[derive(Debug)]
pub struct Queue {
    dev: Arc<Device>,
    dir: Direction,
    ty: u32,
    memory: u32,
    count: u32,
    slots: Vec<Option<Buffer>>,
    streaming: bool,
    format: Option<QueueFormat>,
}

impl Queue {
    /// The queue of `dev` in direction `dir`.
    pub fn new(dev: Arc<Device>, dir: Direction) -> Result<Queue> {
        let ty = dev.buf_type(dir).ok_or_else(|| Error::Unsupported {
            device: dev.display_name(),
            kind: ConstraintKind::Import,
            detail: format!("no video {dir:?} queue"),
        })?;
        Ok(Queue {
            dev,
            dir,
            ty,
            memory: sys::MEMORY_DMABUF,
            count: 0,
            slots: Vec::new(),
            streaming: false,
            format: None,
        })
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The direction.
    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// Number of V4L2 buffers allocated by the last request.
    pub fn count(&self) -> u32 {
        self.count
    }

    fn reqbufs(&mut self, count: u32, memory: u32) -> Result<u32> {
        let mut r = sys::RequestBuffers {
            count,
            type_: self.ty,
            memory,
            ..Default::default()
        };
        sys::reqbufs(self.dev.fd(), &mut r).map_err(|e| {
            Error::io(
                format!(
                    "{}: VIDIOC_REQBUFS({count}, {}) on {:?}",
                    self.dev.display_name(),
                    if memory == sys::MEMORY_DMABUF {
                        "DMABUF"
                    } else {
                        "MMAP"
                    },
                    self.dir
                ),
                e,
            )
        })?;
        self.memory = memory;
        self.count = r.count;
        self.slots = (0..r.count).map(|_| None).collect();
        Ok(r.count)
    }

    /// Allocates `count` V4L2 buffer slots for dma-bufs (VIDIOC_REQBUFS, V4L2_MEMORY_DMABUF)
    /// and remembers the queue's current format for checking buffers. Returns the number the
    /// driver granted.
    pub fn request_dmabuf(&mut self, count: u32) -> Result<u32> {
        self.format = Some(self.dev.format(self.dir)?);
        self.reqbufs(count, sys::MEMORY_DMABUF)
    }

    /// For drivers that must allocate themselves: allocates `count` buffers in the driver
    /// (V4L2_MEMORY_MMAP) and exports each memory plane as a dma-buf (VIDIOC_EXPBUF).
    pub fn request_exported(&mut self, count: u32) -> Result<Vec<Vec<OwnedFd>>> {
        let fmt = self.dev.format(self.dir)?;
        let n = self.reqbufs(count, sys::MEMORY_MMAP)?;
        let mut out = Vec::with_capacity(n as usize);
        for index in 0..n {
            let mut planes = Vec::new();
            for plane in 0..fmt.planes.len() as u32 {
                planes.push(
                    sys::expbuf(self.dev.fd(), self.ty, index, plane).map_err(|e| {
                        Error::io(
                            format!("{}: VIDIOC_EXPBUF {index}/{plane}", self.dev.display_name()),
                            e,
                        )
                    })?,
                );
            }
            out.push(planes);
        }
        self.format = Some(fmt);
        Ok(out)
    }

    /// Queues `buffer` at V4L2 index `index` (VIDIOC_QBUF). `bytesused` is the payload per
    /// memory plane for output queues (ignored for capture); on single-planar output queues
    /// vb2 refuses a payload larger than the previous buffer's length at that index (the
    /// sizeimage, the first time). The buffer is kept alive until it is dequeued or the queue
    /// is released. A refusal is a typed error: too small ([`ConstraintKind::Plane`]), not
    /// contiguous for a dma-contig driver ([`ConstraintKind::Contiguous`]), or
    /// [`Error::Import`] with the OS error.
    ///
    /// A single-buffer format uses the buffer's one dma-buf from offset 0. Each memory plane of
    /// a multi-buffer format (`NM12`, ...) gets its own dma-buf when the buffer has one per
    /// plane; otherwise every plane points into the one dma-buf at its layout offset through
    /// `data_offset`, which V4L2 honours only on output queues.
    pub fn queue_buffer(&mut self, index: u32, buffer: &Buffer, bytesused: &[u32]) -> Result<()> {
        let mut b = self.dmabuf_buffer(index, buffer, bytesused)?;
        self.submit(&mut b, buffer)
    }

    /// Queues `buffer` as [`Queue::queue_buffer`] does, but inside `request`: the driver
    /// takes it when the request is queued, with the request's controls. `timestamp` is
    /// copied to the CAPTURE buffer the frame is decoded into, which is how a stateless
    /// decoder's controls name reference frames.
    pub fn queue_in_request(
        &mut self,
        index: u32,
        buffer: &Buffer,
        bytesused: &[u32],
        request: &Request,
        timestamp: Duration,
    ) -> Result<()> {
        let mut b = self.dmabuf_buffer(index, buffer, bytesused)?;
        b.buf.flags |= sys::BUF_FLAG_REQUEST_FD;
        b.buf.request_fd = sys::raw(request);
        b.buf.timestamp = sys::Timeval {
            tv_sec: timestamp.as_secs() as i64,
            tv_usec: i64::from(timestamp.subsec_micros()),
        };
        self.submit(&mut b, buffer)
    }

    /// VIDIOC_QBUF of `b`; on success the queue keeps `buffer` alive until it is dequeued.
    fn submit(&mut self, b: &mut sys::BufferWithPlanes, buffer: &Buffer) -> Result<()> {
        let dev = &*self.dev;
        sys::qbuf(dev.fd(), b).map_err(|e| qbuf_error(dev, e))?;
        self.slots[b.buf.index as usize] = Some(buffer.clone());
        Ok(())
    }

    /// The `struct v4l2_buffer` that queues `buffer` at `index`, checked against the queue's
    /// format (see [`Queue::queue_buffer`]).
    fn dmabuf_buffer(
        &self,
        index: u32,
        buffer: &Buffer,
        bytesused: &[u32],
    ) -> Result<sys::BufferWithPlanes> {
        let dev = &*self.dev;
        if self.memory != sys::MEMORY_DMABUF || index >= self.count {
            return Err(Error::InvalidRequest(format!(
                "{}: no DMABUF slot {index} (have {})",
                dev.display_name(),
                self.count
            )));
        }
        let queried;
        let fmt = match &self.format {
            Some(f) => f,
            None => {
                queried = dev.format(self.dir)?;
                &queried
            }
        };
        let layout = buffer.layout();
        let mut b = sys::BufferWithPlanes::new(self.ty, sys::MEMORY_DMABUF, index);
        b.buf.field = sys::FIELD_NONE;
        let length =
            |size: u64| u32::try_from(size).map_err(|_| Error::Overflow(format!("{size} bytes")));
        if fmt.mplane {
            let n = fmt.planes.len();
            let separate = layout.has_separate_planes();
            if n > 1 && self.dir == Direction::Capture && !separate {
                return Err(Error::Incompatible {
                    device: dev.display_name(),
                    kind: ConstraintKind::Plane,
                    reason: format!(
                        "{} has {n} memory planes; capture queues cannot place planes at \
                         offsets inside one dma-buf (plan with the queue's importer: it asks \
                         for one dma-buf per plane)",
                        fmt.pixelformat
                    ),
                });
            }
            if separate && layout.planes().len() != n {
                return Err(Error::Incompatible {
                    device: dev.display_name(),
                    kind: ConstraintKind::Plane,
                    reason: format!(
                        "{} has {n} memory planes, the buffer {} dma-bufs",
                        fmt.pixelformat,
                        layout.dma_buf_sizes().len()
                    ),
                });
            }
            for (i, pf) in fmt.planes.iter().enumerate() {
                // Plane i's dma-buf: the buffer's one (plane i at its offset, for a
                // multi-buffer format), or the plane's own (from its start).
                let dma_buf = layout.dma_buf_of_plane(i);
                let dma_buf_size = layout.dma_buf_sizes()[dma_buf];
                let offset = if n > 1 {
                    layout.planes().get(i).map_or(0, |p| p.offset)
                } else {
                    0
                };
                let fd = buffer.plane_fd(i).unwrap_or(buffer.fd());
                check_plane_size(dev, i, dma_buf_size.saturating_sub(offset), pf.sizeimage)?;
                b.set_plane_fd(i, sys::raw(fd));
                b.planes[i].length = length(dma_buf_size)?;
                b.planes[i].data_offset = offset as u32;
                b.planes[i].bytesused = bytesused.get(i).copied().unwrap_or(0)
                    + if self.dir == Direction::Output {
                        offset as u32
                    } else {
                        0
                    };
            }
            b.buf.length = n as u32;
        } else {
            let size = layout.dma_buf_sizes()[0];
            if layout.has_separate_planes() {
                return Err(Error::Incompatible {
                    device: dev.display_name(),
                    kind: ConstraintKind::Plane,
                    reason: format!(
                        "{} on a single-planar queue takes every plane in one dma-buf; the \
                         buffer has one per plane",
                        fmt.pixelformat
                    ),
                });
            }
            check_plane_size(dev, 0, size, fmt.planes[0].sizeimage)?;
            b.set_fd(sys::raw(buffer.fd()));
            b.buf.length = length(size)?;
            b.buf.bytesused = bytesused.first().copied().unwrap_or(0);
        }
        Ok(b)
    }

    /// Queues an import made by [`crate::V4l2Importer`] (see [`Queue::queue_buffer`]).
    pub fn queue_import(
        &mut self,
        index: u32,
        import: &crate::V4l2Import,
        bytesused: &[u32],
    ) -> Result<()> {
        self.queue_buffer(index, import.buffer(), bytesused)
    }

    /// Queues the driver-allocated buffer `index` (MMAP queues, see
    /// [`Queue::request_exported`]); `bytesused` as in [`Queue::queue_buffer`].
    pub fn queue_exported(&mut self, index: u32, bytesused: &[u32]) -> Result<()> {
        let dev = &*self.dev;
        if self.memory != sys::MEMORY_MMAP || index >= self.count {
            return Err(Error::InvalidRequest(format!(
                "{}: no MMAP slot {index}",
                dev.display_name()
            )));
        }
        let mut b = sys::BufferWithPlanes::new(self.ty, sys::MEMORY_MMAP, index);
        b.buf.field = sys::FIELD_NONE;
        if b.is_mplane() {
            let n = self.format.as_ref().map_or(1, |f| f.planes.len());
            sys::querybuf(self.dev.fd(), &mut b).map_err(|e| {
                Error::io(
                    format!("{}: VIDIOC_QUERYBUF {index}", dev.display_name()),
                    e,
                )
            })?;
            b.buf.length = n as u32;
            for i in 0..n {
                b.planes[i].bytesused = bytesused.get(i).copied().unwrap_or(0);
            }
        } else {
            b.buf.bytesused = bytesused.first().copied().unwrap_or(0);
        }
        sys::qbuf(dev.fd(), &mut b).map_err(|e| qbuf_error(dev, e))
    }

    /// Starts streaming (VIDIOC_STREAMON).
    pub fn stream_on(&mut self) -> Result<()> {
        sys::streamon(self.dev.fd(), self.ty).map_err(|e| {
            Error::io(
                format!(
                    "{}: VIDIOC_STREAMON {:?}",
                    self.dev.display_name(),
                    self.dir
                ),
                e,
            )
        })?;
        self.streaming = true;
        Ok(())
    }

    /// Stops streaming (VIDIOC_STREAMOFF); every queued buffer returns to userspace.
    pub fn stream_off(&mut self) -> Result<()> {
        sys::streamoff(self.dev.fd(), self.ty).map_err(|e| {
            Error::io(
                format!(
                    "{}: VIDIOC_STREAMOFF {:?}",
                    self.dev.display_name(),
                    self.dir
                ),
                e,
            )
        })?;
        self.streaming = false;
        for s in &mut self.slots {
            *s = None;
        }
        Ok(())
    }

    /// True while streaming.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Waits up to `timeout` for a buffer the driver is done with (poll + VIDIOC_DQBUF).
    /// Returns `Ok(None)` on timeout; EPIPE (the last buffer was already dequeued) is an error.
    pub fn dequeue(&mut self, timeout: Duration) -> Result<Option<Dequeued>> {
        let deadline = Instant::now() + timeout;
        let flags = match self.dir {
            Direction::Capture => PollFlags::IN | PollFlags::RDNORM,
            Direction::Output => PollFlags::OUT | PollFlags::WRNORM,
        };
        loop {
            // Poll first: in a streaming loop the next buffer is rarely done yet, so asking
            // DQBUF first would cost an extra EAGAIN ioctl per buffer. Any wake-up (ready,
            // error, event) goes on to DQBUF, which reports errors precisely.
            let ms = deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .clamp(0, 1000) as i32;
            let fd = self.dev.fd();
            let mut fds = [PollFd::new(&fd, flags)];
            let ready = match rustix::event::poll(&mut fds, ms) {
                Ok(n) => n > 0,
                Err(Errno::INTR) => false,
                Err(e) => return Err(Error::io(format!("{}: poll", self.dev.display_name()), e)),
            };
            if !ready {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                continue;
            }
            let mut b = sys::BufferWithPlanes::new(self.ty, self.memory, 0);
            match sys::dqbuf(self.dev.fd(), &mut b) {
                Ok(()) => {
                    let index = b.buf.index;
                    let bytesused = if b.is_mplane() {
                        b.planes[..(b.buf.length as usize).min(sys::VIDEO_MAX_PLANES)]
                            .iter()
                            .map(|p| p.bytesused.saturating_sub(p.data_offset))
                            .collect()
                    } else {
                        vec![b.buf.bytesused]
                    };
                    let buffer = self.slots.get_mut(index as usize).and_then(Option::take);
                    return Ok(Some(Dequeued {
                        index,
                        flags: b.buf.flags,
                        bytesused,
                        sequence: b.buf.sequence,
                        buffer,
                    }));
                }
                Err(Errno::AGAIN) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("{}: VIDIOC_DQBUF {:?}", self.dev.display_name(), self.dir),
                        e,
                    ))
                }
            }
        }
    }

    /// Frees the V4L2 buffers (VIDIOC_REQBUFS 0), stopping streaming first.
    pub fn release(&mut self) -> Result<()> {
        if self.streaming {
            self.stream_off()?;
        }
        if self.count > 0 {
            self.reqbufs(0, self.memory)?;
        }
        Ok(())
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            log::warn!("releasing queue: {e}");
        }
    }
}

fn check_plane_size(dev: &Device, plane: usize, available: u64, sizeimage: u32) -> Result<()> {
    if available < u64::from(sizeimage) {
        return Err(Error::Incompatible {
            device: dev.display_name(),
            kind: ConstraintKind::Plane,
            reason: format!(
                "plane {plane} has {available} bytes but the driver's sizeimage is {sizeimage}"
            ),
        });
    }
    Ok(())
}

fn qbuf_error(dev: &Device, e: Errno) -> Error {
    let device = dev.display_name();
    if e == Errno::FAULT {
        // vb2-dma-contig refuses a dma-buf whose scatter list is not one contiguous chunk
        // ("contiguous chunk is too small") with EFAULT when it maps it at QBUF.
        Error::Incompatible {
            device,
            kind: ConstraintKind::Contiguous,
            reason: "the driver could not map the dma-buf as one contiguous block \
                     (VIDIOC_QBUF: EFAULT); it needs physically contiguous memory"
                .to_owned(),
        }
    } else {
        Error::Import {
            device,
            step: "VIDIOC_QBUF".to_owned(),
            source: e.into(),
        }
    }
}

/// Waits up to `timeout` for a V4L2 event on `dev` (poll PRI + VIDIOC_DQEVENT).
pub fn dequeue_event(dev: &Device, timeout: Duration) -> Result<Option<sys::Event>> {
    let deadline = Instant::now() + timeout;
    loop {
        match sys::dqevent(dev.fd()) {
            Ok(ev) => return Ok(Some(ev)),
            Err(Errno::NOENT) | Err(Errno::AGAIN) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("{}: VIDIOC_DQEVENT", dev.display_name()),
                    e,
                ))
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let ms = (deadline - now).as_millis().clamp(1, 1000) as i32;
        let fd = dev.as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::PRI)];
        match rustix::event::poll(&mut fds, ms) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(Error::io(format!("{}: poll", dev.display_name()), e)),
        }
    }
}
