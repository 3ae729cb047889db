//! Who holds which GEM handle on a device's open file, so each is closed exactly once.
//!
//! PRIME returns the same handle each time one dma-buf is imported into one file, and the
//! kernel does not count those imports: the device counts them itself (a list under a lock,
//! taken by imports through PRIME) and closes a handle after its last user. A dma-buf the
//! device exported itself already has a handle on the file (the dumb buffer's), which PRIME
//! hands out again if the same dma-buf arrives as a foreign fd: that handle must not be
//! closed while either side uses it.
//!
//! A device's own handles are made and closed for every display-only buffer, so they are
//! recorded without the lock: one byte per handle number, `OWNED` while only the export
//! holds it. An import that finds its PRIME handle `OWNED` turns it `SHARED` and counts both
//! users in the list; from then on the list decides. Closing an `OWNED` handle marks it
//! `CLOSING` first and counts the close, so an import that got the handle from PRIME just
//! before it was closed sees that and asks PRIME again (which then makes a new handle).
//! Handle numbers beyond the bytes go through the list, as every import's do.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use drm::buffer::Handle as GemHandle;
use drm::control::Device as _;

use crate::device::Node;

/// Handle numbers recorded without the lock. The kernel gives a file the lowest free number
/// (from 1), so a device's handles stay far below this.
const OWN_SLOTS: usize = 256;

/// No own handle of this number (possibly a counted one in the list).
const FREE: u8 = 0;
/// An export's own handle, used by nobody else.
const OWNED: u8 = 1;
/// An export's own handle that imports use too: counted in the list, the export included.
const SHARED: u8 = 2;
/// An own handle being closed.
const CLOSING: u8 = 3;

/// The GEM handles of one open file and who uses them.
pub(crate) struct GemHandles {
    /// (handle, users) of handles the list counts.
    counted: Mutex<Vec<(u32, usize)>>,
    /// The state of each own handle number below [`OWN_SLOTS`].
    own: [AtomicU8; OWN_SLOTS],
    /// How many own handles were closed without the lock.
    closes: AtomicU64,
}

impl Default for GemHandles {
    fn default() -> Self {
        GemHandles {
            counted: Mutex::default(),
            own: [const { AtomicU8::new(FREE) }; OWN_SLOTS],
            closes: AtomicU64::new(0),
        }
    }
}

/// The slot of `handle`, if it has one.
#[inline(always)]
fn slot_of(own: &[AtomicU8; OWN_SLOTS], handle: GemHandle) -> Option<&AtomicU8> {
    own.get(u32::from(handle) as usize)
}

impl GemHandles {
    fn counted(&self) -> MutexGuard<'_, Vec<(u32, usize)>> {
        self.counted
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Records `handle`, which the device has just created for a buffer it allocated itself.
    #[inline(always)]
    pub(crate) fn adopt(&self, handle: GemHandle) {
        let Some(slot) = slot_of(&self.own, handle) else {
            count_one_more(&mut self.counted(), handle);
            return;
        };
        // The number was free in the kernel, so it is FREE here, or its last user is between
        // the close and marking it FREE. Nobody else writes a FREE slot whose number the
        // kernel has just given out: a plain store marks it.
        while slot.load(Ordering::Acquire) != FREE {
            std::thread::yield_now();
        }
        slot.store(OWNED, Ordering::Release);
    }

    /// The export that adopted `handle` no longer uses it: closed unless imports still do.
    #[inline(always)]
    pub(crate) fn release_own(&self, node: &Node, device: &str, handle: GemHandle) {
        let Some(slot) = slot_of(&self.own, handle) else {
            self.release(node, device, handle);
            return;
        };
        if slot
            .compare_exchange(OWNED, CLOSING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            close(node, device, handle);
            self.closes.fetch_add(1, Ordering::SeqCst);
            slot.store(FREE, Ordering::Release);
        } else {
            // SHARED: the list counts the export too.
            self.release(node, device, handle);
        }
    }

