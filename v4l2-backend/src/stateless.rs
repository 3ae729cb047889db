//! The V4L2 stateless decoder protocol (`Documentation/userspace-api/media/v4l/
//! dev-stateless-decoder.rst`) for FWHT, decoding into cenalloc buffers.
//!
//! A stateless decoder keeps no state between frames: userspace parses each frame's header and
//! hands it over as a control, in one media request with the OUTPUT buffer holding the frame's
//! coded data; reference frames are named by the timestamp of the OUTPUT buffer they were
//! decoded from, which the driver copied to their CAPTURE buffer. The reference frames stay in
//! the caller's CAPTURE buffers — here cenalloc buffers shared with the display — so the
//! caller must not queue a frame's buffer again before the frame that references it is
//! decoded (FWHT P-frames reference the frame just before them).
//!
//! Steps: set the coded format (`SFWH`) on OUTPUT and the raw format on CAPTURE, allocate
//! OUTPUT slots and one request per slot, queue the CAPTURE buffers and start both queues;
//! then per frame: `V4L2_CID_STATELESS_FWHT_PARAMS` in the slot's request, QBUF the coded data
//! with the request and a timestamp, queue the request, wait for it, DQBUF the OUTPUT buffer
//! and the decoded frame, re-initialise the request.

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{Buffer, ConstraintKind, Error, Result};

use crate::device::{Device, Direction, QueueFormat};
use crate::format::PixelFormat;
use crate::fwht::{FrameHeader, CID_STATELESS_FWHT_PARAMS};
use crate::queue::{Dequeued, Queue};
use crate::request::{MediaDevice, Request};
use crate::sys;

/// A stateless FWHT decoder session on one m2m node (vicodec's `stateless-decoder`).
#[derive(Debug)]
pub struct StatelessFwhtDecoder {
    // Field order is drop order: the queues let go of their buffers before the requests close.
    output: Queue,
    capture: Option<Queue>,
    requests: Vec<Request>,
    media: MediaDevice,
    dev: Arc<Device>,
    /// Timestamp of the OUTPUT buffer of the last frame queued: the next P-frame's reference.
    previous: Option<Duration>,
    queued: u64,
}

