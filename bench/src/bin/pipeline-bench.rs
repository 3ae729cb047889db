//! pipeline-bench: CPU time per frame of the zero-copy camera → display loop against the copy
//! loop users write without cenalloc (MMAP capture + memcpy into a dumb buffer), at 640x480
//! and 1920x1080, side by side in one run. Also checks the steady state: open fds, dma-bufs
//! and pool buffer allocations are the same before and after the frames.
//!
//! CPU time is the process's user+sys time from CLOCK_PROCESS_CPUTIME_ID (nanoseconds), with
//! the user/sys split from /proc/self/stat (clock ticks). `--runs N` repeats the four loops N
//! times and reports each run's ratios and their median. Results: a table on stdout and
//! `pipeline-bench.json` in `--out DIR` (default `target/bench`, or `target/vm-out/bench` in
//! the guest, whose `target/` is read-only but for that share).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use cenalloc::{Allocator, Usage};
use cenalloc_examples::pipeline::args::{run_main, Options};
use cenalloc_examples::pipeline::camera::CameraToDisplay;
use cenalloc_examples::pipeline::copy::run_copy_loop;
use cenalloc_examples::pipeline::screen::Screen;
use cenalloc_examples::pipeline::{devices, PipelineError};
use rustix::time::{clock_gettime, ClockId};

const USAGE: &str = "usage: pipeline-bench [--camera PATH|CARD] [--display PATH|DRIVER] \
[--frames N] [--buffers N] [--runs N] [--out DIR]
  defaults: --camera vivid-001 --display vkms --frames 300 --buffers 4 --runs 1";

/// One moment's process counters.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    cpu_ns: u128,
    user_ticks: u64,
    sys_ticks: u64,
    wall: Option<Instant>,
    fds: usize,
    dmabufs: usize,
}

fn sample() -> Sample {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0);
    let (mut fds, mut dmabufs) = (0, 0);
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            fds += 1;
            if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("dmabuf")) {
                dmabufs += 1;
            }
        }
    }
    Sample {
        cpu_ns: t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128,
        user_ticks: field(14),
        sys_ticks: field(15),
        wall: Some(Instant::now()),
        fds,
        dmabufs,
    }
}

#[derive(Debug, serde::Serialize)]
struct Measurement {
    run: u32,
    mode: &'static str,
    width: u32,
    height: u32,
    frames: u32,
    cpu_us_per_frame: f64,
    user_ticks: u64,
    sys_ticks: u64,
    wall_ms_per_frame: f64,
    fds_before: usize,
    fds_after: usize,
    dmabufs_before: usize,
    dmabufs_after: usize,
    buffer_allocations_before: Option<usize>,
    buffer_allocations_after: Option<usize>,
    memory_source: String,
}

fn measurement(
    mode: &'static str,
    (width, height): (u32, u32),
    frames: u32,
    a: Sample,
    b: Sample,
) -> Measurement {
    let wall = match (a.wall, b.wall) {
        (Some(a), Some(b)) => (b - a).as_secs_f64() * 1000.0,
        _ => 0.0,
    };
    Measurement {
        run: 0,
        mode,
        width,
        height,
        frames,
        cpu_us_per_frame: (b.cpu_ns - a.cpu_ns) as f64 / 1000.0 / f64::from(frames.max(1)),
        user_ticks: b.user_ticks - a.user_ticks,
        sys_ticks: b.sys_ticks - a.sys_ticks,
        wall_ms_per_frame: wall / f64::from(frames.max(1)),
        fds_before: a.fds,
        fds_after: b.fds,
        dmabufs_before: a.dmabufs,
        dmabufs_after: b.dmabufs,
        buffer_allocations_before: None,
        buffer_allocations_after: None,
        memory_source: String::new(),
    }
}

fn zero_copy(opts: &Options, size: (u32, u32)) -> Result<Measurement, PipelineError> {
    let camera = devices::open_video(&opts.camera)?;
    let display = devices::open_display(&opts.display)?;
    let allocator = Allocator::new();
    let mut pipeline = CameraToDisplay::new(
        &allocator,
        camera,
        &display,
        size,
        opts.buffers,
        Usage::empty(),
    )?;
    let mut screen = Screen::new(&display, size)?;
    let allocated_before = pipeline.allocated();
    let a = sample();
    let n = pipeline.run(opts.frames, &mut screen, None)?;
    let b = sample();
    let mut m = measurement("zero-copy", size, n, a, b);
    m.buffer_allocations_before = Some(allocated_before);
    m.buffer_allocations_after = Some(pipeline.allocated());
    m.memory_source = format!(
        "{:?} {}",
        pipeline.plan().source().kind,
        pipeline.plan().source().name
    );
    Ok(m)
}

