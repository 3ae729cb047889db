//! Opening the KMS node through a libseat session (seatd, logind or libseat's built-in
//! server), as a compositor on a desktop does: the seat grants DRM master and takes it back
//! when the user switches away. Built with the `libseat` cargo feature; without it,
//! `--session` says how to get it.

#[cfg(feature = "libseat")]
pub use seat::{open, SeatNode};

#[cfg(not(feature = "libseat"))]
pub use unavailable::open;

#[cfg(feature = "libseat")]
mod seat {
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use smithay::backend::session::libseat::{LibSeatSession, LibSeatSessionNotifier};
    use smithay::backend::session::Session;
    use smithay::reexports::calloop::{Dispatcher, EventLoop};
    use smithay::reexports::rustix::fs::OFlags;

    /// How long the seat may take to make the session active.
    const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(5);

    /// A DRM node opened through the seat, with the session that holds it.
    pub struct SeatNode {
        /// The session (a handle; the notifier owns the connection to the seat).
        pub session: LibSeatSession,
        /// Pause and activation events, to be put in the compositor's event loop.
        pub notifier: LibSeatSessionNotifier,
        /// The node, opened by the seat.
        pub fd: OwnedFd,
    }

    /// Opens a session on the user's seat, waits until it is active and opens `path`
    /// through it.
    pub fn open(path: &Path) -> Result<SeatNode, String> {
        let (mut session, notifier) = LibSeatSession::new().map_err(|e| {
            format!(
                "libseat: no session ({e}); is seatd or logind running, and LIBSEAT_BACKEND \
                 (seatd, logind, builtin) right?"
            )
        })?;
        let notifier = wait_until_active(&session, notifier)?;
        let fd = session
            .open(
                path,
                OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            )
            .map_err(|e| {
                format!(
                    "libseat: seat {} would not open {}: {e}",
                    session.seat(),
                    path.display()
                )
            })?;
        log::info!(
            "session: {} opened through libseat on seat {}",
            path.display(),
            session.seat()
        );
        Ok(SeatNode {
            session,
            notifier,
            fd,
        })
    }

    /// Dispatches the seat's events until the session is active (a seat enables a new
    /// session asynchronously), then hands the notifier back for the main event loop.
    fn wait_until_active(
        session: &LibSeatSession,
        notifier: LibSeatSessionNotifier,
    ) -> Result<LibSeatSessionNotifier, String> {
        if session.is_active() {
            return Ok(notifier);
        }
        let mut event_loop: EventLoop<()> =
            EventLoop::try_new().map_err(|e| format!("event loop: {e}"))?;
        let dispatcher = Dispatcher::new(notifier, |_, _, _: &mut ()| {});
        let token = event_loop
            .handle()
            .register_dispatcher(dispatcher.clone())
            .map_err(|e| format!("libseat event source: {e}"))?;
        let deadline = Instant::now() + ACTIVATION_TIMEOUT;
        while !session.is_active() && Instant::now() < deadline {
            event_loop
                .dispatch(Some(Duration::from_millis(50)), &mut ())
                .map_err(|e| format!("waiting for the seat: {e}"))?;
        }
        event_loop.handle().remove(token);
        drop(event_loop);
        if !session.is_active() {
            return Err(format!(
                "libseat: seat {} did not activate the session within {ACTIVATION_TIMEOUT:?}",
                session.seat()
            ));
        }
        Ok(dispatcher.into_source_inner())
    }
}

#[cfg(not(feature = "libseat"))]
mod unavailable {
    use std::os::fd::OwnedFd;
    use std::path::Path;

    /// A DRM node opened through a seat (needs the `libseat` feature).
    pub struct SeatNode {
        /// Never constructed without the feature.
        pub fd: OwnedFd,
    }

    /// Fails: this build has no libseat.
    pub fn open(path: &Path) -> Result<SeatNode, String> {
        Err(format!(
            "--session: cannot open {} through a seat: built without the libseat feature; \
             rebuild with --features libseat (cargo build --features cenalloc-examples/libseat)",
            path.display()
        ))
    }
}
