//! The hostile client's pseudo-random numbers: SplitMix64 (Steele, Lea and Flood, 2014),
//! written here by hand so a run depends on nothing but its seed. Not cryptographic; it only
//! has to be fast, well mixed and the same on every machine.

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next 32 random bits.
    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A number in `0..n` (`n` > 0; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An index into a slice of `len` elements, `None` when it is empty.
    pub fn index(&mut self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.below(len as u64) as usize)
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A size or coordinate as hostile clients send them: mostly plausible, sometimes zero,
    /// negative, one past a power of two or near the ends of the 32-bit range.
    pub fn dimension(&mut self) -> i32 {
        match self.below(10) {
            0 => 0,
            1 => self.pick(&[-1, i32::MIN, i32::MAX, i32::MAX / 2 + 1, 1 << 16, 65535]),
            2 => -(self.range(1, 4096) as i32),
            3 => self.pick(&[640, 480, 64, 1, 4096, 8192]),
            _ => self.range(1, 1024) as i32,
        }
    }

    /// An unsigned field (offset, stride) as hostile clients send them.
    pub fn field(&mut self) -> u32 {
        match self.below(8) {
            0 => 0,
            1 => self.pick(&[u32::MAX, u32::MAX - 3, 1 << 31, 1 << 24]),
            2 => self.range(1, 16) as u32,
            3 => self.pick(&[2560, 1280, 4096, 256, 64]),
            _ => self.range(0, 1 << 20) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_numbers() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // SplitMix64's first output for seed 0 (the reference implementation's).
        assert_eq!(Rng::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }
}
