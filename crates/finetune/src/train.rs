//! One fine-tuning run: BERT's recipe (AdamW with linear warm-up and decay, gradient clipping at
//! norm 1, dropout 0.1 before the head) over shuffled epochs, evaluated after every epoch with
//! the GLUE metrics of the task.

use bert_data::TaskLabel;
use bert_model::{BertForSequenceClassification, ClassifierTask, Precision};
use bert_rng::Rng;
use bert_train::{
    clip_factor, global_norm, DecayOver, LossScaler, Moments, Optimizer, OptimizerConfig,
    OptimizerKind, ParamSlot, Replica, Schedule,
};
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::encode::Encoded;
use crate::error::{FinetuneError, Result};
use crate::metrics;

/// The hyper-parameters of one run: one grid point and one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Examples per step.
    pub batch_size: usize,
    /// Passes over the training split.
    pub epochs: usize,
    /// Share of the steps spent warming the learning rate up (BERT: 0.1).
    pub warmup_proportion: f64,
    /// Decoupled weight decay of linear weights and embeddings.
    pub weight_decay: f64,
    /// Gradients are scaled down to this global norm where they exceed it (0: never).
    pub max_grad_norm: f64,
    /// Seed of the head's initialisation, the shuffling and the dropout masks.
    pub seed: u64,
}

impl RunSettings {
    /// Checks the values no run can use, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, value: String, expected: &str| {
            Err(FinetuneError::Config(format!(
                "`finetune.{key}` is {value}, expected {expected}"
            )))
        };
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(
                "learning_rates",
                self.learning_rate.to_string(),
                "positive numbers",
            );
        }
        if self.batch_size == 0 {
            return bad("batch_sizes", "0".into(), "positive whole numbers");
        }
        if self.epochs == 0 {
            return bad("epochs", "0".into(), "at least 1");
        }
        if !(0.0..1.0).contains(&self.warmup_proportion) {
            return bad(
                "warmup_proportion",
                self.warmup_proportion.to_string(),
                "a value in [0, 1)",
            );
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return bad("weight_decay", self.weight_decay.to_string(), "at least 0");
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm < 0.0 {
            return bad(
                "max_grad_norm",
                self.max_grad_norm.to_string(),
                "at least 0",
            );
        }
        Ok(())
    }
}

/// Scores of a model on an evaluation split: the loss and the GLUE metrics of the task kind.
/// A metric that is undefined on the split (a correlation of constant predictions) is absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Examples scored.
    pub examples: usize,
    /// Mean loss (cross-entropy, or squared error for regression).
    pub loss: f64,
    /// Accuracy (classification).
    pub accuracy: Option<f64>,
    /// F1 of class 1 (two-class tasks, as MRPC and QQP report it).
    pub f1: Option<f64>,
    /// Matthews correlation (classification; CoLA's metric).
    pub matthews: Option<f64>,
    /// Pearson correlation (regression).
    pub pearson: Option<f64>,
    /// Spearman correlation (regression).
    pub spearman: Option<f64>,
}

/// What one epoch gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Scores on the evaluation split after the epoch.
    pub eval: Scores,
}

/// What one step measured: a line of the run's metrics log (`kind` is `"train"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Always `"train"`.
    pub kind: String,
    /// Steps taken so far, this one included (1-based).
    pub step: u64,
    /// 1-based epoch of the step.
    pub epoch: usize,
    /// The batch's mean training loss.
    pub loss: f64,
    /// The learning rate of the step.
    pub lr: f64,
    /// Global norm of the gradient before clipping (unscaled in fp16).
    pub grad_norm: f64,
    /// fp16's loss scale during the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// Whether the update was applied (false: fp16 overflowed and the step was skipped).
    pub applied: bool,
}

