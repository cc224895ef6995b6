//! Setting a run up: the data and configuration checked against the model and the device,
//! the run directory, and the state the loop starts from (resumed, `init_from` or fresh) with
//! the precision applied.

use std::path::{Path, PathBuf};

use bert_model::{BertConfig, Precision};
use burn::tensor::backend::AutodiffBackend;

use super::init::initial_state;
use super::resume::resume;
use crate::checkpoint::{self, TrainerState};
use crate::collective::Replica;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::provider::{DataFacts, DataProvider};
use crate::step::TrainState;

/// What every part of a run needs, resolved and checked once before anything is trained.
pub(super) struct RunContext<'a, B: AutodiffBackend> {
    /// The run's configuration.
    pub(super) config: &'a RunConfig,
    /// The device this rank trains on.
    pub(super) device: &'a B::Device,
    /// This rank's place in a data-parallel group; `None` for a single-device run.
    pub(super) replica: Option<&'a Replica<B::InnerBackend>>,
    /// Rank 0 (or a single-device run): the one that writes the run directory.
    pub(super) writer: bool,
    /// Ranks in the group (1 without one).
    pub(super) world_size: usize,
    /// The data's facts (vocabulary, sequence length, tokenizer folder).
    pub(super) facts: DataFacts,
    /// The model the run trains.
    pub(super) model_config: BertConfig,
    /// `out_dir/checkpoints`.
    pub(super) ckpt_root: PathBuf,
    /// The configuration as recorded in `run_config.json` and every checkpoint.
    pub(super) run_config_json: serde_json::Value,
    /// (The writer) this process's hold on the run directory, for the whole run.
    _lock: Option<bert_fsutil::FolderLock>,
}

/// The lock file of a run directory.
const LOCK_FILE: &str = ".lock";

/// Takes the run directory `out_dir` for this process (creating it), or fails at once, naming
/// the process that has it, when another run writes there. Held until dropped; the kernel
/// releases it when the process dies, so a killed run never leaves it stale. Within one process
/// it can be taken again (`bert train` takes it before preparing the data, then the run takes
/// it once more). Only the writer of a data-parallel group (rank 0) takes it.
pub fn lock_run_dir(out_dir: &Path) -> Result<bert_fsutil::FolderLock> {
    Ok(bert_fsutil::FolderLock::acquire(
        &out_dir.join(LOCK_FILE),
        out_dir,
    )?)
}

/// The state the step loop starts from.
pub(super) struct Started<B: AutodiffBackend> {
    /// Counters, data cursor and recorded configuration.
    pub(super) trainer_state: TrainerState,
    /// Model, optimiser and moments.
    pub(super) state: TrainState<B>,
    /// The checkpoint resumed from, if any.
    pub(super) resumed_from: Option<PathBuf>,
}

impl<'a, B: AutodiffBackend> RunContext<'a, B> {
    /// Checks that the data fits the model and that the device supports the precision, then
    /// creates the run directory and (rank 0) removes a checkpoint half-written by a kill.
    pub(super) fn new(
        config: &'a RunConfig,
        data: &dyn DataProvider,
        device: &'a B::Device,
        replica: Option<&'a Replica<B::InnerBackend>>,
    ) -> Result<Self> {
        let writer = replica.is_none_or(|r| r.is_writer());
        let world_size = replica.map_or(1, |r| r.world_size());
        let facts = data.facts().clone();
        let model_config = config.model_config(facts.vocab_size)?;
        check_data_fits_model(&config.data.train, &facts, &model_config)?;
        let precision = config.train.precision;
        precision
            .ensure_supported::<B>(device)
            .map_err(|why| TrainError::Config {
                path: config.out_dir.clone(),
                message: format!("`train.precision`: {why}"),
            })?;
        std::fs::create_dir_all(&config.out_dir)
            .map_err(TrainError::io("creating", &config.out_dir))?;
        let lock = writer.then(|| lock_run_dir(&config.out_dir)).transpose()?;
        let ckpt_root = checkpoints_dir(config);
        if writer {
            checkpoint::clean_partial(&ckpt_root);
            // Files half-written by a killed run (metrics, run config); checkpoints are
            // cleaned above.
            bert_fsutil::remove_stale_temps_in(&config.out_dir);
        }
        let run_config_json = serde_json::to_value(config).expect("run config serialises");
        Ok(Self {
            config,
            device,
            replica,
            writer,
            world_size,
            facts,
            model_config,
            ckpt_root,
            run_config_json,
            _lock: lock,
        })
    }

    /// The state to start from: with `resume_run`, the newest intact checkpoint; else a new
    /// run, refused when the directory already has checkpoints. Then the precision is applied
    /// and (rank 0) `run_config.json` written.
    pub(super) fn start(&self, resume_run: bool) -> Result<Started<B>> {
        let config = self.config;
        let found = checkpoint::list_checkpoints(&self.ckpt_root);
        let mut started = if resume_run && !found.is_empty() {
            resume(self, &found)?
        } else {
            if !found.is_empty() {
                return Err(TrainError::Config {
                    path: config.out_dir.clone(),
                    message: "the run directory already has checkpoints: pass `--resume` to continue it, or choose another `out_dir`".into(),
                });
            }
            let state = initial_state(self)?;
            Started {
                trainer_state: self.fresh_trainer_state(&state),
                state,
                resumed_from: None,
            }
        };
        started.trainer_state.world_size = self.world_size;
        started.state.objective = self.facts.objective;
        self.apply_precision(&mut started);
        if self.writer {
            let write_config =
                serde_json::to_vec_pretty(&self.run_config_json).expect("serialises");
            bert_fsutil::write_atomic(&config.out_dir.join("run_config.json"), &write_config)?;
        }
        Ok(started)
    }

