//! Handles as C sees them: opaque pointers that are keys into a table of live objects, never
//! addresses. A destroyed, made-up or wrong-kind handle is simply not in the table, so it gives
//! an error instead of a crash; keys are never reused, so a stale handle never reaches a newer
//! object. Objects are shared (`Arc`): a handle destroyed on one thread while another thread
//! uses it stays valid until that use ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::CError;

/// The next key; shared by every table so that a handle of one kind is never a key of another.
/// Starts above the first page and steps by 16, so keys look like aligned pointers and never
/// like NULL.
static NEXT_KEY: AtomicUsize = AtomicUsize::new(0x10000);

/// The live objects of one handle kind.
pub struct Table<T> {
    kind: &'static str,
    live: Mutex<BTreeMap<usize, Arc<T>>>,
}

impl<T> Table<T> {
    /// An empty table for handles of C type `kind` (named in error messages).
    pub const fn new(kind: &'static str) -> Table<T> {
        Table {
            kind,
            live: Mutex::new(BTreeMap::new()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Arc<T>>> {
        // The table holds no invariant a panic elsewhere could break.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `object`; returns its key.
    pub fn insert(&self, object: T) -> usize {
        let key = NEXT_KEY.fetch_add(16, Ordering::Relaxed);
        self.live().insert(key, Arc::new(object));
        key
    }

    /// The object of `key`, or an error naming the kind when the key is NULL, destroyed or
    /// was never a handle of this kind.
    pub fn get(&self, key: usize) -> Result<Arc<T>, CError> {
        self.live()
            .get(&key)
            .cloned()
            .ok_or_else(|| self.not_live(key))
    }

    /// Removes the object of `key` (it is dropped once no call still uses it).
    pub fn remove(&self, key: usize) -> Result<Arc<T>, CError> {
        self.live().remove(&key).ok_or_else(|| self.not_live(key))
    }

    /// How many objects are live.
    pub fn len(&self) -> usize {
        self.live().len()
    }

    /// True when no object is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn not_live(&self, key: usize) -> CError {
        if key == 0 {
            CError::invalid(format!("{} handle is NULL", self.kind))
        } else {
            CError::invalid(format!(
                "{key:#x} is not a live {} handle (destroyed, or never one)",
                self.kind
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_null_and_foreign_keys_are_errors() {
        let a: Table<u32> = Table::new("a");
        let b: Table<u32> = Table::new("b");
        let key = a.insert(7);
        assert_eq!(*a.get(key).unwrap(), 7);
        assert!(b.get(key).is_err(), "a key of table a is not one of b");
        assert!(a.get(0).unwrap_err().message.contains("NULL"));
        a.remove(key).unwrap();
        assert!(a.get(key).is_err());
        assert!(a.remove(key).is_err());
        let again = a.insert(8);
        assert_ne!(again, key, "keys are never reused");
    }
}
