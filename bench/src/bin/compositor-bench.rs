//! compositor-bench: the sample compositor's CPU time per frame (user + sys) for a fullscreen
//! 1920x1080 dma-buf client shown zero-copy (XRGB8888, which the primary plane scans out)
//! against the same client composited (XBGR8888, which it does not), side by side in one run.
//! Start-up is taken out: each case runs a 20-frame and a 200-frame client and divides the
//! difference by the difference in presented frames. `--runs N` repeats both cases N times and
//! reports the median ratio. Results: a table on stdout and `compositor-bench.json` in
//! `--out DIR`.
//!
//! The compositor and client binaries come from the directory of this program (a release
//! build of the workspace puts them together).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: compositor-bench [--runs N] [--out DIR]";

/// One run of the compositor with a client: CPU time and presented frames.
fn compositor_run(dir: &Path, format: &str, frames: u32) -> Result<(u64, u64), String> {
    let client = dir.join("client");
    let out = Command::new(dir.join("compositor"))
        .args(["--mode", "1920x1080", "--"])
        .arg(&client)
        .args(["--frames", &frames.to_string(), "--format", format])
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run the compositor: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("compositor CPU: "))
        .ok_or_else(|| {
            format!(
                "the compositor printed no CPU line:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    // "compositor CPU: {us} us for {frames} presented frames"
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| -> Result<u64, String> {
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("cannot read {line:?}"))
    };
    Ok((number(2)?, number(5)?))
}

/// CPU microseconds per presented frame of `format`, start-up excluded.
fn per_frame(dir: &Path, format: &str) -> Result<f64, String> {
    let (cpu_short, frames_short) = compositor_run(dir, format, 20)?;
    let (cpu_long, frames_long) = compositor_run(dir, format, 200)?;
    let frames = frames_long.saturating_sub(frames_short);
    if frames == 0 {
        return Err(format!(
            "{format}: no more frames presented in the long run ({frames_long}) than in the short one ({frames_short})"
        ));
    }
    Ok(cpu_long.saturating_sub(cpu_short) as f64 / frames as f64)
}

fn run(runs: u32, out: &Path) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no directory of this program")?;
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    println!("compositor CPU per presented frame, 1920x1080 fullscreen client (start-up excluded)");
    for run in 1..=runs {
        let zero_copy = per_frame(dir, "XR24")?;
        let composited = per_frame(dir, "XB24")?;
        let ratio = zero_copy / composited;
        println!(
            "  run {run}: zero-copy {zero_copy:.0} us, composited {composited:.0} us: {ratio:.3}x"
        );
        ratios.push(ratio);
        rows.push(serde_json::json!({
            "run": run,
            "zero_copy_us_per_frame": zero_copy,
            "composited_us_per_frame": composited,
            "ratio": ratio,
        }));
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let met = median <= 0.2;
    println!(
        "zero-copy uses {median:.3}x the composited CPU per frame (median of {runs}; target <= 0.2: {})",
        if met { "met" } else { "MISSED" }
    );
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let json =
        serde_json::json!({ "runs": rows, "median_ratio": median, "target": "<= 0.2", "met": met });
    std::fs::write(
        out.join("compositor-bench.json"),
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    Ok(met)
}

fn main() -> ExitCode {
    let mut runs = 1;
    let mut out = PathBuf::from("target/bench");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--runs", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => runs = n,
                _ => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            ("--out", Some(v)) => out = PathBuf::from(v),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match run(runs, &out) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compositor-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
