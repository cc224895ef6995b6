//! Learning-rate schedule: linear warm-up, then polynomial decay to zero (BERT's recipe), with
//! the decay measured over the whole run (Google, NVIDIA) or over the steps after warm-up
//! (HuggingFace).

use serde::{Deserialize, Serialize};

/// What the polynomial decay's progress is measured over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayOver {
    /// Progress = step / total steps, as Google's `polynomial_decay` with the warm-up laid over
    /// it (`optimization.py`) and NVIDIA's `PolyWarmUpScheduler` compute it: at the end of
    /// warm-up the rate is already `(1 − warmup/total)^power` of the peak.
    Run,
    /// Progress = (step − warm-up) / (total − warm-up), as HuggingFace's
    /// `get_linear_schedule_with_warmup` (and `get_polynomial_decay_schedule_with_warmup` with
    /// a zero end rate): the decay starts from the peak.
    #[default]
    AfterWarmup,
}

impl DecayOver {
    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            DecayOver::Run => "run",
            DecayOver::AfterWarmup => "after_warmup",
        }
    }
}

/// Linear warm-up over `warmup_steps`, then `(1 - progress)^power` decay to zero at
/// `total_steps`. `power = 1` is BERT's linear decay.
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
    /// What the decay's progress is measured over.
    #[serde(default)]
    pub decay_over: DecayOver,
}

impl Schedule {
    /// Learning rate for optimiser step `step` (0-based: the first update uses `lr(0)`).
    ///
    /// The formulas are those of the references at their global step `step + 1`: the first
    /// update is not wasted at a rate of zero (Burn's linear scheduler refuses a zero start for
    /// the same reason), and the last one, `total_steps − 1`, is the last non-zero rate.
    pub fn lr(&self, step: u64) -> f64 {
        let s = step + 1;
        if s < self.warmup_steps {
            return self.peak_lr * s as f64 / self.warmup_steps as f64;
        }
        let progress = match self.decay_over {
            DecayOver::Run => s as f64 / self.total_steps.max(1) as f64,
            DecayOver::AfterWarmup => {
                let decay_len = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                (s - self.warmup_steps) as f64 / decay_len
            }
        };
        self.peak_lr * (1.0 - progress.min(1.0)).max(0.0).powf(self.power)
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
            decay_over: DecayOver::AfterWarmup,
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
            decay_over: DecayOver::AfterWarmup,
        };
        // After 50 of 100 decay steps: (1 - 0.5)^2.
        assert!((s.lr(49) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn decay_over_the_run_starts_below_the_peak_after_warmup() {
        let s = Schedule {
            peak_lr: 1.0,
            warmup_steps: 20,
            total_steps: 100,
            power: 0.5,
            decay_over: DecayOver::Run,
        };
        // At the end of warm-up the run is 20% done: (1 - 0.2)^0.5 of the peak.
        assert!((s.lr(19) - 0.8f64.sqrt()).abs() < 1e-12);
        assert!((s.lr(18) - 19.0 / 20.0).abs() < 1e-12);
        assert_eq!(s.lr(99), 0.0);
    }
}
