//! Resource limits and long runs, against the guest's real devices:
//!
//! - the open-file limit (RLIMIT_NOFILE 64) reached while allocating: a typed error carrying
//!   EMFILE, every buffer either fully imported or not at all, everything back after;
//! - the CMA heap exhausted while `camera-to-display` builds its pool: it ends with an error
//!   naming the CMA heap and both devices, and releases what it had allocated;
//! - the CMA heap exhausted while `camera-to-display` streams: nothing happens, because the
//!   pipeline allocates all its buffers before the first frame;
//! - `camera-to-display` for 10,000 frames: fds, GEM handles, framebuffers and RSS at the
//!   last frame are those after the first 100.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use cenalloc::{Allocator, BufferRequest, Error, Fourcc, Importer, Usage};
use cenalloc_drm::{DrmDevice, NodeKind};
use cenalloc_v4l2::{Device, Direction, V4l2Importer};
use cenalloc_vmtests::fds::open_fd_count;
use cenalloc_vmtests::{devices, dri_debugfs_framebuffers, drm_device, program};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

const EMFILE: i32 = 24;

fn vkms() -> DrmDevice {
    drm_device("vkms", NodeKind::Card)
}

/// The OS error somewhere in `e`'s chain of causes.
fn os_error(e: &Error) -> Option<i32> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(n) = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(n);
        }
        cause = c.source();
    }
    None
}

/// What the process and vkms hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holdings {
    fds: usize,
    framebuffers: usize,
    gem_handles: usize,
}

fn holdings(vkms: &DrmDevice) -> Holdings {
    Holdings {
        fds: open_fd_count(),
        framebuffers: dri_debugfs_framebuffers(vkms),
        gem_handles: vkms.live_gem_handles(),
    }
}

/// Allocates for `display` and `others` under RLIMIT_NOFILE 64 until the limit refuses;
/// checks the refusal and that every buffer held is whole.
fn allocate_at_the_fd_limit(
    label: &str,
    display: &DrmDevice,
    others: Vec<Arc<dyn Importer>>,
    usage: Usage,
) {
    let mut importers: Vec<Arc<dyn Importer>> = vec![Arc::new(display.clone())];
    importers.extend(others);
    let a = Allocator::new();
    let request = BufferRequest::image(640, 480, Fourcc::Xrgb8888, usage);
    let plan = a.plan(&request, &importers).expect("plan");
    // One buffer first, so that memory sources and probes have opened what they keep open.
    drop(a.allocate(&plan).expect("a first buffer"));
    let before = holdings(display);
    let old = getrlimit(Resource::Nofile);
    let limit = 64;
    assert!(
        before.fds + 8 < limit,
        "{label}: {} fds open already",
        before.fds
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit as u64),
            maximum: old.maximum,
        },
    )
    .expect("lower RLIMIT_NOFILE");
    let mut held = Vec::new();
    let refusal = loop {
        match a.allocate(&plan) {
            Ok(b) => held.push(b),
            Err(e) => break e,
        }
        assert!(held.len() < 200, "{label}: the fd limit never refused");
    };
    // Counting needs an fd itself: the limit goes back first (which changes no count).
    setrlimit(Resource::Nofile, old).expect("restore RLIMIT_NOFILE");
    let at_limit = holdings(display);
    eprintln!(
        "{label}: {} buffers under RLIMIT_NOFILE {limit}, then: {refusal}; held {at_limit:?} (before {before:?})",
        held.len()
    );
    assert_eq!(
        os_error(&refusal),
        Some(EMFILE),
        "{label}: expected EMFILE in the error, got {refusal:?}"
    );
    assert!(
        refusal.to_string().contains("Too many open files"),
        "{label}: the message does not name the exhausted resource: {refusal}"
    );
    assert!(
        held.len() + before.fds >= limit - 4,
        "{label}: only {} buffers under a limit of {limit} with {} fds open",
        held.len(),
        before.fds
    );
    // Whole or nothing: each buffer held has its one fd, GEM handle and framebuffer; the
    // refused one left none.
    assert_eq!(at_limit.fds, before.fds + held.len(), "{label}: fds");
    assert_eq!(
        at_limit.gem_handles,
        before.gem_handles + held.len(),
        "{label}: GEM handles (a half-imported buffer?)"
    );
    assert_eq!(
        at_limit.framebuffers,
        before.framebuffers + held.len(),
        "{label}: framebuffers (a half-imported buffer?)"
    );
    drop(held);
    assert_eq!(holdings(display), before, "{label}: after freeing");
    // Allocation works again at the normal limit.
    drop(
        a.allocate(&plan)
            .expect("allocation after the limit is lifted"),
    );
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn allocation_at_the_open_file_limit_is_a_typed_error_and_leaves_nothing_half_imported() {
    let camera = Device::open(devices::video_node("vivid-001-vid-cap")).expect("vivid-001");
    let display = vkms();
    allocate_at_the_fd_limit(
        "vkms + vivid-001 (system heap)",
        &display,
        vec![Arc::new(V4l2Importer::new(
            Arc::new(camera),
            Direction::Capture,
        ))],
        Usage::SCANOUT | Usage::CAMERA_WRITE,
    );
    // The display alone: a dumb buffer the display exports (PRIME handle to fd needs an fd).
    allocate_at_the_fd_limit("vkms alone (dumb buffer)", &display, vec![], Usage::SCANOUT);
}

