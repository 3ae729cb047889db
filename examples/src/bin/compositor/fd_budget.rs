//! The compositor's file-descriptor budget: every client buffer is a dma-buf fd the compositor
//! holds, so clients together could fill its fd table (RLIMIT_NOFILE) and leave it unable to
//! accept a connection or open anything. It keeps a reserve: once fewer than [`RESERVE`] fds
//! are left below the limit, a client's new buffer is refused: `create` gets the `failed`
//! event, `create_immed` the protocol error `invalid_wl_buffer` ("out of file descriptors"),
//! which disconnects the client and closes its fds; the compositor and its other clients go
//! on.

use smithay::reexports::rustix::process::{getrlimit, Resource};

/// Fds kept free for the compositor itself (new connections, its own buffers, DRM).
pub const RESERVE: usize = 32;

/// Open fds and the soft limit, when the budget is spent: `Some((open, limit))`.
pub fn exhausted() -> Option<(usize, usize)> {
    let limit = getrlimit(Resource::Nofile).current?;
    let limit = usize::try_from(limit).ok()?;
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    (open + RESERVE >= limit).then_some((open, limit))
}
