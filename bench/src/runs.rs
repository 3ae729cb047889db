//! Merging runs: the benchmark repeated in several processes, one result.
//!
//! Under TCG, where one process's code, stack and heap land (address-space randomisation
//! differs per process) sets a constant speed for that process: the same binary measured the
//! same case at 1.10x in one process and 1.16x in the next, while the rounds within each
//! agreed to ±0.5 %. Placements ([`crate::placement`]) vary what a process can vary; runs
//! vary the process. `cargo xtask bench` runs `cenalloc-bench` in several processes, each
//! with its share of the rounds, and merges them here: each ratio is the median of the runs'
//! ratios, each time the median of the runs' medians.

use crate::measure::Timing;
use crate::report::{meets, Row};

/// One row per (group, case, variant) of `runs`, in the first run's order (rows only later
/// runs have come after); ratios and times are medians over the runs that have the row.
pub fn merge(runs: &[Vec<Row>]) -> Vec<Row> {
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for run in runs {
        for r in run {
            let key = (r.group.as_str(), r.case.as_str(), r.variant.as_str());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys.into_iter()
        .map(|(group, case, variant)| {
            let same: Vec<&Row> = runs
                .iter()
                .filter_map(|run| {
                    run.iter()
                        .find(|r| r.group == group && r.case == case && r.variant == variant)
                })
                .collect();
            merge_row(&same)
        })
        .collect()
}

/// The rows of one variant from several runs as one.
fn merge_row(same: &[&Row]) -> Row {
    let first = same[0];
    let timing = Timing {
        median_us: median(same.iter().map(|r| r.timing.median_us).collect()),
        min_us: same
            .iter()
            .map(|r| r.timing.min_us)
            .fold(f64::INFINITY, f64::min),
        max_us: same.iter().map(|r| r.timing.max_us).fold(0.0, f64::max),
        batches: same.iter().map(|r| r.timing.batches).sum(),
        iterations: first.timing.iterations,
        per_round_us: Vec::new(),
        placement_rounds: Vec::new(),
    };
    let ratios: Vec<_> = same.iter().filter_map(|r| r.ratio.as_ref()).collect();
    let ratio = ratios.first().map(|q| {
        let runs: Vec<f64> = ratios.iter().map(|r| r.value).collect();
        let value = median(runs.clone());
        let mut merged = (*q).clone();
        merged.value = value;
        merged.placements = ratios.iter().flat_map(|r| r.placements.clone()).collect();
        merged.met = q.target.as_deref().and_then(|t| meets(t, value));
        if runs.len() > 1 {
            merged.method = format!("median of {} runs ({})", runs.len(), q.method);
            merged.runs = runs;
        }
        merged
    });
    Row {
        group: first.group.clone(),
        case: first.case.clone(),
        variant: first.variant.clone(),
        timing,
        ratio,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Ratio;

    fn row(case: &str, variant: &str, us: f64, ratio: Option<f64>) -> Row {
        Row {
            group: "g".into(),
            case: case.into(),
            variant: variant.into(),
            timing: Timing {
                median_us: us,
                min_us: us - 1.0,
                max_us: us + 1.0,
                batches: 10,
                iterations: 1,
                per_round_us: Vec::new(),
                placement_rounds: Vec::new(),
            },
            ratio: ratio.map(|value| Ratio {
                versus: "raw".into(),
                value,
                method: "paired rounds".into(),
                placements: vec![value - 0.01, value + 0.01],
                runs: Vec::new(),
                target: Some("<= 1.05".into()),
                met: Some(value <= 1.05),
            }),
        }
    }

    #[test]
    fn ratios_and_times_are_medians_over_runs() {
        let runs = vec![
            vec![
                row("a", "raw", 10.0, None),
                row("a", "ours", 11.0, Some(1.10)),
            ],
            vec![
                row("a", "raw", 12.0, None),
                row("a", "ours", 12.0, Some(1.02)),
            ],
            vec![
                row("a", "raw", 11.0, None),
                row("a", "ours", 11.5, Some(1.04)),
            ],
        ];
        let merged = merge(&runs);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].timing.median_us, 11.0);
        assert_eq!(merged[0].timing.min_us, 9.0);
        assert_eq!(merged[0].timing.max_us, 13.0);
        assert_eq!(merged[0].timing.batches, 30);
        let q = merged[1].ratio.as_ref().unwrap();
        assert_eq!(q.value, 1.04);
        assert_eq!(q.runs, vec![1.10, 1.02, 1.04]);
        assert_eq!(q.placements.len(), 6);
        assert_eq!(q.met, Some(true), "held to its target again, by the median");
        assert!(q.method.starts_with("median of 3 runs"));
    }

    #[test]
    fn a_row_only_some_runs_have_is_kept() {
        let runs = vec![
            vec![row("a", "raw", 10.0, None)],
            vec![row("a", "raw", 10.0, None), row("b", "raw", 5.0, None)],
        ];
        let merged = merge(&runs);
        let cases: Vec<&str> = merged.iter().map(|r| r.case.as_str()).collect();
        assert_eq!(cases, ["a", "b"]);
        assert_eq!(merged[1].timing.batches, 10);
    }

    #[test]
    fn one_run_is_left_as_it_was() {
        let runs = vec![vec![row("a", "ours", 11.0, Some(1.07))]];
        let q = merge(&runs)[0].ratio.clone().unwrap();
        assert_eq!((q.value, q.met), (1.07, Some(false)));
        assert!(q.runs.is_empty());
        assert_eq!(q.method, "paired rounds");
    }

    #[test]
    fn targets_are_read_back() {
        assert_eq!(meets("<= 1.05", 1.04), Some(true));
        assert_eq!(meets("<= 1.05", 1.06), Some(false));
        assert_eq!(meets(">= 100", 12_000.0), Some(true));
        assert_eq!(meets("about 1", 1.0), None);
    }
}
