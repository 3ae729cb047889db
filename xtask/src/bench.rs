//! `cargo xtask bench`: builds `cenalloc-bench` and `pipeline-bench` in release mode, runs both
//! in one guest boot and puts their tables and JSON in `target/bench/` (`bench.txt`,
//! `bench.json`, `pipeline-bench.txt`, `pipeline-bench.json`), with per-buffer instruction
//! and system-call counts of cenalloc and the raw floor (`counts.txt`, `counts.json`; see
//! [`crate::counts`]).
//!
//! Options: `--quick` (fewer, shorter batches; one short pipeline run), `--only GROUP[,GROUP]` (vkms,
//! overhead, vivid, gbm, pool, importers, probe: that cenalloc-bench group alone; `pipelines`:
//! pipeline-bench alone; `counts`: the counts alone), `--timeout S` (guest).

use std::process::Command;
use std::time::Duration;

use crate::vm::{self, VmOptions};
use crate::{kernel, process, workspace_root, Result};

pub fn main(args: &[String]) -> Result<i32> {
    let mut opts = VmOptions {
        timeout: Duration::from_secs(1200),
        // Under TCG the TSC watchdog sees skew when the host is busy, declares the TSC
        // unstable and falls back to jiffies (4 ms steps): keep the TSC for timing.
        append: vec!["tsc=reliable".to_owned()],
        ..VmOptions::default()
    };
    let mut bench_args: Vec<String> = Vec::new();
    let mut only: Option<String> = None;
    let mut quick = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => {
                quick = true;
                bench_args.push("--quick".into());
            }
            "--only" => {
                i += 1;
                let g = args.get(i).ok_or("--only needs a group")?;
                if g != "pipelines" && g != "counts" {
                    bench_args.extend(["--only".to_owned(), g.clone()]);
                }
                only = Some(g.clone());
            }
            "--timeout" => {
                i += 1;
                let v = args.get(i).ok_or("--timeout needs seconds")?;
                opts.timeout =
                    Duration::from_secs(v.parse().map_err(|_| format!("--timeout {v}"))?);
            }
            other => {
                return Err(format!(
                    "bench: unknown option {other} (use --quick, --only GROUP, --timeout S)"
                ))
            }
        }
        i += 1;
    }
    let bench_groups = !matches!(only.as_deref(), Some("pipelines" | "counts"));
    let pipelines = only.is_none() || only.as_deref() == Some("pipelines");
    let counts = only.is_none() || only.as_deref() == Some("counts");
    crate::packages::ensure()?;
    if counts {
        crate::packages::ensure_also(&["valgrind", "strace"])?;
    }
    let kernel = kernel::setup()?;
    // Benchmarks are the one place a release build is worth its time.
    process::run(
        Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args([
                "build",
                "--release",
                "-p",
                "cenalloc-examples",
                "--bin",
                "cenalloc-bench",
                "--bin",
                "pipeline-bench",
            ]),
    )?;
    let release = workspace_root().join("target/release");
    // target/ is read-only in the guest: the results go to the share, then to target/bench.
    let share_out = vm::share_dir().join("bench");
    let _ = std::fs::remove_dir_all(&share_out);
    std::fs::create_dir_all(&share_out).map_err(|e| e.to_string())?;
    let share = vm::shell_quote(&share_out.to_string_lossy());
    let mut script = String::from("set -e\n");
    let mut expected = Vec::new();
    if bench_groups {
        let args: Vec<String> = bench_args.iter().map(|a| vm::shell_quote(a)).collect();
        script.push_str(&format!(
            "{} --out {share} {}\n",
            vm::shell_quote(&release.join("cenalloc-bench").to_string_lossy()),
            args.join(" ")
        ));
        expected.extend(["bench.txt", "bench.json"]);
    }
    if pipelines {
        // Three runs of every loop, medians of their ratios; the table is kept as text too.
        let (runs, frames) = if quick { (1, 30) } else { (3, 150) };
        script.push_str(&format!(
            "{} --runs {runs} --frames {frames} --out {share} | tee {share}/pipeline-bench.txt\n",
            vm::shell_quote(&release.join("pipeline-bench").to_string_lossy()),
        ));
        expected.extend(["pipeline-bench.txt", "pipeline-bench.json"]);
    }
    if counts {
        script.push_str(&crate::counts::guest_script(
            &release.join("cenalloc-bench"),
            &share_out,
        ));
    }
    let cmd = vec!["sh".to_owned(), "-c".to_owned(), script];
    let outcome = vm::run(&kernel, &opts, &workspace_root(), &cmd)?;
    let out = workspace_root().join("target/bench");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let mut copied = 0;
    for name in &expected {
        let from = share_out.join(name);
        if from.is_file() {
            std::fs::copy(&from, out.join(name))
                .map_err(|e| format!("copying {}: {e}", from.display()))?;
            copied += 1;
        }
    }
    if counts && outcome.status == Some(0) {
        match crate::counts::report(&share_out, &out) {
            Ok(text) => println!("\n{text}"),
            Err(e) => {
                eprintln!("xtask bench: counts: {e}");
                return Ok(1);
            }
        }
    }
    if copied == expected.len() {
        println!("\nresults in {}", out.display());
    }
    match outcome.status {
        Some(0) if copied < expected.len() => {
            eprintln!("xtask bench: the benchmark wrote no results");
            Ok(1)
        }
        Some(code) => Ok(code),
        None => {
            eprintln!(
                "---- guest console ----\n{}\n---- end ----",
                outcome.console
            );
            Ok(1)
        }
    }
}