    /// The trainer state of a run at step 0.
    fn fresh_trainer_state(&self, state: &TrainState<B>) -> TrainerState {
        TrainerState {
            step: 0,
            sequences_seen: 0,
            tokens_seen: 0,
            skipped_steps: 0,
            consecutive_skips: 0,
            data_cursor: serde_json::Value::Null,
            optimizer: state.optimizer.clone(),
            seed: self.config.seed,
            vocab_hash: self.facts.vocab_hash.clone(),
            objective: self.facts.objective,
            run_config: self.run_config_json.clone(),
            elapsed_s: 0.0,
            versions: checkpoint::versions(),
            loss_scaler: None,
            world_size: self.world_size,
            files: Default::default(),
        }
    }

    /// Sets the model's precision and, for fp16, the loss scaler (a resumed run keeps its
    /// scale).
    fn apply_precision(&self, started: &mut Started<B>) {
        let precision = self.config.train.precision;
        started.state.model.set_precision(precision);
        started.state.loss_scaler = (precision == Precision::Fp16).then(|| {
            started
                .trainer_state
                .loss_scaler
                .clone()
                .unwrap_or_default()
        });
        if precision.is_mixed() {
            tracing::info!(
                "mixed precision: {precision} matrix products, f32 weights and optimiser"
            );
        }
    }
}

/// Where the run's checkpoints go.
fn checkpoints_dir(config: &RunConfig) -> PathBuf {
    config.out_dir.join("checkpoints")
}

/// Refuses shards the model cannot read: ids beyond its vocabulary, sequences longer than
/// its position embeddings, or a second segment when it has one token type. `data` names the
/// shard folder in the message.
pub fn check_data_fits_model(data: &Path, facts: &DataFacts, model: &BertConfig) -> Result<()> {
    let refuse = |message: String| {
        Err(TrainError::Config {
            path: data.to_path_buf(),
            message,
        })
    };
    if facts.vocab_size > model.vocab_size {
        return refuse(format!(
            "prepared with a vocabulary of {} entries, larger than the model's `vocab_size` {}",
            facts.vocab_size, model.vocab_size
        ));
    }
    if facts.max_seq_length > model.max_position_embeddings {
        return refuse(format!(
            "the shards hold sequences of up to {} tokens, the model's `max_position_embeddings` is {}",
            facts.max_seq_length, model.max_position_embeddings
        ));
    }
    // Pair objectives put segment B at token type 1; a table of one row (RoBERTa-style
    // configs) cannot embed it.
    if facts.objective.has_pair_label() && model.type_vocab_size < 2 {
        return refuse(format!(
            "the shards' objective `{}` gives segment B token type 1, but the model's \
             `type_vocab_size` is {}: prepare the data with `objective = \"mlm\"` (one segment, \
             token types all 0), or use a model with `type_vocab_size = 2`",
            facts.objective, model.type_vocab_size
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bert_data::Objective;

    fn facts(vocab_size: usize, max_seq_length: usize, objective: Objective) -> DataFacts {
        DataFacts {
            vocab_size,
            vocab_hash: String::new(),
            max_seq_length,
            train_instances: 1,
            tokenizer_dir: None,
            objective,
        }
    }

    #[test]
    fn data_that_does_not_fit_the_model_is_refused_with_the_folder_named() {
        let mut model = BertConfig::preset("tiny").unwrap();
        model.vocab_size = 100;
        model.max_position_embeddings = 64;
        let dir = Path::new("shards/train");
        let nsp = Objective::MlmNsp;
        assert!(check_data_fits_model(dir, &facts(100, 64, nsp), &model).is_ok());
        let err = check_data_fits_model(dir, &facts(101, 64, nsp), &model)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shards/train") && err.contains("vocab_size"),
            "{err}"
        );
        let err = check_data_fits_model(dir, &facts(100, 65, nsp), &model)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_position_embeddings") && err.contains("65"),
            "{err}"
        );
    }

    #[test]
    fn one_token_type_takes_mlm_shards_and_refuses_pairs_by_name() {
        let mut model = BertConfig::preset("tiny").unwrap();
        model.vocab_size = 100;
        model.type_vocab_size = 1;
        let dir = Path::new("shards/train");
        assert!(check_data_fits_model(dir, &facts(100, 64, Objective::Mlm), &model).is_ok());
        for pair in [Objective::MlmNsp, Objective::MlmSop] {
            let err = check_data_fits_model(dir, &facts(100, 64, pair), &model)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("shards/train")
                    && err.contains("type_vocab_size")
                    && err.contains(pair.as_str())
                    && err.contains("objective = \"mlm\""),
                "{err}"
            );
        }
    }
}
