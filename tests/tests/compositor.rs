//! The sample compositor and client (examples/src/bin/{compositor,client}) against vkms: a
//! client's cenalloc buffer is scanned out without a copy, a format the primary plane cannot
//! scan out is composited and reported so, and malformed client buffers get the linux-dmabuf
//! protocol error while the compositor keeps serving a well-behaved client; and under a seatd
//! session (`--session`) the compositor, run as a user who cannot open the KMS node, gets it
//! from the seat and proves the same zero-copy presentation.
//!
//! The binaries come from `$CENALLOC_BIN_DIR` (`cargo xtask test` sets it to target/debug;
//! build them first with `cargo build -p cenalloc-examples --bins --features libseat`).

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
        "{} is missing: run `cargo build -p cenalloc-examples --bins --features libseat`",
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

/// The user the session test runs the compositor as: `nobody`, who may not open a DRM node.
const NOBODY: u32 = 65534;

/// seatd, run for one test: started with a debug log and its socket owned by `nobody`, stopped
/// (SIGTERM, so it removes its socket) when dropped, whatever the test did.
struct Seatd {
    child: std::process::Child,
    log: PathBuf,
}

impl Seatd {
    const SOCKET: &'static str = "/run/seatd.sock";

    /// Starts seatd and waits for its socket; panics (the test fails) if it cannot.
    fn start() -> Seatd {
        assert!(
            !std::path::Path::new(Self::SOCKET).exists(),
            "{} exists before the test started seatd: another seatd is running",
            Self::SOCKET
        );
        let log = std::env::temp_dir().join("cenalloc-seatd.log");
        let file = std::fs::File::create(&log).expect("seatd log file");
        let child = Command::new("seatd")
            .args(["-l", "debug", "-u", "nobody"])
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

/// What the unprivileged session needs besides the seat, as a desktop's udev rules and login
/// give it: the system dma-buf heap open to other users (cenalloc allocates the swapchain and
/// the client's buffers there) and a runtime directory of its own for the Wayland socket.
/// Dropping it puts the heap's mode back and removes the directory.
struct UserSetup {
    heap: PathBuf,
    heap_mode: u32,
    runtime_dir: PathBuf,
    /// The compositor and client, copied where `nobody` can reach them (a workspace in a
    /// fresh clone under a 0700 mktemp directory is not).
    bin_dir: PathBuf,
}

impl UserSetup {
    fn new() -> UserSetup {
        use std::os::unix::fs::PermissionsExt;
        let heap = PathBuf::from("/dev/dma_heap/system");
        let meta = std::fs::metadata(&heap)
            .unwrap_or_else(|e| panic!("{}: {e} (the guest's system heap)", heap.display()));
        let heap_mode = meta.permissions().mode() & 0o7777;
        let runtime_dir = PathBuf::from(format!("/run/user/{NOBODY}"));
        let setup = UserSetup {
            heap,
            heap_mode,
            runtime_dir,
            bin_dir: PathBuf::from("/run/cenalloc-nobody-bin"),
        };
        std::fs::create_dir_all(&setup.bin_dir)
            .and_then(|_| {
                std::fs::set_permissions(&setup.bin_dir, std::fs::Permissions::from_mode(0o755))
            })
            .unwrap_or_else(|e| panic!("{}: {e}", setup.bin_dir.display()));
        for name in ["compositor", "client"] {
            let to = setup.bin_dir.join(name);
            std::fs::copy(bin(name), &to)
                .and_then(|_| std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)))
                .unwrap_or_else(|e| panic!("copying {name} to {}: {e}", to.display()));
        }
        std::fs::set_permissions(
            &setup.heap,
            std::fs::Permissions::from_mode(heap_mode | 0o006),
        )
        .unwrap_or_else(|e| panic!("chmod o+rw {}: {e}", setup.heap.display()));
        std::fs::create_dir_all(&setup.runtime_dir)
            .and_then(|_| {
                std::fs::set_permissions(&setup.runtime_dir, std::fs::Permissions::from_mode(0o700))
            })
            .and_then(|_| std::os::unix::fs::chown(&setup.runtime_dir, Some(NOBODY), Some(NOBODY)))
            .unwrap_or_else(|e| panic!("{}: {e}", setup.runtime_dir.display()));
        setup
    }
}

impl Drop for UserSetup {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ =
            std::fs::set_permissions(&self.heap, std::fs::Permissions::from_mode(self.heap_mode));
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
        let _ = std::fs::remove_dir_all(&self.bin_dir);
    }
}

impl UserSetup {
    /// The copy of the binary `name` that `nobody` can run.
    fn bin(&self, name: &str) -> String {
        self.bin_dir.join(name).to_string_lossy().into_owned()
    }
}

/// `cmd` run as `nobody` (no supplementary groups), by setpriv.
fn as_nobody(cmd: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
        "--".into(),
        cmd.into(),
    ]);
    c
}

/// `--session`: the compositor, run as `nobody`, who cannot open the KMS node, gets it through
/// a libseat session served by seatd, which makes it DRM master; the zero-copy proof (plane
/// assignment, GETFB2 backing, bit-exact writeback) holds as with the direct open as root. The
/// client runs as `nobody` too: it cannot open the node either, so it allocates from the
/// system heap without the display's constraints (vkms scans that out).
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn compositor_as_a_user_under_a_seatd_session_scans_out_zero_copy() {
    let setup = UserSetup::new();
    let seatd = Seatd::start();
    let client = setup.bin("client");
    let out = as_nobody(&setup.bin("compositor"))
        .args([
            "--session",
            "--verify",
            "30",
            "--",
            &client,
            "--frames",
            "30",
        ])
        .env("XDG_RUNTIME_DIR", &setup.runtime_dir)
        .env("LIBSEAT_BACKEND", "seatd")
        .env("RUST_LOG", "info")
        .output()
        .expect("cannot run setpriv (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = seatd.log_text();
    drop(seatd);
    drop(setup);
    println!("{text}\n--- seatd\n{log}");
    assert!(out.status.success(), "compositor --session failed:\n{text}");
    assert!(text.contains("30/30 frames zero-copy"), "{text}");
    assert!(
        text.contains("frame 30/30: client buffer on the primary plane"),
        "{text}"
    );
    // The node came through the seat: the compositor says so, and seatd opened it for a
    // client of uid nobody (and closed it when the compositor left).
    let node = text
        .lines()
        .find_map(|l| {
            let rest = &l[l.find("session: ")? + "session: ".len()..];
            rest.strip_suffix(" opened through libseat on seat seat0")
        })
        .unwrap_or_else(|| panic!("the compositor did not say it used the seat:\n{text}"))
        .to_owned();
    assert!(
        log.contains(&format!("uid: {NOBODY},")),
        "seatd's client was not uid {NOBODY}:\n{log}"
    );
    assert!(
        log.contains(&format!("Opening device {node} for client"))
            && log.contains(&format!("Closing device {node} for client")),
        "seatd did not open (and close) {node} for the compositor:\n{log}"
    );
    assert!(
        !log.contains("[ERROR]"),
        "seatd logged an error taking the device back:\n{log}"
    );
    // And a direct open, the compositor's path without --session, is refused to nobody.
    let direct = as_nobody("sh")
        .args(["-c", "exec 3<>\"$0\"", &node])
        .output()
        .expect("cannot run setpriv (util-linux)");
    assert!(
        !direct.status.success()
            && String::from_utf8_lossy(&direct.stderr).contains("Permission denied"),
        "nobody could open {node} directly, so the test proves nothing about the seat: {direct:?}"
    );
}
