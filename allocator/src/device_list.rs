//! The per-device lists of a shared buffer (its imports, its importers): one device held
//! inline, more on the heap.
//!
//! Written here rather than with `SmallVec`: a buffer one device uses is the commonest, and is
//! made and dropped for every buffer of a pool or swapchain; this enum drops its one element
//! inline, where `SmallVec`'s drop is a call that checks for spilling first.

/// A list of one device's item inline, or of any number on the heap.
#[derive(Debug, Clone)]
pub(crate) enum DeviceList<T> {
    /// Exactly one.
    One([T; 1]),
    /// Any number, including none (no allocation while empty).
    Many(Vec<T>),
}

impl<T> DeviceList<T> {
    /// No items.
    pub(crate) const fn new() -> Self {
        DeviceList::Many(Vec::new())
    }

    /// Just `item`.
    #[inline(always)]
    pub(crate) fn one(item: T) -> Self {
        DeviceList::One([item])
    }

    /// Appends `item`.
    pub(crate) fn push(&mut self, item: T) {
        *self = match std::mem::replace(self, DeviceList::new()) {
            DeviceList::One([first]) => DeviceList::Many(vec![first, item]),
            DeviceList::Many(v) if v.is_empty() => DeviceList::One([item]),
            DeviceList::Many(mut v) => {
                v.push(item);
                DeviceList::Many(v)
            }
        };
    }

    /// Removes every item.
    pub(crate) fn clear(&mut self) {
        *self = DeviceList::new();
    }

    /// The items, as a vector.
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            DeviceList::One([item]) => vec![item],
            DeviceList::Many(v) => v,
        }
    }
}

impl<T> std::ops::Deref for DeviceList<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        match self {
            DeviceList::One(one) => one,
            DeviceList::Many(many) => many,
        }
    }
}

impl<T> FromIterator<T> for DeviceList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut list = DeviceList::new();
        for item in items {
            list.push(item);
        }
        list
    }
}

impl<T> Extend<T> for DeviceList<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        for item in items {
            self.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceList;

    #[test]
    fn holds_one_inline_and_more_on_the_heap() {
        let mut list = DeviceList::new();
        assert!(list.is_empty());
        list.push(1);
        assert!(matches!(list, DeviceList::One(_)));
        list.push(2);
        list.extend([3, 4]);
        assert_eq!(&*list, &[1, 2, 3, 4]);
        assert_eq!(list.clone().into_vec(), vec![1, 2, 3, 4]);
        list.clear();
        assert!(list.is_empty());
        let collected: DeviceList<u8> = [7].into_iter().collect();
        assert!(matches!(collected, DeviceList::One([7])));
        assert_eq!(DeviceList::one(5).into_vec(), vec![5]);
    }
}
