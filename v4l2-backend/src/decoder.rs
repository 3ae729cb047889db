//! The V4L2 stateful decoder protocol, decoding into cenalloc buffers.
//!
//! Steps (Documentation/userspace-api/media/v4l/dev-decoder.rst): set the coded format on the
//! OUTPUT queue, subscribe to `V4L2_EVENT_SOURCE_CHANGE`, queue bitstream and start the OUTPUT
//! queue, wait for the source-change event, read the decoded format with VIDIOC_G_FMT on the
//! CAPTURE queue, allocate CAPTURE buffers for it (with cenalloc), queue them and start the
//! CAPTURE queue, then decode; drain with `V4L2_DEC_CMD_STOP` until a buffer carries
//! `V4L2_BUF_FLAG_LAST`.
//!
//! A resolution change in the middle of the stream ("Dynamic Resolution Change" in that
//! document) also ends with a CAPTURE buffer flagged LAST, with a source-change event beside
//! it: [`StatefulDecoder::after_last`] tells the two apart and reads the new format, and
//! [`StatefulDecoder::restart_capture`] stops the CAPTURE queue, frees its buffers and starts
//! it again with buffers allocated for that format; the bitstream already queued carries on.
//!
//! Not handled: multi-planar CAPTURE formats with several memory planes (one dma-buf per
//! plane).

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{Buffer, Error, Result};

use crate::device::{Device, Direction, QueueFormat};
use crate::format::PixelFormat;
use crate::queue::{dequeue_event, Dequeued, Queue};
use crate::sys;

/// A stateful decoder session on one m2m node.
#[derive(Debug)]
pub struct StatefulDecoder {
    dev: Arc<Device>,
    output: Queue,
    capture: Option<Queue>,
    /// [`StatefulDecoder::drain`] was asked for: a LAST buffer may mean the end.
    draining: bool,
}

/// What a decoded-frame buffer flagged `V4L2_BUF_FLAG_LAST` announced
/// ([`StatefulDecoder::after_last`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastBuffer {
    /// The stream changed resolution or format: the frames that follow need CAPTURE buffers
    /// of this format, given with [`StatefulDecoder::restart_capture`].
    ResolutionChange(QueueFormat),
    /// The drain asked for with [`StatefulDecoder::drain`] is complete: no frame follows.
    Drained,
}

