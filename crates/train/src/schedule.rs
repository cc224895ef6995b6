//! Learning-rate schedule: linear warm-up, then polynomial decay to zero (BERT's recipe).

use serde::{Deserialize, Serialize};

/// Linear warm-up over `warmup_steps`, then `(1 - progress)^power` decay to zero at `total_steps`.
/// `power = 1` is BERT's linear decay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate, reached at the end of warm-up.
    pub peak_lr: f64,
    /// Warm-up length in optimiser steps.
    pub warmup_steps: u64,
    /// Total optimiser steps of the run (the learning rate is zero there).
    pub total_steps: u64,
    /// Decay exponent.
    pub power: f64,
}

impl Schedule {
    /// Learning rate for optimiser step `step` (0-based: the first update uses `lr(0)`).
    ///
    /// Warm-up counts from 1 so that the first update is not wasted at a rate of zero
    /// (Burn's linear scheduler refuses a zero start for the same reason).
    pub fn lr(&self, step: u64) -> f64 {
        let s = step + 1;
        if s <= self.warmup_steps {
            return self.peak_lr * s as f64 / self.warmup_steps as f64;
        }
        let decay_len = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((s - self.warmup_steps) as f64 / decay_len).min(1.0);
        self.peak_lr * (1.0 - progress).max(0.0).powf(self.power)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay_to_zero() {
        let s = Schedule {
            peak_lr: 1e-3,
            warmup_steps: 10,
            total_steps: 110,
            power: 1.0,
        };
        assert!((s.lr(0) - 1e-4).abs() < 1e-15);
        assert!((s.lr(4) - 5e-4).abs() < 1e-15);
        assert!((s.lr(9) - 1e-3).abs() < 1e-15);
        // Halfway through the decay: half the peak.
        assert!((s.lr(59) - 5e-4).abs() < 1e-15);
        assert_eq!(s.lr(109), 0.0);
        assert_eq!(s.lr(500), 0.0);
        // Monotone after the peak.
        assert!((10..110).all(|i| s.lr(i) <= s.lr(i - 1)));
    }

    #[test]
    fn polynomial_power() {
        let s = Schedule {
            peak_lr: 1.0,
            warmup_steps: 0,
            total_steps: 100,
            power: 2.0,
        };
        // After 50 of 100 decay steps: (1 - 0.5)^2.
        assert!((s.lr(49) - 0.25).abs() < 1e-12);
    }
}
