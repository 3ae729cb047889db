//! decode-to-display: frames decoded by vicodec's stateful decoder scanned out by a KMS
//! display with no copy.
//!
//! A moving pattern is first encoded to FWHT with vicodec's stateful encoder. The decoder then
//! writes each frame into a buffer cenalloc allocated for decoder + display (the plan's reasons
//! are printed), and the display shows that same buffer. With `--resize WxH` the second half
//! of the stream is encoded at that size: at the change the decoder flags its last buffer of
//! the old size, and the pipeline plans and allocates frames of the new size for decoder and
//! display (the new plan is printed) while the display switches mode. `--verify` drives the
//! CRTC with the vkms writeback connector and compares every read-back frame with the decoded
//! one.
//!
//! `--stateless` decodes with vicodec's stateless decoder instead: each frame's FWHT header is
//! parsed here and handed over as `V4L2_CID_STATELESS_FWHT_PARAMS` in a media request with the
//! frame's coded data; P-frames are decoded from the frame before them, kept in its cenalloc
//! buffer until then.

use std::process::ExitCode;

use cenalloc::Allocator;
use cenalloc_examples::pipeline::args::{run_main, Options};
use cenalloc_examples::pipeline::camera::FrameSink;
use cenalloc_examples::pipeline::decode::{
    encode_pattern, DecodeSetup, DecodeToDisplay, ResolutionChange,
};
use cenalloc_examples::pipeline::resources::{check_released, Held};
use cenalloc_examples::pipeline::screen::Screen;
use cenalloc_examples::pipeline::stateless::StatelessDecodeToDisplay;
use cenalloc_examples::pipeline::verify::Verifier;
use cenalloc_examples::pipeline::{devices, plan_text, PipelineError};

const USAGE: &str = "usage: decode-to-display [--display PATH|DRIVER] [--frames N] [--buffers N] \
[--size WxH] [--resize WxH] [--stateless] [--verify] [--snapshots DIR]
  encodes N frames of a generated pattern with vicodec's stateful-encoder, decodes them with
  its stateful-decoder into cenalloc buffers and shows them on the display (default vkms);
  --resize: the stream changes to WxH after the first half of the frames;
  --stateless: decode with vicodec's stateless-decoder through the media request API";

/// Decoded frames must be at least this close to the pattern they were encoded from.
const MIN_PSNR_DB: f64 = 30.0;

/// Prints the resolution changes the pipeline followed; true when they are the one `--resize`
/// asked for (none without it).
fn followed_every_change(changes: &[ResolutionChange], opts: &Options) -> bool {
    for c in changes {
        println!(
            "resolution change after {} frames: {}x{}, new frames for decoder + display\n{}",
            c.after_frames, c.size.0, c.size.1, c.plan
        );
    }
    let sizes: Vec<(u32, u32)> = changes.iter().map(|c| c.size).collect();
    let expected: Vec<(u32, u32)> = opts
        .resize
        .filter(|&r| r != opts.size)
        .into_iter()
        .collect();
    if sizes != expected {
        println!("expected resolution changes {expected:?}, the decoder reported {sizes:?}");
    }
    sizes == expected
}

fn main() -> ExitCode {
    let defaults = Options {
        frames: 10,
        ..Options::default()
    };
    run_main("decode-to-display", defaults, USAGE, run)
}

fn run(opts: &Options) -> Result<bool, PipelineError> {
    let encoder = devices::open_video("stateful-encoder")?;
    let decoder = devices::open_video(if opts.stateless {
        "stateless-decoder"
    } else {
        "stateful-decoder"
    })?;
    let display = devices::open_display(&opts.display)?;
    let allocator = Allocator::new();
    let before = Held::now(&display);
    let half = match opts.resize {
        Some(_) => opts.frames / 2,
        None => opts.frames,
    };
    let mut chunks = Vec::new();
    for (size, frames) in [(opts.size, 0..half)]
        .into_iter()
        .chain(opts.resize.map(|size| (size, half..opts.frames)))
    {
        let part = encode_pattern(&allocator, encoder.clone(), size, frames)?;
        println!(
            "encoded {} frames of XR24 {}x{} into {} bytes of FWHT with vicodec",
            part.len(),
            size.0,
            size.1,
            part.iter().map(Vec::len).sum::<usize>()
        );
        chunks.extend(part);
    }
    println!(
        "decoder {} → display {}, {} buffers",
        decoder.display_name(),
        display.name(),
        opts.buffers
    );
    let extra = opts.extra_usage();
    let outcome = {
        let setup = DecodeSetup {
            allocator: &allocator,
            decoder: decoder.clone(),
            display: &display,
            size: opts.size,
            chunks,
            buffers: opts.buffers,
            usage: extra,
        };
        let mut pipeline = if opts.stateless {
            let p = StatelessDecodeToDisplay::new(setup)?;
            println!(
                "stateless: one media request per frame on {}",
                p.media_device()
            );
            Decoding::Stateless(p)
        } else {
            Decoding::Stateful(DecodeToDisplay::new(setup)?)
        };
        println!("{}", plan_text(pipeline.plan()));
        if opts.verify {
            pipeline.measure_fidelity();
        }
        let shown = if opts.verify {
            let mut verifier = Verifier::for_options(&allocator, &display, opts)?;
            let shown = pipeline.run(&mut verifier);
            verifier.print_snapshots();
            let psnr = pipeline.psnr();
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
        };
        if let Decoding::Stateless(p) = &pipeline {
            println!(
                "{} intra frames; the others decoded from the frame before them",
                p.intra_frames
            );
        }
        shown.map(|ok| followed_every_change(pipeline.changes(), opts) && ok)
    };
    // Everything the pipeline held is dropped by now: V4L2 buffers, framebuffers, GEM
    // handles, dma-bufs.
    check_released("decode-to-display", &display, before, outcome)
}

/// The stateful or the stateless decode loop.
enum Decoding {
    Stateful(DecodeToDisplay),
    Stateless(StatelessDecodeToDisplay),
}

impl Decoding {
    fn plan(&self) -> &cenalloc::Plan {
        match self {
            Decoding::Stateful(p) => p.plan(),
            Decoding::Stateless(p) => p.plan(),
        }
    }

    fn measure_fidelity(&mut self) {
        match self {
            Decoding::Stateful(p) => p.measure_fidelity(),
            Decoding::Stateless(p) => p.measure_fidelity(),
        }
    }

    fn run(&mut self, sink: &mut dyn FrameSink) -> Result<u32, PipelineError> {
        match self {
            Decoding::Stateful(p) => p.run(sink),
            Decoding::Stateless(p) => p.run(sink),
        }
    }

    fn psnr(&self) -> Vec<f64> {
        match self {
            Decoding::Stateful(p) => p.psnr.clone(),
            Decoding::Stateless(p) => p.psnr.clone(),
        }
        .unwrap_or_default()
    }

    fn changes(&self) -> &[ResolutionChange] {
        match self {
            Decoding::Stateful(p) => &p.changes,
            Decoding::Stateless(_) => &[],
        }
    }
}