/// Fills the CMA heap: 8 MiB buffers, then 1 MiB ones, until it refuses. Returns them, the
/// 8 MiB ones first.
fn fill_cma(a: &Allocator) -> (Vec<cenalloc::SharedBuffer>, Vec<cenalloc::SharedBuffer>) {
    let fill = |size: u64| {
        let request = BufferRequest::blob(size, Usage::CAMERA_WRITE);
        let plan = a
            .plan_with_source(&request, &[], "reserved")
            .expect("a blob on the CMA heap");
        let mut held = Vec::new();
        while let Ok(b) = a.allocate(&plan) {
            held.push(b);
            assert!(held.len() < 1024, "the CMA heap never refuses");
        }
        held
    };
    let big = fill(8 << 20);
    let small = fill(1 << 20);
    (big, small)
}

/// Runs camera-to-display; returns (success, stdout, stderr) echoed.
fn camera_to_display(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program("camera-to-display"))
        .args(args)
        .output()
        .expect("run camera-to-display");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("$ camera-to-display {}\n{stdout}{stderr}", args.join(" "));
    (out.status.success(), stdout, stderr)
}

/// The numbers of the `released: open fds A → B, framebuffers on DEV C → D` line.
fn released(stdout: &str) -> Vec<u64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("released:"))
        .unwrap_or_else(|| panic!("no released: line in:\n{stdout}"));
    line.split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn cma_exhausted_while_camera_to_display_builds_its_pool_ends_it_naming_cma_and_the_devices() {
    let a = Allocator::new();
    let (mut big, small) = fill_cma(&a);
    // Room for a few 640x480 frames, not for eight.
    let freed = big.pop().expect("at least one 8 MiB buffer of CMA");
    drop(freed);
    let (ok, stdout, stderr) =
        camera_to_display(&["--camera", "vivid-000", "--buffers", "8", "--frames", "10"]);
    drop((big, small));
    assert!(
        !ok,
        "camera-to-display ran though CMA had room for too few buffers"
    );
    let error = stderr
        .lines()
        .find(|l| l.contains("of 8 for"))
        .unwrap_or_else(|| panic!("no error naming the pool's buffer:\n{stderr}"));
    for name in [
        "CMA heap reserved",
        "vivid-000",
        "vkms",
        "Cannot allocate memory",
    ] {
        assert!(
            error.contains(name),
            "the error does not name {name}: {error}"
        );
    }
    let counts = released(&stdout);
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert_eq!(counts[0], counts[1], "fds not released: {counts:?}");
    assert_eq!(
        counts[2], counts[3],
        "framebuffers not released: {counts:?}"
    );
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn cma_exhausted_while_camera_to_display_streams_does_not_stop_it() {
    let mut child = Command::new(program("camera-to-display"))
        .args(["--camera", "vivid-000", "--frames", "240", "--fps", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start camera-to-display");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stdout = String::new();
    for line in lines.by_ref() {
        let line = line.expect("read camera-to-display");
        stdout.push_str(&line);
        stdout.push('\n');
        if line.starts_with("held while running:") {
            break;
        }
    }
    // The pool is allocated; the heap is now filled to the last MiB while frames flow.
    let a = Allocator::new();
    let (big, small) = fill_cma(&a);
    eprintln!(
        "CMA filled while streaming: {} × 8 MiB + {} × 1 MiB",
        big.len(),
        small.len()
    );
    for line in lines {
        stdout.push_str(&line.expect("read camera-to-display"));
        stdout.push('\n');
    }
    let status = child.wait().expect("wait for camera-to-display");
    drop((big, small));
    println!("{stdout}");
    assert!(status.success(), "camera-to-display failed: {status}");
    assert!(stdout.contains("displayed 240 frames"), "{stdout}");
}

/// The footprint line at frame `frame`: [fds, GEM handles, framebuffers, RSS KiB].
fn footprint(stdout: &str, frame: u32) -> Vec<u64> {
    let prefix = format!("footprint at frame {frame}:");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{stdout}"));
    line[prefix.len()..]
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn camera_to_display_for_10000_frames_holds_steady() {
    let (ok, stdout, stderr) =
        camera_to_display(&["--camera", "vivid-000", "--frames", "10000", "--fps", "60"]);
    assert!(ok, "camera-to-display failed:\n{stderr}");
    assert!(stdout.contains("displayed 10000 frames"), "{stdout}");
    let warm = footprint(&stdout, 100);
    let last = footprint(&stdout, 10000);
    eprintln!("footprint [fds, GEM handles, framebuffers, RSS KiB]: frame 100 {warm:?}, frame 10000 {last:?}");
    assert_eq!(warm.len(), 4, "{warm:?}");
    assert_eq!(
        warm[..3],
        last[..3],
        "fds, GEM handles or framebuffers grew"
    );
    assert!(
        last[3] <= warm[3] + 256,
        "RSS grew from {} KiB to {} KiB over 9,900 frames",
        warm[3],
        last[3]
    );
    let counts = released(&stdout);
    assert_eq!(counts[0], counts[1], "fds not released: {counts:?}");
    assert_eq!(
        counts[2], counts[3],
        "framebuffers not released: {counts:?}"
    );
}

/// The compositor's `compositor RSS: A KiB at the first frame -> B KiB` figures.
fn compositor_rss(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("compositor RSS:"))
        .unwrap_or_else(|| panic!("no compositor RSS line in:\n{out}"));
    let n: Vec<u64> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
    (n[0], n[1])
}

/// Runs the compositor at 640x480 with one client process doing `cycles` connect → allocate →
/// commit → disconnect cycles, then a last client; returns the compositor's output.
fn client_cycles(cycles: u32) -> String {
    let client = program("client").display().to_string();
    let first = format!("{client} --frames 1 --cycles {cycles}");
    let (ok, out) = cenalloc_vmtests::compositor::run(
        &[
            "--mode", "640x480", "--first", &first, "--", &client, "--frames", "3",
        ],
        &[("RUST_LOG", "warn")],
    );
    let summary: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("client: frame") && !l.contains("presented frames"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(ok, "the compositor failed with {cycles} client cycles");
    assert!(
        out.contains(&format!(
            "client: {cycles} connect/commit/disconnect cycles"
        )),
        "the cycles did not all run"
    );
    out
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn a_thousand_client_connections_leave_the_compositor_where_it_started() {
    // RSS after 200 cycles is the warm baseline: the first clients fill the compositor's
    // caches (renderer buffers, protocol objects' pools).
    let warm = client_cycles(200);
    let long = client_cycles(1000);
    for out in [&warm, &long] {
        assert!(
            out.contains("left behind by clients: 0 framebuffers, 0 GEM handles"),
            "{out}"
        );
        assert!(!out.contains("were not all released"), "fds grew:\n{out}");
    }
    let (start, after_200) = compositor_rss(&warm);
    let (_, after_1000) = compositor_rss(&long);
    eprintln!(
        "compositor RSS: {start} KiB at the first frame, {after_200} KiB after 200 client cycles, \
         {after_1000} KiB after 1000"
    );
    assert!(
        after_1000 <= after_200 + 256,
        "RSS grew by {} KiB over 800 more client cycles",
        after_1000 as i64 - after_200 as i64
    );
}

/// The compositor under RLIMIT_NOFILE 96 (run through `prlimit`), with a client that sends
/// buffer after buffer and keeps them (`client --hog 200`) beside a client whose frames are
/// verified: the hog's next buffer gets the protocol error `invalid_wl_buffer` ("out of file
/// descriptors") once the compositor's reserve of 32 fds is reached; the compositor keeps running, the other client
/// gets every frame zero-copy, and the hog's fds are all closed with its connection.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn the_compositor_at_its_fd_limit_refuses_a_clients_buffer_and_keeps_running() {
    let client = program("client").display().to_string();
    let hog = format!("{client} --hog 200");
    let out = Command::new("prlimit")
        .arg("--nofile=96:96")
        .arg(program("compositor"))
        .args([
            "--verify", "20", "--also", &hog, "--", &client, "--frames", "20",
        ])
        .env(
            "XDG_RUNTIME_DIR",
            cenalloc_vmtests::compositor::runtime_dir(),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the compositor under prlimit");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("client: frame"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(out.status.success(), "the compositor failed");
    assert!(
        text.contains("client: the compositor refused buffer")
            && text.contains("out of file descriptors"),
        "the hog was not refused"
    );
    assert!(
        text.contains("20/20 frames zero-copy"),
        "the good client suffered"
    );
    assert!(
        text.contains("left behind by clients: 0 framebuffers, 0 GEM handles"),
        "leftovers"
    );
    assert!(!text.contains("were not all released"), "fds grew");
}
