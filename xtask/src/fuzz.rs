//! `cargo xtask fuzz [--seconds N] [TARGET...]`: coverage-guided fuzzing with libFuzzer
//! (cargo-fuzz) of the targets in `fuzz/` (every target when none is named), N seconds each
//! (default 60).
//!
//! cargo-fuzz is installed when missing (a pinned version). The build needs the nightly-only
//! `-Z sanitizer` and `-Z` coverage flags; on the stable toolchain `RUSTC_BOOTSTRAP=1` allows
//! them, for this build alone. Each target runs on a copy of its committed corpus
//! (`fuzz/corpus/<target>/` → `fuzz/target/run-corpus/<target>/`), so the inputs a run finds
//! never land in git. A crash fails the command; cargo-fuzz keeps the crashing input in
//! `fuzz/artifacts/<target>/`, and the path is printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::test::Counts;
use crate::{process, workspace_root, Result};

/// The cargo-fuzz release installed when missing; it builds with rustc 1.95.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Seconds per target when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// Debian packages the fuzz build links against (`cargo xtask test` installs them anyway).
const BUILD_PACKAGES: &[&str] = &[
    "libgbm-dev",
    "libdrm-dev",
    "libxkbcommon-dev",
    "libpixman-1-dev",
    "libudev-dev",
    "pkg-config",
];

/// Seconds per target in `cargo xtask test`.
pub const TEST_SECONDS: u64 = 30;

pub fn main(args: &[String]) -> Result<i32> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => {
                i += 1;
                let v = args.get(i).ok_or("--seconds needs a number")?;
                seconds = v.parse().map_err(|_| format!("--seconds {v}"))?;
            }
            other if other.starts_with('-') => {
                return Err(format!(
                "fuzz: unknown option {other} (usage: cargo xtask fuzz [--seconds N] [TARGET...])"
            ))
            }
            target => targets.push(target.to_owned()),
        }
        i += 1;
    }
    // What the fuzz crate's dependencies link (gbm, smithay's libraries).
    crate::packages::ensure_also(BUILD_PACKAGES)?;
    let mut failures = Vec::new();
    let counts = run(&targets, seconds, &mut failures)?;
    println!();
    for f in &failures {
        println!("FAILED: {f}");
    }
    println!(
        "fuzz: {} targets passed, {} failed",
        counts.passed, counts.failed
    );
    Ok(if counts.failed == 0 { 0 } else { 1 })
}

/// Installs cargo-fuzz if needed, builds the targets and runs each (`targets`, or every one)
/// for `seconds`. One count per target; a failed target's name and artifacts go to
/// `failures`. Errors only when nothing could be built.
pub fn run(targets: &[String], seconds: u64, failures: &mut Vec<String>) -> Result<Counts> {
    ensure_cargo_fuzz()?;
    let all = list_targets()?;
    let targets: Vec<String> = if targets.is_empty() {
        all
    } else {
        for t in targets {
            if !all.contains(t) {
                return Err(format!(
                    "fuzz: no target {t:?} (targets: {})",
                    all.join(", ")
                ));
            }
        }
        targets.to_vec()
    };
    let started = Instant::now();
    // One crate: every target is built at once (`cargo fuzz build` takes at most one name).
    eprintln!("xtask fuzz: building the fuzz targets (RUSTC_BOOTSTRAP=1)");
    process::run(cargo_fuzz().arg("build"))?;
    eprintln!(
        "xtask fuzz: built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let mut counts = Counts::default();
    for target in &targets {
        match run_target(target, seconds) {
            Ok(summary) => {
                eprintln!("xtask fuzz: {target}: ok ({summary})");
                println!("test fuzz::{target} ... ok");
                counts.passed += 1;
            }
            Err(why) => {
                println!("test fuzz::{target} ... FAILED");
                failures.push(format!("fuzz {target}: {why}"));
                counts.failed += 1;
            }
        }
    }
    Ok(counts)
}

fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// `cargo fuzz` in the workspace root, allowed the nightly flags it passes to rustc.
fn cargo_fuzz() -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .env("RUSTC_BOOTSTRAP", "1")
        .arg("fuzz");
    cmd
}

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION)
        })
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    eprintln!("xtask fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    let started = Instant::now();
    process::run(Command::new(env!("CARGO")).args([
        "install",
        "cargo-fuzz",
        "--version",
        &format!("={CARGO_FUZZ_VERSION}"),
        "--locked",
    ]))?;
    eprintln!(
        "xtask fuzz: cargo-fuzz installed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn list_targets() -> Result<Vec<String>> {
    let out = process::output(cargo_fuzz().arg("list"))?;
    let targets: Vec<String> = out.lines().map(|l| l.trim().to_owned()).collect();
    if targets.is_empty() {
        return Err("cargo fuzz list names no target".into());
    }
    Ok(targets)
}

/// Replaces `to` with a copy of the files of `from` (a flat corpus directory).
fn copy_corpus(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from)
        .map_err(|e| format!("cannot read the corpus {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Runs one target for `seconds` on a copy of its corpus; on success, libFuzzer's last
/// status line (executions, coverage, features, corpus).
fn run_target(target: &str, seconds: u64) -> Result<String> {
    let dir = fuzz_dir();
    let committed = dir.join("corpus").join(target);
    let corpus = dir.join("target/run-corpus").join(target);
    copy_corpus(&committed, &corpus)?;
    let artifacts = dir.join("artifacts").join(target);
    let log = dir.join("target").join(format!("{target}.log"));
    eprintln!(
        "xtask fuzz: {target}: {seconds} s from {} ({} inputs); log {}",
        committed.display(),
        std::fs::read_dir(&committed).map_or(0, |d| d.count()),
        log.display()
    );
    let log_file =
        std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let stderr = log_file.try_clone().map_err(|e| e.to_string())?;
    let status = cargo_fuzz()
        .args(["run", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .stdout(log_file)
        .stderr(stderr)
        .status()
        .map_err(|e| format!("cannot run cargo fuzz run {target}: {e}"))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if status.success() {
        return Ok(last_status(&text).unwrap_or_else(|| "no status line".into()));
    }
    // Show what went wrong: the panic or sanitizer report (or the log's end) and the input.
    let lines: Vec<&str> = text.lines().collect();
    let report = lines
        .iter()
        .position(|l| l.contains("panicked at") || l.contains("ERROR: "))
        .unwrap_or(lines.len().saturating_sub(40));
    for line in lines.iter().skip(report).take(40) {
        eprintln!("  {line}");
    }
    let saved = text
        .lines()
        .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}/", artifacts.display()));
    eprintln!("xtask fuzz: {target} failed ({status}); crashing input: {saved}");
    eprintln!("xtask fuzz: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run {target} {saved}");
    Err(format!(
        "{status}; input saved as {saved}; log {}",
        log.display()
    ))
}

/// libFuzzer's last status line, e.g. `#123456 DONE cov: 812 ft: 2301 corp: 140/9Kb ...`.
fn last_status(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_status_is_the_final_libfuzzer_line() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 3/30b exec/s: 0 rss: 40Mb\n\
                   #65536\tpulse  cov: 50 ft: 90 corp: 9/1Kb\n\
                   #100000\tDONE   cov: 52 ft: 95 corp: 10/1Kb lim: 4 exec/s: 5000 rss: 60Mb\n\
                   Done 100000 runs in 20 second(s)\n";
        assert_eq!(
            last_status(log).as_deref(),
            Some("#100000 DONE cov: 52 ft: 95 corp: 10/1Kb lim: 4 exec/s: 5000 rss: 60Mb")
        );
        assert_eq!(last_status("nothing"), None);
    }
}
