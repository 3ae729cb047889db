//! `cargo xtask bench`: benchmarks run in the guest; table and JSON in `target/bench/`.

use crate::Result;

pub fn main(_args: &[String]) -> Result<i32> {
    Err("bench: not built yet".into())
}
