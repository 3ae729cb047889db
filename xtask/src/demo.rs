//! `cargo xtask demo`: the main job. Boots the guest and shows what cenalloc sees and decides.

use crate::Result;

pub fn main(_args: &[String]) -> Result<i32> {
    Err("demo: not yet".into())
}
