//! The README's example program (`readme-example`) in the guest: vkms as the display and
//! vivid-000 (contiguous memory only) as the camera — the CMA heap is chosen and the buffer
//! becomes a framebuffer on the display.

use std::process::Command;

use cenalloc_vmtests::devices;

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn the_readme_example_runs_on_vkms_and_vivid_000() {
    let out = Command::new(cenalloc_vmtests::program("readme-example"))
        .arg(devices::drm_card("vkms"))
        .arg(devices::video_node("vivid-000-vid-cap"))
        .output()
        .expect("run readme-example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "readme-example failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("source reserved: "), "{stdout}");
    assert!(stdout.contains("vivid-000"), "{stdout}");
    assert!(
        stdout.contains("display framebuffer: Some("),
        "no framebuffer: {stdout}"
    );
}
