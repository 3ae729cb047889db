//! Reuse of buffers for identical requests, so a steady pipeline allocates nothing per frame.
//!
//! The pool plans once; [`Pool::acquire`] hands out a free buffer (already imported into every
//! device) or allocates a new one while fewer than `capacity` exist. A [`PooledBuffer`]
//! returns to the pool when dropped.

use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

use crate::{Allocator, BufferRequest, Error, Importer, Plan, Result, SharedBuffer};

/// A set of identical buffers handed out and returned.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    allocator: Allocator,
    plan: Plan,
    capacity: usize,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    free: Vec<SharedBuffer>,
    allocated: usize,
}

/// A buffer lent by a [`Pool`]; it goes back to the pool on drop.
#[derive(Debug)]
pub struct PooledBuffer {
    shared: Option<SharedBuffer>,
    pool: Weak<PoolInner>,
}

impl Pool {
    /// A pool of at most `capacity` buffers for `request` shared by `importers`. Plans now, so
    /// conflicts show up here; allocates lazily.
    pub fn new(
        allocator: &Allocator,
        request: BufferRequest,
        importers: Vec<Arc<dyn Importer>>,
        capacity: usize,
    ) -> Result<Pool> {
        if capacity == 0 {
            return Err(Error::InvalidRequest("pool capacity is zero".into()));
        }
        let plan = allocator.plan(&request, &importers)?;
        Pool::with_plan(allocator, plan, capacity)
    }

    /// A pool of at most `capacity` buffers that follow `plan` (kept from
    /// [`Allocator::plan`]); allocates lazily.
    pub fn with_plan(allocator: &Allocator, plan: Plan, capacity: usize) -> Result<Pool> {
        if capacity == 0 {
            return Err(Error::InvalidRequest("pool capacity is zero".into()));
        }
        Ok(Pool {
            inner: Arc::new(PoolInner {
                allocator: allocator.clone(),
                plan,
                capacity,
                state: Mutex::new(PoolState::default()),
            }),
        })
    }

    /// The plan every buffer of the pool follows.
    pub fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    /// A free buffer, or a new one while fewer than `capacity` exist; [`Error::Busy`] when
    /// all are lent out.
    pub fn acquire(&self) -> Result<PooledBuffer> {
        let inner = &self.inner;
        {
            let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(shared) = state.free.pop() {
                return Ok(self.lend(shared));
            }
            if state.allocated >= inner.capacity {
                return Err(Error::Busy(format!(
                    "all {} buffers of the pool are in use",
                    inner.capacity
                )));
            }
            state.allocated += 1;
        }
        match inner.allocator.allocate(&inner.plan) {
            Ok(shared) => Ok(self.lend(shared)),
            Err(e) => {
                let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                state.allocated -= 1;
                Err(e)
            }
        }
    }

    fn lend(&self, shared: SharedBuffer) -> PooledBuffer {
        PooledBuffer {
            shared: Some(shared),
            pool: Arc::downgrade(&self.inner),
        }
    }

    /// How many buffers the pool has allocated in total (free and lent).
    pub fn allocated(&self) -> usize {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allocated
    }

    /// How many buffers are free.
    pub fn free(&self) -> usize {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .free
            .len()
    }

    /// The largest number of buffers the pool allocates.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }
}

impl Deref for PooledBuffer {
    type Target = SharedBuffer;
    fn deref(&self) -> &SharedBuffer {
        self.shared.as_ref().expect("present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let (Some(shared), Some(pool)) = (self.shared.take(), self.pool.upgrade()) else {
            return;
        };
        let mut state = pool.state.lock().unwrap_or_else(|p| p.into_inner());
        state.free.push(shared);
    }
}
