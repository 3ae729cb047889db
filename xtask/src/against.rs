//! `cargo xtask bench --against OTHER`: times this tree's `cenalloc-bench` and another build of
//! it (OTHER, e.g. built from an earlier commit) in one guest boot, process by process in
//! alternation, and prints every ratio of the two side by side.
//!
//! Under TCG a ratio moves with things no change to cenalloc's code controls: where the linker
//! puts the hot functions (two builds differing by one function the benchmark never calls read
//! the same path 1 % apart) and how the boot went (the same binary 0.5–1 % apart from one boot
//! to the next). A change is judged by this comparison, not by two full runs on different days.
//!
//! Each round runs one process of each build with the share of a full run's rounds each of
//! `cargo xtask bench`'s five processes gets (`--one-of 5`), the build that goes first
//! alternating from round to round; each build's processes are then merged as `cargo xtask
//! bench` merges its five (medians of the processes' ratios).

use std::path::Path;

use serde_json::Value;

use crate::vm;
use crate::Result;

/// The builds of a comparison, in the names their results are kept under.
pub const BUILDS: [&str; 2] = ["this", "other"];

/// Guest shell commands that run `this` and `other` (paths of the two binaries) for `rounds`
/// rounds with `args`, then merge each build's processes into `share/<build>`.
pub fn guest_script(
    this: &str,
    other: &str,
    share: &str,
    args: &[String],
    rounds: usize,
) -> String {
    let binaries = [vm::shell_quote(this), vm::shell_quote(other)];
    let args: Vec<String> = args.iter().map(|a| vm::shell_quote(a)).collect();
    let args = args.join(" ");
    let mut script = String::new();
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for b in order {
            script.push_str(&format!(
                "echo \"round {round}/{rounds}: {build}\" >&2\n\
                 {bin} --out {share}/{build}-{round} --one-of {runs} {args} >/dev/null\n",
                build = BUILDS[b],
                bin = binaries[b],
                runs = crate::bench::BENCH_RUNS,
            ));
        }
    }
    for (b, build) in BUILDS.iter().enumerate() {
        let runs: Vec<String> = (1..=rounds)
            .map(|round| format!("{share}/{build}-{round}"))
            .collect();
        script.push_str(&format!(
            "{} --out {share}/{build} --merge {} >/dev/null\n",
            binaries[b],
            runs.join(" ")
        ));
    }
    script
}

/// One ratio of a merged run: which comparison, its value and each process's.
#[derive(Debug, Clone, PartialEq)]
struct Ratio {
    row: String,
    value: f64,
    runs: Vec<f64>,
    target: Option<String>,
}

/// The ratios in a merged `bench.json`, in table order.
fn ratios(json: &Value) -> Vec<Ratio> {
    let Some(rows) = json.get("rows").and_then(Value::as_array) else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| {
            let ratio = row.get("ratio")?;
            let text = |key: &str| row.get(key).and_then(Value::as_str).unwrap_or("");
            Some(Ratio {
                row: format!(
                    "{} · {} vs {}",
                    text("case"),
                    text("variant"),
                    ratio.get("versus").and_then(Value::as_str).unwrap_or("?")
                ),
                value: ratio.get("value")?.as_f64()?,
                runs: ratio
                    .get("runs")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default(),
                target: ratio
                    .get("target")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect()
}

fn spread(runs: &[f64]) -> String {
    let lo = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if runs.is_empty() {
        String::new()
    } else {
        format!(" ({lo:.3}–{hi:.3} over {} processes)", runs.len())
    }
}

/// The side-by-side table of the two merged runs: every ratio of `this` with the same ratio
/// of `other` and their difference.
fn table(this: &Value, other: &Value) -> String {
    let theirs = ratios(other);
    let mut text = String::from(
        "every ratio of this build and of the other (each the median of its processes), and \
         their difference\n\n",
    );
    for ours in ratios(this) {
        let target = ours
            .target
            .as_deref()
            .map(|t| format!(" (target {t})"))
            .unwrap_or_default();
        text.push_str(&format!("{}{target}\n", ours.row));
        match theirs.iter().find(|r| r.row == ours.row) {
            Some(r) => text.push_str(&format!(
                "    this {:.3}x{}\n    other {:.3}x{}\n    this − other {:+.1} %\n",
                ours.value,
                spread(&ours.runs),
                r.value,
                spread(&r.runs),
                (ours.value - r.value) * 100.0
            )),
            None => text.push_str(&format!(
                "    this {:.3}x{}\n    other: no such ratio\n",
                ours.value,
                spread(&ours.runs)
            )),
        }
    }
    text
}

/// Reads both builds' merged results from `share` and writes the comparison to
/// `out/against.txt`; returns its text.
pub fn report(share: &Path, out: &Path) -> Result<String> {
    let read = |build: &str| -> Result<Value> {
        let path = share.join(build).join("bench.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e} (did the guest run finish?)", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let text = table(&read(BUILDS[0])?, &read(BUILDS[1])?);
    std::fs::write(out.join("against.txt"), &text).map_err(|e| e.to_string())?;
    for build in BUILDS {
        let from = share.join(build).join("bench.txt");
        if from.is_file() {
            std::fs::copy(&from, out.join(format!("against-{build}.txt")))
                .map_err(|e| format!("copying {}: {e}", from.display()))?;
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(value: f64, runs: &[f64]) -> Value {
        serde_json::json!({
            "rows": [
                {"case": "32x32", "variant": "raw ioctls", "ratio": null},
                {"case": "32x32", "variant": "cenalloc", "ratio": {
                    "value": value, "runs": runs, "target": "<= 1.05", "versus": "raw ioctls"
                }},
            ]
        })
    }

    #[test]
    fn the_table_pairs_each_ratio_with_the_other_builds() {
        let text = table(&merged(1.04, &[1.03, 1.05]), &merged(1.06, &[1.055, 1.07]));
        assert!(
            text.contains("32x32 · cenalloc vs raw ioctls (target <= 1.05)"),
            "{text}"
        );
        assert!(
            text.contains("this 1.040x (1.030–1.050 over 2 processes)"),
            "{text}"
        );
        assert!(
            text.contains("other 1.060x (1.055–1.070 over 2 processes)"),
            "{text}"
        );
        assert!(text.contains("this − other -2.0 %"), "{text}");
        // A row only one build has is named, not dropped.
        let none = serde_json::json!({"rows": []});
        assert!(table(&merged(1.04, &[]), &none).contains("other: no such ratio"));
    }

    #[test]
    fn the_script_alternates_which_build_goes_first_and_merges_each() {
        let script = guest_script("/a", "/b", "/s", &["--only".into(), "vkms".into()], 2);
        let at = |s: &str| {
            script
                .find(s)
                .unwrap_or_else(|| panic!("no {s} in {script}"))
        };
        // Round 1: this build first; round 2: the other first.
        assert!(
            at("'/a' --out /s/this-1") < at("'/b' --out /s/other-1"),
            "{script}"
        );
        assert!(
            at("'/b' --out /s/other-2") < at("'/a' --out /s/this-2"),
            "{script}"
        );
        assert!(script.contains("'/a' --out /s/this --merge /s/this-1 /s/this-2"));
        assert!(script.contains("'/b' --out /s/other --merge /s/other-1 /s/other-2"));
        assert!(script.contains("--one-of 5 '--only' 'vkms'"), "{script}");
    }
}
