//! Deterministic random numbers whose streams never change between releases.
//!
//! Every random choice in the project (weight initialisation, instance building, masking,
//! shuffling) flows from a seed in the config. General-purpose RNG crates are free to change
//! their streams between versions, which would silently change runs; this tiny generator is
//! ours and frozen, so a seed means the same thing forever. Its state serialises, so checkpoints
//! can store it and a resumed run continues the exact stream.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// SplitMix64 step: used to expand seeds and to derive independent sub-streams.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes several words into one seed, so that `(seed, epoch, index)` style keys give
/// independent streams without any state.
pub fn mix_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243F_6A88_85A3_08D3_u64, |acc, &p| {
        splitmix64(acc ^ splitmix64(p))
    })
}

/// xoshiro256** generator: fast, small state, good statistical quality.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Creates a generator from a 64-bit seed (any value, including zero, is fine).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *word = splitmix64(x);
        }
        Self { s }
    }

    /// Creates a generator for a keyed sub-stream, e.g. `Rng::keyed(&[seed, epoch, index])`.
    pub fn keyed(parts: &[u64]) -> Self {
        Self::new(mix_seed(parts))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)`, without modulo bias. `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below needs a positive bound");
        // Lemire's multiply-shift with rejection.
        loop {
            let x = self.next_u64();
            let m = (x as u128) * (n as u128);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform integer in `[lo, hi]` (inclusive).
    pub fn range_inclusive(&mut self, lo: usize, hi: usize) -> usize {
        assert!(lo <= hi, "Rng::range_inclusive needs lo <= hi");
        lo + self.below((hi - lo) as u64 + 1) as usize
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// Standard normal sample (Box–Muller; one of the pair is discarded so that the
    /// state stays a plain generator state, which keeps checkpoints simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // in (0, 1], keeps ln finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_frozen() {
        // A seed must mean the same thing in every release. The values come from
        // `scripts/make_rng_pins.py`, which implements xoshiro256**, SplitMix64, the seeding,
        // `mix_seed`, Lemire's `below` and Box–Muller from their published descriptions.
        let mut r = Rng::new(42);
        let first: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(
            first,
            [
                0xBE15_272C_DF80_B6C2,
                0xAF6E_2EE4_9FF5_D0E3,
                0xCA56_EDD0_338A_318F,
                0x4945_F1D9_15AE_1AF2
            ]
        );
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix_seed(&[1, 2, 3]), 0xE234_B8E7_6620_09C0);
        assert_eq!(mix_seed(&[]), 0x243F_6A88_85A3_08D3);
        let mut r = Rng::new(7);
        let below: Vec<u64> = (0..6).map(|_| r.below(1000)).collect();
        assert_eq!(below, [381, 469, 926, 396, 540, 589]);
        let mut r = Rng::new(7);
        let below: Vec<u64> = (0..6).map(|_| r.below(3)).collect();
        assert_eq!(below, [1, 1, 2, 1, 1, 1]);
        let mut r = Rng::new(9);
        for want in [0.7564490806093276, -1.031322238811331, -0.898962742664828] {
            let got = r.normal();
            // ln and cos may differ in the last bit between math libraries.
            assert!((got - want).abs() <= 1e-14, "{got} vs {want}");
        }
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = Rng::new(7);
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let x = r.normal();
            s += x;
            s2 += x * x;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        // Standard error of the mean is 1/sqrt(n) ≈ 0.0022; 5 sigma bounds.
        assert!(mean.abs() < 0.0112, "mean {mean}");
        // Var of the sample variance ≈ 2/n → sd ≈ 0.0032.
        assert!((var - 1.0).abs() < 0.016, "var {var}");
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[r.below(5) as usize] += 1;
        }
        for c in counts {
            // Binomial(n, 0.2): sd ≈ 179; 5 sigma.
            assert!((c as f64 - n as f64 / 5.0).abs() < 900.0, "{counts:?}");
        }
    }
}
