//! The run: set up (fresh, `init_from` or resume), step loop, evaluation, checkpoints, export.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bert_model::{
    load_model_dir, save_model_dir, BertConfig, BertForPreTraining, Precision, PretrainingMetrics,
};
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::checkpoint::{self, TrainerState};
use crate::config::{InitOptimizer, NanPolicy, RunConfig};
use crate::distributed::Replica;
use crate::error::{Result, TrainError};
use crate::metrics::{EvalRecord, MetricsLog, StepRecord};
use crate::optim::Optimizer;
use crate::provider::DataProvider;
use crate::schedule::Schedule;
use crate::step::{batch_to_device, TrainState};

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

fn checkpoints_dir(config: &RunConfig) -> PathBuf {
    config.out_dir.join("checkpoints")
}

/// Keys whose change would make a resumed run a different run. The global batch counts, not
/// how it is split over ranks and micro-batches: a run may resume on another number of ranks.
fn identity(config: &RunConfig, world_size: usize) -> Vec<(&'static str, String)> {
    let b = config.data.batch_size;
    let a = config.train.accumulation;
    vec![
        ("seed", config.seed.to_string()),
        ("model", format!("{:?}", config.model)),
        ("data.train", config.data.train.display().to_string()),
        (
            "the global batch (data.batch_size × ranks × train.accumulation)",
            format!("{} ({b} × {world_size} × {a})", b * world_size * a),
        ),
        (
            "data.pad_to_max_length",
            config.data.pad_to_max_length.to_string(),
        ),
        ("optimizer", format!("{:?}", config.optimizer)),
    ]
}

fn check_resume(
    dir: &Path,
    state: &TrainerState,
    config: &RunConfig,
    world_size: usize,
    vocab_hash: &str,
) -> Result<()> {
    let old: RunConfig =
        serde_json::from_value(state.run_config.clone()).map_err(|e| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: format!("unreadable run config: {e}"),
        })?;
    let global = |c: &RunConfig, w: usize| c.data.batch_size * w * c.train.accumulation;
    let mut differ: Vec<String> = identity(&old, state.world_size)
        .into_iter()
        .zip(identity(config, world_size))
        // The same global batch split another way is the same run (elastic resume).
        .filter(|(a, b)| {
            a.1 != b.1
                && !(a.0.starts_with("the global batch")
                    && global(&old, state.world_size) == global(config, world_size))
        })
        .map(|(a, b)| format!("`{}` was {} and is now {}", a.0, a.1, b.1))
        .collect();
    if state.vocab_hash != vocab_hash {
        differ.push(format!(
            "the vocabulary hash was {} and is now {vocab_hash}",
            state.vocab_hash
        ));
    }
    if !differ.is_empty() {
        return Err(TrainError::ResumeMismatch {
            path: dir.to_path_buf(),
            message: format!(
                "{}. Start a new run directory (`--out`) for a different run; total steps, evaluation and checkpoint intervals may change on resume",
                differ.join("; ")
            ),
        });
    }
    Ok(())
}

/// What a checkpoint restores.
struct Restored<B: AutodiffBackend> {
    dir: PathBuf,
    trainer: TrainerState,
    state: TrainState<B>,
}

/// Restores the newest intact checkpoint of `found` (oldest first), skipping damaged newer
/// ones with a warning that names them. A checkpoint of another run (`check_resume`) stops at
/// once: older ones of the same directory would not match either, and going back silently
/// would hide the changed config. `run` is the world size and the data's vocabulary hash.
fn restore_newest_good<B: AutodiffBackend>(
    found: &[(u64, PathBuf)],
    root: &Path,
    config: &RunConfig,
    model_config: &BertConfig,
    run: (usize, &str),
    device: &B::Device,
) -> Result<Restored<B>> {
    let mut tried = Vec::new();
    for (_, dir) in found.iter().rev() {
        match restore::<B>(dir, config, model_config, run, device) {
            Ok(restored) => return Ok(restored),
            Err(e) if e.is_damaged_checkpoint() => {
                tracing::warn!(
                    "skipping damaged checkpoint {}, trying an older one: {e}",
                    dir.display()
                );
                tried.push(format!("`{}`: {e}", dir.display()));
            }
            Err(e) => return Err(e),
        }
    }
    Err(TrainError::NoUsableCheckpoint {
        root: root.to_path_buf(),
        tried,
    })
}

