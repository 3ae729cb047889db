//! Helpers for the device tests that run inside the QEMU guest.
