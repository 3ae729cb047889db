//! Timing: interleaved rounds, medians, and ratios measured in the same run.
//!
//! The guest runs under TCG on a shared 2-core host whose speed drifts by tens of percent
//! within seconds. Every round therefore runs each variant back to back (in an order that
//! balances which variant precedes which, [`crate::order`]), and ratios are medians of the
//! per-round ratios: drift slower than a round cancels.
//! Operations of tens of microseconds run one per variant per round ([`compare_each`]), so
//! a ratio pairs operations microseconds apart.

use std::time::{Duration, Instant};

use crate::order::round_order;

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Rounds (batches per variant); the median over batches is reported.
    pub batches: usize,
    /// A batch repeats its operation until it has run at least this long.
    pub batch_time: Duration,
    /// Upper bound on repetitions per batch.
    pub max_iterations: usize,
}

impl Budget {
    /// This budget's share when a comparison is split into `parts` placements: as many
    /// rounds in all (at least one per part), each as long.
    pub fn share(self, parts: usize) -> Budget {
        Budget {
            batches: self.batches.div_ceil(parts.max(1)).max(1),
            ..self
        }
    }
}

/// The result of one variant: median time per operation over the batches.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    /// Median over batches of the mean time per operation, in microseconds.
    pub median_us: f64,
    /// Fastest batch mean, in microseconds.
    pub min_us: f64,
    /// Slowest batch mean, in microseconds.
    pub max_us: f64,
    /// Batches measured.
    pub batches: usize,
    /// Operations per batch (chosen per variant to fill the batch time).
    pub iterations: usize,
    /// Mean time per operation of each batch, in round order (µs); batches of the same round
    /// of one comparison ran back to back.
    #[serde(skip)]
    pub per_round_us: Vec<f64>,
    /// When the rounds come from several placements ([`crate::placement`]): how many rounds
    /// each contributed, in order; empty for one.
    #[serde(skip)]
    pub placement_rounds: Vec<usize>,
}

/// The median over rounds of `this`'s batch time divided by `that`'s in the same round, when
/// both come from one comparison; `None` otherwise.
pub fn paired_ratio(this: &Timing, that: &Timing) -> Option<f64> {
    if this.per_round_us.is_empty() || this.per_round_us.len() != that.per_round_us.len() {
        return None;
    }
    Some(median_ratio(&this.per_round_us, &that.per_round_us))
}

/// The median of `a[i] / b[i]` over rounds `i`.
pub(crate) fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    median(&mut ratios)
}