impl StatefulDecoder {
    /// Starts a session: sets `coded` at `width`×`height` (a hint; the stream decides) on the
    /// OUTPUT queue, subscribes to source-change and end-of-stream events and allocates
    /// `output_slots` DMABUF slots for bitstream buffers.
    pub fn new(
        dev: Arc<Device>,
        coded: PixelFormat,
        width: u32,
        height: u32,
        output_slots: u32,
    ) -> Result<StatefulDecoder> {
        let name = dev.display_name();
        let f = dev.set_format(Direction::Output, coded, width, height)?;
        if f.pixelformat != coded {
            return Err(Error::Unsupported {
                device: name,
                kind: cenalloc::ConstraintKind::Format,
                detail: format!("the decoder does not accept {coded}"),
            });
        }
        sys::subscribe_event(dev.fd(), sys::EVENT_SOURCE_CHANGE, 0)
            .map_err(|e| Error::io(format!("{name}: subscribing to SOURCE_CHANGE"), e))?;
        sys::subscribe_event(dev.fd(), sys::EVENT_EOS, 0)
            .map_err(|e| Error::io(format!("{name}: subscribing to EOS"), e))?;
        let mut output = Queue::new(dev.clone(), Direction::Output)?;
        output.request_dmabuf(output_slots)?;
        Ok(StatefulDecoder {
            dev,
            output,
            capture: None,
            draining: false,
        })
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The OUTPUT (bitstream) format: its sizeimage is the smallest bitstream buffer.
    pub fn output_format(&self) -> Result<QueueFormat> {
        self.dev.format(Direction::Output)
    }

    /// Queues `bytes` bytes of bitstream in `buffer` at OUTPUT slot `index`, starting the
    /// OUTPUT queue on first use.
    pub fn queue_bitstream(&mut self, index: u32, buffer: &Buffer, bytes: u32) -> Result<()> {
        self.output.queue_buffer(index, buffer, &[bytes])?;
        if !self.output.is_streaming() {
            self.output.stream_on()?;
        }
        Ok(())
    }

    /// Takes back a consumed bitstream buffer, if one is done within `timeout`.
    pub fn dequeue_bitstream(&mut self, timeout: Duration) -> Result<Option<Dequeued>> {
        self.output.dequeue(timeout)
    }

    /// Waits for `V4L2_EVENT_SOURCE_CHANGE` and returns the CAPTURE format (VIDIOC_G_FMT)
    /// the decoded frames will have.
    pub fn wait_source_change(&mut self, timeout: Duration) -> Result<QueueFormat> {
        match self.wait_event(timeout, &[sys::EVENT_SOURCE_CHANGE])? {
            Some(_) => self.dev.format(Direction::Capture),
            None => Err(timed_out(format!(
                "{}: no SOURCE_CHANGE event within {timeout:?}",
                self.dev.display_name()
            ))),
        }
    }

    /// The type of the first event among `wanted` within `timeout` (others are skipped);
    /// `None` when none came.
    fn wait_event(&self, timeout: Duration, wanted: &[u32]) -> Result<Option<u32>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match dequeue_event(&self.dev, left)? {
                Some(ev) if wanted.contains(&ev.type_) => return Ok(Some(ev.type_)),
                Some(ev) => log::debug!("{}: event {} skipped", self.dev.display_name(), ev.type_),
                None => return Ok(None),
            }
        }
    }

    /// Sets up the CAPTURE queue with `buffers` (allocated for the format from
    /// [`StatefulDecoder::wait_source_change`]), queues them all and starts decoding.
    pub fn start_capture(&mut self, buffers: &[Buffer]) -> Result<()> {
        let mut q = Queue::new(self.dev.clone(), Direction::Capture)?;
        let n = q.request_dmabuf(buffers.len() as u32)?;
        for (i, b) in buffers.iter().enumerate().take(n as usize) {
            q.queue_buffer(i as u32, b, &[])?;
        }
        q.stream_on()?;
        self.capture = Some(q);
        Ok(())
    }

    /// Waits up to `timeout` for a decoded frame.
    pub fn dequeue_frame(&mut self, timeout: Duration) -> Result<Option<Dequeued>> {
        match &mut self.capture {
            Some(q) => q.dequeue(timeout),
            None => Err(Error::InvalidRequest(
                "dequeue_frame before start_capture".to_owned(),
            )),
        }
    }

    /// Gives a decoded frame's buffer back to the decoder.
    pub fn requeue_frame(&mut self, index: u32, buffer: &Buffer) -> Result<()> {
        match &mut self.capture {
            Some(q) => q.queue_buffer(index, buffer, &[]),
            None => Err(Error::InvalidRequest(
                "requeue_frame before start_capture".to_owned(),
            )),
        }
    }

    /// Starts draining (`V4L2_DEC_CMD_STOP`): the decoder finishes the queued bitstream and
    /// marks its last frame with `V4L2_BUF_FLAG_LAST`.
    pub fn drain(&mut self) -> Result<()> {
        sys::decoder_cmd(self.dev.fd(), sys::DEC_CMD_STOP)
            .map_err(|e| Error::io(format!("{}: V4L2_DEC_CMD_STOP", self.dev.display_name()), e))?;
        self.draining = true;
        Ok(())
    }

    /// After a decoded-frame buffer flagged LAST ([`Dequeued::is_last`]): whether the stream
    /// changed resolution (the source-change event that comes with such a buffer, waited for
    /// up to `timeout`) or a drain finished. A LAST buffer with neither a drain asked for nor
    /// a source-change event is an error.
    pub fn after_last(&mut self, timeout: Duration) -> Result<LastBuffer> {
        // After a drain, the end needs no event (not every driver sends EOS); a resolution
        // change still has its event queued, before the buffer.
        let wait = if self.draining {
            Duration::ZERO
        } else {
            timeout
        };
        let wanted = [sys::EVENT_SOURCE_CHANGE, sys::EVENT_EOS];
        match self.wait_event(wait, &wanted)? {
            Some(sys::EVENT_SOURCE_CHANGE) => {
                let format = self.dev.format(Direction::Capture)?;
                log::debug!(
                    "{}: resolution change to {format:?}",
                    self.dev.display_name()
                );
                Ok(LastBuffer::ResolutionChange(format))
            }
            Some(_) => Ok(LastBuffer::Drained),
            None if self.draining => Ok(LastBuffer::Drained),
            None => Err(timed_out(format!(
                "{}: a buffer flagged LAST without a drain, and no SOURCE_CHANGE event within \
                 {timeout:?}",
                self.dev.display_name()
            ))),
        }
    }

    /// After a resolution change ([`LastBuffer::ResolutionChange`]): stops the CAPTURE queue,
    /// frees its V4L2 buffers and starts it again with `buffers`, allocated for the new
    /// format. Decoding resumes with the first frame of the new resolution.
    pub fn restart_capture(&mut self, buffers: &[Buffer]) -> Result<()> {
        self.release_capture()?;
        self.start_capture(buffers)
    }

    /// Stops the CAPTURE queue and frees its V4L2 buffers (the cenalloc buffers stay with
    /// their owners, e.g. still on screen), so that the CAPTURE format can be set again
    /// before [`StatefulDecoder::start_capture`]: [`StatefulDecoder::restart_capture`] in
    /// two steps. Does nothing before the queue was started.
    pub fn release_capture(&mut self) -> Result<()> {
        match self.capture.take() {
            Some(mut old) => old.release(),
            None => Ok(()),
        }
    }
}

/// An I/O error saying `what` did not happen in time.
fn timed_out(what: String) -> Error {
    Error::io(what, std::io::Error::from(std::io::ErrorKind::TimedOut))
}
