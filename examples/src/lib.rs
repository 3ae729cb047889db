//! Shared helpers of the cenalloc example programs.
pub mod pipeline;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctest;
