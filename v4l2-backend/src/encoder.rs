//! The V4L2 stateful encoder protocol, reading frames from and writing bitstream into
//! cenalloc buffers.
//!
//! Steps (Documentation/userspace-api/media/v4l/dev-encoder.rst): set the coded format on the
//! CAPTURE queue, then the raw format and size on the OUTPUT queue; allocate both queues,
//! queue bitstream buffers and start both; queue frames, dequeue bitstream; drain with
//! `V4L2_ENC_CMD_STOP` until a bitstream buffer carries `V4L2_BUF_FLAG_LAST`.

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{Buffer, ConstraintKind, Error, Result};

use crate::device::{Device, Direction, QueueFormat};
use crate::format::PixelFormat;
use crate::queue::{Dequeued, Queue};
use crate::sys;

/// A stateful encoder session on one m2m node.
#[derive(Debug)]
pub struct StatefulEncoder {
    dev: Arc<Device>,
    raw: QueueFormat,
    coded: QueueFormat,
    output: Queue,
    capture: Queue,
}

impl StatefulEncoder {
    /// Starts a session encoding `raw` frames of `width`×`height` into `coded`. Fails with
    /// [`Error::Unsupported`] if the driver changes the format or the size.
    pub fn new(
        dev: Arc<Device>,
        raw: PixelFormat,
        width: u32,
        height: u32,
        coded: PixelFormat,
    ) -> Result<StatefulEncoder> {
        let coded_fmt = dev.set_format(Direction::Capture, coded, width, height)?;
        let raw_fmt = dev.set_format(Direction::Output, raw, width, height)?;
        if coded_fmt.pixelformat != coded
            || raw_fmt.pixelformat != raw
            || (raw_fmt.width, raw_fmt.height) != (width, height)
        {
            return Err(Error::Unsupported {
                device: dev.display_name(),
                kind: ConstraintKind::Format,
                detail: format!(
                    "asked {raw} {width}x{height} → {coded}, the driver set {} {}x{} → {}",
                    raw_fmt.pixelformat, raw_fmt.width, raw_fmt.height, coded_fmt.pixelformat
                ),
            });
        }
        // The coded size can depend on the raw format: read it back.
        let coded_fmt = dev.format(Direction::Capture)?;
        Ok(StatefulEncoder {
            output: Queue::new(dev.clone(), Direction::Output)?,
            capture: Queue::new(dev.clone(), Direction::Capture)?,
            dev,
            raw: raw_fmt,
            coded: coded_fmt,
        })
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The raw (OUTPUT) format: frames must have its bytesperline and sizeimage.
    pub fn raw_format(&self) -> &QueueFormat {
        &self.raw
    }

    /// The coded (CAPTURE) format: its sizeimage is the smallest bitstream buffer.
    pub fn coded_format(&self) -> &QueueFormat {
        &self.coded
    }

    /// Allocates `frame_slots` OUTPUT slots, queues `bitstream` buffers on CAPTURE and starts
    /// both queues.
    pub fn start(&mut self, frame_slots: u32, bitstream: &[Buffer]) -> Result<()> {
        self.output.request_dmabuf(frame_slots)?;
        let n = self.capture.request_dmabuf(bitstream.len() as u32)?;
        for (i, b) in bitstream.iter().enumerate().take(n as usize) {
            self.capture.queue_buffer(i as u32, b, &[])?;
        }
        self.capture.stream_on()?;
        self.output.stream_on()
    }

    /// Queues a raw frame at OUTPUT slot `index` (its payload is the raw sizeimage).
    pub fn encode(&mut self, index: u32, frame: &Buffer) -> Result<()> {
        let payload: Vec<u32> = self.raw.planes.iter().map(|p| p.sizeimage).collect();
        self.output.queue_buffer(index, frame, &payload)
    }

    /// Takes back a consumed frame, if one is done within `timeout`.
    pub fn dequeue_frame(&mut self, timeout: Duration) -> Result<Option<Dequeued>> {
        self.output.dequeue(timeout)
    }

    /// Waits up to `timeout` for encoded bitstream.
    pub fn dequeue_bitstream(&mut self, timeout: Duration) -> Result<Option<Dequeued>> {
        self.capture.dequeue(timeout)
    }

    /// Gives a bitstream buffer back to the encoder.
    pub fn requeue_bitstream(&mut self, index: u32, buffer: &Buffer) -> Result<()> {
        self.capture.queue_buffer(index, buffer, &[])
    }

    /// Starts draining (`V4L2_ENC_CMD_STOP`): the last bitstream buffer carries
    /// `V4L2_BUF_FLAG_LAST`.
    pub fn drain(&mut self) -> Result<()> {
        sys::encoder_cmd(self.dev.fd(), sys::ENC_CMD_STOP)
            .map_err(|e| Error::io(format!("{}: V4L2_ENC_CMD_STOP", self.dev.display_name()), e))
    }
}
