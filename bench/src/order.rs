//! The order in which a round runs its variants, chosen so that no variant is favoured by the
//! one that runs before it.
//!
//! Under TCG an operation's time depends on what ran just before it (which code, data and
//! kernel state are warm): with a plain rotation (A B C, B C A, ...), which keeps every
//! predecessor fixed (B always after A), `allocate_and_import` measured 1.09x the raw floor
//! among three variants and 0.92x among four. Williams' balanced Latin square (1949) fixes
//! that: over one cycle of rows every variant follows every other equally often, so
//! first-order carry-over cancels in the per-round ratios. With it, the raw floor against
//! itself (a control variant) measures 0.99x–1.01x.

/// The rows of one cycle for `n` variants: `n` rows, `2n` when `n` is odd.
pub fn cycle_len(n: usize) -> usize {
    if n % 2 == 1 && n > 1 {
        2 * n
    } else {
        n.max(1)
    }
}

/// The order of round `round` among `n` variants: every variant once.
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let row = round % cycle_len(n);
    let shift = row % n;
    // First row 0, 1, n-1, 2, n-2, ...; row r adds r. For odd n the second half of the
    // cycle runs the first half's rows backwards.
    let mut order: Vec<usize> = (0..n)
        .map(|j| {
            let base = if j == 0 {
                0
            } else if j % 2 == 1 {
                j.div_ceil(2)
            } else {
                n - j / 2
            };
            (base + shift) % n
        })
        .collect();
    if row >= n {
        order.reverse();
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_runs_every_variant_once() {
        for n in 0..=7 {
            for round in 0..3 * cycle_len(n) {
                let mut order = round_order(n, round);
                order.sort_unstable();
                assert_eq!(order, (0..n).collect::<Vec<_>>(), "n {n} round {round}");
            }
        }
    }

    #[test]
    fn every_variant_follows_every_other_equally_often() {
        for n in 2..=7 {
            let mut follows = vec![vec![0usize; n]; n];
            for round in 0..cycle_len(n) {
                for pair in round_order(n, round).windows(2) {
                    follows[pair[0]][pair[1]] += 1;
                }
            }
            let expected = if n % 2 == 1 { 2 } else { 1 };
            for (a, row) in follows.iter().enumerate() {
                for (b, &count) in row.iter().enumerate() {
                    let want = if a == b { 0 } else { expected };
                    assert_eq!(count, want, "n {n}: {b} after {a}");
                }
            }
        }
    }

    #[test]
    fn a_rotation_would_not_be_balanced() {
        // What the order replaced: B always after A.
        let rotation = |round: usize| (0..3).map(|k| (round + k) % 3).collect::<Vec<_>>();
        let after_0: Vec<usize> = (0..3)
            .filter_map(|r| {
                let o = rotation(r);
                o.iter()
                    .position(|&v| v == 0)
                    .and_then(|i| o.get(i + 1).copied())
            })
            .collect();
        assert!(after_0.iter().all(|&v| v == 1));
        let balanced: Vec<usize> = (0..cycle_len(3))
            .filter_map(|r| {
                let o = round_order(3, r);
                o.iter()
                    .position(|&v| v == 0)
                    .and_then(|i| o.get(i + 1).copied())
            })
            .collect();
        assert!(balanced.contains(&1) && balanced.contains(&2));
    }
}
