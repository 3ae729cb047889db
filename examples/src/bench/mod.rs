//! The `cenalloc-bench` benchmark: cenalloc against the bare kernel calls it makes and
//! against libgbm, measured side by side in one run inside the guest (`cargo xtask bench`).
//!
//! [`measure`] times interleaved batches and takes medians, in the balanced orders of
//! [`order`]; [`runs`] merges the benchmark repeated in several processes; [`placement`] repeats a
//! comparison with the devices opened anew and pools the rounds; [`raw`] is the floor, the ioctl
//! sequence written out directly (DMA_HEAP_IOCTL_ALLOC, PRIME_FD_TO_HANDLE, ADDFB2,
//! VIDIOC_TRY_FMT); [`gbm_path`] is what a GBM user does for a scanout buffer; [`report`]
//! prints the table and writes the JSON. All `unsafe` is in [`sys`].

pub mod gbm_path;
pub mod measure;
pub mod order;
pub mod placement;
pub mod raw;
pub mod report;
pub mod runs;
pub mod sys;
