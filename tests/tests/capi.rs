//! libcenalloc's C API in the guest, through C programs built with the system compiler against
//! the uninstalled library (`cargo xtask test` builds them into `target/capi/bin/`): the C
//! camera → display example verified frame by frame through vkms writeback, and the C test
//! program's device checks (CMA chosen for vkms + vivid-000, bad input, 10,000 cycles).

use std::path::PathBuf;
use std::process::Command;

use cenalloc_drm::NodeKind;

/// A C program of `target/capi/bin/` (beside `$CENALLOC_BIN_DIR`, which is `target/debug`).
fn c_program(name: &str) -> PathBuf {
    let debug = cenalloc_vmtests::program("cenalloc-info");
    let path = debug
        .parent()
        .and_then(|d| d.parent())
        .map(|target| target.join("capi/bin").join(name))
        .expect("target/debug has a parent");
    assert!(
        path.is_file(),
        "{} is not built (cargo xtask capi)",
        path.display()
    );
    path
}

/// Runs a C program; returns (success, stdout) with its output echoed.
fn run(name: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(c_program(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "$ {name} {}\n{stdout}{stderr}\nexit: {}",
        args.join(" "),
        out.status
    );
    (out.status.success(), stdout)
}

fn vkms_framebuffers() -> usize {
    let vkms = cenalloc_vmtests::drm_device("vkms", NodeKind::Card);
    cenalloc_vmtests::dri_debugfs_framebuffers(&vkms)
}

fn c_camera_to_display_verifies(camera: &str, heap: &str) {
    let before = vkms_framebuffers();
    let (ok, stdout) = run(
        "camera-to-display",
        &["--camera", camera, "--frames", "30", "--verify"],
    );
    assert!(ok, "{camera}: the C example failed");
    assert!(
        stdout.contains(&format!("plan: source {heap},")),
        "{camera}: the plan should choose the {heap} heap:\n{stdout}"
    );
    assert!(stdout.contains("source "), "no reasons printed:\n{stdout}");
    assert!(
        stdout.contains("verified 30/30 frames"),
        "{camera}: not every frame verified:\n{stdout}"
    );
    assert_eq!(vkms_framebuffers(), before, "framebuffers left on vkms");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn c_camera_to_display_vivid_000_verifies_30_frames_from_the_cma_heap() {
    c_camera_to_display_verifies("vivid-000", "reserved");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn c_camera_to_display_vivid_001_verifies_30_frames_from_the_system_heap() {
    c_camera_to_display_verifies("vivid-001", "system");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn c_test_program_device_checks_pass() {
    let (ok, stdout) = run("capi-test", &["guest"]);
    assert!(ok, "checks failed:\n{stdout}");
    assert!(stdout.contains("guest: 0 failed"), "{stdout}");
    assert!(stdout.contains("10000 cycles:"), "{stdout}");
}

/// The README's C example: vivid-000 with vkms gets the CMA heap and a buffer.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn the_readme_c_example_gets_the_cma_heap() {
    let (ok, stdout) = run("readme-example", &[]);
    assert!(ok, "the README's C example failed");
    assert!(stdout.starts_with("source reserved: fd "), "{stdout}");
    assert!(stdout.contains("contiguous"), "no reasons:\n{stdout}");
}