/// Where a run stands between two steps: everything besides the weights and the optimiser's
/// moments that continuing it needs. The epoch orders and the dropout masks are functions of
/// the seed, the epoch and the step, so this is the complete random state too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Optimiser steps taken.
    pub step: u64,
    /// The epoch in progress (0-based).
    pub epoch: usize,
    /// Batches of that epoch already taken.
    pub next_batch: usize,
    /// Sum of that epoch's training losses so far.
    pub loss_sum: f64,
    /// Reports of the epochs finished.
    pub reports: Vec<EpochReport>,
    /// The optimiser's configuration and step counter.
    pub optimizer: Optimizer,
    /// fp16's dynamic loss scale (absent in other precisions, and in checkpoints written before
    /// fine-tuning had fp16).
    #[serde(default)]
    pub loss_scaler: Option<LossScaler>,
}

/// A run continued from a checkpoint: where it stood and its optimiser moments (the weights
/// are the model's).
pub struct Resumed<B: AutodiffBackend> {
    /// Where it stood.
    pub progress: RunProgress,
    /// Moments per parameter, in the model's naming-table order.
    pub moments: Vec<Option<Moments<B::InnerBackend>>>,
}

/// What a run tells its caller as it goes.
pub enum RunEvent<'a, B: AutodiffBackend> {
    /// A step was taken.
    Step {
        /// What it measured.
        stats: &'a StepStats,
        /// Steps of the whole run.
        total_steps: u64,
    },
    /// An epoch ended and was scored.
    Epoch(&'a EpochReport),
    /// A moment to write a checkpoint: every `checkpoint_every` steps and after every epoch
    /// but the last (whose end is the run's result).
    Checkpoint {
        /// Where the run stands.
        progress: &'a RunProgress,
        /// The weights (mutable only to list its parameters).
        model: &'a mut BertForSequenceClassification<B>,
        /// The optimiser's moments.
        moments: &'a [Option<Moments<B::InnerBackend>>],
    },
}

/// A padded batch on the device.
struct Batch<B: Backend> {
    ids: Tensor<B, 2, Int>,
    types: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
}

fn batch<B: Backend>(examples: &[&Encoded], pad: u32, device: &B::Device) -> Batch<B> {
    let len = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let rows = examples.len();
    let (mut ids, mut types, mut mask) = (
        vec![i64::from(pad); rows * len],
        vec![0i64; rows * len],
        vec![0i64; rows * len],
    );
    for (r, e) in examples.iter().enumerate() {
        for (i, (&id, &t)) in e.ids.iter().zip(&e.types).enumerate() {
            ids[r * len + i] = i64::from(id);
            types[r * len + i] = i64::from(t);
            mask[r * len + i] = 1;
        }
    }
    let grid = |v: Vec<i64>| Tensor::from_data(TensorData::new(v, [rows, len]), device);
    Batch {
        ids: grid(ids),
        types: grid(types),
        mask: grid(mask),
    }
}

/// Per-example losses `[n]` of `logits` against the examples' labels.
fn losses<B: Backend>(
    logits: Tensor<B, 2>,
    examples: &[&Encoded],
    device: &B::Device,
) -> Result<Tensor<B, 1>> {
    let n = examples.len();
    match examples.first().map(|e| e.label) {
        Some(TaskLabel::Class(_)) => {
            let labels = examples
                .iter()
                .map(|e| match e.label {
                    TaskLabel::Class(c) => Ok(i64::from(c)),
                    TaskLabel::Score(_) => Err(mixed()),
                })
                .collect::<Result<Vec<_>>>()?;
            let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), device);
            Ok(bert_model::fused::cross_entropy(logits, labels).0)
        }
        Some(TaskLabel::Score(_)) => {
            let scores = examples
                .iter()
                .map(|e| match e.label {
                    TaskLabel::Score(s) => Ok(s),
                    TaskLabel::Class(_) => Err(mixed()),
                })
                .collect::<Result<Vec<_>>>()?;
            let target = Tensor::<B, 1>::from_data(TensorData::new(scores, [n]), device);
            Ok((logits.reshape([n]) - target).powi_scalar(2))
        }
        None => Err(FinetuneError::Mismatch("an empty batch".into())),
    }
}

fn mixed() -> FinetuneError {
    FinetuneError::Mismatch("a split mixes class labels and scores".into())
}

