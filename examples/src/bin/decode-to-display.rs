//! decode-to-display: frames decoded by vicodec's stateful decoder scanned out by a KMS
//! display with no copy.
//!
//! A moving pattern is first encoded to FWHT with vicodec's stateful encoder. The decoder then
//! writes each frame into a buffer cenalloc allocated for decoder + display (the plan's reasons
//! are printed), and the display shows that same buffer. `--verify` drives the CRTC with the
//! vkms writeback connector and compares every read-back frame with the decoded one.

use std::process::ExitCode;

use cenalloc::Allocator;
use cenalloc_examples::pipeline::args::{run_main, Options};
use cenalloc_examples::pipeline::decode::{encode_pattern, DecodeToDisplay};
use cenalloc_examples::pipeline::resources::{check_released, Held};
use cenalloc_examples::pipeline::screen::Screen;
use cenalloc_examples::pipeline::verify::Verifier;
use cenalloc_examples::pipeline::{devices, plan_text, PipelineError};

const USAGE: &str = "usage: decode-to-display [--display PATH|DRIVER] [--frames N] [--buffers N] \
[--size WxH] [--verify] [--snapshots DIR]
  encodes N frames of a generated pattern with vicodec's stateful-encoder, decodes them with
  its stateful-decoder into cenalloc buffers and shows them on the display (default vkms)";

/// Decoded frames must be at least this close to the pattern they were encoded from.
const MIN_PSNR_DB: f64 = 30.0;

fn main() -> ExitCode {
    let defaults = Options {
        frames: 10,
        ..Options::default()
    };
    run_main("decode-to-display", defaults, USAGE, run)
}

fn run(opts: &Options) -> Result<bool, PipelineError> {
    let encoder = devices::open_video("stateful-encoder")?;
    let decoder = devices::open_video("stateful-decoder")?;
    let display = devices::open_display(&opts.display)?;
    let allocator = Allocator::new();
    let before = Held::now(&display);
    let chunks = encode_pattern(&allocator, encoder.clone(), opts.size, opts.frames)?;
    println!(
        "encoded {} frames of XR24 {}x{} into {} bytes of FWHT with vicodec",
        chunks.len(),
        opts.size.0,
        opts.size.1,
        chunks.iter().map(Vec::len).sum::<usize>()
    );
    println!(
        "decoder {} → display {}, {} buffers",
        decoder.display_name(),
        display.name(),
        opts.buffers
    );
    let extra = opts.extra_usage();
    let outcome = {
        let mut pipeline = DecodeToDisplay::new(
            &allocator,
            decoder.clone(),
            &display,
            opts.size,
            chunks,
            opts.buffers,
            extra,
        )?;
        println!("{}", plan_text(pipeline.plan()));
        if opts.verify {
            pipeline.measure_fidelity();
        }
        if opts.verify {
            let every = (opts.frames / 4).max(1);
            let mut verifier = Verifier::new(
                &allocator,
                &display,
                opts.size,
                opts.snapshots.clone(),
                every,
            )?;
            let shown = pipeline.run(&mut verifier);
            for p in &verifier.written {
                println!("snapshot {}", p.display());
            }
            let psnr = pipeline.psnr.clone().unwrap_or_default();
            let worst = psnr.iter().copied().fold(f64::INFINITY, f64::min);
            shown.map(|n| {
                println!(
                    "decoded frames against the encoded pattern: lowest PSNR {worst:.1} dB over {} frames (FWHT is lossy; at least {MIN_PSNR_DB} dB required)",
                    psnr.len()
                );
                println!(
                    "verified {}/{} frames (24 colour bits per pixel; the X byte of XR24 is undefined)",
                    verifier.matched, n
                );
                verifier.matched == n
                    && verifier.checked == n
                    && n == opts.frames
                    && worst >= MIN_PSNR_DB
            })
        } else {
            let mut screen = Screen::new(&display, opts.size)?;
            pipeline.run(&mut screen).map(|n| {
                println!("displayed {n} frames");
                n == opts.frames
            })
        }
    };
    // Everything the pipeline held is dropped by now: V4L2 buffers, framebuffers, GEM
    // handles, dma-bufs.
    check_released("decode-to-display", &display, before, outcome)
}
