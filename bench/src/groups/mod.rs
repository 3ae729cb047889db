//! The benchmark groups, one module each, in the order a full run measures them; `--only`
//! selects among them by name.

mod gbm;
mod importers;
mod overhead;
mod pool;
mod primitives;
pub mod probe;
mod vivid;
mod vkms;

use std::path::Path;
use std::time::Instant;

use crate::context::{Bench, Res};
use crate::measure::{clocksource, prefer_tsc, MAX_ROUNDS, SHORT_OPERATION};

/// One group: measures and records its rows in the [`Bench`].
type Group = fn(&mut Bench) -> Res<()>;

/// Every group by its `--only` name, in the order they run.
const GROUPS: [(&str, Group); 8] = [
    ("vkms", Bench::group_vkms_sizes),
    ("overhead", Bench::group_overhead),
    ("vivid", Bench::group_vivid_sizes),
    ("gbm", Bench::group_gbm),
    ("pool", Bench::group_pool),
    ("importers", Bench::group_scaling_importers),
    ("primitives", Bench::group_primitives),
    ("probe", |b| {
        b.group_probe(if b.budget.batches > 3 { 7 } else { 3 })
    }),
];

/// Runs every group (or those `only` names, comma-separated) on the TSC clocksource and
/// writes the report to `out` ([`crate::report::write`]). A group that fails is noted in the
/// report and the others still run.
pub fn run(mut bench: Bench, only: Option<&str>, out: &Path) -> Res<()> {
    let budget = bench.budget;
    let clock_before = prefer_tsc();
    if clock_before != "tsc" {
        // Jiffies tick every 4 ms: a 60 µs operation would read as 0 or 4000 µs.
        return Err(format!(
            "clocksource is {clock_before}, not tsc: timings would be quantised to a jiffy; \
             boot with tsc=reliable (cargo xtask bench does) and run again"
        ));
    }
    let started = Instant::now();
    for (name, group) in GROUPS {
        if only.is_some_and(|o| !o.split(',').any(|g| g == name)) {
            continue;
        }
        let t = Instant::now();
        let r = group(&mut bench);
        eprintln!(
            "cenalloc-bench: {name} done in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        bench.note_err(name, "(group)", r);
    }
    let clock_after = clocksource();
    if clock_after != clock_before {
        bench.notes.push(format!(
            "the clocksource changed from {clock_before} to {clock_after} during the run: \
             timings after the change are coarse (boot the guest with tsc=reliable)"
        ));
    }
    let header = format!(
        "cenalloc-bench: {} rounds, each running every variant of a case back to back for \
         ≥ {} ms (cases whose every variant takes under {} ms: up to {} rounds of one \
         operation per variant); times are medians over rounds, ratios medians of the \
         per-round ratios; clocksource {}; total {:.0} s\n",
        budget.batches,
        budget.batch_time.as_millis(),
        SHORT_OPERATION.as_millis(),
        MAX_ROUNDS,
        clock_after,
        started.elapsed().as_secs_f64()
    );
    let json = serde_json::json!({
        "budget": {
            "batches": budget.batches,
            "batch_time_ms": budget.batch_time.as_millis() as u64,
            "max_iterations": budget.max_iterations,
        },
        "in_guest": std::env::var("CENALLOC_IN_GUEST").is_ok(),
        "clocksource": { "before": clock_before, "after": clock_after },
    });
    crate::report::write(out, &header, &bench.rows, &bench.notes, json)
}
