//! Shared helpers of the cenalloc example programs.
pub mod bench;
pub mod pipeline;
