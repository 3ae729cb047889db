//! The sample compositor and client (examples/src/bin/{compositor,client}) against vkms: a
//! client's cenalloc buffer is scanned out without a copy, a format the primary plane cannot
//! scan out is composited and reported so, and malformed client buffers get the linux-dmabuf
//! protocol error while the compositor keeps serving a well-behaved client.
//!
//! The binaries come from `$CENALLOC_BIN_DIR` (`cargo xtask test` sets it to target/debug;
//! build them first with `cargo build -p cenalloc-examples --bins`).

use std::path::PathBuf;
use std::process::Command;

/// A binary of cenalloc-examples; panics if it was not built.
fn bin(name: &str) -> String {
    let dir = std::env::var_os("CENALLOC_BIN_DIR").unwrap_or_else(|| {
        panic!("CENALLOC_BIN_DIR is not set (cargo xtask test sets it to target/debug)")
    });
    let path = PathBuf::from(dir).join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p cenalloc-examples --bins`",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// Runs the compositor with `args`; returns (success, stdout + stderr).
fn compositor(args: &[&str]) -> (bool, String) {
    compositor_with(args, &[("RUST_LOG", "warn")])
}

/// Runs the compositor with `args` and the environment variables `env`; returns (success,
/// stdout + stderr).
fn compositor_with(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(bin("compositor"))
        .args(args)
        .envs(env.iter().copied())
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .output()
        .expect("cannot start the compositor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// XDG_RUNTIME_DIR for the Wayland socket (the guest has /run/user/0).
fn runtime_dir() -> String {
    let dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run/user/0".into());
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
    dir
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn client_buffers_are_scanned_out_zero_copy() {
    let client = bin("client");
    let (ok, out) = compositor(&["--verify", "30", "--", &client, "--frames", "30"]);
    assert!(ok, "compositor failed:\n{out}");
    assert!(out.contains("30/30 frames zero-copy"), "{out}");
    assert!(
        out.contains("frame 30/30: client buffer on the primary plane"),
        "{out}"
    );
    assert!(!out.contains("differs"), "{out}");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn every_format_of_the_scanout_tranche_is_zero_copy() {
    // RG16 is not the swapchain's format, but vkms's primary plane scans it out.
    let client = bin("client");
    let (ok, out) = compositor(&[
        "--verify", "5", "--", &client, "--frames", "5", "--format", "RG16",
    ]);
    assert!(ok, "compositor failed:\n{out}");
    assert!(out.contains("5/5 frames zero-copy"), "{out}");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn serves_a_client_on_the_virtual_connector() {
    // Without --verify the compositor drives Virtual-1 and exits when its client is done.
    let client = bin("client");
    let (ok, out) = compositor(&["--", &client, "--frames", "5"]);
    assert!(ok, "compositor failed:\n{out}");
    assert!(out.contains("exited: exit status: 0"), "{out}");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn format_the_plane_cannot_scan_out_is_composited_and_reported() {
    let client = bin("client");
    // vkms's primary plane scans out XR24/AR24/RG16, not XB24: pixman composites it.
    let args = ["--", &client, "--frames", "5", "--format", "XB24"];
    let (ok, out) = compositor(&[&["--verify", "5", "--expect", "composited"], &args[..]].concat());
    assert!(
        ok,
        "composited frames must still reach the display exactly:\n{out}"
    );
    assert!(out.contains("0/5 frames zero-copy"), "{out}");
    assert!(out.contains("5/5 frames composited"), "{out}");
    assert!(out.contains("composited into the swapchain"), "{out}");

    // Asked for zero-copy, the same run fails and says why.
    let (ok, out) = compositor(&[&["--verify", "5"], &args[..]].concat());
    assert!(!ok, "composited frames were accepted as zero-copy:\n{out}");
    assert!(out.contains("0/5 frames zero-copy"), "{out}");
}

/// A misbehaving client beside a good one: it gets `error`, the good one still gets every frame
/// scanned out.
fn bad_client(kind: &str, error: &str) {
    let client = bin("client");
    let bad = format!("{client} --bad {kind}");
    let (ok, out) = compositor(&[
        "--verify", "5", "--also", &bad, "--", &client, "--frames", "5",
    ]);
    assert!(ok, "compositor failed with a {kind} client beside:\n{out}");
    let expected =
        "got the expected protocol error from the compositor: zwp_linux_buffer_params_v1";
    assert!(out.contains(expected), "{kind}: no protocol error:\n{out}");
    assert!(
        out.contains(&format!("({error})")),
        "{kind}: expected {error}:\n{out}"
    );
    assert!(out.contains("5/5 frames zero-copy"), "{out}");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn stride_past_the_buffer_is_out_of_bounds() {
    bad_client("stride", "out_of_bounds");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn stride_shorter_than_a_row_is_rejected() {
    bad_client("short-stride", "invalid_wl_buffer");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn offset_past_the_buffer_is_out_of_bounds() {
    bad_client("offset", "out_of_bounds");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn buffer_smaller_than_claimed_is_out_of_bounds() {
    bad_client("size", "out_of_bounds");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn too_few_planes_are_incomplete() {
    bad_client("planes", "incomplete");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn fd_that_is_not_a_dmabuf_is_rejected() {
    bad_client("not-dmabuf", "invalid_wl_buffer");
}

/// seatd, run for one test: started with a debug log, stopped (SIGTERM, so it removes its
/// socket) when dropped.
struct Seatd {
    child: std::process::Child,
    log: PathBuf,
}

impl Seatd {
    const SOCKET: &'static str = "/run/seatd.sock";

    /// Starts seatd and waits for its socket; panics (the test fails) if it cannot.
    fn start() -> Seatd {
        let log = std::env::temp_dir().join("cenalloc-seatd.log");
        let file = std::fs::File::create(&log).expect("seatd log file");
        let child = Command::new("seatd")
            .args(["-l", "debug"])
            // The guest's console is a serial line; the seat need not drive a VT.
            .env("SEATD_VTBOUND", "0")
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .expect("cannot start seatd (Debian package seatd; cargo xtask test installs it)");
        let seatd = Seatd { child, log };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::path::Path::new(Self::SOCKET).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "seatd made no socket at {}:\n{}",
                Self::SOCKET,
                seatd.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        seatd
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Seatd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// `--session`: the compositor opens the KMS node through a libseat session served by seatd
/// (as on a desktop without running as root it would have to); the zero-copy proof holds as
/// with the direct open, and the device is handed back cleanly at the end.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn compositor_under_a_seatd_session_scans_out_zero_copy() {
    let seatd = Seatd::start();
    let client = bin("client");
    let (ok, text) = compositor_with(
        &[
            "--session",
            "--verify",
            "30",
            "--",
            &client,
            "--frames",
            "30",
        ],
        &[("LIBSEAT_BACKEND", "seatd"), ("RUST_LOG", "info")],
    );
    let log = seatd.log_text();
    drop(seatd);
    println!("{text}\n--- seatd\n{log}");
    assert!(ok, "compositor --session failed:\n{text}");
    assert!(text.contains("30/30 frames zero-copy"), "{text}");
    assert!(
        text.contains("opened through libseat on seat seat0"),
        "the compositor did not say it used the seat:\n{text}"
    );
    assert!(
        log.contains("Opening device /dev/dri/card")
            && log.contains("Closing device /dev/dri/card"),
        "seatd did not open (and close) the KMS node for the compositor:\n{log}"
    );
    // Everything is let go while the seat still grants DRM master.
    assert!(
        !text.contains("drop drm master") && !text.contains("Permission denied"),
        "errors while handing the device back to the seat:\n{text}"
    );
}
