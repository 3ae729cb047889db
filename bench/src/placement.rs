//! Placements: one comparison measured several times over, each time with every device
//! opened anew and the process heap shifted, and the rounds pooled.
//!
//! Under TCG where a process's objects and the kernel's per-file state happen to land sets a
//! constant speed for as long as they stay there: the same 128x128 case measured 1.15x and
//! 1.06x against the raw floor, each stable to ±0.005 over thousands of rounds, and reopening
//! only the raw floor's card moved a case between ~1.09x and ~1.20x. A comparison timed with
//! one set of open devices reports that set's luck, and a benchmark's result depended on a
//! case's position in its group. Pooling placements reports the typical process instead
//! (the "measurement bias" of Mytkowicz et al., ASPLOS 2009, randomised as STABILIZER does,
//! Curtsinger and Berger, ASPLOS 2013); the spread over placements is reported beside it.

use crate::measure::{median_of, median_ratio, Timing};

/// Placements per comparison.
pub const PLACEMENTS: usize = 5;

/// Allocations held while one placement is measured, so that the ones it measures land
/// elsewhere in the heap than in the placement before.
pub struct HeapShift {
    _held: Vec<Vec<u8>>,
}

impl HeapShift {
    /// The shift of placement `index`: between 0 and 47 held blocks of 8 to 607 bytes, a
    /// different (fixed) set for each index.
    pub fn new(index: usize) -> HeapShift {
        let mut x = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(index as u64 + 1);
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let blocks = next() % 48;
        HeapShift {
            _held: (0..blocks)
                .map(|_| vec![1u8; 8 + (next() % 600) as usize])
                .collect(),
        }
    }
}

/// The timings of each variant over every placement: rounds concatenated in placement order,
/// median, fastest and slowest over all of them.
pub fn pool(parts: Vec<Vec<Timing>>) -> Vec<Timing> {
    let variants = parts.first().map_or(0, Vec::len);
    (0..variants)
        .map(|v| {
            let mut per_round_us = Vec::new();
            let mut placement_rounds = Vec::new();
            let (mut batches, mut iterations) = (0, 0);
            for part in &parts {
                let t = &part[v];
                per_round_us.extend_from_slice(&t.per_round_us);
                placement_rounds.push(t.per_round_us.len());
                batches += t.batches;
                iterations = iterations.max(t.iterations);
            }
            Timing {
                batches,
                iterations,
                per_round_us: per_round_us.clone(),
                placement_rounds,
                ..median_of(per_round_us)
            }
        })
        .collect()
}

/// The paired ratio `this / that` of each placement on its own; empty unless both come from
/// the same pooled comparison of several placements.
pub fn ratios(this: &Timing, that: &Timing) -> Vec<f64> {
    if this.placement_rounds.len() < 2
        || this.placement_rounds != that.placement_rounds
        || this.per_round_us.len() != that.per_round_us.len()
    {
        return Vec::new();
    }
    let mut start = 0;
    this.placement_rounds
        .iter()
        .map(|&n| {
            let range = start..start + n;
            start += n;
            median_ratio(&this.per_round_us[range.clone()], &that.per_round_us[range])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(per_round_us: Vec<f64>) -> Timing {
        Timing {
            median_us: 0.0,
            min_us: 0.0,
            max_us: 0.0,
            batches: per_round_us.len(),
            iterations: 1,
            per_round_us,
            placement_rounds: Vec::new(),
        }
    }

    #[test]
    fn pooled_rounds_keep_each_placement_apart() {
        // Placement 1: the variant is 1.2x; placement 2: 1.0x (and the machine twice as fast).
        let parts = vec![
            vec![
                timing(vec![10.0, 10.0, 10.0]),
                timing(vec![12.0, 12.0, 12.0]),
            ],
            vec![timing(vec![5.0, 5.0]), timing(vec![5.0, 5.0])],
        ];
        let pooled = pool(parts);
        assert_eq!(pooled[0].placement_rounds, vec![3, 2]);
        assert_eq!(pooled[1].per_round_us.len(), 5);
        assert_eq!(pooled[0].median_us, 10.0);
        assert_eq!(pooled[1].min_us, 5.0);
        assert_eq!(pooled[1].max_us, 12.0);
        assert_eq!(ratios(&pooled[1], &pooled[0]), vec![1.2, 1.0]);
    }

    #[test]
    fn one_placement_has_no_spread() {
        let pooled = pool(vec![vec![timing(vec![1.0]), timing(vec![2.0])]]);
        assert!(ratios(&pooled[1], &pooled[0]).is_empty());
    }

    #[test]
    fn shifts_differ_by_placement() {
        let sizes = |s: &HeapShift| s._held.iter().map(Vec::len).collect::<Vec<_>>();
        assert_ne!(sizes(&HeapShift::new(0)), sizes(&HeapShift::new(1)));
        assert_eq!(sizes(&HeapShift::new(2)), sizes(&HeapShift::new(2)));
    }
}
