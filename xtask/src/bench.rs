//! `cargo xtask bench`: builds `cenalloc-bench`, `pipeline-bench` and `compositor-bench` in
//! release mode, runs them in one guest boot and puts their tables and JSON in `target/bench/`
//! (`bench.txt`, `bench.json`, `pipeline-bench.txt`, `pipeline-bench.json`,
//! `compositor-bench.txt`, `compositor-bench.json`), with per-buffer instruction
//! and system-call counts of cenalloc and the raw floor (`counts.txt`, `counts.json`; see
//! [`crate::counts`]).
//!
//! `cenalloc-bench` runs in five processes, each with a fifth of the rounds, and their
//! results are merged (medians of the runs' ratios): under TCG where a process's code and
//! data land sets its speed for good, and one process can read a case 9 % apart from the
//! next (0.97x and 1.06x), so the median needs more than three.
//!
//! The guest waits for the TSC clocksource first; a boot without it (its calibration failed
//! under a busy host) is retried, up to three boots.
//!
//! Options: `--quick` (fewer, shorter batches; one process; one short pipeline run), `--only GROUP[,GROUP]` (vkms,
//! overhead, vivid, gbm, pool, importers, probe: that cenalloc-bench group alone; `pipelines`:
//! pipeline-bench alone; `compositor`: compositor-bench alone; `gstreamer`: gst-bench alone;
//! `counts`: the counts alone), `--timeout S` (guest), `--against
//! BINARY [--rounds N]` (this build's `cenalloc-bench` and another build of it timed in
//! alternation in one boot, N processes each, default 8; see [`crate::against`]).

use std::process::Command;
use std::time::Duration;

use crate::vm::{self, VmOptions};
use crate::{kernel, process, workspace_root, Result};

/// Processes `cenalloc-bench` runs in (its rounds shared among them), merged into one table:
/// under TCG each process's address-space layout sets its own speed.
pub(crate) const BENCH_RUNS: usize = 5;

/// The guest script's exit status when the guest came up without the TSC clocksource.
const NO_TSC: i32 = 75;

/// Boots tried before giving up on a guest with the TSC clocksource.
const BOOTS: usize = 3;

/// Guest shell commands that wait up to 15 s for the TSC clocksource (switching to it when
/// the kernel offers it) and otherwise print the kernel's TSC messages and exit with
/// [`NO_TSC`]. Under TCG the kernel's TSC calibration against the PIT can fail when the host
/// is busy, and then only jiffies (4 ms steps) are left: nothing a benchmark could time.
fn tsc_wait_script() -> String {
    let dir = "/sys/devices/system/clocksource/clocksource0";
    format!(
        "i=0\n\
         while [ \"$(cat {dir}/current_clocksource)\" != tsc ] && [ $i -lt 75 ]; do\n\
         \x20 grep -qw tsc {dir}/available_clocksource && echo tsc > {dir}/current_clocksource\n\
         \x20 sleep 0.2; i=$((i + 1))\n\
         done\n\
         if [ \"$(cat {dir}/current_clocksource)\" != tsc ]; then\n\
         \x20 echo \"no TSC clocksource ($(cat {dir}/available_clocksource)):\" >&2\n\
         \x20 dmesg | grep -i -e tsc -e clocksource >&2 || true\n\
         \x20 exit {NO_TSC}\n\
         fi\n"
    )
}

