//! Shared helpers of the cenalloc example programs.
pub mod pipeline;
