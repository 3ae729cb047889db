//! Shared helpers of the cenalloc example programs.