/// Guest shell commands that run `bench` `runs` times, each in its own process with its share
/// of the rounds and its own output directory under `share`, then merge them into `share`.
fn bench_runs_script(bench: &str, share: &str, args: &[String], runs: usize) -> String {
    let bench = vm::shell_quote(bench);
    let args: Vec<String> = args.iter().map(|a| vm::shell_quote(a)).collect();
    let args = args.join(" ");
    if runs <= 1 {
        return format!("{bench} --out {share} {args}\n");
    }
    let mut script = String::new();
    let mut dirs = Vec::with_capacity(runs);
    for run in 1..=runs {
        let dir = format!("{share}/run{run}");
        script.push_str(&format!(
            "{bench} --out {dir} --one-of {runs} {args} >/dev/null\n"
        ));
        dirs.push(dir);
    }
    script.push_str(&format!(
        "{bench} --out {share} --merge {}\n",
        dirs.join(" ")
    ));
    script
}

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
    let mut against: Option<std::path::PathBuf> = None;
    let mut rounds = 8;
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
                if !matches!(
                    g.as_str(),
                    "pipelines" | "counts" | "compositor" | "gstreamer"
                ) {
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
            "--against" => {
                i += 1;
                let path = args
                    .get(i)
                    .ok_or("--against needs a cenalloc-bench binary")?;
                let path =
                    std::fs::canonicalize(path).map_err(|e| format!("--against {path}: {e}"))?;
                against = Some(path);
            }
            "--rounds" => {
                i += 1;
                let v = args.get(i).ok_or("--rounds needs a number")?;
                rounds = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--rounds {v}: not a number of rounds"))?;
            }
            other => {
                return Err(format!(
                    "bench: unknown option {other} (use --quick, --only GROUP, --timeout S, \
                     --against BINARY, --rounds N)"
                ))
            }
        }
        i += 1;
    }
    let bench_groups = !matches!(
        only.as_deref(),
        Some("pipelines" | "counts" | "compositor" | "gstreamer")
    );
    if against.is_some() && (!bench_groups || quick) {
        return Err(
            "--against compares cenalloc-bench groups in full runs: drop --quick and \
                    --only pipelines/counts"
                .into(),
        );
    }
    let pipelines = against.is_none() && (only.is_none() || only.as_deref() == Some("pipelines"));
    let counts = against.is_none() && (only.is_none() || only.as_deref() == Some("counts"));
    let compositor = against.is_none() && (only.is_none() || only.as_deref() == Some("compositor"));
    let gstreamer = against.is_none() && (only.is_none() || only.as_deref() == Some("gstreamer"));
    crate::packages::ensure()?;
    if counts {
        crate::packages::ensure_also(&["valgrind", "strace"])?;
    }
    let kernel = kernel::setup()?;
    // Benchmarks are the one place a release build is worth its time. compositor-bench runs
    // the sample compositor and client from its own directory.
    let mut build = vec![
        "build",
        "--release",
        "-p",
        "cenalloc-bench",
        "--bin",
        "cenalloc-bench",
        "--bin",
        "pipeline-bench",
        "--bin",
        "compositor-bench",
        "--bin",
        "gst-bench",
    ];
    if gstreamer {
        // gst-bench loads the plugin from its own directory.
        build.extend(["-p", "gst-plugin-cenalloc", "--lib"]);
    }
    if compositor {
        build.extend([
            "-p",
            "cenalloc-examples",
            "--bin",
            "compositor",
            "--bin",
            "client",
        ]);
    }
    process::run(
        Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args(build),
    )?;
    let release = workspace_root().join("target/release");
    // target/ is read-only in the guest: the results go to the share, then to target/bench.
    let share_out = vm::share_dir().join("bench");
    let _ = std::fs::remove_dir_all(&share_out);
    std::fs::create_dir_all(&share_out).map_err(|e| e.to_string())?;
    let share = vm::shell_quote(&share_out.to_string_lossy());
    let mut script = String::from("set -e\n");
    if bench_groups || pipelines {
        script.push_str(&tsc_wait_script());
    }
    let mut expected = Vec::new();
    if let Some(other) = &against {
        // Both binaries run from the share: the guest sees target/ read-only.
        let (this_bin, other_bin) = (share_out.join("this-bench"), share_out.join("other-bench"));
        std::fs::copy(release.join("cenalloc-bench"), &this_bin).map_err(|e| e.to_string())?;
        std::fs::copy(other, &other_bin)
            .map_err(|e| format!("copying {}: {e}", other.display()))?;
        script.push_str(&crate::against::guest_script(
            &this_bin.to_string_lossy(),
            &other_bin.to_string_lossy(),
            &share,
            &bench_args,
            rounds,
        ));
    } else if bench_groups {
        script.push_str(&bench_runs_script(
            &release.join("cenalloc-bench").to_string_lossy(),
            &share,
            &bench_args,
            if quick { 1 } else { BENCH_RUNS },
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
    if compositor {
        let (runs, out) = (if quick { 1 } else { 3 }, &share);
        script.push_str(&format!(
            "XDG_RUNTIME_DIR=/tmp {} --runs {runs} --out {out} | tee {out}/compositor-bench.txt\n",
            vm::shell_quote(&release.join("compositor-bench").to_string_lossy()),
        ));
        expected.extend(["compositor-bench.txt", "compositor-bench.json"]);
    }
    if gstreamer {
        let (runs, out) = (if quick { 1 } else { 3 }, &share);
        script.push_str(&format!(
            "{} --runs {runs} --out {out} | tee {out}/gst-bench.txt\n",
            vm::shell_quote(&release.join("gst-bench").to_string_lossy()),
        ));
        expected.extend(["gst-bench.txt", "gst-bench.json"]);
    }
    if counts {
        script.push_str(&crate::counts::guest_script(
            &release.join("cenalloc-bench"),
            &share_out,
        ));
    }
    let cmd = vec!["sh".to_owned(), "-c".to_owned(), script];
    let mut outcome = vm::run(&kernel, &opts, &workspace_root(), &cmd)?;
    for boot in 2..=BOOTS {
        if outcome.status != Some(NO_TSC) {
            break;
        }
        eprintln!(
            "xtask bench: the guest came up without the TSC clocksource; boot {boot} of {BOOTS}"
        );
        outcome = vm::run(&kernel, &opts, &workspace_root(), &cmd)?;
    }
    if outcome.status == Some(NO_TSC) {
        eprintln!("xtask bench: no TSC clocksource in {BOOTS} boots: nothing to time with");
    }
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
    if against.is_some() && outcome.status == Some(0) {
        match crate::against::report(&share_out, &out) {
            Ok(text) => println!("\n{text}\nresults in {}", out.join("against.txt").display()),
            Err(e) => {
                eprintln!("xtask bench: --against: {e}");
                return Ok(1);
            }
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
    if !expected.is_empty() && copied == expected.len() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tsc_wait_exits_with_its_own_status() {
        let script = tsc_wait_script();
        assert!(script.contains(&format!("exit {NO_TSC}")), "{script}");
        assert!(script.contains(
            "echo tsc > /sys/devices/system/clocksource/clocksource0/current_clocksource"
        ));
        // Valid shell, and with a clocksource directory lacking the TSC it gives up with
        // NO_TSC (the directory replaced by a temporary one).
        let dir = std::env::temp_dir().join(format!("xtask-tsc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("current_clocksource"), "refined-jiffies\n").unwrap();
        std::fs::write(
            dir.join("available_clocksource"),
            "refined-jiffies jiffies\n",
        )
        .unwrap();
        // As in the guest: under `set -e`.
        let local = format!("set -e\n{script}")
            .replace(
                "/sys/devices/system/clocksource/clocksource0",
                &dir.to_string_lossy(),
            )
            .replace("-lt 75", "-lt 2")
            .replace("dmesg |", ": |");
        let status = Command::new("sh").args(["-c", &local]).status().unwrap();
        assert_eq!(status.code(), Some(NO_TSC));
        // Offered but not current: switched to, and the script goes on.
        std::fs::write(dir.join("available_clocksource"), "tsc refined-jiffies\n").unwrap();
        let status = Command::new("sh").args(["-c", &local]).status().unwrap();
        assert_eq!(status.code(), Some(0));
        assert_eq!(
            std::fs::read_to_string(dir.join("current_clocksource")).unwrap(),
            "tsc\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn several_runs_are_merged() {
        let script = bench_runs_script("/b", "/s", &["--only".into(), "vkms".into()], 3);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("--out /s/run1 --one-of 3 "), "{script}");
        assert!(lines[0].contains("vkms"), "{script}");
        assert!(lines[2].contains("--out /s/run3"));
        assert!(lines[3].ends_with("--out /s --merge /s/run1 /s/run2 /s/run3"));
    }

    #[test]
    fn one_run_writes_where_the_merge_would() {
        assert_eq!(bench_runs_script("/b", "/s", &[], 1), "'/b' --out /s \n");
    }
}
