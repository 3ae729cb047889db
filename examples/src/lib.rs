//! Shared helpers of the cenalloc example programs.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client_dmabuf;
pub mod pipeline;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctest;
