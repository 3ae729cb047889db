//! camera-to-display: a V4L2 camera's frames scanned out by a KMS display with no copy.
//!
//! cenalloc collects the camera's capture queue and the display as importers, plans (the
//! reasons are printed), allocates a pool of buffers imported into both, then loops: DQBUF
//! from the camera → show that buffer's framebuffer → QBUF the buffer shown before once the
//! display has flipped away from it. `--verify` drives the CRTC with the vkms writeback
//! connector instead and compares every read-back frame with the captured one.
//!
//! `--via vim2m` puts a memory-to-memory converter between them: the camera and the
//! converter's OUTPUT queue share one pool, the converter's CAPTURE queue and the display
//! another, each planned for its own pair of devices.

use std::process::ExitCode;

use cenalloc::Allocator;
use cenalloc_examples::pipeline::args::{run_main, Options};
use cenalloc_examples::pipeline::camera::{CameraToDisplay, FrameSink};
use cenalloc_examples::pipeline::chain::{CameraViaConverter, ChainDevices, DISPLAY_FORMAT};
use cenalloc_examples::pipeline::resources::{check_released, show_count, Held};
use cenalloc_examples::pipeline::screen::Screen;
use cenalloc_examples::pipeline::verify::Verifier;
use cenalloc_examples::pipeline::{devices, plan_text, PipelineError};

const USAGE: &str = "usage: camera-to-display [--camera PATH|CARD] [--display PATH|DRIVER] \
[--frames N] [--buffers N] [--size WxH] [--fps N] [--verify] [--snapshots DIR] [--stop-camera-after N]
[--via PATH|NAME [--camera-format FOURCC]]
  --camera    V4L2 node path, node name or card name (default vivid-000: its vid-cap node)
  --display   DRM node path or driver name (default vkms)
  --fps       the camera's frame rate (VIDIOC_S_PARM), else the driver's default
  --verify    read every frame back through the vkms writeback connector, compare bit-exact
  --snapshots write some read-back frames as PNG into DIR (with --verify)
  --via       a V4L2 converter (e.g. vim2m) between camera and display: the camera writes
              --camera-format (a DRM fourcc, default BG24), the converter writes RG16";

fn main() -> ExitCode {
    run_main("camera-to-display", Options::default(), USAGE, run)
}

/// Runs the pipeline; Ok(false) when frames did not verify.
fn run(opts: &Options) -> Result<bool, PipelineError> {
    if let Some(via) = &opts.via {
        return run_via(opts, via);
    }
    let camera = devices::open_video(&opts.camera)?;
    let display = devices::open_display(&opts.display)?;
    println!(
        "camera {} → display {}, XR24 {}x{}, {} buffers",
        camera.display_name(),
        display.name(),
        opts.size.0,
        opts.size.1,
        opts.buffers
    );
    let allocator = Allocator::new();
    // Counted once the memory sources are open: the allocator keeps their nodes open.
    let before = Held::now(&display);
    let extra = opts.extra_usage();
    // Every error, also one while the pipeline is built (a memory source exhausted part-way
    // through its pool), goes through the release check below.
    let outcome = (|| {
        let mut pipeline = CameraToDisplay::new(
            &allocator,
            camera.clone(),
            &display,
            opts.size,
            opts.buffers,
            extra,
        )?;
        println!("{}", plan_text(pipeline.plan()));
        if let Some(fps) = opts.fps {
            let (frames, seconds) = camera.set_frame_rate(fps)?;
            println!("camera frame rate: {frames}/{seconds} per second");
        }
        let held = Held::now(&display);
        println!(
            "held while running: open fds {}, framebuffers on {} {}",
            held.fds,
            display.name(),
            show_count(held.framebuffers)
        );
        let result = if opts.verify {
            let mut verifier = Verifier::for_options(&allocator, &display, opts)?;
            let shown = pipeline.run(opts.frames, &mut verifier, opts.stop_camera_after);
            verifier.print_snapshots();
            shown.map(|n| {
                println!(
                    "verified {}/{} frames (24 colour bits per pixel; the X byte of XR24 is undefined)",
                    verifier.matched, n
                );
                verifier.matched == n && verifier.checked == n
            })
        } else {
            let mut screen = Screen::new(&display, opts.size)?;
            let sink: &mut dyn FrameSink = &mut screen;
            pipeline
                .run(opts.frames, sink, opts.stop_camera_after)
                .map(|n| {
                    println!("displayed {n} frames");
                    true
                })
        };
        for (frame, footprint) in &pipeline.footprints {
            println!("footprint at frame {frame}: {footprint}");
        }
        result
    })();
    // Everything the pipeline held is dropped here: V4L2 buffers, framebuffers, GEM handles,
    // dma-bufs.
    check_released("camera-to-display", &display, before, outcome)
}

/// Runs camera → `via` → display; Ok(false) when frames or conversions did not verify.
fn run_via(opts: &Options, via: &str) -> Result<bool, PipelineError> {
    let camera = devices::open_video(&opts.camera)?;
    let converter = devices::open_video(via)?;
    let display = devices::open_display(&opts.display)?;
    println!(
        "camera {} → converter {} → display {}, {} → {} {}x{}, {} buffers per hop",
        camera.display_name(),
        converter.display_name(),
        display.name(),
        opts.camera_format,
        DISPLAY_FORMAT,
        opts.size.0,
        opts.size.1,
        opts.buffers
    );
    let allocator = Allocator::new();
    let before = Held::now(&display);
    let outcome = (|| {
        let mut chain = CameraViaConverter::new(
            &allocator,
            ChainDevices {
                camera: camera.clone(),
                converter: converter.clone(),
                display: &display,
            },
            opts.camera_format,
            opts.size,
            opts.buffers,
            opts.extra_usage(),
        )?;
        println!("camera → converter {}", plan_text(chain.camera_plan()));
        println!("converter → display {}", plan_text(chain.display_plan()));
        if let Some(fps) = opts.fps {
            let (frames, seconds) = camera.set_frame_rate(fps)?;
            println!("camera frame rate: {frames}/{seconds} per second");
        }
        if opts.verify {
            let mut verifier = Verifier::for_options(&allocator, &display, opts)?;
            let shown = chain.run(opts.frames, &mut verifier, true)?;
            verifier.print_snapshots();
            println!(
                "converted {}/{shown} frames as {} converts them",
                chain.conversions_matched,
                converter.display_name()
            );
            println!(
                "verified {}/{shown} frames (RG16 shown as vkms widens it to XR24)",
                verifier.matched
            );
            Ok(verifier.matched == shown
                && verifier.checked == shown
                && chain.conversions_matched == shown)
        } else {
            let mut screen = Screen::new(&display, opts.size)?;
            let n = chain.run(opts.frames, &mut screen, false)?;
            println!("displayed {n} frames");
            Ok(true)
        }
    })();
    check_released("camera-to-display", &display, before, outcome)
}