/// Reads checkpoint `dir` whole: state, identity check, checksums, weights and moments.
fn restore<B: AutodiffBackend>(
    dir: &Path,
    config: &RunConfig,
    model_config: &BertConfig,
    (world_size, vocab_hash): (usize, &str),
    device: &B::Device,
) -> Result<Restored<B>> {
    let trainer = checkpoint::read_state(dir)?;
    check_resume(dir, &trainer, config, world_size, vocab_hash)?;
    checkpoint::verify_files(dir, &trainer)?;
    let (loaded_config, mut model, _) = load_model_dir::<B>(dir, config.seed, device)?;
    if loaded_config != *model_config {
        return Err(TrainError::ResumeMismatch {
            path: dir.to_path_buf(),
            message: "the model config differs from the checkpoint's".into(),
        });
    }
    let moments = checkpoint::load_moments::<B>(dir, &mut model, device, &[])?;
    let state = TrainState {
        model,
        optimizer: trainer.optimizer.clone(),
        moments,
        loss_scaler: None,
    };
    Ok(Restored {
        dir: dir.to_path_buf(),
        trainer,
        state,
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

/// Evaluates `model` (without autodiff, so without dropout) on `batches`.
pub fn evaluate<B: AutodiffBackend>(
    model: &BertForPreTraining<B>,
    batches: &[bert_data::HostBatch],
    step: u64,
    device: &B::Device,
) -> EvalRecord {
    match evaluate_replicated(model, batches, step, device, None) {
        Ok(e) => e,
        Err(e) => unreachable!("an evaluation without a collective cannot fail: {e}"),
    }
}

/// The first [`PretrainingMetrics::SUMS`] values of an all-reduced vector, as
/// [`PretrainingMetrics::set_sums`] takes them.
pub(crate) fn sums_of<B: Backend>(
    values: &[f64],
    replica: &Replica<B>,
) -> Result<[f64; PretrainingMetrics::SUMS]> {
    values
        .get(..PretrainingMetrics::SUMS)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| TrainError::Distributed {
            rank: replica.rank(),
            world_size: replica.world_size(),
            message: format!(
                "the all-reduce returned {} metric values, expected {}",
                values.len(),
                PretrainingMetrics::SUMS
            ),
        })
}

/// [`evaluate`] as one rank of a data-parallel group: each rank evaluates its share of the
/// batches and the sums are reduced over the ranks, so every rank gets the whole set's figures.
pub fn evaluate_replicated<B: AutodiffBackend>(
    model: &BertForPreTraining<B>,
    batches: &[bert_data::HostBatch],
    step: u64,
    device: &B::Device,
    replica: Option<&Replica<B::InnerBackend>>,
) -> Result<EvalRecord> {
    let inner = burn::module::AutodiffModule::valid(model);
    let mut acc = PretrainingMetrics::default();
    for b in batches {
        let m = inner
            .forward_pretraining(batch_to_device::<B::InnerBackend>(b, device))
            .metrics();
        acc.mlm_loss += m.mlm_loss * m.mlm_total;
        acc.nsp_loss += m.nsp_loss * m.nsp_total;
        acc.mlm_correct += m.mlm_correct;
        acc.mlm_total += m.mlm_total;
        acc.nsp_correct += m.nsp_correct;
        acc.nsp_total += m.nsp_total;
    }
    if let Some(r) = replica.filter(|r| r.world_size() > 1) {
        let v = r.all_reduce_values(&acc.sums(), device, "evaluation")?;
        acc.set_sums(&sums_of(&v, r)?);
    }
    Ok(EvalRecord {
        kind: "eval".into(),
        step,
        mlm_loss: if acc.mlm_total > 0.0 {
            acc.mlm_loss / acc.mlm_total
        } else {
            0.0
        },
        nsp_loss: if acc.nsp_total > 0.0 {
            acc.nsp_loss / acc.nsp_total
        } else {
            0.0
        },
        mlm_accuracy: acc.mlm_accuracy(),
        nsp_accuracy: acc.nsp_accuracy(),
        sequences: acc.nsp_total as u64,
    })
}

/// Refuses shards the model cannot read: ids beyond its vocabulary or sequences longer than
/// its position embeddings. `data` names the shard folder in the message.
pub fn check_data_fits_model(
    data: &Path,
    vocab_size: usize,
    max_seq_length: usize,
    model: &BertConfig,
) -> Result<()> {
    let refuse = |message: String| {
        Err(TrainError::Config {
            path: data.to_path_buf(),
            message,
        })
    };
    if vocab_size > model.vocab_size {
        return refuse(format!(
            "prepared with a vocabulary of {vocab_size} entries, larger than the model's `vocab_size` {}",
            model.vocab_size
        ));
    }
    if max_seq_length > model.max_position_embeddings {
        return refuse(format!(
            "the shards hold sequences of up to {max_seq_length} tokens, the model's `max_position_embeddings` is {}",
            model.max_position_embeddings
        ));
    }
    Ok(())
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
    let writer = replica.is_none_or(|r| r.is_writer());
    let world_size = replica.map_or(1, |r| r.world_size());
    let facts = data.facts().clone();
    let model_config = config.model_config(facts.vocab_size)?;
    check_data_fits_model(
        &config.data.train,
        facts.vocab_size,
        facts.max_seq_length,
        &model_config,
    )?;
    let precision = config.train.precision;
    precision
        .ensure_supported::<B>(device)
        .map_err(|why| TrainError::Config {
            path: config.out_dir.clone(),
            message: format!("`train.precision`: {why}"),
        })?;
    std::fs::create_dir_all(&config.out_dir)
        .map_err(TrainError::io("creating", &config.out_dir))?;
    let ckpt_root = checkpoints_dir(config);
    if writer {
        checkpoint::clean_partial(&ckpt_root);
    }
    let run_config_json = serde_json::to_value(config).expect("run config serialises");

    // Set up: resume, init_from, or fresh.
    let mut trainer_state;
    let mut state: TrainState<B>;
    let found = checkpoint::list_checkpoints(&ckpt_root);
    let mut resumed_from = None;
    if options.resume && !found.is_empty() {
        let restored = restore_newest_good::<B>(
            &found,
            &ckpt_root,
            config,
            &model_config,
            (world_size, &facts.vocab_hash),
            device,
        )?;
        trainer_state = restored.trainer;
        state = restored.state;
        let dir = restored.dir;
        if trainer_state.world_size != world_size {
            tracing::info!(
                "the checkpoint was written by {} rank(s), the run continues on {world_size} \
                 with the same global batch",
                trainer_state.world_size
            );
        }
        if let Ok(old) = serde_json::from_value::<RunConfig>(trainer_state.run_config.clone()) {
            if old.train.precision != config.train.precision {
                tracing::warn!(
                    "`train.precision` was {} and is now {}: the run continues, but not \
                     bit-for-bit as it would have in {}",
                    old.train.precision,
                    config.train.precision,
                    old.train.precision
                );
            }
        }
        trainer_state.run_config = run_config_json.clone();
        tracing::info!(
            "resuming from {} (step {})",
            dir.display(),
            trainer_state.step
        );
        resumed_from = Some(dir);
    } else {
        if !found.is_empty() {
            return Err(TrainError::Config {
                path: config.out_dir.clone(),
                message: "the run directory already has checkpoints: pass `--resume` to continue it, or choose another `out_dir`".into(),
            });
        }
        let optimizer = Optimizer::new(config.optimizer.clone());
        state = match &config.model.init_from {
            Some(dir) => init_from_dir::<B>(
                dir,
                config,
                &facts.vocab_hash,
                &model_config,
                optimizer,
                device,
            )?,
            None => TrainState::new(
                BertForPreTraining::new(&model_config, config.seed, device),
                optimizer,
            ),
        };
        trainer_state = TrainerState {
            step: 0,
            sequences_seen: 0,
            tokens_seen: 0,
            skipped_steps: 0,
            consecutive_skips: 0,
            data_cursor: serde_json::Value::Null,
            optimizer: state.optimizer.clone(),
            seed: config.seed,
            vocab_hash: facts.vocab_hash.clone(),
            run_config: run_config_json.clone(),
            elapsed_s: 0.0,
            versions: checkpoint::versions(),
            loss_scaler: None,
            world_size,
            files: Default::default(),
        };
    }
    trainer_state.world_size = world_size;
    state.model.set_precision(precision);
    state.loss_scaler = (precision == Precision::Fp16)
        .then(|| trainer_state.loss_scaler.clone().unwrap_or_default());
    if precision.is_mixed() {
        tracing::info!("mixed precision: {precision} matrix products, f32 weights and optimiser");
    }
    if writer {
        let write_config = serde_json::to_vec_pretty(&run_config_json).expect("serialises");
        bert_model::fsutil::write_atomic(&config.out_dir.join("run_config.json"), &write_config)?;
    }

    let schedule = Schedule {
        peak_lr: config.optimizer.learning_rate,
        warmup_steps: config.warmup_steps(),
        total_steps: config.train.steps,
        power: config.schedule.power,
        decay_over: config.schedule.decay_over,
    };
    let mut log = if writer {
        Some(MetricsLog::open(&config.out_dir, trainer_state.step)?)
    } else {
        None
    };
    let cursor = (!trainer_state.data_cursor.is_null()).then_some(&trainer_state.data_cursor);
    let mut batches = data.train(cursor)?;
    let eval_batch = config.eval.batch_size.unwrap_or(config.data.batch_size);
    let validation = data.validation(eval_batch, config.eval.max_batches)?;

    let start_step = trainer_state.step;
    let started = Instant::now();
    let elapsed_before = trainer_state.elapsed_s;
    let bar = progress_bar(options.progress, start_step, config.train.steps);
    let mut final_eval = None;
    // After a resume the newest good checkpoint is the one resumed from (newer ones may be
    // damaged); a fresh run has none yet.
    let mut newest_ckpt = resumed_from;
    let mut micro = Vec::with_capacity(config.train.accumulation);

    while trainer_state.step < config.train.steps {
        let step = trainer_state.step;
        micro.clear();
        for _ in 0..config.train.accumulation {
            micro.push(batches.next_batch()?);
        }
        let lr = schedule.lr(step);
        let t0 = Instant::now();
        let dropout_seed = bert_rng::mix_seed(&[config.seed, 0xD80F, step]);
        let out = state.step_replicated(
            &micro,
            lr,
            config.train.max_grad_norm,
            dropout_seed,
            device,
            replica,
        )?;
        let dt = t0.elapsed().as_secs_f64().max(1e-9);
        trainer_state.step += 1;
        trainer_state.sequences_seen += out.sequences as u64;
        trainer_state.tokens_seen += out.tokens as u64;
        trainer_state.data_cursor = batches.cursor();
        trainer_state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let m = out.metrics;
        let record = StepRecord {
            kind: "train".into(),
            step: trainer_state.step,
            loss: m.loss,
            mlm_loss: m.mlm_loss,
            nsp_loss: m.nsp_loss,
            mlm_accuracy: m.mlm_accuracy(),
            nsp_accuracy: m.nsp_accuracy(),
            lr,
            grad_norm: out.grad_norm,
            seq_per_s: out.sequences as f64 / dt,
            tokens_per_s: out.tokens as f64 / dt,
            elapsed_s: trainer_state.elapsed_s,
            skipped: !out.applied,
            loss_scale: out.loss_scale,
            overflow: out.overflow,
            comm_s: out.comm_s,
        };
        if let Some(log) = log.as_mut() {
            log.append(&record)?;
        }
        trainer_state.loss_scaler = state.loss_scaler.clone();
        if out.overflow {
            trainer_state.skipped_steps += 1;
            tracing::info!(
                "step {}: fp16 overflow at loss scale {}; update skipped, scale lowered to {}",
                trainer_state.step,
                out.loss_scale.unwrap_or(1.0),
                state.loss_scaler.as_ref().map_or(1.0, |s| s.scale)
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
                        .as_ref()
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
        trainer_state.optimizer = state.optimizer.clone();
        if let Some(bar) = &bar {
            bar.set_position(trainer_state.step);
            bar.set_message(format!(
                "loss {:.4} mlm acc {:.3} nsp acc {:.3} lr {:.2e}",
                m.loss,
                m.mlm_accuracy(),
                m.nsp_accuracy(),
                lr
            ));
        }
        if writer && trainer_state.step % config.train.log_every == 0 {
            tracing::info!(
                step = trainer_state.step,
                loss = format!("{:.4}", m.loss),
                mlm_acc = format!("{:.3}", m.mlm_accuracy()),
                nsp_acc = format!("{:.3}", m.nsp_accuracy()),
                lr = format!("{lr:.3e}"),
                grad_norm = format!("{:.3}", out.grad_norm),
                seq_per_s = format!("{:.1}", record.seq_per_s),
                "train"
            );
        }
        let last = trainer_state.step == config.train.steps;
        let eval_due = last
            || config
                .eval
                .every
                .is_some_and(|e| trainer_state.step % e == 0);
        if eval_due {
            if let Some(v) = &validation {
                let e = evaluate_replicated(&state.model, v, trainer_state.step, device, replica)?;
                if writer {
                    tracing::info!(
                        step = e.step,
                        mlm_loss = format!("{:.4}", e.mlm_loss),
                        mlm_acc = format!("{:.4}", e.mlm_accuracy),
                        nsp_loss = format!("{:.4}", e.nsp_loss),
                        nsp_acc = format!("{:.4}", e.nsp_accuracy),
                        "validation"
                    );
                }
                if let Some(log) = log.as_mut() {
                    log.append(&e)?;
                }
                final_eval = Some(e);
            }
        }
        if writer && (last || trainer_state.step % config.checkpoint.every == 0) {
            let dir = checkpoint::save(
                &ckpt_root,
                &mut state,
                &model_config,
                &trainer_state,
                facts.tokenizer_dir.as_deref(),
                config.checkpoint.keep,
            )?;
            tracing::info!("checkpoint {}", dir.display());
            newest_ckpt = Some(dir);
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    let export = match config.export_dir.as_ref().filter(|_| writer) {
        Some(dir) => {
            save_model_dir(
                &state.model,
                &model_config,
                dir,
                facts.tokenizer_dir.as_deref(),
            )?;
            tracing::info!("exported HuggingFace folder {}", dir.display());
            Some(dir.clone())
        }
        None => None,
    };
    let wall_s = started.elapsed().as_secs_f64();
    let steps_this_run = trainer_state.step - start_step;
    let seqs = steps_this_run as f64
        * (config.data.batch_size * world_size * config.train.accumulation) as f64;
    Ok(RunSummary {
        steps: trainer_state.step,
        steps_this_run,
        wall_s,
        seq_per_s: if wall_s > 0.0 { seqs / wall_s } else { 0.0 },
        final_eval,
        checkpoint: newest_ckpt.unwrap_or(ckpt_root),
        export,
    })
}

fn progress_bar(show: bool, start: u64, total: u64) -> Option<indicatif::ProgressBar> {
    if !show {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_position(start);
    let style = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} steps (eta {eta}) {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// The model config a run will train (for commands that need it before training).
pub fn resolved_model_config(config: &RunConfig, data: &dyn DataProvider) -> Result<BertConfig> {
    config.model_config(data.facts().vocab_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_that_does_not_fit_the_model_is_refused_with_the_folder_named() {
        let mut model = BertConfig::preset("tiny").unwrap();
        model.vocab_size = 100;
        model.max_position_embeddings = 64;
        let dir = Path::new("shards/train");
        assert!(check_data_fits_model(dir, 100, 64, &model).is_ok());
        let err = check_data_fits_model(dir, 101, 64, &model)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shards/train") && err.contains("vocab_size"),
            "{err}"
        );
        let err = check_data_fits_model(dir, 100, 65, &model)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_position_embeddings") && err.contains("65"),
            "{err}"
        );
    }
}
