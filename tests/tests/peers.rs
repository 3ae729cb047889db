//! Programs nobody here wrote, against cenalloc's sample compositor and client: Debian's
//! weston 10 demo clients, wayland-info and GStreamer's waylandsink as clients of the
//! compositor (each frame proven by `compositor --verify`: plane assignment, dma-buf
//! identity, writeback bit-exact), and weston 10 as the compositor of cenalloc's client.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cenalloc_raw_ioctl::heap::alloc as heap_alloc;
use cenalloc_raw_ioctl::Card;
use cenalloc_vmtests::{compositor, devices, program};

/// The compositor proving `frames` frames of `client`, each expected `expect`; returns its
/// output after asserting it succeeded.
fn verify(frames: u32, expect: &str, client: &[&str]) -> String {
    let n = frames.to_string();
    let mut args = vec!["--verify", &n, "--expect", expect, "--timeout", "600", "--"];
    args.extend_from_slice(client);
    let (ok, out) = compositor::run(
        &args,
        &[("RUST_LOG", "warn"), ("GALLIUM_DRIVER", "softpipe")],
    );
    assert!(ok, "compositor --verify {n} -- {client:?} failed:\n{out}");
    let want = format!("{frames}/{frames} frames {expect}");
    assert!(out.contains(&want), "no {want:?}:\n{out}");
    out
}

