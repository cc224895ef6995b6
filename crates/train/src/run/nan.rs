//! Steps whose update was skipped: an fp16 overflow (expected now and then; the scale was
//! lowered), or a non-finite loss or gradient norm, which the NaN policy
//! (`train.nan_policy`, `train.max_consecutive_skips`) tolerates or turns into an error.

use std::path::PathBuf;

use crate::checkpoint::TrainerState;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::step::NanPolicy;
use crate::step::{LossScaler, StepOutcome};

/// Counts the step's skipped update (if any) in `trainer_state`, and returns the error that
/// ends the run when the NaN policy says to stop; the error names `newest_ckpt` as the place
/// to resume from. `loss_scaler` is the scaler after the step (fp16).
pub(super) fn account_skips(
    trainer_state: &mut TrainerState,
    out: &StepOutcome,
    loss_scaler: Option<&LossScaler>,
    config: &RunConfig,
    newest_ckpt: Option<&PathBuf>,
) -> Result<()> {
    let m = out.metrics;
    if out.overflow {
        trainer_state.skipped_steps += 1;
        tracing::info!(
            "step {}: fp16 overflow at loss scale {}; update skipped, scale lowered to {}",
            trainer_state.step,
            out.loss_scale.unwrap_or(1.0),
            loss_scaler.map_or(1.0, |s| s.scale)
        );
    } else if !out.applied {
        trainer_state.skipped_steps += 1;
        trainer_state.consecutive_skips += 1;
        let what = if m.loss.is_finite() {
            "gradient norm"
        } else {
            "loss"
        };
        let value = if m.loss.is_finite() {
            out.grad_norm
        } else {
            m.loss
        };
        let stop = config.train.nan_policy == NanPolicy::Stop
            || trainer_state.consecutive_skips > config.train.max_consecutive_skips;
        tracing::warn!(
            "step {}: {what} is {value}; update skipped",
            trainer_state.step
        );
        if stop {
            return Err(TrainError::NonFinite {
                step: trainer_state.step,
                what,
                value,
                policy: config.train.nan_policy.name(),
                hint: newest_ckpt
                    .map(|p| {
                        format!(
                            " ({}); lower the learning rate or check the data, then `--resume`",
                            p.display()
                        )
                    })
                    .unwrap_or_default(),
            });
        }
    } else {
        trainer_state.consecutive_skips = 0;
    }
    Ok(())
}
