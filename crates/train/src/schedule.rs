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

/// The `[schedule]` table: warm-up length and decay shape (the peak is
/// `optimizer.learning_rate`, the end `train.steps`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSection {
    /// Warm-up length in optimiser steps (default: 1% of the run, BERT used 10k of 1M).
    pub warmup_steps: Option<u64>,
    /// Warm-up as a fraction of the run (instead of `warmup_steps`).
    pub warmup_proportion: Option<f64>,
    /// Decay exponent (1 = linear).
    pub power: f64,
    /// `after_warmup` (HuggingFace: the decay runs from the peak over the steps after
    /// warm-up) or `run` (Google's `polynomial_decay`, NVIDIA's `PolyWarmUpScheduler`: the
    /// decay's progress counts from step 0, so warm-up ends below the peak).
    pub decay_over: DecayOver,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            warmup_steps: None,
            warmup_proportion: None,
            power: 1.0,
            decay_over: DecayOver::default(),
        }
    }
}

impl ScheduleSection {
    /// Checks the values no run of `total_steps` steps can use, naming the key.
    pub fn validate(&self, total_steps: u64) -> Result<(), String> {
        if self.warmup_steps.is_some() && self.warmup_proportion.is_some() {
            return Err(
                "set only one of `schedule.warmup_steps` and `schedule.warmup_proportion`".into(),
            );
        }
        if let Some(p) = self.warmup_proportion {
            if !(0.0..1.0).contains(&p) {
                return Err(format!(
                    "`schedule.warmup_proportion` is {p}, expected a fraction in [0, 1)"
                ));
            }
        }
        if let Some(w) = self.warmup_steps {
            if w >= total_steps {
                return Err(format!(
                    "`schedule.warmup_steps` ({w}) must be shorter than the run (`train.steps` = {total_steps})"
                ));
            }
        }
        if self.power.is_nan() || self.power <= 0.0 {
            return Err("`schedule.power` must be positive".into());
        }
        Ok(())
    }

    /// Warm-up steps of a run of `total_steps`, the proportion resolved (default 1%).
    pub fn warmup_steps(&self, total_steps: u64) -> u64 {
        match (self.warmup_steps, self.warmup_proportion) {
            (Some(w), _) => w,
            (None, Some(p)) => (p * total_steps as f64).round() as u64,
            (None, None) => total_steps / 100,
        }
    }
}

impl Schedule {
    /// The schedule a `[schedule]` table describes for a run of `total_steps` peaking at
    /// `peak_lr`.
    pub fn new(section: &ScheduleSection, peak_lr: f64, total_steps: u64) -> Self {
        Self {
            peak_lr,
            warmup_steps: section.warmup_steps(total_steps),
            total_steps,
            power: section.power,
            decay_over: section.decay_over,
        }
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
