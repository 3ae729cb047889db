//! DRM devices (KMS displays, render GPUs) as cenalloc importers and exporters.
//!
//! [`DrmDevice`] opens a DRM node (from a path or an fd the caller holds), [`probe`] reads what
//! the kernel says about it (caps, planes and their IN_FORMATS, limits, IOMMU), and the
//! [`cenalloc::Importer`] implementation turns that into constraints, imports dma-bufs as GEM
//! handles and framebuffers, and exports dumb or GBM buffers when the device must allocate.
//! [`kms`] presents a framebuffer; [`writeback`] reads back what a CRTC produced (vkms).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod blob;
pub mod constraints;
pub mod device;
pub mod error;
pub mod export;
mod gem_handles;
pub mod import;
pub mod kms;
pub mod probe;
pub mod quirks;
pub mod report;
pub mod writeback;

#[allow(unsafe_code)]
mod sys;

pub use device::{enumerate, DrmDevice, NodeKind};
pub use error::DrmError;
pub use import::{DrmImport, FramebufferPlanes};
pub use probe::{Caps, ImportTrial, ModeLimits, PlaneKind, PlaneReport, Probe};
pub use report::DeviceReport;
