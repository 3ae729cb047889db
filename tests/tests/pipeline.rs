//! The zero-copy pipelines in the guest: `camera-to-display` (vivid → vkms, and vivid → vim2m
//! → vkms) and `decode-to-display` (vicodec → vkms, also across a mid-stream resolution
//! change), each verified frame by frame through the vkms writeback connector, and the
//! teardown when the camera stops or is unplugged mid-stream.

use std::path::PathBuf;
use std::process::{Command, Output};

use std::time::Duration;

use cenalloc_drm::NodeKind;
use cenalloc_vmtests::dma_buf::{watch, DmaBuf};

fn bin(name: &str) -> PathBuf {
    cenalloc_vmtests::program(name)
}

/// Runs a pipeline program; returns its output with stdout and stderr echoed.
fn run(name: &str, args: &[&str]) -> (Output, String, String) {
    let out = Command::new(bin(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("$ {name} {}\n{stdout}{stderr}", args.join(" "));
    (out, stdout, stderr)
}

/// The numbers of a `label: open fds A → B, framebuffers on DEV C → D` line.
fn numbers_after(stdout: &str, label: &str) -> Vec<usize> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{stdout}"));
    let (_, counts) = line.split_at(label.len());
    let mut v = Vec::new();
    for word in counts.split([' ', ',']) {
        if let Ok(n) = word.parse() {
            v.push(n);
        }
    }
    v
}

/// Checks the program's `released: open fds A → B, framebuffers on DEV C → D` line: nothing
/// leaked. Returns [A, B, C, D].
fn assert_released(stdout: &str) -> Vec<usize> {
    let released = numbers_after(stdout, "released:");
    assert_eq!(released.len(), 4, "{released:?}");
    assert_eq!(released[0], released[1], "fds leaked: {released:?}");
    assert_eq!(
        released[2], released[3],
        "framebuffers leaked: {released:?}"
    );
    released
}

fn vkms_framebuffers() -> usize {
    let vkms = cenalloc_vmtests::drm_device("vkms", NodeKind::Card);
    cenalloc_vmtests::dri_debugfs_framebuffers(&vkms)
}

fn camera_to_display_verifies(camera: &str, heap: &str) {
    let fbs_before = vkms_framebuffers();
    let (out, stdout, stderr) = run(
        "camera-to-display",
        &["--camera", camera, "--frames", "30", "--verify"],
    );
    assert!(out.status.success(), "{camera}: failed:\n{stderr}");
    assert!(
        stdout.contains(&format!("plan: source Heap {heap} ")),
        "{camera}: the plan should choose the {heap} heap:\n{stdout}"
    );
    assert!(stdout.contains("  - source "), "no reasons printed");
    assert!(
        stdout.contains("verified 30/30 frames"),
        "{camera}: not every frame verified:\n{stdout}"
    );
    assert_released(&stdout);
    assert_eq!(vkms_framebuffers(), fbs_before, "framebuffers left on vkms");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn camera_to_display_vivid_000_on_vkms_verifies_30_frames_from_the_cma_heap() {
    camera_to_display_verifies("vivid-000", "reserved");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn camera_to_display_vivid_001_on_vkms_verifies_30_frames_from_the_system_heap() {
    camera_to_display_verifies("vivid-001", "system");
}

/// camera → vim2m → vkms: each hop's plan printed with its reasons (the camera's hop from
/// `camera_heap`, the display's from the system heap), 30 frames, each displayed frame
/// bit-exact with the vim2m CAPTURE buffer it came from and each of those vim2m's conversion
/// of the captured frame it read; nothing leaked. While it runs, bufinfo must show the
/// display's buffers attached to vkms (and vivid-000's to vivid-000), each hop's buffers from
/// its heap and attached to no device outside the hop.
fn camera_via_vim2m_verifies(camera: &str, camera_device: &str, camera_heap: &str) {
    let fbs_before = vkms_framebuffers();
    let mut cmd = Command::new(bin("camera-to-display"));
    cmd.args([
        "--camera", camera, "--via", "vim2m", "--frames", "30", "--verify",
    ]);
    let run = watch(cmd, "/tmp/cenalloc-chain.log", Duration::from_secs(300));
    let stdout = &run.output;
    assert!(run.status.success(), "{camera} via vim2m failed:\n{stdout}");
    for (hop, heap) in [
        ("camera → converter", camera_heap),
        ("converter → display", "system"),
    ] {
        assert!(
            stdout.contains(&format!("{hop} plan: source Heap {heap} ")),
            "{camera}: the {hop} hop should come from the {heap} heap:\n{stdout}"
        );
    }
    assert!(stdout.contains("  - source "), "no reasons printed");
    assert!(
        stdout.contains("converted 30/30 frames"),
        "{camera}: not every frame was vim2m's conversion of a captured one:\n{stdout}"
    );
    assert!(
        stdout.contains("verified 30/30 frames"),
        "{camera}: not every displayed frame verified:\n{stdout}"
    );
    assert_released(stdout);
    assert_eq!(vkms_framebuffers(), fbs_before, "framebuffers left on vkms");
    // vb2-vmalloc drivers (vim2m, vivid-001) map an imported dma-buf without attaching to
    // it, so bufinfo names only the dma-contig camera (vivid-000) and vkms.
    let hops = [
        (
            "camera to converter",
            camera_heap,
            [camera_device, "vim2m"],
            (camera_device == "vivid.0").then_some(camera_device),
        ),
        (
            "converter to display",
            "system",
            ["vim2m", "vkms"],
            Some("vkms"),
        ),
    ];
    for (name, exporter, devices, attaching) in hops {
        let hop: Vec<&DmaBuf> = run.seen.iter().filter(|b| b.name == name).collect();
        if let Some(device) = attaching {
            assert!(
                hop.iter().any(|b| b.attached_to(device)),
                "no {name:?} dma-buf was seen attached to {device}: {hop:#?}"
            );
        }
        for b in hop {
            assert_eq!(b.exporter, exporter, "{b:?}");
            assert!(
                b.attached
                    .iter()
                    .all(|a| devices.iter().any(|d| a.contains(d))),
                "a {name:?} dma-buf was attached to a device outside its hop: {b:?}"
            );
        }
    }
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn camera_via_vim2m_vivid_000_verifies_30_frames_with_the_camera_hop_from_cma() {
    camera_via_vim2m_verifies("vivid-000", "vivid.0", "reserved");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn camera_via_vim2m_vivid_001_verifies_30_frames_from_the_system_heap() {
    camera_via_vim2m_verifies("vivid-001", "vivid.1", "system");
}

/// A format vim2m cannot take, and a converter that is no memory-to-memory device: typed
/// errors naming the device and the constraint, nothing leaked.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn camera_via_a_converter_that_cannot_convert_fails_naming_device_and_format() {
    let fbs_before = vkms_framebuffers();
    let (out, stdout, stderr) = run(
        "camera-to-display",
        &["--via", "vim2m", "--camera-format", "YUYV", "--frames", "5"],
    );
    assert!(!out.status.success(), "YUYV into vim2m should fail");
    assert!(
        stderr.contains("vim2m")
            && stderr.contains("format not supported")
            && stderr.contains("YUYV")
            && stderr.contains("Output queue"),
        "the error should name vim2m's OUTPUT queue and YUYV:\n{stderr}"
    );
    assert_released(&stdout);
    let (out, stdout, stderr) = run(
        "camera-to-display",
        &["--via", "vivid-001", "--frames", "5"],
    );
    assert!(!out.status.success(), "a camera is no converter");
    assert!(
        stderr.contains("vivid-001") && stderr.contains("not a memory-to-memory device"),
        "{stderr}"
    );
    assert_released(&stdout);
    assert_eq!(vkms_framebuffers(), fbs_before, "framebuffers left on vkms");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn camera_stopping_mid_stream_ends_the_loop_with_an_error_and_releases_everything() {
    let fbs_before = vkms_framebuffers();
    for extra in [&["--verify"][..], &[][..]] {
        let mut args = vec![
            "--camera",
            "vivid-001",
            "--frames",
            "30",
            "--stop-camera-after",
            "10",
        ];
        args.extend_from_slice(extra);
        let (out, stdout, stderr) = run("camera-to-display", &args);
        assert!(
            !out.status.success(),
            "{args:?}: succeeded though the camera stopped"
        );
        assert!(
            stderr.contains("vivid-001-vid-cap")
                && stderr.contains("stopped delivering frames after 10 frame(s)"),
            "{args:?}: no clear error naming the camera:\n{stderr}"
        );
        let held = numbers_after(&stdout, "held while running:");
        let released = assert_released(&stdout);
        assert!(
            held[held.len() - 1] >= released[2] + 4,
            "the 4 pool framebuffers should exist while running: held {held:?}, released {released:?}"
        );
        assert!(!stderr.contains("not everything was released"), "{stderr}");
    }
    assert_eq!(vkms_framebuffers(), fbs_before, "framebuffers left on vkms");
}

/// The camera unplugged from outside while the loop runs (vivid's Disconnect control, as a
/// USB camera pulled out): the loop ends with an error naming the camera, everything the
/// program held is released, and the camera works again once every user has let go.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn camera_unplugged_mid_stream_ends_the_loop_with_an_error_and_releases_everything() {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let fbs_before = vkms_framebuffers();
    let node = cenalloc_vmtests::devices::video_node("vivid-001-vid-cap");
    let mut child = Command::new(bin("camera-to-display"))
        .args(["--camera", "vivid-001", "--frames", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start camera-to-display");
    // Let it stream a few frames (vivid gives ~5 fps in the TCG guest).
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "camera-to-display ended before the camera was unplugged"
    );
    let unplugged = cenalloc_vmtests::fault::vivid_disconnect(&node)
        .unwrap_or_else(|e| panic!("vivid Disconnect control on {}: {e}", node.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("camera-to-display still running 30 s after the camera was unplugged");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .map(|mut o| o.read_to_string(&mut stdout));
    child
        .stderr
        .take()
        .map(|mut e| e.read_to_string(&mut stderr));
    println!("$ camera-to-display --camera vivid-001 (unplugged)\n{stdout}{stderr}");
    drop(unplugged);
    assert!(
        !status.success(),
        "succeeded though the camera was unplugged"
    );
    let frames: usize = stderr
        .split("stopped delivering frames after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no clear error naming the camera:\n{stderr}"));
    assert!(
        frames > 0,
        "no frame was shown before the unplug:\n{stderr}"
    );
    assert!(
        stderr.contains("vivid-001-vid-cap") && stderr.contains("No such device"),
        "the error should name the camera and say it is gone:\n{stderr}"
    );
    assert_released(&stdout);
    assert!(!stderr.contains("not everything was released"), "{stderr}");
    assert_eq!(vkms_framebuffers(), fbs_before, "framebuffers left on vkms");

    // Every user has closed the camera: vivid registers it again and it streams.
    let (out, stdout, stderr) = run(
        "camera-to-display",
        &["--camera", "vivid-001", "--frames", "3"],
    );
    assert!(
        out.status.success() && stdout.contains("displayed 3 frames"),
        "vivid-001 did not come back after the unplug:\n{stderr}"
    );
}

/// vicodec's stateless decoder through the request API: 20 frames (two intra frames, at the
/// encoder's GOP of 10; the others P-frames decoded from the frame before them, kept in its
/// cenalloc buffer), each read back bit-exact and at least 30 dB from the source pattern.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn decode_to_display_stateless_verifies_20_frames_decoded_through_media_requests() {
    let fbs_before = vkms_framebuffers();
    let (out, stdout, stderr) = run(
        "decode-to-display",
        &["--stateless", "--frames", "20", "--verify"],
    );
    assert!(
        out.status.success(),
        "decode-to-display --stateless failed:\n{stderr}"
    );
    assert!(
        stdout.contains("decoder stateless-decoder")
            && stdout.contains("one media request per frame on /dev/media"),
        "{stdout}"
    );
    assert!(stdout.contains("plan: source Heap system "), "{stdout}");
    assert!(
        stdout.contains("verified 20/20 frames"),
        "not every decoded frame verified:\n{stdout}"
    );
    assert!(
        stdout.contains("2 intra frames; the others decoded from the frame before them"),
        "the stream should hold 18 P-frames decoded from references:\n{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("lowest PSNR"))
        .expect("a PSNR line");
    let db: f64 = line
        .split_whitespace()
        .skip_while(|w| *w != "PSNR")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no PSNR value in {line}"));
    assert!(db >= 30.0, "PSNR {db} dB below 30 dB: {line}");
    assert_released(&stdout);
    assert_eq!(vkms_framebuffers(), fbs_before, "framebuffers left on vkms");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn decode_to_display_verifies_10_vicodec_frames_on_vkms() {
    let fbs_before = vkms_framebuffers();
    let (out, stdout, stderr) = run("decode-to-display", &["--frames", "10", "--verify"]);
    assert!(out.status.success(), "decode-to-display failed:\n{stderr}");
    assert!(stdout.contains("encoded 10 frames"), "{stdout}");
    assert!(
        stdout.contains("plan: source "),
        "no plan printed:\n{stdout}"
    );
    assert!(
        stdout.contains("verified 10/10 frames"),
        "not every decoded frame verified:\n{stdout}"
    );
    assert!(
        stdout.contains("decoded frames against the encoded pattern: lowest PSNR"),
        "no fidelity check of the decoded frames:\n{stdout}"
    );
    assert_released(&stdout);
    assert_eq!(vkms_framebuffers(), fbs_before, "framebuffers left on vkms");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn decode_to_display_follows_a_resolution_change_on_vkms() {
    let fbs_before = vkms_framebuffers();
    // Growing (the old frames are too small) and shrinking.
    for (from, to) in [("640x480", "1280x720"), ("800x600", "640x480")] {
        let args = ["--frames", "6", "--size", from, "--resize", to, "--verify"];
        let (out, stdout, stderr) = run("decode-to-display", &args);
        assert!(
            out.status.success(),
            "decode-to-display {from} → {to} failed:\n{stdout}{stderr}"
        );
        for size in [from, to] {
            assert!(
                stdout.contains(&format!("encoded 3 frames of XR24 {size}")),
                "{stdout}"
            );
        }
        assert!(
            stdout.contains(&format!(
                "resolution change after 3 frames: {to}, new frames"
            )),
            "the change to {to} was not followed after the third frame:\n{stdout}"
        );
        assert_eq!(
            stdout.matches("plan: source ").count(),
            2,
            "one plan per size:\n{stdout}"
        );
        assert!(
            stdout.contains("verified 6/6 frames"),
            "not every frame verified bit-exact at its own size:\n{stdout}"
        );
        assert!(
            stdout.contains("decoded frames against the encoded pattern: lowest PSNR"),
            "{stdout}"
        );
        assert_released(&stdout);
    }
    // On the virtual output (a new mode at the change) rather than the writeback connector.
    let args = ["--frames", "4", "--resize", "1280x720"];
    let (out, stdout, stderr) = run("decode-to-display", &args);
    assert!(
        out.status.success(),
        "decode-to-display on screen failed:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("resolution change after 2 frames: 1280x720")
            && stdout.contains("displayed 4 frames"),
        "{stdout}"
    );
    assert_released(&stdout);
    assert_eq!(vkms_framebuffers(), fbs_before, "framebuffers left on vkms");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn pipeline_bench_measures_both_loops_at_both_sizes_in_a_steady_state() {
    let out_dir = "/tmp/cenalloc-pipeline-bench";
    let (out, stdout, stderr) = run("pipeline-bench", &["--frames", "20", "--out", out_dir]);
    assert!(out.status.success(), "pipeline-bench failed:\n{stderr}");
    assert!(
        stdout.contains("steady state: no new fd, dma-buf or buffer allocation"),
        "{stdout}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{out_dir}/pipeline-bench.json")).expect("the JSON results"),
    )
    .expect("valid JSON");
    let results = json["results"].as_array().expect("results[]");
    assert_eq!(results.len(), 4, "{json:#}");
    for (mode, width) in [
        ("zero-copy", 640),
        ("copy", 640),
        ("zero-copy", 1920),
        ("copy", 1920),
    ] {
        let r = results
            .iter()
            .find(|r| r["mode"] == mode && r["width"] == width)
            .unwrap_or_else(|| panic!("no {mode} {width} result in {json:#}"));
        assert!(r["cpu_us_per_frame"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["fds_before"], r["fds_after"], "{r}");
        assert_eq!(r["dmabufs_before"], r["dmabufs_after"], "{r}");
    }
}