fn check_task(task: &ClassifierTask, examples: &[Encoded], what: &str) -> Result<()> {
    for (i, e) in examples.iter().enumerate() {
        let fits = match (task, e.label) {
            (ClassifierTask::Classification { labels }, TaskLabel::Class(c)) => {
                (c as usize) < labels.len()
            }
            (ClassifierTask::Regression, TaskLabel::Score(_)) => true,
            _ => false,
        };
        if !fits {
            return Err(FinetuneError::Mismatch(format!(
                "{what} example {}: label {:?} does not fit the task ({})",
                i + 1,
                e.label,
                task.problem_type()
            )));
        }
    }
    Ok(())
}

fn host(t: Tensor<impl Backend, 1>, what: &str) -> Result<Vec<f32>> {
    Ok(bert_model::host_values(t, what)?)
}

/// The model's scores on `examples`, in batches of `batch_size` (no dropout: evaluation runs
/// without autodiff).
pub fn evaluate<B: Backend>(
    model: &BertForSequenceClassification<B>,
    task: &ClassifierTask,
    examples: &[Encoded],
    batch_size: usize,
    pad: u32,
    device: &B::Device,
) -> Result<Scores> {
    evaluate_replicated(model, task, examples, batch_size, pad, device, None)
}

/// [`evaluate`] shared by the ranks of a data-parallel group: each rank scores its share of
/// `examples` and the ranks sum their per-example losses and logits (zeros outside each share),
/// so every rank gets the scores of the whole split.
pub fn evaluate_replicated<B: Backend>(
    model: &BertForSequenceClassification<B>,
    task: &ClassifierTask,
    examples: &[Encoded],
    batch_size: usize,
    pad: u32,
    device: &B::Device,
    replica: Option<&Replica<B>>,
) -> Result<Scores> {
    check_task(task, examples, "evaluation")?;
    if examples.is_empty() {
        return Err(FinetuneError::Mismatch(
            "the evaluation split is empty".into(),
        ));
    }
    let outputs = task.outputs();
    let n = examples.len();
    let share = share_of(n, replica);
    // Per-example losses then logits, laid out for the whole split.
    let mut values = vec![0.0f64; n + n * outputs];
    let mut at = share.start;
    for chunk in examples[share].chunks(batch_size.max(1)) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        let b = batch::<B>(&refs, pad, device);
        let logits = model.forward(b.ids, b.types, b.mask);
        let per = host(
            losses(logits.clone(), &refs, device)?,
            "the evaluation losses",
        )?;
        let rows = refs.len();
        let flat = host(logits.reshape([rows * outputs]), "the evaluation logits")?;
        for (i, &l) in per.iter().enumerate() {
            values[at + i] = f64::from(l);
        }
        for (i, &v) in flat.iter().enumerate() {
            values[n + at * outputs + i] = f64::from(v);
        }
        at += rows;
    }
    if let Some(r) = replica.filter(|r| r.world_size() > 1) {
        // Each value is non-zero on one rank only, so the f32 sum is exact.
        values = r.all_reduce_values(&values, device, "evaluation")?;
    }
    let loss_sum: f64 = values[..n].iter().sum();
    let logits_all: Vec<f32> = values[n..].iter().map(|&v| v as f32).collect();
    let mut scores = Scores {
        examples: n,
        loss: loss_sum / n as f64,
        accuracy: None,
        f1: None,
        matthews: None,
        pearson: None,
        spearman: None,
    };
    match task {
        ClassifierTask::Classification { labels } => {
            let predicted: Vec<u32> = logits_all
                .chunks_exact(outputs)
                .map(|row| {
                    // First arg-max, as argmax in PyTorch and the GLUE scripts.
                    let mut best = 0;
                    for (i, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = i;
                        }
                    }
                    best as u32
                })
                .collect();
            let gold: Vec<u32> = examples
                .iter()
                .map(|e| match e.label {
                    TaskLabel::Class(c) => c,
                    TaskLabel::Score(_) => 0,
                })
                .collect();
            scores.accuracy = metrics::accuracy(&predicted, &gold).ok();
            scores.matthews = metrics::matthews(&predicted, &gold).ok();
            if labels.len() == 2 {
                scores.f1 = metrics::f1(&predicted, &gold, 1).ok();
            }
        }
        ClassifierTask::Regression => {
            let predicted: Vec<f64> = logits_all.iter().map(|&v| f64::from(v)).collect();
            let gold: Vec<f64> = examples
                .iter()
                .map(|e| match e.label {
                    TaskLabel::Score(s) => f64::from(s),
                    TaskLabel::Class(c) => f64::from(c),
                })
                .collect();
            scores.pearson = metrics::pearson(&predicted, &gold).ok();
            scores.spearman = metrics::spearman(&predicted, &gold).ok();
        }
    }
    Ok(scores)
}

