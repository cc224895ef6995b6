//! The run: set up (fresh, `init_from` or resume), step loop, evaluation, checkpoints, export.
//!
//! One module per job, in the order a run goes through them: `setup` (checks, the run
//! directory and the starting state), `resume` (the newest intact checkpoint of the same run)
//! or `init` (`model.init_from`, or fresh weights), `step_loop` (steps, logs, evaluations,
//! checkpoints) and `nan` (skipped updates and the NaN policy); evaluation itself is
//! [`crate::eval`]. This module holds the entry points and what they return.

mod init;
mod nan;
mod resume;
mod setup;
mod step_loop;

use std::path::PathBuf;

use bert_model::save_model_dir_as;
use burn::tensor::backend::AutodiffBackend;

use crate::collective::Replica;
use crate::config::RunConfig;
use crate::error::Result;
use crate::metrics::EvalRecord;
use crate::provider::DataProvider;
use crate::step::TrainState;
use setup::RunContext;
use step_loop::run_steps;

pub use setup::{check_data_fits_model, lock_run_dir};

/// How the run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Steps completed.
    pub steps: u64,
    /// Steps this invocation ran (fewer than `steps` after a resume).
    pub steps_this_run: u64,
    /// Wall seconds of this invocation.
    pub wall_s: f64,
    /// Sequences per second over this invocation's steps.
    pub seq_per_s: f64,
    /// The last evaluation, if any.
    pub final_eval: Option<EvalRecord>,
    /// The newest checkpoint.
    pub checkpoint: PathBuf,
    /// The exported HuggingFace folder, if `export_dir` was set.
    pub export: Option<PathBuf>,
}

/// Options of one invocation that are not part of the run's identity.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from the newest complete checkpoint in the run directory.
    pub resume: bool,
    /// Show a progress bar (the CLI sets it when stderr is a terminal).
    pub progress: bool,
}

/// Runs (or resumes) the training described by `config` on backend `B`.
pub fn train<B: AutodiffBackend>(
    config: &RunConfig,
    data: &dyn DataProvider,
    device: &B::Device,
    options: &RunOptions,
) -> Result<RunSummary> {
    train_rank::<B>(config, data, device, options, None)
}

/// [`train`] as one rank of a data-parallel group (`replica`; `None` for a single-device run).
/// `data` must already be this rank's view. Every rank reads the same checkpoint on resume;
/// rank 0 alone writes the run directory (metrics, checkpoints, export).
pub fn train_rank<B: AutodiffBackend>(
    config: &RunConfig,
    data: &dyn DataProvider,
    device: &B::Device,
    options: &RunOptions,
    replica: Option<&Replica<B::InnerBackend>>,
) -> Result<RunSummary> {
    let ctx = RunContext::<B>::new(config, data, device, replica)?;
    let started = ctx.start(options.resume)?;
    let end = run_steps(&ctx, data, started, options.progress)?;
    let export = export(&ctx, &end.state)?;
    let wall_s = end.started.elapsed().as_secs_f64();
    let steps_this_run = end.trainer_state.step - end.start_step;
    let seqs = steps_this_run as f64
        * (config.data.batch_size * ctx.world_size * config.train.accumulation) as f64;
    Ok(RunSummary {
        steps: end.trainer_state.step,
        steps_this_run,
        wall_s,
        seq_per_s: if wall_s > 0.0 { seqs / wall_s } else { 0.0 },
        final_eval: end.final_eval,
        checkpoint: end.newest_ckpt.unwrap_or(ctx.ckpt_root),
        export,
    })
}

/// (Rank 0) writes the trained model as a HuggingFace folder to `export_dir`, when set.
fn export<B: AutodiffBackend>(
    ctx: &RunContext<'_, B>,
    state: &TrainState<B>,
) -> Result<Option<PathBuf>> {
    Ok(
        match ctx.config.export_dir.as_ref().filter(|_| ctx.writer) {
            Some(dir) => {
                let architecture = crate::checkpoint::export_architecture(ctx.facts.objective);
                save_model_dir_as(
                    &state.model,
                    &ctx.model_config,
                    dir,
                    ctx.facts.tokenizer_dir.as_deref(),
                    architecture,
                )?;
                tracing::info!(
                    "exported HuggingFace folder {} ({})",
                    dir.display(),
                    architecture.hf_name()
                );
                Some(dir.clone())
            }
            None => None,
        },
    )
}