/// The capture node of the vivid instance `name`, set to 640x480 XR24 with v4l2-ctl.
fn vivid_xr24(name: &str) -> PathBuf {
    let node = devices::video_node(&format!("{name}-vid-cap"));
    let status = Command::new("v4l2-ctl")
        .arg("-d")
        .arg(&node)
        .arg("--set-fmt-video=width=640,height=480,pixelformat=XR24")
        .status()
        .expect("v4l2-ctl (v4l-utils) is installed by cargo xtask setup");
    assert!(
        status.success(),
        "v4l2-ctl --set-fmt-video on {}",
        node.display()
    );
    node
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn wayland_info_lists_the_standard_globals_and_a_scanout_tranche_for_the_kms_node() {
    let out = verify(
        1,
        "composited",
        &["sh", "-c", "wayland-info; exec weston-simple-shm"],
    );
    for global in [
        "'wl_shm'",
        "'wl_output'",
        "'zxdg_output_manager_v1'",
        "'wl_seat'",
        "'wp_presentation'",
        "'wp_viewporter'",
        "'zwp_linux_dmabuf_v1',                        version:  5",
    ] {
        assert!(
            out.contains(global),
            "wayland-info lists no {global}:\n{out}"
        );
    }
    // The KMS node's device number, as wayland-info prints dev_t values.
    let card = devices::drm_card("vkms");
    let rdev = rustix::fs::stat(&card).expect("stat the vkms card").st_rdev;
    let dev = format!("0x{rdev:X}");
    assert!(
        out.contains(&format!("main device: {dev}")),
        "main device {dev}:\n{out}"
    );
    let scanout_tranche = out
        .split("tranche")
        .any(|t| t.contains(&format!("target device: {dev}")) && t.contains("flags: scanout"));
    assert!(
        scanout_tranche,
        "no scanout tranche targeting {dev}:\n{out}"
    );
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn weston_simple_shm_is_composited() {
    verify(30, "composited", &["weston-simple-shm"]);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn weston_simple_dmabuf_v4l_is_zero_copy_on_both_vivid_cameras() {
    for vivid in ["vivid-000", "vivid-001"] {
        let node = vivid_xr24(vivid);
        let node = node.to_string_lossy();
        let out = verify(
            30,
            "zero-copy",
            &[
                "weston-simple-dmabuf-v4l",
                "-v",
                &node,
                "-f",
                "XR24",
                "-d",
                "XR24",
            ],
        );
        println!(
            "{vivid}: {}",
            out.lines()
                .filter(|l| l.contains("frames"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gstreamer_waylandsink_shows_a_camera_zero_copy() {
    let node = devices::video_node("vivid-001-vid-cap");
    let device = format!("device={}", node.display());
    verify(
        30,
        "zero-copy",
        &[
            "gst-launch-1.0",
            "v4l2src",
            &device,
            "io-mode=dmabuf",
            "!",
            "video/x-raw,format=BGRx,width=640,height=480",
            "!",
            "waylandsink",
            "fullscreen=true",
        ],
    );
}

/// weston-simple-dmabuf-feedback (weston 10) gets the renderer's tranche alone in its
/// surface's first feedback, as it requires, picks XRGB8888 from it, and asks GBM for a buffer
/// with the tranche's LINEAR modifier. Mesa's GBM on vkms (kms_swrast) cannot allocate with
/// modifiers, and the client then falls back to a buffer without one (DRM_FORMAT_MOD_INVALID,
/// the implicit layout), which the compositor never offered: the import is refused and the
/// client aborts on its own assertion. This test shows that chain, so that a change on either
/// side is seen.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn weston_simple_dmabuf_feedback_gets_render_feedback_and_sends_an_implicit_modifier() {
    let (ok, out) = compositor::run(
        &[
            "--verify",
            "10",
            "--timeout",
            "300",
            "--",
            "weston-simple-dmabuf-feedback",
        ],
        &[("RUST_LOG", "warn"), ("GALLIUM_DRIVER", "softpipe")],
    );
    assert!(!ok, "the client is expected to abort here:\n{out}");
    assert!(
        out.contains("scanout tranche? no"),
        "first feedback:\n{out}"
    );
    assert!(
        out.contains("modifier: Invalid"),
        "the client's buffer should come with the implicit modifier:\n{out}"
    );
    assert!(
        out.contains("zwp_linux_buffer_params.create failed"),
        "the client's own report:\n{out}"
    );
}

/// weston 10 (drm backend on vkms) as the compositor of cenalloc's client: the client binds
/// weston's linux-dmabuf version 3, allocates, presents every frame and exits 0; what weston's
/// drm-backend debug scope says about the client's view is printed.
///
/// weston runs with its animations off ([`WESTON_INI`]): the client's fullscreen view then
/// goes straight to vkms's primary plane and weston's GL renderer never samples it. With the
/// animations on, weston composites the view while it fades or zooms, and its renderer —
/// Mesa's softpipe on `kms_swrast` — cannot read a dma-buf vkms imported (see
/// [`vkms_maps_its_own_dumb_buffer_but_not_an_imported_dma_buf`]); Mesa 22.3 then
/// dereferences the failed mapping and weston segfaults inside `zink_dri.so`.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn cenalloc_client_runs_on_weston() {
    let crashes_before = weston_segfaults();
    let runtime = compositor::runtime_dir();
    let card = devices::drm_card("vkms");
    let card_name = card.file_name().unwrap().to_string_lossy().into_owned();
    let log = Path::new(&runtime).join("weston.log");
    let config = Path::new(&runtime).join("weston-no-animations.ini");
    std::fs::write(&config, WESTON_INI).unwrap();
    let mut weston = Command::new("weston")
        .args([
            "--backend=drm-backend.so",
            "--tty=1",
            "--continue-without-input",
            "--socket=wayland-weston",
            "--debug",
        ])
        .arg(format!("--drm-device={card_name}"))
        .arg(format!("--config={}", config.display()))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("GALLIUM_DRIVER", "softpipe")
        .stdout(Stdio::null())
        // weston logs to stderr.
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("weston is installed by cargo xtask setup");
    // Ready once its shell client runs (the socket appears earlier).
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("weston-desktop-shell") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "weston did not start its shell in 180 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(5));
    let debug_log = Path::new(&runtime).join("weston-drm-backend.log");
    let mut scope = Command::new("weston-debug")
        .arg("drm-backend")
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("WAYLAND_DISPLAY", "wayland-weston")
        .stdout(std::fs::File::create(&debug_log).unwrap())
        .spawn()
        .expect("weston-debug");
    let client = Command::new(program("client"))
        .args(["--frames", "30"])
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("WAYLAND_DISPLAY", "wayland-weston")
        .output()
        .expect("run the client");
    let _ = scope.kill();
    let _ = scope.wait();
    let _ = weston.kill();
    let _ = weston.wait();
    let client_out = format!(
        "{}{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    assert_eq!(
        weston_segfault(crashes_before),
        None,
        "weston crashed; the client said:\n{client_out}"
    );
    assert!(
        client.status.success(),
        "client on weston:\n{client_out}\nweston's log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        client_out.contains("linux-dmabuf version 3"),
        "{client_out}"
    );
    assert!(client_out.contains("presented 30 frames"), "{client_out}");
    let debug = std::fs::read_to_string(&debug_log).unwrap_or_default();
    assert!(
        debug.contains("top-level window 'cenalloc client'"),
        "weston's drm-backend scope never showed the client's view:\n{debug}"
    );
    let summary = client_out
        .lines()
        .rfind(|l| l.contains("presented frames zero-copy"))
        .unwrap_or_else(|| panic!("no zero-copy summary from the client:\n{client_out}"));
    println!("{summary}");
    let counts = summary
        .split_whitespace()
        .find(|w| w.contains('/'))
        .and_then(|w| w.split_once('/'))
        .and_then(|(z, p)| Some((z.parse::<u32>().ok()?, p.parse::<u32>().ok()?)));
    assert!(
        matches!(counts, Some((zero_copy, presented)) if zero_copy == presented && presented > 0),
        "every frame weston presented should be zero-copy (the view on vkms's primary plane): \
         {summary}"
    );
    println!("weston's drm-backend scope on the client's view:");
    let mut view = None;
    for line in debug.lines() {
        if line.contains("role xdg_toplevel") && line.contains("'cenalloc client'") {
            view = line
                .split(", ")
                .last()
                .map(|v| v.trim_end_matches("):").to_owned());
        }
    }
    let view = view.unwrap_or_default();
    for line in debug
        .lines()
        .filter(|l| !view.is_empty() && l.contains(&view) && l.contains("[view]"))
        .filter(|l| !l.contains("evaluating view"))
        .take(12)
    {
        println!("  {}", line.trim());
    }
}

/// weston.ini for [`cenalloc_client_runs_on_weston`]: no startup fade, no window, close or
/// focus animations, and no idle fade to the lock screen, so that nothing makes weston
/// composite a fullscreen view it can put on a plane.
const WESTON_INI: &str = "\
[core]
idle-time=0

[shell]
startup-animation=none
animation=none
close-animation=none
focus-animation=none
";

/// Why weston's GL renderer on vkms cannot composite a client's dma-buf from a heap: Mesa's
/// `kms_swrast` reads a texture's pages by mapping its GEM handle with MAP_DUMB, and the kernel
/// (`drm_gem_dumb_map_offset`) refuses MAP_DUMB for an imported dma-buf. vkms's own dumb
/// buffer maps; a system-heap dma-buf imported into vkms does not.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vkms_maps_its_own_dumb_buffer_but_not_an_imported_dma_buf() {
    use drm::control::Device as _;
    let card = Card::open(&devices::drm_card("vkms"), true).expect("open vkms");
    let own = card.export_dumb(64, 64).expect("a vkms dumb buffer");
    card.dumb_map_offset(own.handle)
        .expect("MAP_DUMB of vkms's own dumb buffer");
    let dmabuf = heap_alloc(&devices::heap("system"), 64 * 64 * 4).expect("system heap");
    let imported = card
        .prime_fd_to_buffer(dmabuf.as_fd())
        .expect("vkms imports a system-heap dma-buf");
    let refused = card.dumb_map_offset(imported);
    assert_eq!(
        refused.as_ref().map_err(std::io::Error::raw_os_error),
        Err(Some(rustix::io::Errno::INVAL.raw_os_error())),
        "MAP_DUMB of an imported dma-buf: {refused:?}"
    );
    card.close_buffer(imported).unwrap();
    card.close_buffer(own.handle).unwrap();
}

/// The kernel's line about a segfault of weston, if there is a new one.
fn weston_segfault(seen: usize) -> Option<String> {
    let out = Command::new("dmesg").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| l.contains("weston[") && l.contains("segfault"))
        .nth(seen)
        .map(str::to_owned)
}

/// How many weston segfaults the kernel has logged.
fn weston_segfaults() -> usize {
    Command::new("dmesg")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.contains("weston[") && l.contains("segfault"))
                .count()
        })
        .unwrap_or(0)
}
