//! All `unsafe` of this crate: the dma-buf, dma-heap and udmabuf ioctls and mmap.
