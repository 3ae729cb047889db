//! Faults a test injects from outside the code under test: unplugging a vivid camera.

use std::os::fd::AsFd;
use std::path::Path;

/// vivid's "Disconnect" button control (VIVID_CID_VIVID_BASE + 65, drivers/media/test-drivers/
/// vivid/vivid-ctrls.c): it unregisters every node of the instance as an unplugged USB camera
/// would. vivid registers them again once the last open file of the instance is closed.
const VIVID_CID_DISCONNECT: u32 = 0x00f0_f000 + 65;

/// Opens the vivid node at `node` and presses its Disconnect control. The returned file is
/// the caller's handle on the instance: vivid reconnects after it (and every other user) is
/// closed.
pub fn vivid_disconnect(node: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)?;
    cenalloc_raw_ioctl::v4l2::set_control(file.as_fd(), VIVID_CID_DISCONNECT, 1)?;
    Ok(file)
}
