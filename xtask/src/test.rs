//! `cargo xtask test`: first the lints (`cargo fmt --check`, `cargo clippy --workspace
//! --all-targets -- -D warnings`, `cargo doc --no-deps` with warnings denied), then the host
//! tests (`cargo test --workspace`, less the guest-only crate, and every fuzz target of
//! `fuzz/` for 30 seconds, one test each), then the device tests of `tests/` (crate
//! cenalloc-vmtests) inside one guest boot, then one summary ending in the plain line
//! `N passed, N failed`. Exits non-zero if anything failed or the guest did not report.
//!
//! Options: `--host-only`, `--guest-only`, `--no-fuzz` (skip the fuzz targets), `--timeout S`
//! (guest), and a test-name filter after `--` passed to every guest test binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::vm::{self, VmOptions};
use crate::{kernel, workspace_root, Result};

/// Counts of one test run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.ignored += o.ignored;
    }
}

pub fn main(args: &[String]) -> Result<i32> {
    let mut host = true;
    let mut guest = true;
    let mut fuzz = true;
    let mut opts = VmOptions {
        timeout: Duration::from_secs(2400),
        stream: true,
        ..VmOptions::default()
    };
    let mut filter = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--host-only" => guest = false,
            "--guest-only" => host = false,
            "--no-fuzz" => fuzz = false,
            "--timeout" => {
                i += 1;
                let v = args.get(i).ok_or("--timeout needs seconds")?;
                opts.timeout =
                    Duration::from_secs(v.parse().map_err(|_| format!("--timeout {v}"))?);
            }
            "--" => {
                filter.extend(args[i + 1..].iter().cloned());
                break;
            }
            other => return Err(format!("test: unknown option {other}")),
        }
        i += 1;
    }
    let started = Instant::now();
    // Packages first: the host build links libgbm, pixman and xkbcommon.
    crate::packages::ensure()?;
    let kernel = if guest { Some(kernel::setup()?) } else { None };
    let mut failures = Vec::new();
    let mut host_counts = Counts::default();
    let mut guest_counts = Counts::default();
    if host {
        lint()?;
        eprintln!(
            "xtask test: host tests (cargo test --workspace --exclude cenalloc-vmtests --features {})",
            crate::EXAMPLE_FEATURES
        );
        host_counts = host_tests(&mut failures)?;
        if fuzz {
            eprintln!(
                "xtask test: fuzz targets, {} s each (cargo xtask fuzz --seconds {0})",
                crate::fuzz::TEST_SECONDS
            );
            match crate::fuzz::run(&[], crate::fuzz::TEST_SECONDS, &mut failures) {
                Ok(c) => host_counts += c,
                Err(e) => {
                    host_counts.failed += 1;
                    failures.push(format!("fuzz: {e}"));
                }
            }
        }
        eprintln!("xtask test: libcenalloc's C API (header, C99/C++17, valgrind)");
        host_counts += crate::capi::host_checks(&mut failures)?;
    }
    if let Some(kernel) = &kernel {
        guest_counts = guest_tests(kernel, &opts, &filter, &mut failures)?;
    }
    let mut total = host_counts;
    total += guest_counts;
    println!();
    println!("== summary ({:.0} s) ==", started.elapsed().as_secs_f64());
    if host {
        println!(
            "host:  {} passed, {} failed, {} ignored",
            host_counts.passed, host_counts.failed, host_counts.ignored
        );
    }
    if guest {
        println!(
            "guest: {} passed, {} failed",
            guest_counts.passed, guest_counts.failed
        );
    }
    for f in &failures {
        println!("FAILED: {f}");
    }
    // Host tests marked #[ignore] did not run anywhere: they count as skipped.
    let not_run = if host_counts.ignored > 0 {
        format!(", {} skipped", host_counts.ignored)
    } else {
        String::new()
    };
    println!("{} passed, {} failed{not_run}", total.passed, total.failed);
    Ok(if total.failed == 0 && failures.is_empty() {
        0
    } else {
        1
    })
}

/// The checks every change passes before any test runs: formatting, clippy with warnings
/// denied (missing docs included) on every target, and the API docs without a warning.
fn lint() -> Result<()> {
    let features = crate::EXAMPLE_FEATURES;
    // What is checked, the cargo command, and an environment variable it needs.
    type Step<'a> = (&'a str, Vec<&'a str>, Option<(&'a str, &'a str)>);
    let steps: [Step<'_>; 3] = [
        ("cargo fmt --check", vec!["fmt", "--all", "--check"], None),
        (
            "cargo clippy --all-targets -- -D warnings",
            vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--features",
                features,
                "--",
                "-D",
                "warnings",
            ],
            None,
        ),
        (
            "cargo doc --no-deps (warnings denied)",
            vec!["doc", "--workspace", "--no-deps", "--features", features],
            Some(("RUSTDOCFLAGS", "-D warnings")),
        ),
    ];
    for (what, args, env) in steps {
        eprintln!("xtask test: lint: {what}");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(workspace_root()).args(&args);
        if let Some((key, value)) = env {
            cmd.env(key, value);
        }
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {what}: {e}"))?;
        if !status.success() {
            return Err(format!("lint failed: {what} ({status})"));
        }
    }
    Ok(())
}

