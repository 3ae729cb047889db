//! Who holds which GEM handle on a device's open file, so each is closed exactly once.
//!
//! PRIME returns the same handle each time one dma-buf is imported into one file, and the
//! kernel does not count those imports; a dma-buf the device exported itself already has a
//! handle on the file (the dumb buffer's), which PRIME hands out again if the same dma-buf
//! arrives as a foreign fd. So the device counts the users of each handle itself — an export
//! keeping its buffer, each import — and closes a handle after its last user. PRIME and
//! GEM_CLOSE both run under the table's lock, so a handle is never handed out by PRIME while
//! it is being closed. A device has a handful of live handles: the table is a short list.

use std::sync::{Mutex, MutexGuard};

use drm::buffer::Handle as GemHandle;
use drm::control::Device as _;

use crate::device::Node;

/// The GEM handles of one open file and how many users each has.
#[derive(Debug, Default)]
pub(crate) struct GemHandles {
    /// (handle, users) of every live handle.
    users: Mutex<Vec<(u32, usize)>>,
}

/// One more user of `handle` in `users`.
fn count_one_more(users: &mut Vec<(u32, usize)>, handle: GemHandle) {
    let raw = u32::from(handle);
    match users.iter_mut().find(|(h, _)| *h == raw) {
        Some((_, n)) => *n += 1,
        None => users.push((raw, 1)),
    }
}

impl GemHandles {
    fn users(&self) -> MutexGuard<'_, Vec<(u32, usize)>> {
        self.users
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Counts one more user of `handle`, which the device created (CREATE_DUMB) or which a
    /// live export of the device holds.
    pub(crate) fn add_user(&self, handle: GemHandle) {
        count_one_more(&mut self.users(), handle);
    }

    /// PRIME_FD_TO_HANDLE through `prime`, counting one more user of the handle it gives.
    pub(crate) fn acquire(
        &self,
        prime: impl FnOnce() -> std::io::Result<GemHandle>,
    ) -> std::io::Result<GemHandle> {
        let mut users = self.users();
        let handle = prime()?;
        count_one_more(&mut users, handle);
        Ok(handle)
    }

    /// One user of `handle` less; the handle is closed after the last.
    pub(crate) fn release(&self, node: &Node, device: &str, handle: GemHandle) {
        let mut users = self.users();
        let raw = u32::from(handle);
        match users.iter().position(|(h, _)| *h == raw) {
            Some(i) if users[i].1 > 1 => {
                users[i].1 -= 1;
                return;
            }
            Some(i) => {
                users.swap_remove(i);
            }
            None => log::warn!("{device}: GEM handle {raw} released but not counted"),
        }
        if let Err(e) = node.close_buffer(handle) {
            log::warn!("{device}: GEM_CLOSE {raw}: {e}");
        }
    }

    /// How many handles are in use.
    pub(crate) fn live(&self) -> usize {
        self.users().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(n: u32) -> GemHandle {
        GemHandle::from(std::num::NonZeroU32::new(n).unwrap())
    }

    #[test]
    fn an_own_handle_that_prime_hands_out_again_is_counted_for_both() {
        let handles = GemHandles::default();
        handles.add_user(handle(3));
        let got = handles.acquire(|| Ok(handle(3))).unwrap();
        assert_eq!(u32::from(got), 3);
        assert_eq!(*handles.users(), vec![(3, 2)]);
        assert_eq!(handles.live(), 1);
    }

    #[test]
    fn a_foreign_handle_is_counted_once_per_import() {
        let handles = GemHandles::default();
        handles.acquire(|| Ok(handle(7))).unwrap();
        handles.acquire(|| Ok(handle(7))).unwrap();
        assert_eq!(*handles.users(), vec![(7, 2)]);
    }

    #[test]
    fn a_failed_prime_call_counts_nothing() {
        let handles = GemHandles::default();
        assert!(handles
            .acquire(|| Err(std::io::Error::from_raw_os_error(22)))
            .is_err());
        assert_eq!(handles.live(), 0);
    }
}
