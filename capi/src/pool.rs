//! `cenalloc_pool`: up to a fixed number of buffers of one plan, allocated on first use and
//! reused: a buffer acquired from the pool goes back to it when destroyed.

/// A pool as the C API holds it.
pub struct PoolObject {
    /// The pool.
    pub pool: cenalloc::Pool,
}
