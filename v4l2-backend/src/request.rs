//! The media request API (`Documentation/userspace-api/media/mediactl/request-api.rst`): a
//! request bundles one frame's OUTPUT buffer with the controls that describe it, so a stateless
//! codec decodes that buffer with exactly those controls. Requests are allocated from the media
//! device the video node belongs to, filled (controls with `V4L2_CTRL_WHICH_REQUEST_VAL`,
//! buffers with `V4L2_BUF_FLAG_REQUEST_FD`), queued, waited for (poll `POLLPRI`) and reused
//! after `MEDIA_REQUEST_IOC_REINIT`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cenalloc::{ConstraintKind, Error, Result};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::device::Device;
use crate::sys;

/// The media controller device (`/dev/mediaN`) a video node belongs to.
#[derive(Debug)]
pub struct MediaDevice {
    fd: OwnedFd,
    path: PathBuf,
}

impl MediaDevice {
    /// The media device of `video`: the `mediaN` entry beside the video node in sysfs
    /// (`/sys/dev/char/MAJOR:MINOR/device/`), the way v4l-utils finds it. A driver without a
    /// media device is [`Error::Unsupported`] naming the node.
    pub fn of(video: &Device) -> Result<MediaDevice> {
        let stat = rustix::fs::fstat(video.fd())
            .map_err(|e| Error::io(format!("{}: fstat", video.display_name()), e))?;
        let (major, minor) = (
            rustix::fs::major(stat.st_rdev),
            rustix::fs::minor(stat.st_rdev),
        );
        let parent = PathBuf::from(format!("/sys/dev/char/{major}:{minor}/device"));
        let media = std::fs::read_dir(&parent)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("media") && n[5..].parse::<u32>().is_ok())
            .ok_or_else(|| Error::Unsupported {
                device: video.display_name(),
                kind: ConstraintKind::Import,
                detail: format!(
                    "no media device beside the node ({} lists no mediaN): the request API \
                     needs one",
                    parent.display()
                ),
            })?;
        MediaDevice::open(Path::new("/dev").join(media))
    }

    /// Opens the media device at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<MediaDevice> {
        let path = path.into();
        let fd = rustix::fs::open(
            &path,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(MediaDevice { fd, path })
    }

    /// The device node's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new, empty request (MEDIA_IOC_REQUEST_ALLOC).
    pub fn allocate_request(&self) -> Result<Request> {
        let fd = sys::media_request_alloc(self.fd.as_fd()).map_err(|e| {
            Error::io(
                format!("{}: MEDIA_IOC_REQUEST_ALLOC", self.path.display()),
                e,
            )
        })?;
        Ok(Request {
            fd,
            media: self.path.display().to_string(),
        })
    }
}

/// One media request. Dropping it closes its fd; a queued request the driver still runs is
/// kept alive by the kernel until it completes.
#[derive(Debug)]
pub struct Request {
    fd: OwnedFd,
    media: String,
}

impl Request {
    /// Sets compound control `id` of `video` to `payload` inside this request: the driver
    /// applies it to the request's buffer only.
    pub fn set_control(&self, video: &Device, id: u32, payload: &[u8]) -> Result<()> {
        let mut value = payload.to_vec();
        sys::s_ext_ctrl_in_request(video.fd(), self.fd.as_fd(), id, &mut value).map_err(|e| {
            Error::Unsupported {
                device: video.display_name(),
                kind: ConstraintKind::Format,
                detail: format!(
                    "VIDIOC_S_EXT_CTRLS of control {id:#x} ({} bytes) in a request refused: {e}",
                    payload.len()
                ),
            }
        })
    }

    /// Queues the request (MEDIA_REQUEST_IOC_QUEUE). The driver validates it first: a request
    /// without the buffer or a control the driver requires is refused with ENOENT, reported
    /// as [`Error::InvalidRequest`] naming `video`.
    pub fn queue(&self, video: &Device) -> Result<()> {
        sys::media_request_queue(self.fd.as_fd()).map_err(|e| match e {
            Errno::NOENT => Error::InvalidRequest(format!(
                "{}: the driver refused the request ({}): it lacks its buffer or a control \
                 the driver requires (ENOENT)",
                video.display_name(),
                self.media
            )),
            e => Error::io(
                format!(
                    "{}: MEDIA_REQUEST_IOC_QUEUE ({})",
                    video.display_name(),
                    self.media
                ),
                e,
            ),
        })
    }

    /// Waits up to `timeout` for the driver to complete the request; false on timeout.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let ms = deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .clamp(0, 1000) as i32;
            let fd = self.fd.as_fd();
            let mut fds = [PollFd::new(&fd, PollFlags::PRI)];
            match rustix::event::poll(&mut fds, ms) {
                Ok(n) if n > 0 => {
                    if fds[0].revents().contains(PollFlags::ERR) {
                        return Err(Error::io(
                            format!("{}: polling a request that is not queued", self.media),
                            Errno::INVAL,
                        ));
                    }
                    return Ok(true);
                }
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::io(format!("{}: poll request", self.media), e)),
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    /// Empties a completed request for reuse (MEDIA_REQUEST_IOC_REINIT).
    pub fn reinit(&self) -> Result<()> {
        sys::media_request_reinit(self.fd.as_fd())
            .map_err(|e| Error::io(format!("{}: MEDIA_REQUEST_IOC_REINIT", self.media), e))
    }
}

impl AsFd for Request {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