/// Parses libtest output lines into counts, collecting failed test names.
pub fn parse_libtest(text: &str, context: &str, failures: &mut Vec<String>) -> Counts {
    let mut c = Counts::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        match result.trim() {
            "ok" => c.passed += 1,
            r if r.starts_with("FAILED") => {
                c.failed += 1;
                failures.push(format!("{context}: {name}"));
            }
            r if r.starts_with("ignored") => c.ignored += 1,
            _ => {}
        }
    }
    c
}

fn host_tests(failures: &mut Vec<String>) -> Result<Counts> {
    let mut child = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["test", "--workspace", "--exclude", "cenalloc-vmtests"])
        .args(["--features", crate::EXAMPLE_FEATURES])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let mut text = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            println!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let counts = parse_libtest(&text, "host", failures);
    if !status.success() && counts.failed == 0 {
        failures.push(format!(
            "host: cargo test --workspace exited with {status} (build failure?)"
        ));
    }
    Ok(counts)
}

/// Builds the guest test binaries and the example programs they drive; returns the test
/// binaries.
fn build_guest_binaries() -> Result<Vec<(String, PathBuf)>> {
    crate::build_programs()?;
    crate::capi::build_c_programs()?;
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "test",
            "-p",
            "cenalloc-vmtests",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo test --no-run: {e}"))?;
    if !out.status.success() {
        return Err("building the guest tests failed".into());
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = msg["profile"]["test"].as_bool() == Some(true);
        let kind_test = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|v| v == "test"));
        if let (true, true, Some(exe)) = (is_test, kind_test, msg["executable"].as_str()) {
            let name = msg["target"]["name"].as_str().unwrap_or("test").to_owned();
            bins.push((name, PathBuf::from(exe)));
        }
    }
    bins.sort();
    if bins.is_empty() {
        return Err("no guest test binaries were built".into());
    }
    Ok(bins)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn guest_tests(
    kernel: &kernel::Kernel,
    opts: &VmOptions,
    filter: &[String],
    failures: &mut Vec<String>,
) -> Result<Counts> {
    let bins = build_guest_binaries()?;
    let dir = vm::share_dir().join("test-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let bin_dir = workspace_root().join("target/debug");
    let mut script = String::from("#!/bin/sh\n");
    script.push_str(&format!(
        "export CENALLOC_BIN_DIR={}\n",
        shell_quote(&bin_dir.to_string_lossy())
    ));
    script.push_str(&format!(
        "export CENALLOC_TEST_OUT={}\n",
        shell_quote(&dir.to_string_lossy())
    ));
    let filter_args: String = filter
        .iter()
        .map(|f| format!(" {}", shell_quote(f)))
        .collect();
    for (name, exe) in &bins {
        let log = dir.join(format!("{name}.log"));
        let status = dir.join(format!("{name}.status"));
        script.push_str(&format!(
            "echo '== guest: {name}'\n( timeout -k 5 900 {} --ignored --test-threads=1{filter_args}; echo $? > {} ) 2>&1 | tee {}\n",
            shell_quote(&exe.to_string_lossy()),
            shell_quote(&status.to_string_lossy()),
            shell_quote(&log.to_string_lossy()),
        ));
    }
    let script_path = dir.join("run-tests.sh");
    std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
    eprintln!(
        "xtask test: {} guest test binaries, one guest boot",
        bins.len()
    );
    let outcome = vm::run(
        kernel,
        opts,
        &workspace_root(),
        &["sh".to_owned(), script_path.to_string_lossy().into_owned()],
    )?;
    if outcome.status.is_none() {
        eprintln!(
            "---- guest console ----\n{}\n---- end of console ----",
            outcome.console
        );
        failures.push(if outcome.timed_out {
            format!("guest: killed at the {} s timeout", opts.timeout.as_secs())
        } else {
            "guest: never reported an exit status".into()
        });
    }
    let mut counts = Counts::default();
    for (name, _) in &bins {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        let c = parse_libtest(&log, &format!("guest {name}"), failures);
        let status = read_status(&dir.join(format!("{name}.status")));
        if status != Some(0) && c.failed == 0 {
            counts.failed += 1;
            failures.push(format!(
                "guest {name}: test binary ended with status {status:?} (crash or timeout; see target/vm-out/test-run/{name}.log)"
            ));
        }
        counts += Counts { ignored: 0, ..c };
    }
    Ok(counts)
}

fn read_status(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
