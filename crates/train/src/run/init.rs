//! Starting a run that has no checkpoint: from fresh weights, or from the weights (and
//! optionally the moments) of `model.init_from`, after checking its vocabulary against the data.

use std::path::Path;

use bert_model::{load_model_dir, BertConfig, BertForPreTraining};
use burn::tensor::backend::AutodiffBackend;

use super::setup::RunContext;
use crate::checkpoint::{self, TrainerState};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::model_spec::InitOptimizer;
use crate::optim::Optimizer;
use crate::step::TrainState;

/// The model and optimiser a new run starts from: `model.init_from`'s weights when set, else
/// fresh ones drawn from the seed.
pub(super) fn initial_state<B: AutodiffBackend>(ctx: &RunContext<'_, B>) -> Result<TrainState<B>> {
    let config = ctx.config;
    let optimizer = Optimizer::new(config.optimizer.clone());
    Ok(match &config.model.init_from {
        Some(dir) => init_from_dir::<B>(
            dir,
            config,
            &ctx.facts.vocab_hash,
            &ctx.model_config,
            optimizer,
            ctx.device,
        )?,
        None => TrainState::new(
            BertForPreTraining::new(&ctx.model_config, config.seed, ctx.device),
            optimizer,
        ),
    })
}

/// Refuses `model.init_from` weights trained on another vocabulary than the data's: the same
/// size with other tokens would train without any error, on ids that mean other words.
fn check_init_vocab(
    dir: &Path,
    ours: Option<&TrainerState>,
    data: &Path,
    data_hash: &str,
) -> Result<()> {
    match checkpoint::model_dir_vocab_hash(dir, ours)? {
        Some((file, hash)) if hash != data_hash => Err(TrainError::VocabMismatch {
            init_from: dir.to_path_buf(),
            init_file: file,
            init_hash: hash,
            data: data.to_path_buf(),
            data_hash: data_hash.to_string(),
        }),
        Some(_) => Ok(()),
        None => {
            tracing::warn!(
                "`model.init_from` {} has no trainer_state.json, vocab.txt or tokenizer.json: \
                 its vocabulary cannot be compared with the data's, only its size",
                dir.display()
            );
            Ok(())
        }
    }
}

/// Starts from the weights of `model.init_from` (and with `init_optimizer = "carry"` its
/// moments). A checkpoint of ours must pass its checksums: it was named, so a damaged one is
/// an error, never replaced by another.
fn init_from_dir<B: AutodiffBackend>(
    dir: &Path,
    config: &RunConfig,
    data_hash: &str,
    model_config: &BertConfig,
    optimizer: Optimizer,
    device: &B::Device,
) -> Result<TrainState<B>> {
    let ours = if dir.join(checkpoint::STATE_FILE).is_file() {
        Some(checkpoint::read_verified_state(dir)?)
    } else {
        None
    };
    check_init_vocab(dir, ours.as_ref(), &config.data.train, data_hash)?;
    let (loaded, model, report) = load_model_dir::<B>(dir, config.seed, device)?;
    if ours.is_some() {
        checkpoint::require_every_tensor(dir, &report)?;
    }
    if loaded.vocab_size != model_config.vocab_size
        || loaded.hidden_size != model_config.hidden_size
    {
        return Err(TrainError::Config {
            path: dir.to_path_buf(),
            message: format!(
                "`model.init_from` has vocab {} / hidden {}, the run needs vocab {} / hidden {}",
                loaded.vocab_size,
                loaded.hidden_size,
                model_config.vocab_size,
                model_config.hidden_size
            ),
        });
    }
    for g in &report.initialized {
        tracing::warn!(
            "{} not in `{}`: freshly initialised",
            g.describe(),
            dir.display()
        );
    }
    let mut s = TrainState::new(model, optimizer);
    if config.model.init_optimizer == InitOptimizer::Carry {
        // Freshly initialised parts have no moments to carry; they start new ones.
        s.moments = checkpoint::load_moments::<B>(dir, &mut s.model, device, &report.initialized)?;
    }
    tracing::info!("initialised from {}", dir.display());
    Ok(s)
}