impl StatelessFwhtDecoder {
    /// Starts a session: the stream is `width`×`height` and decodes into `raw` frames (for a
    /// stream encoded from XR24, XR24 or another 4-byte RGB format). Sets both formats,
    /// allocates `output_slots` DMABUF slots for coded data and one request per slot. A node
    /// whose OUTPUT queue takes no requests, or that has no media device, is
    /// [`Error::Unsupported`].
    pub fn new(
        dev: Arc<Device>,
        raw: PixelFormat,
        width: u32,
        height: u32,
        output_slots: u32,
    ) -> Result<StatelessFwhtDecoder> {
        let name = dev.display_name();
        let coded = dev.set_format(
            Direction::Output,
            PixelFormat::FWHT_STATELESS,
            width,
            height,
        )?;
        if coded.pixelformat != PixelFormat::FWHT_STATELESS {
            return Err(Error::Unsupported {
                device: name,
                kind: ConstraintKind::Format,
                detail: format!(
                    "the OUTPUT queue does not take {} (it set {})",
                    PixelFormat::FWHT_STATELESS,
                    coded.pixelformat
                ),
            });
        }
        let frames = dev.set_format(Direction::Capture, raw, width, height)?;
        if frames.pixelformat != raw || (frames.width, frames.height) != (width, height) {
            return Err(Error::Unsupported {
                device: name,
                kind: ConstraintKind::Format,
                detail: format!(
                    "asked for {raw} {width}x{height} frames, the driver set {} {}x{}",
                    frames.pixelformat, frames.width, frames.height
                ),
            });
        }
        let media = MediaDevice::of(&dev)?;
        let mut output = Queue::new(dev.clone(), Direction::Output)?;
        let granted = output.request_dmabuf(output_slots)?;
        if dev.buffer_caps(Direction::Output)? & sys::BUF_CAP_SUPPORTS_REQUESTS == 0 {
            return Err(Error::Unsupported {
                device: name,
                kind: ConstraintKind::Import,
                detail: "the OUTPUT queue takes no media requests: not a stateless decoder".into(),
            });
        }
        let requests = (0..granted)
            .map(|_| media.allocate_request())
            .collect::<Result<Vec<_>>>()?;
        Ok(StatelessFwhtDecoder {
            output,
            capture: None,
            requests,
            media,
            dev,
            previous: None,
            queued: 0,
        })
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The media device the requests come from.
    pub fn media(&self) -> &MediaDevice {
        &self.media
    }

    /// The OUTPUT (coded data) format: its sizeimage is the smallest coded-data buffer.
    pub fn output_format(&self) -> Result<QueueFormat> {
        self.dev.format(Direction::Output)
    }

    /// The CAPTURE (decoded frame) format.
    pub fn capture_format(&self) -> Result<QueueFormat> {
        self.dev.format(Direction::Capture)
    }

    /// Gives the decoder `frames` to decode into (DMABUF slots, all queued) and starts both
    /// queues.
    pub fn start(&mut self, frames: &[Buffer]) -> Result<()> {
        let mut capture = Queue::new(self.dev.clone(), Direction::Capture)?;
        let count = u32::try_from(frames.len())
            .map_err(|_| Error::InvalidRequest(format!("{} frame buffers", frames.len())))?;
        let granted = capture.request_dmabuf(count)?;
        if granted != count {
            return Err(Error::InvalidRequest(format!(
                "{}: asked for {count} CAPTURE buffers, the driver granted {granted}",
                self.dev.display_name()
            )));
        }
        for (i, f) in frames.iter().enumerate() {
            capture.queue_buffer(i as u32, f, &[])?;
        }
        capture.stream_on()?;
        self.output.stream_on()?;
        self.capture = Some(capture);
        Ok(())
    }

    /// Decodes one frame: `header` is its FWHT header, and its coded data (`header.size`
    /// bytes) is at the start of `bitstream`. Sets the frame's parameters in the request of
    /// OUTPUT slot `slot` (a P-frame references the frame queued before it), queues
    /// `bitstream` there and queues the request. A P-frame with no frame before it is
    /// [`Error::InvalidRequest`].
    pub fn decode(&mut self, slot: u32, bitstream: &Buffer, header: &FrameHeader) -> Result<()> {
        let name = self.dev.display_name();
        let request = self.requests.get(slot as usize).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "{name}: no OUTPUT slot {slot} (have {})",
                self.requests.len()
            ))
        })?;
        let reference = match (header.is_intra(), self.previous) {
            (true, _) => 0,
            (false, Some(previous)) => previous.as_nanos() as u64,
            (false, None) => {
                return Err(Error::InvalidRequest(format!(
                    "{name}: FWHT frame {} is a P-frame, but no frame was decoded before it to \
                     reference",
                    self.queued
                )))
            }
        };
        // Timestamps pass through a timeval on the way to the CAPTURE buffer: whole
        // microseconds, and never 0.
        let timestamp = Duration::from_micros(self.queued + 1);
        request.set_control(
            &self.dev,
            CID_STATELESS_FWHT_PARAMS,
            &header.params(reference),
        )?;
        self.output
            .queue_in_request(slot, bitstream, &[header.size], request, timestamp)?;
        request.queue(&self.dev)?;
        self.previous = Some(timestamp);
        self.queued += 1;
        Ok(())
    }

    /// Waits up to `timeout` for the request of `slot` to complete, takes its OUTPUT buffer
    /// back and readies the request for the slot's next frame.
    pub fn finish(&mut self, slot: u32, timeout: Duration) -> Result<()> {
        let name = self.dev.display_name();
        let request = self
            .requests
            .get(slot as usize)
            .ok_or_else(|| Error::InvalidRequest(format!("{name}: no OUTPUT slot {slot}")))?;
        if !request.wait(timeout)? {
            return Err(Error::io(
                format!(
                    "{name}: the request of OUTPUT slot {slot} did not complete within {timeout:?}"
                ),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        self.output.dequeue(timeout)?.ok_or_else(|| {
            Error::io(
                format!("{name}: request complete but its OUTPUT buffer did not come back"),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            )
        })?;
        request.reinit()
    }

    /// Takes a decoded frame back, if one is done within `timeout`.
    pub fn dequeue_frame(&mut self, timeout: Duration) -> Result<Option<Dequeued>> {
        self.capture_queue()?.dequeue(timeout)
    }

    /// Gives frame buffer `index` back to the decoder. The frame it holds is gone once the
    /// decoder writes into it again: do not give back a frame a later frame references.
    pub fn requeue_frame(&mut self, index: u32, buffer: &Buffer) -> Result<()> {
        self.capture_queue()?.queue_buffer(index, buffer, &[])
    }

    fn capture_queue(&mut self) -> Result<&mut Queue> {
        let name = self.dev.display_name();
        self.capture.as_mut().ok_or_else(|| {
            Error::InvalidRequest(format!("{name}: the CAPTURE queue is not started"))
        })
    }
}