/// An operation to time; returns an error to abort the comparison.
pub type Op<'a> = Box<dyn FnMut() -> Result<(), String> + 'a>;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Times every variant in `ops` in interleaved rounds (each in a balanced order,
/// [`round_order`]) so drift of the machine affects them alike. Each variant first runs until
/// it has taken at least a tenth of a batch (warming caches), which sets its own repetitions
/// per batch.
pub fn compare(budget: Budget, ops: &mut [Op<'_>]) -> Result<Vec<Timing>, String> {
    let mut iterations = Vec::with_capacity(ops.len());
    for op in ops.iter_mut() {
        let t = Instant::now();
        let mut n = 0usize;
        while n < budget.max_iterations && (n == 0 || t.elapsed() < budget.batch_time / 10) {
            op()?;
            n += 1;
        }
        let per_op = t.elapsed().as_secs_f64() / n as f64;
        let wanted = (budget.batch_time.as_secs_f64() / per_op.max(1e-7)).ceil() as usize;
        iterations.push(wanted.clamp(1, budget.max_iterations));
    }
    let mut samples = vec![Vec::with_capacity(budget.batches); ops.len()];
    let n = ops.len();
    let mut round_us = vec![0.0; n];
    for round in 0..budget.batches {
        for i in round_order(n, round) {
            let t = Instant::now();
            for _ in 0..iterations[i] {
                ops[i]()?;
            }
            round_us[i] = t.elapsed().as_secs_f64() * 1e6 / iterations[i] as f64;
        }
        for (s, us) in samples.iter_mut().zip(&round_us) {
            s.push(*us);
        }
    }
    Ok(samples
        .into_iter()
        .zip(iterations)
        .map(|(s, iterations)| {
            let min = s.iter().copied().fold(f64::INFINITY, f64::min);
            let max = s.iter().copied().fold(0.0, f64::max);
            Timing {
                median_us: median(&mut s.clone()),
                min_us: min,
                max_us: max,
                batches: budget.batches,
                iterations,
                per_round_us: s,
                placement_rounds: Vec::new(),
            }
        })
        .collect())
}

/// Operations faster than this are timed one by one ([`compare_each`]): a batch of them
/// would span milliseconds, over which the host drifts.
pub const SHORT_OPERATION: Duration = Duration::from_millis(1);

/// Times variants as [`compare`] does, but a round runs every variant once (in a balanced
/// order), so each per-round ratio pairs operations microseconds apart. For operations under
/// [`SHORT_OPERATION`]; the rounds fill the time `compare` would have spent (at least
/// `budget.batches`, at most [`MAX_ROUNDS`]).
pub fn compare_each(budget: Budget, ops: &mut [Op<'_>]) -> Result<Vec<Timing>, String> {
    // Warm up, as `compare` does, and learn how long a round takes.
    let mut round = Duration::ZERO;
    for op in ops.iter_mut() {
        let t = Instant::now();
        let mut n = 0u32;
        while n == 0 || t.elapsed() < budget.batch_time / 10 {
            op()?;
            n += 1;
        }
        round += t.elapsed() / n;
    }
    let spend = budget.batch_time * budget.batches as u32;
    let rounds = (spend.as_secs_f64() / round.as_secs_f64().max(1e-7)) as usize;
    let rounds = rounds.clamp(budget.batches, MAX_ROUNDS);
    let n = ops.len();
    let mut samples = vec![Vec::with_capacity(rounds); n];
    for r in 0..rounds {
        for i in round_order(n, r) {
            let t = Instant::now();
            ops[i]()?;
            samples[i].push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(samples
        .into_iter()
        .map(|s| {
            let mut timing = median_of(s.clone());
            timing.per_round_us = s;
            timing
        })
        .collect())
}

/// The most rounds [`compare_each`] runs.
pub const MAX_ROUNDS: usize = 4001;

/// The kernel's current clocksource. Under TCG the TSC watchdog can declare the TSC unstable
/// under load and fall back to jiffies (4 ms steps at HZ=250), which ruins timings; the
/// guest is booted with `tsc=reliable` for benchmarks, and the report records this.
pub fn clocksource() -> String {
    std::fs::read_to_string(format!("{CLOCKSOURCE_DIR}/current_clocksource"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

const CLOCKSOURCE_DIR: &str = "/sys/devices/system/clocksource/clocksource0";

/// Switches the kernel to the TSC clocksource when it is available but not in use (the
/// kernel registers it late in boot and may fall back to jiffies under load); needs root,
/// as in the guest. Returns the clocksource in use afterwards.
pub fn prefer_tsc() -> String {
    // Early in boot, and on a loaded host, the kernel may register the TSC seconds late.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let current = clocksource();
        if current == "tsc" {
            return current;
        }
        let available = std::fs::read_to_string(format!("{CLOCKSOURCE_DIR}/available_clocksource"))
            .unwrap_or_default();
        if available.split_whitespace().any(|c| c == "tsc") {
            if let Err(e) = std::fs::write(format!("{CLOCKSOURCE_DIR}/current_clocksource"), "tsc")
            {
                log::warn!("cannot switch the clocksource to tsc: {e}");
            }
        }
        if Instant::now() >= deadline {
            return clocksource();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Summarises single measurements taken elsewhere (e.g. a cold probe, which happens once per
/// process and is measured in fresh processes).
pub fn median_of(mut samples_us: Vec<f64>) -> Timing {
    let min = samples_us.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples_us.iter().copied().fold(0.0, f64::max);
    let n = samples_us.len();
    Timing {
        median_us: median(&mut samples_us),
        min_us: min,
        max_us: max,
        batches: n,
        iterations: 1,
        per_round_us: Vec::new(),
        placement_rounds: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    /// Times two operations that count their runs with `timer`; returns the timings and the
    /// counts.
    fn run_two(
        timer: fn(Budget, &mut [Op<'_>]) -> Result<Vec<Timing>, String>,
        budget: Budget,
    ) -> (Vec<Timing>, usize, usize) {
        let (mut a, mut b) = (0usize, 0usize);
        let timings = timer(
            budget,
            &mut [
                Box::new(|| {
                    a += 1;
                    Ok(())
                }),
                Box::new(|| {
                    b += 1;
                    Ok(())
                }),
            ],
        )
        .unwrap();
        (timings, a, b)
    }

    #[test]
    fn compare_runs_every_variant() {
        let budget = Budget {
            batches: 3,
            batch_time: Duration::from_micros(10),
            max_iterations: 4,
        };
        let (t, a, b) = run_two(compare, budget);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].batches, 3);
        for timing in &t {
            assert!((1..=4).contains(&timing.iterations), "{timing:?}");
        }
        // Calibration runs, then 3 batches of each variant's own repetitions.
        assert!(a > 3 * t[0].iterations, "{a} {t:?}");
        assert!(b > 3 * t[1].iterations, "{b} {t:?}");
        assert_eq!(t[0].per_round_us.len(), 3);
        assert!(paired_ratio(&t[0], &t[1]).is_some());
        assert!(paired_ratio(&t[0], &median_of(vec![1.0])).is_none());
    }

    #[test]
    fn compare_each_pairs_single_operations() {
        let budget = Budget {
            batches: 5,
            batch_time: Duration::from_micros(50),
            max_iterations: 4,
        };
        let (t, a, b) = run_two(compare_each, budget);
        let rounds = t[0].per_round_us.len();
        assert!((5..=MAX_ROUNDS).contains(&rounds), "{rounds}");
        assert_eq!(t[1].per_round_us.len(), rounds);
        assert_eq!(t[0].iterations, 1);
        assert!(a > rounds && b > rounds, "warm-up, then one per round");
        assert!(paired_ratio(&t[0], &t[1]).is_some());
    }

    #[test]
    fn paired_ratios_cancel_drift() {
        // The machine slows down 10x half way; the variant is always 1.1x its reference.
        let reference: Vec<f64> = (0..9).map(|r| if r < 5 { 10.0 } else { 100.0 }).collect();
        let timing = |per_round_us: Vec<f64>| Timing {
            median_us: 0.0,
            min_us: 0.0,
            max_us: 0.0,
            batches: 9,
            iterations: 1,
            per_round_us,
            placement_rounds: Vec::new(),
        };
        let this = timing(reference.iter().map(|r| r * 1.1).collect());
        let ratio = paired_ratio(&this, &timing(reference)).unwrap();
        assert!((ratio - 1.1).abs() < 1e-9, "{ratio}");
    }
}