/// This rank's contiguous share of `n` items (all of them without a group of several ranks).
fn share_of<B: Backend>(n: usize, replica: Option<&Replica<B>>) -> std::ops::Range<usize> {
    let (rank, world) = replica.map_or((0, 1), |r| (r.rank(), r.world_size()));
    n * rank / world..n * (rank + 1) / world
}

/// The order of the training examples in `epoch` (0-based): a Fisher–Yates shuffle keyed by
/// the run's seed and the epoch.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::keyed(&[seed, 0x6669_6e65, epoch as u64]);
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Fine-tunes `model` on `train` with `settings`, evaluating on `eval` after every epoch.
/// `resume` continues a run from a checkpoint (the model then holds its weights). `on_event`
/// sees every step, epoch report and checkpoint moment (every `checkpoint_every` steps, 0 for
/// epoch ends only); an error it returns stops the run. With `replica`, this is one rank of a
/// data-parallel group: each global batch of `settings.batch_size` is split between the ranks,
/// their gradients and losses are summed before every update (so the replicas stay equal), and
/// the evaluation is shared. Returns the model after the last epoch and the reports.
#[allow(clippy::too_many_arguments)]
pub fn fine_tune<B: AutodiffBackend>(
    mut model: BertForSequenceClassification<B>,
    task: &ClassifierTask,
    train: &[Encoded],
    eval: &[Encoded],
    settings: &RunSettings,
    pad: u32,
    device: &B::Device,
    resume: Option<Resumed<B>>,
    checkpoint_every: u64,
    replica: Option<&Replica<B::InnerBackend>>,
    mut on_event: impl FnMut(RunEvent<'_, B>) -> Result<()>,
) -> Result<(BertForSequenceClassification<B>, Vec<EpochReport>)> {
    let replica = replica.filter(|r| r.world_size() > 1);
    settings.validate()?;
    check_task(task, train, "training")?;
    if train.is_empty() {
        return Err(FinetuneError::Mismatch(
            "the training split is empty".into(),
        ));
    }
    let steps_per_epoch = train.len().div_ceil(settings.batch_size);
    let total_steps = (steps_per_epoch * settings.epochs) as u64;
    let schedule = Schedule {
        peak_lr: settings.learning_rate,
        warmup_steps: (total_steps as f64 * settings.warmup_proportion) as u64,
        total_steps,
        power: 1.0,
        decay_over: DecayOver::AfterWarmup,
    };
    let (mut progress, mut moments) = match resume {
        Some(r) => {
            let p = &r.progress;
            if p.epoch >= settings.epochs
                || p.next_batch > steps_per_epoch
                || p.step != (p.epoch * steps_per_epoch + p.next_batch) as u64
                || p.reports.len() != p.epoch
                || r.moments.len() != model.named_params_mut().len()
            {
                return Err(FinetuneError::Resume(format!(
                    "the checkpoint stands at epoch {}, batch {}, step {} with {} moments; this \
                     run has {} epochs of {steps_per_epoch} batches and {} parameters",
                    p.epoch + 1,
                    p.next_batch,
                    p.step,
                    r.moments.len(),
                    settings.epochs,
                    model.named_params_mut().len()
                )));
            }
            (r.progress, r.moments)
        }
        None => (
            RunProgress {
                step: 0,
                epoch: 0,
                next_batch: 0,
                loss_sum: 0.0,
                reports: Vec::with_capacity(settings.epochs),
                // transformers' Trainer: AdamW, β (0.9, 0.999), ε 1e-8, bias correction.
                optimizer: Optimizer::new(OptimizerConfig {
                    kind: OptimizerKind::Adamw,
                    learning_rate: settings.learning_rate,
                    beta1: 0.9,
                    beta2: 0.999,
                    epsilon: 1e-8,
                    weight_decay: settings.weight_decay,
                    bias_correction: true,
                }),
                loss_scaler: (model.precision() == Precision::Fp16).then(LossScaler::new),
            },
            vec![None; model.named_params_mut().len()],
        ),
    };
    while progress.epoch < settings.epochs {
        let order = epoch_order(train.len(), settings.seed, progress.epoch);
        for chunk in order.chunks(settings.batch_size).skip(progress.next_batch) {
            let step = progress.step;
            let scale = progress.loss_scaler.as_ref().map_or(1.0, |s| s.scale);
            let (grads, loss_value) = match replica {
                None => {
                    bert_model::seed_dropout(bert_rng::mix_seed(&[settings.seed, step]));
                    let refs: Vec<&Encoded> = chunk.iter().map(|&i| &train[i]).collect();
                    let (grads, loss) =
                        batch_gradients(&mut model, &refs, refs.len(), scale, pad, device)?;
                    (grads, f64::from(loss))
                }
                Some(r) => {
                    let share = &chunk[share_of(chunk.len(), Some(r))];
                    let dropout = bert_rng::mix_seed(&[settings.seed, step, r.rank() as u64]);
                    replicated_gradients(
                        &mut model,
                        share,
                        chunk.len(),
                        train,
                        pad,
                        device,
                        dropout,
                        scale,
                        r,
                    )?
                }
            };
            progress.loss_sum += loss_value;
            // The gradients are `scale` times the true ones: their norm is unscaled here, and
            // the unscaling folded into the clipping factor.
            let grad_norm = global_norm(&grads) / scale;
            let finite = loss_value.is_finite() && grad_norm.is_finite();
            if let Some(scaler) = progress.loss_scaler.as_mut() {
                if !finite && scaler.scale > LossScaler::MIN_SCALE {
                    // fp16 overflowed: the step is skipped (as torch's GradScaler skips it) and
                    // the scale halved; the batch still counts as taken.
                    tracing::debug!(
                        "step {}: fp16 gradients overflowed at loss scale {}; skipped",
                        step + 1,
                        scaler.scale
                    );
                }
                scaler.update(finite);
            } else if !finite {
                return Err(FinetuneError::Mismatch(format!(
                    "step {}: the loss or the gradients are not finite (loss {loss_value}, \
                     gradient norm {grad_norm}); lower the learning rate",
                    step + 1
                )));
            }
            let lr = schedule.lr(step);
            if finite {
                let grad_scale = clip_factor(grad_norm, settings.max_grad_norm) / scale;
                for ((mut row, grad), slot) in model
                    .named_params_mut()
                    .into_iter()
                    .zip(grads)
                    .zip(moments.iter_mut())
                {
                    let Some(grad) = grad else { continue };
                    let new = progress.optimizer.update(
                        ParamSlot {
                            value: row.param.flat().inner(),
                            grad,
                            grad_scale,
                            decay: row.kind.decays(),
                            moments: slot,
                        },
                        lr,
                    );
                    row.param.set_flat(Tensor::from_inner(new));
                }
                progress.optimizer.finish_step();
            }
            progress.step += 1;
            progress.next_batch += 1;
            on_event(RunEvent::Step {
                stats: &StepStats {
                    kind: "train".into(),
                    step: progress.step,
                    epoch: progress.epoch + 1,
                    loss: loss_value,
                    lr,
                    grad_norm,
                    loss_scale: progress.loss_scaler.as_ref().map(|_| scale),
                    applied: finite,
                },
                total_steps,
            })?;
            if checkpoint_every > 0
                && progress.step % checkpoint_every == 0
                && progress.next_batch < steps_per_epoch
            {
                on_event(RunEvent::Checkpoint {
                    progress: &progress,
                    model: &mut model,
                    moments: &moments,
                })?;
            }
        }
        let report = EpochReport {
            epoch: progress.epoch + 1,
            train_loss: progress.loss_sum / steps_per_epoch as f64,
            eval: evaluate_replicated(
                &model.valid(),
                task,
                eval,
                settings.batch_size.max(32),
                pad,
                device,
                replica,
            )?,
        };
        on_event(RunEvent::Epoch(&report))?;
        progress.reports.push(report);
        progress.epoch += 1;
        progress.next_batch = 0;
        progress.loss_sum = 0.0;
        if progress.epoch < settings.epochs {
            on_event(RunEvent::Checkpoint {
                progress: &progress,
                model: &mut model,
                moments: &moments,
            })?;
        }
    }
    Ok((model, progress.reports))
}

/// The gradients of `examples`' summed losses divided by `batch_rows` (the rows of the whole
/// batch, of which these may be one rank's share) and multiplied by the loss `scale` (fp16),
/// and that loss (unscaled).
fn batch_gradients<B: AutodiffBackend>(
    model: &mut BertForSequenceClassification<B>,
    examples: &[&Encoded],
    batch_rows: usize,
    scale: f64,
    pad: u32,
    device: &B::Device,
) -> Result<(Grads<B>, f32)> {
    let b = batch::<B>(examples, pad, device);
    let logits = model.forward(b.ids, b.types, b.mask);
    let loss = losses(logits, examples, device)?
        .sum()
        .div_scalar(batch_rows as f32);
    let value = host(loss.clone().inner(), "the training loss")?[0];
    let loss = if scale != 1.0 {
        loss.mul_scalar(scale)
    } else {
        loss
    };
    let grads = loss.backward();
    let grads = model
        .named_params_mut()
        .iter()
        .map(|row| row.param.grad_flat(&grads))
        .collect();
    Ok((grads, value))
}

/// Flat gradients per parameter, in the model's naming-table order.
type Grads<B> = Vec<Option<Tensor<<B as AutodiffBackend>::InnerBackend, 1>>>;

/// One rank's part of a data-parallel step: the gradients of its `share` of a global batch of
/// `batch_rows` examples, scaled as parts of the whole batch's mean loss, summed over the ranks
/// with the losses in one all-reduce ([`Replica::all_reduce_gradients`]). Returns every
/// parameter's summed gradient and the whole batch's mean loss.
#[allow(clippy::too_many_arguments)]
fn replicated_gradients<B: AutodiffBackend>(
    model: &mut BertForSequenceClassification<B>,
    share: &[usize],
    batch_rows: usize,
    train: &[Encoded],
    pad: u32,
    device: &B::Device,
    dropout_seed: u64,
    scale: f64,
    replica: &Replica<B::InnerBackend>,
) -> Result<(Grads<B>, f64)> {
    let sizes: Vec<usize> = model
        .named_params_mut()
        .iter()
        .map(|row| row.param.num_elements())
        .collect();
    let (mut grads, loss_part) = if share.is_empty() {
        // A global batch smaller than the group leaves this rank nothing: it sends zeros.
        (vec![None; sizes.len()], 0.0)
    } else {
        bert_model::seed_dropout(dropout_seed);
        let refs: Vec<&Encoded> = share.iter().map(|&i| &train[i]).collect();
        batch_gradients(model, &refs, batch_rows, scale, pad, device)?
    };
    let loss = replica.all_reduce_gradients(&mut grads, &sizes, &[f64::from(loss_part)], device)?;
    Ok((grads, loss[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_shuffled_by_seed_and_epoch_and_keep_every_example() {
        let a = epoch_order(100, 1, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(100, 1, 0));
        assert_ne!(a, epoch_order(100, 1, 1));
        assert_ne!(a, epoch_order(100, 2, 0));
    }
}