fn copy(opts: &Options, size: (u32, u32)) -> Result<Measurement, PipelineError> {
    let camera = devices::open_video(&opts.camera)?;
    let display = devices::open_display(&opts.display)?;
    let mut samples = Vec::new();
    let n = run_copy_loop(
        camera,
        &display,
        size,
        opts.buffers,
        opts.frames,
        &mut || samples.push(sample()),
    )?;
    let (a, b) = (samples[0], samples[1]);
    let mut m = measurement("copy", size, n, a, b);
    m.memory_source = "V4L2 MMAP + dumb buffers".into();
    Ok(m)
}

fn out_dir(opts: &Options) -> PathBuf {
    if let Some(dir) = &opts.out {
        return dir.clone();
    }
    // In the guest `target/` is read-only; `target/vm-out` is the writable share and has the
    // same path on the host.
    if std::env::var_os("CENALLOC_IN_GUEST").is_some() {
        PathBuf::from("target/vm-out/bench")
    } else {
        PathBuf::from("target/bench")
    }
}

fn run(opts: &Options) -> Result<bool, PipelineError> {
    let mut results = Vec::new();
    for run in 1..=opts.runs {
        for size in [(640, 480), (1920, 1080)] {
            for mode in ["zero-copy", "copy"] {
                eprintln!(
                    "pipeline-bench: run {run}/{}: {mode} {}x{}, {} frames",
                    opts.runs, size.0, size.1, opts.frames
                );
                let mut m = if mode == "zero-copy" {
                    zero_copy(opts, size)?
                } else {
                    copy(opts, size)?
                };
                m.run = run;
                results.push(m);
            }
        }
    }
    println!(
        "{:>3} {:<10} {:>9} {:>7} {:>14} {:>6} {:>6} {:>10} {:>9} {:>9} {:>9}  source",
        "run",
        "loop",
        "size",
        "frames",
        "cpu µs/frame",
        "user",
        "sys",
        "ms/frame",
        "fds",
        "dmabufs",
        "allocs"
    );
    let mut steady = true;
    for m in &results {
        let allocs = match (m.buffer_allocations_before, m.buffer_allocations_after) {
            (Some(a), Some(b)) => format!("{a}→{b}"),
            _ => "-".into(),
        };
        println!(
            "{:>3} {:<10} {:>9} {:>7} {:>14.1} {:>6} {:>6} {:>10.2} {:>9} {:>9} {:>9}  {}",
            m.run,
            m.mode,
            format!("{}x{}", m.width, m.height),
            m.frames,
            m.cpu_us_per_frame,
            m.user_ticks,
            m.sys_ticks,
            m.wall_ms_per_frame,
            format!("{}→{}", m.fds_before, m.fds_after),
            format!("{}→{}", m.dmabufs_before, m.dmabufs_after),
            allocs,
            m.memory_source
        );
        steady &= m.fds_before == m.fds_after
            && m.dmabufs_before == m.dmabufs_after
            && m.buffer_allocations_before == m.buffer_allocations_after;
    }
    let mut ratios = Vec::new();
    let mut medians = Vec::new();
    for size in [(640, 480), (1920, 1080)] {
        let per_run: Vec<f64> = results
            .chunks(2)
            .filter(|pair| (pair[0].width, pair[0].height) == size)
            .map(|pair| pair[0].cpu_us_per_frame / pair[1].cpu_us_per_frame)
            .collect();
        let shown: Vec<String> = per_run.iter().map(|r| format!("{r:.3}x")).collect();
        let mut sorted = per_run.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "{}x{}: zero-copy uses {median:.3}x the copy loop's CPU per frame (median of {} run(s): {})",
            size.0,
            size.1,
            per_run.len(),
            shown.join(", ")
        );
        ratios.push(serde_json::json!({
            "width": size.0, "height": size.1, "zero_copy_over_copy_per_run": per_run,
        }));
        medians.push(serde_json::json!({
            "width": size.0, "height": size.1, "zero_copy_over_copy": median,
        }));
    }
    println!(
        "steady state: {}",
        if steady {
            "no new fd, dma-buf or buffer allocation across the frames"
        } else {
            "CHANGED (see the fds/dmabufs/allocs columns)"
        }
    );
    let dir = out_dir(opts);
    let io = |source| PipelineError::Io {
        what: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let json = serde_json::json!({
        "cpu_clock": "CLOCK_PROCESS_CPUTIME_ID (user+sys of the process)",
        "camera": opts.camera,
        "display": opts.display,
        "buffers": opts.buffers,
        "results": results,
        "runs": opts.runs,
        "ratios": ratios,
        "medians": medians,
        "steady_state": steady,
    });
    let path = dir.join("pipeline-bench.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(io)?;
    println!("wrote {}", path.display());
    Ok(steady)
}

fn main() -> ExitCode {
    let defaults = Options {
        camera: "vivid-001".into(),
        frames: 300,
        ..Options::default()
    };
    run_main("pipeline-bench", defaults, USAGE, run)
}