    /// PRIME_FD_TO_HANDLE through `prime`, counting one more user of the handle it gives.
    pub(crate) fn acquire(
        &self,
        mut prime: impl FnMut() -> std::io::Result<GemHandle>,
    ) -> std::io::Result<GemHandle> {
        // Under the lock, so that no counted handle is closed while PRIME hands it out again.
        let mut counted = self.counted();
        loop {
            let closes = self.closes.load(Ordering::SeqCst);
            let handle = prime()?;
            let Some(slot) = slot_of(&self.own, handle) else {
                count_one_more(&mut counted, handle);
                return Ok(handle);
            };
            match slot.load(Ordering::SeqCst) {
                // Not an own handle, unless one was closed after PRIME gave it: ask again.
                FREE if self.closes.load(Ordering::SeqCst) == closes => {
                    count_one_more(&mut counted, handle);
                    return Ok(handle);
                }
                OWNED => {
                    if slot
                        .compare_exchange(OWNED, SHARED, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        // The export and this import.
                        counted.push((u32::from(handle), 2));
                        return Ok(handle);
                    }
                }
                SHARED => {
                    count_one_more(&mut counted, handle);
                    return Ok(handle);
                }
                _ => std::thread::yield_now(),
            }
        }
    }

    /// One user of a counted `handle` less; the handle is closed after the last.
    pub(crate) fn release(&self, node: &Node, device: &str, handle: GemHandle) {
        let mut counted = self.counted();
        let raw = u32::from(handle);
        let index = counted.iter().position(|(h, _)| *h == raw);
        if let Some(i) = index {
            if counted[i].1 > 1 {
                counted[i].1 -= 1;
                return;
            }
            counted.swap_remove(i);
        }
        close(node, device, handle);
        if let Some(slot) = slot_of(&self.own, handle) {
            slot.store(FREE, Ordering::Release);
        }
    }

    /// How many handles are in use (own and counted).
    pub(crate) fn live(&self) -> usize {
        let counted = self.counted().len();
        let own = self
            .own
            .iter()
            .filter(|s| s.load(Ordering::SeqCst) == OWNED)
            .count();
        counted + own
    }
}

/// One more user of `handle` in the list.
#[inline(always)]
fn count_one_more(counted: &mut Vec<(u32, usize)>, handle: GemHandle) {
    let raw = u32::from(handle);
    match counted.iter_mut().find(|(h, _)| *h == raw) {
        Some((_, n)) => *n += 1,
        None => counted.push((raw, 1)),
    }
}

#[inline(always)]
fn close(node: &Node, device: &str, handle: GemHandle) {
    if let Err(e) = node.close_buffer(handle) {
        log::warn!("{device}: GEM_CLOSE {}: {e}", u32::from(handle));
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
        handles.adopt(handle(3));
        assert_eq!(handles.live(), 1);
        let got = handles.acquire(|| Ok(handle(3))).unwrap();
        assert_eq!(u32::from(got), 3);
        assert_eq!(handles.own[3].load(Ordering::SeqCst), SHARED);
        assert_eq!(*handles.counted(), vec![(3, 2)]);
        assert_eq!(handles.live(), 1);
    }

    #[test]
    fn handles_beyond_the_slots_are_counted_in_the_list() {
        let handles = GemHandles::default();
        let far = handle(OWN_SLOTS as u32 + 5);
        handles.adopt(far);
        handles.acquire(|| Ok(far)).unwrap();
        assert_eq!(*handles.counted(), vec![(OWN_SLOTS as u32 + 5, 2)]);
    }

    #[test]
    fn a_foreign_handle_is_counted_once_per_import() {
        let handles = GemHandles::default();
        handles.acquire(|| Ok(handle(7))).unwrap();
        handles.acquire(|| Ok(handle(7))).unwrap();
        assert_eq!(*handles.counted(), vec![(7, 2)]);
        assert_eq!(handles.own[7].load(Ordering::SeqCst), FREE);
    }

    #[test]
    fn prime_is_asked_again_when_an_own_handle_was_closed_meanwhile() {
        let handles = GemHandles::default();
        let mut asked = 0;
        let got = handles
            .acquire(|| {
                asked += 1;
                if asked == 1 {
                    // The export's last user closes handle 4 right after PRIME returned it.
                    handles.closes.fetch_add(1, Ordering::SeqCst);
                    Ok(handle(4))
                } else {
                    Ok(handle(5))
                }
            })
            .unwrap();
        assert_eq!((u32::from(got), asked), (5, 2));
        assert_eq!(*handles.counted(), vec![(5, 1)]);
    }
}
