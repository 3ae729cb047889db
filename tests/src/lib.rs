//! Helpers for the device tests that run inside the QEMU guest (`cargo xtask test`).
//!
//! Devices are found by driver or name, never by node number. A helper that cannot find the
//! device it is asked for panics with a message saying what is missing: in the guest a missing
//! device is a failure, never a skip.

pub mod devices;
pub mod fds;
pub mod raw;
mod sys;
