//! cenalloc-bench: what cenalloc costs over the kernel calls it makes and over libgbm,
//! measured side by side in one run. Meant for the guest (`cargo xtask bench`), where the
//! devices are: vkms, vgem, vivid-001, the system heap.
//!
//! Groups: allocate + export + import into vkms (4 KiB to 32 MiB; display-only buffers, which
//! vkms allocates itself, and CPU-written ones from the system heap) and into vivid-001,
//! cenalloc against the same raw ioctl sequence; a vkms scanout buffer against libgbm; probing
//! every device (cold, in fresh processes, and cached); a pool hit against a fresh 8 MiB
//! allocation; cost against the number of importers (1 to 6); what atomics, locks, reference
//! counts, allocations and a system call cost in this guest. Every figure is the median over
//! rounds; ratios are medians of per-round ratios of variants run back to back (see
//! [`measure`]). The raw floor makes its calls on cenalloc's own open files, so the two
//! differ only in user space; a control variant runs the floor on its own opens.
//!
//! Usage: `cenalloc-bench [--quick] [--out DIR] [--only GROUP[,GROUP...]] [--one-of N]`;
//! writes `DIR/bench.json` and `DIR/bench.txt` (default DIR: `target/bench`); `--one-of N`
//! runs a 1/N share of the rounds, for N runs in separate processes that
//! `cenalloc-bench --out DIR --merge RUN_DIR...` merges (`cargo xtask bench` runs five).
//! `cenalloc-bench --repeat CASE N` runs one variant N times and nothing else, for
//! instruction and system-call counts (`cargo xtask bench` runs it under callgrind and strace).

#![deny(unsafe_code)]

mod context;
mod floor;
mod gbm_path;
mod groups;
mod measure;
mod order;
mod placement;
mod repeat;
mod report;
mod runs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use context::{Bench, Res};
use measure::Budget;
use repeat::REPEAT_CASES;

/// Parses the command line and runs what it asks for; returns the exit code.
fn run(args: &[String]) -> Res<i32> {
    let mut out = PathBuf::from("target/bench");
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut repeat: Option<(String, usize)> = None;
    let mut one_of = 1usize;
    let mut merge: Vec<PathBuf> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--probe-once" => {
                let t = Instant::now();
                groups::probe::probe_everything()?;
                println!("{}", t.elapsed().as_secs_f64() * 1e6);
                return Ok(0);
            }
            "--quick" => quick = true,
            "--repeat" => {
                let case = args.get(i + 1).ok_or("--repeat needs a case and a count")?;
                let n = args.get(i + 2).ok_or("--repeat needs a count")?;
                let n = n
                    .parse()
                    .map_err(|_| format!("--repeat {case} {n}: not a count"))?;
                repeat = Some((case.clone(), n));
                i += 2;
            }
            "--out" => {
                i += 1;
                out = PathBuf::from(args.get(i).ok_or("--out needs a directory")?);
            }
            "--only" => {
                i += 1;
                only = Some(args.get(i).ok_or("--only needs a group")?.clone());
            }
            "--one-of" => {
                i += 1;
                let n = args.get(i).ok_or("--one-of needs a number of runs")?;
                one_of = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--one-of {n}: not a number of runs"))?;
            }
            "--merge" => {
                merge = args[i + 1..].iter().map(PathBuf::from).collect();
                if merge.is_empty() {
                    return Err("--merge needs the directories of the runs".into());
                }
                i = args.len();
                continue;
            }
            "-h" | "--help" => {
                println!(
                    "usage: cenalloc-bench [--quick] [--out DIR] [--only GROUP[,GROUP...]] [--one-of N] (groups: vkms overhead vivid gbm pool importers primitives probe)\n       cenalloc-bench [--out DIR] --merge RUN_DIR...\n       cenalloc-bench --repeat CASE N (cases: {})",
                    REPEAT_CASES.join(" ")
                );
                return Ok(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
        i += 1;
    }
    if !merge.is_empty() {
        report::merge(&merge, &out)?;
        return Ok(0);
    }
    let budget = if quick {
        Budget {
            batches: 3,
            batch_time: Duration::from_millis(10),
            max_iterations: 200,
        }
    } else {
        Budget {
            batches: 31,
            batch_time: Duration::from_millis(20),
            max_iterations: 2000,
        }
    }
    // One of several runs merged later: its share of the rounds.
    .share(one_of);
    let bench = Bench::open(budget)?;
    if let Some((case, n)) = repeat {
        let mut bench = bench;
        bench.repeat(&case, n)?;
        return Ok(0);
    }
    groups::run(bench, only.as_deref(), &out)?;
    Ok(0)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("cenalloc-bench: {e}");
            std::process::exit(1);
        }
    }
}
