//! `cargo xtask bench`: builds `cenalloc-bench` in release mode, runs it in the guest and puts
//! its table and JSON in `target/bench/` (`bench.txt`, `bench.json`).
//!
//! Options: `--quick` (fewer, shorter batches), `--only GROUP` (vkms, vivid, gbm, pool,
//! importers, probe), `--timeout S` (guest).

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
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => bench_args.push("--quick".into()),
            "--only" => {
                i += 1;
                let g = args.get(i).ok_or("--only needs a group")?;
                bench_args.extend(["--only".to_owned(), g.clone()]);
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
    crate::packages::ensure()?;
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
            ]),
    )?;
    let bin = workspace_root().join("target/release/cenalloc-bench");
    // target/ is read-only in the guest: the results go to the share, then to target/bench.
    let share_out = vm::share_dir().join("bench");
    let _ = std::fs::remove_dir_all(&share_out);
    std::fs::create_dir_all(&share_out).map_err(|e| e.to_string())?;
    let mut cmd = vec![
        bin.to_string_lossy().into_owned(),
        "--out".to_owned(),
        share_out.to_string_lossy().into_owned(),
    ];
    cmd.extend(bench_args);
    let outcome = vm::run(&kernel, &opts, &workspace_root(), &cmd)?;
    let out = workspace_root().join("target/bench");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let mut copied = 0;
    for name in ["bench.txt", "bench.json"] {
        let from = share_out.join(name);
        if from.is_file() {
            std::fs::copy(&from, out.join(name))
                .map_err(|e| format!("copying {}: {e}", from.display()))?;
            copied += 1;
        }
    }
    if copied == 2 {
        println!("\nresults in {}", out.display());
    }
    match outcome.status {
        Some(0) if copied < 2 => {
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
