//! The bare kernel calls behind a dma-buf, issued directly: a dma-buf heap allocation
//! (DMA_HEAP_IOCTL_ALLOC), a udmabuf over a sealed memfd (UDMABUF_CREATE), naming and
//! mapping a dma-buf (DMA_BUF_SET_NAME, mmap), a DRM node's dumb buffers, PRIME import and
//! export and framebuffers (CREATE_DUMB, MAP_DUMB, PRIME_HANDLE_TO_FD, PRIME_FD_TO_HANDLE,
//! ADDFB2, RMFB, GEM_CLOSE), and the V4L2 calls a format check makes (VIDIOC_ENUM_FMT,
//! VIDIOC_TRY_FMT, VIDIOC_S_CTRL).
//!
//! Hand-written rather than taken from cenalloc or its backends, and it must stay independent
//! of `cenalloc`, `cenalloc-drm` and `cenalloc-v4l2`, for its two users:
//!
//! - the rig's smoke test (`tests/tests/rig.rs`) proves that the guest's devices and memory
//!   sources work even when cenalloc itself is broken, so a failure there points at the rig,
//!   not at the allocator;
//! - the benchmark's floor (`cenalloc-bench`) measures the same kernel calls cenalloc makes
//!   with nothing of cenalloc in between, so the difference is what cenalloc adds in user
//!   space.
//!
//! DRM calls go through drm-rs' thin ioctl wrappers; the rest, whose structures drm-rs does
//! not cover, are written out over `rustix::ioctl` in one private module, the crate's only
//! `unsafe`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod card;
pub mod dmabuf;
pub mod heap;
pub mod udmabuf;
pub mod v4l2;

#[allow(unsafe_code)]
mod sys;

pub use card::{Card, Dumb, Import};
pub use heap::Heap;
pub use v4l2::VideoQueue;
