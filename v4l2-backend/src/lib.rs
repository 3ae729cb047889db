//! V4L2 devices (cameras, decoders, encoders, mem2mem) as cenalloc importers.
//!
//! Layered like v4l2r: `sys` (UAPI structures and ioctls, all of the crate's `unsafe`) →
//! [`device`] (an open node: capabilities, formats) → [`probe`](mod@probe) (roles, DMABUF support,
//! contiguity, [`DeviceReport`]) → [`queue`] (a V4L2 queue of cenalloc buffers) →
//! [`decoder`], [`encoder`] (the stateful codec protocols), [`stateless`] (a stateless
//! decoder through media [`request`]s; [`fwht`] is the codec it decodes). [`importer`] implements
//! [`cenalloc::Importer`]; [`format`](mod@format) maps V4L2 pixel formats to DRM fourccs.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod decoder;
pub mod device;
pub mod encoder;
pub mod format;
pub mod frame_rate;
pub mod fwht;
pub mod importer;
pub mod probe;
pub mod queue;
pub mod request;
pub mod stateless;
#[allow(unsafe_code)]
mod sys;

pub use decoder::{LastBuffer, StatefulDecoder};
pub use device::{Device, Direction, QueueFormat};
pub use encoder::StatefulEncoder;
pub use format::{drm_to_v4l2, v4l2_to_drm, PixelFormat};
pub use importer::{V4l2Import, V4l2Importer};
pub use probe::{
    find_by_name, list_devices, open_named, probe, probe_all, probe_path, ContiguityEvidence,
    DeviceReport, FormatReport, Role,
};
pub use queue::{Dequeued, Queue};
pub use request::{MediaDevice, Request};
pub use stateless::StatelessFwhtDecoder;
