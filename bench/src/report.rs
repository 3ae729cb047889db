//! The results: a plain-text table on stdout and the same rows as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::measure::{paired_ratio, Timing};

/// One measured variant of one case.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// The comparison group (e.g. `alloc+import → vkms`).
    pub group: String,
    /// The case inside the group (e.g. `1024x1024 XR24 (4 MiB)`).
    pub case: String,
    /// What was timed (`cenalloc`, `raw ioctls`, `libgbm`, ...).
    pub variant: String,
    /// The timing.
    pub timing: Timing,
    /// The variant this row is compared with, and the ratio (this / that).
    pub ratio: Option<Ratio>,
}

/// A ratio and the target it is held to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ratio {
    /// The reference variant.
    pub versus: String,
    /// this / versus: the median of the per-round ratios when both were timed in the same
    /// rounds, else median(this) / median(versus).
    pub value: f64,
    /// How `value` was obtained: `paired rounds` or `medians` (then, when runs were merged:
    /// `median of runs`).
    pub method: String,
    /// The paired ratio of each placement on its own (empty for one placement): how much
    /// where the process's objects landed moved the result.
    pub placements: Vec<f64>,
    /// The ratio of each run (process) when several were merged ([`crate::runs`]), else
    /// empty.
    #[serde(default)]
    pub runs: Vec<f64>,
    /// The goal, e.g. `<= 1.05`.
    pub target: Option<String>,
    /// Whether the goal is met.
    pub met: Option<bool>,
}

/// Which way a target goes.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The ratio must be at most this.
    AtMost(f64),
    /// The ratio must be at least this.
    AtLeast(f64),
}

impl Ratio {
    /// `this` / `versus` (paired by round when possible), held to `target`.
    pub fn new(this: &Timing, versus_name: &str, versus: &Timing, target: Option<Target>) -> Self {
        let (value, method) = match paired_ratio(this, versus) {
            Some(r) => (r, "paired rounds"),
            None => (this.median_us / versus.median_us, "medians"),
        };
        let target = target.map(|t| match t {
            Target::AtMost(t) => format!("<= {t}"),
            Target::AtLeast(t) => format!(">= {t}"),
        });
        Ratio {
            versus: versus_name.to_owned(),
            value,
            method: method.to_owned(),
            placements: crate::placement::ratios(this, versus),
            runs: Vec::new(),
            met: target.as_deref().and_then(|t| meets(t, value)),
            target,
        }
    }
}

/// Whether `value` meets `target` as written in a [`Ratio`] (`<= 1.05`, `>= 100`).
pub fn meets(target: &str, value: f64) -> Option<bool> {
    let (op, bound) = target.split_once(' ')?;
    let bound: f64 = bound.parse().ok()?;
    match op {
        "<=" => Some(value <= bound),
        ">=" => Some(value >= bound),
        _ => None,
    }
}

fn human_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.2} µs")
    }
}

/// The table: one line per row, grouped, with ratios and whether each target is met.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut group = "";
    for r in rows {
        if r.group != group {
            group = &r.group;
            let _ = writeln!(out, "\n== {group}");
            let _ = writeln!(
                out,
                "  {:<38} {:<32} {:>10} {:>10} {:>10}  ratio",
                "case", "variant", "median", "min", "max"
            );
        }
        let ratio = r
            .ratio
            .as_ref()
            .map(|q| {
                let verdict = match q.met {
                    Some(true) => " ok",
                    Some(false) => " MISSED",
                    None => "",
                };
                let runs = if q.runs.len() > 1 {
                    let each: Vec<String> = q.runs.iter().map(|r| format!("{r:.3}")).collect();
                    format!("runs {}; ", each.join(", "))
                } else {
                    String::new()
                };
                let spread = match (
                    q.placements.iter().copied().reduce(f64::min),
                    q.placements.iter().copied().reduce(f64::max),
                ) {
                    (Some(lo), Some(hi)) => format!(" [{runs}{lo:.2}–{hi:.2} over placements]"),
                    _ if !runs.is_empty() => format!(" [{}]", runs.trim_end_matches("; ")),
                    _ => String::new(),
                };
                format!(
                    "{:.3}x vs {}{spread}{}{}",
                    q.value,
                    q.versus,
                    q.target
                        .as_ref()
                        .map(|t| format!(" (target {t})"))
                        .unwrap_or_default(),
                    verdict
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<38} {:<32} {:>10} {:>10} {:>10}  {ratio}",
            r.case,
            r.variant,
            human_us(r.timing.median_us),
            human_us(r.timing.min_us),
            human_us(r.timing.max_us),
        );
    }
    out
}

/// Writes `out/bench.txt` (`header`, the table, the targets met and missed, the notes; also
/// printed on stdout) and `out/bench.json` (`json` with the rows and notes added).
pub fn write(
    out: &Path,
    header: &str,
    rows: &[Row],
    notes: &[String],
    mut json: serde_json::Value,
) -> Result<(), String> {
    let mut text = header.to_owned();
    text.push_str(&table(rows));
    let count = |met: bool| {
        rows.iter()
            .filter(|r| r.ratio.as_ref().and_then(|q| q.met) == Some(met))
            .count()
    };
    text.push_str(&format!(
        "\ntargets: {} met, {} missed\n",
        count(true),
        count(false)
    ));
    for n in notes {
        text.push_str(&format!("note: {n}\n"));
    }
    print!("{text}");
    json["rows"] = serde_json::to_value(rows).map_err(|e| e.to_string())?;
    json["notes"] = serde_json::to_value(notes).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let write = |name: &str, data: String| {
        let p = out.join(name);
        std::fs::write(&p, data).map_err(|e| format!("{}: {e}", p.display()))
    };
    write(
        "bench.json",
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )?;
    write("bench.txt", text)?;
    eprintln!("cenalloc-bench: wrote {}/bench.{{json,txt}}", out.display());
    Ok(())
}

/// Merges the results of runs in separate processes (`dirs`, each holding a `bench.json`) into
/// `out` ([`crate::runs::merge`]).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<(), String> {
    let mut rows = Vec::with_capacity(dirs.len());
    let mut notes: Vec<String> = Vec::new();
    let mut runs_json = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let path = dir.join("bench.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let run_rows: Vec<Row> = serde_json::from_value(value["rows"].take())
            .map_err(|e| format!("{}: rows: {e}", path.display()))?;
        let run_notes: Vec<String> =
            serde_json::from_value(value["notes"].take()).unwrap_or_default();
        for n in run_notes {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        rows.push(run_rows);
        runs_json.push(value);
    }
    let header = format!(
        "cenalloc-bench: {} runs in separate processes, merged (each its share of the rounds; \
         see each run's bench.txt); times are medians of the runs' medians, ratios medians \
         of the runs' ratios, [runs ...] each run's\n",
        dirs.len()
    );
    let json = serde_json::json!({ "runs": runs_json });
    write(out, &header, &crate::runs::merge(&rows), &notes, json)
}
