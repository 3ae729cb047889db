//! cenalloc — *C*onstraint-*EN*abled *ALLOC*ation of dma-bufs shared by many devices.
//!
//! A frame often travels through several devices (camera or decoder → GPU → display). cenalloc
//! collects every device that will touch a buffer as an [`Importer`], asks each for its
//! [`Constraints`] for one [`BufferRequest`], merges them ([`merge()`]), picks the cheapest
//! [`MemorySource`] that satisfies the merged constraints, lays the planes out ([`layout`]),
//! allocates once and imports the resulting dma-buf into every device.
//!
//! Where things are: [`usage`], [`request`] and [`constraints`] describe what is asked and what
//! each device needs; [`mod@merge`] combines devices; [`mod@format`] and [`layout`] lay planes out;
//! [`source`] finds dma-buf heaps and udmabuf; [`plan`] chooses a source and explains why;
//! [`allocator`] turns plans into [`Buffer`]s imported into every device ([`SharedBuffer`]);
//! [`pending`] attaches devices before memory exists; [`pool`] reuses buffers; the optional
//! `smithay` module converts to smithay's types (feature `smithay`). All `unsafe` lives in
//! the private `sys` module (ioctls and mmap).
//!
//! This crate knows no device API: DRM and V4L2 devices plug in through the [`Importer`] trait,
//! implemented by the `cenalloc-drm` and `cenalloc-v4l2` crates.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod allocator;
pub mod buffer;
pub mod citation;
pub mod constraints;
pub mod error;
pub mod format;
pub mod importer;
pub mod layout;
pub mod merge;
pub mod modifier;
pub mod pending;
pub mod plan;
pub mod pool;
pub mod request;
pub mod shared;
pub mod source;
pub mod usage;

#[allow(unsafe_code)]
mod sys;

#[cfg(test)]
mod alloc_tests;
#[cfg(test)]
mod testutil;

#[cfg(feature = "smithay")]
pub mod smithay;

pub use crate::allocator::Allocator;
pub use buffer::{Buffer, CpuAccess, FenceAccess, Mapping};
pub use constraints::{CachePolicy, Constraints, PlaneConstraint};
pub use error::{ConstraintKind, Error, Result};
pub use importer::{Exported, Import, Imported, Importer};
pub use layout::{Layout, PlaneLayout};
pub use merge::{merge, MergedConstraints, Origins};
pub use modifier::Modifier;
pub use pending::PendingBuffer;
pub use plan::{Plan, SourceChoice};
pub use pool::{Pool, PooledBuffer};
pub use request::{BufferKind, BufferRequest};
pub use shared::SharedBuffer;
pub use source::{MemorySource, SourceKind, SourceProperties, UnavailableSource};
pub use usage::Usage;

/// Re-export of the fourcc codes used in every request.
pub use drm_fourcc::DrmFourcc as Fourcc;
