//! One optimiser step: micro-batches, accumulation, global-norm clipping, NaN guard, update.

use bert_data::HostBatch;
use bert_data::Objective;
use bert_model::{BertForPreTraining, ParamGroup, Precision, PretrainingBatch, PretrainingMetrics};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};

use serde::{Deserialize, Serialize};

use crate::collective::Replica;
use crate::error::Result;
use crate::optim::{clip_factor, Moments, Optimizer, ParamSlot};
use crate::reduce::global_norm;

/// The `[train]` table: the length of the run and how each optimiser step is taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Total optimiser steps; data epochs roll over inside the run.
    pub steps: u64,
    /// Micro-batches per optimiser step (global batch = batch_size × devices × accumulation).
    #[serde(default = "TrainSection::default_accumulation")]
    pub accumulation: usize,
    /// Clip gradients by their global norm (over all parameters); `0` disables.
    #[serde(default = "TrainSection::default_max_grad_norm")]
    pub max_grad_norm: f64,
    /// `stop` or `skip` on NaN/infinite loss or gradients.
    #[serde(default = "TrainSection::default_nan_policy")]
    pub nan_policy: NanPolicy,
    /// With `skip`: stop after this many skipped steps in a row.
    #[serde(default = "TrainSection::default_max_consecutive_skips")]
    pub max_consecutive_skips: u32,
    /// Log a line every N steps (metrics.jsonl gets every step).
    #[serde(default = "TrainSection::default_log_every")]
    pub log_every: u64,
    /// Float type of the matrix products: `fp32` (default), `bf16` (the GPU choice: bf16
    /// products with f32 accumulation, f32 weights, optimiser and norms) or `fp16` (adds
    /// dynamic loss scaling). Checkpoints and exports are f32 whatever it is.
    #[serde(default)]
    pub precision: Precision,
    /// Write TensorBoard event files into `out_dir/tb/` (rank 0): every step's and
    /// evaluation's figures, and the fill-mask probes as text.
    #[serde(default = "TrainSection::default_tensorboard")]
    pub tensorboard: bool,
    /// The device's peak TFLOP/s for MFU, where the built-in table does not know it (or to
    /// measure against another figure); `$BERT_PEAK_TFLOPS` also sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_tflops: Option<f64>,
}

// `steps` has no default, so the table cannot be `#[serde(default)]` as a whole: each default
// is one function here, and nowhere else.
impl TrainSection {
    fn default_accumulation() -> usize {
        1
    }
    fn default_max_grad_norm() -> f64 {
        1.0
    }
    fn default_nan_policy() -> NanPolicy {
        NanPolicy::Stop
    }
    fn default_max_consecutive_skips() -> u32 {
        5
    }
    fn default_log_every() -> u64 {
        1
    }
    fn default_tensorboard() -> bool {
        true
    }

    /// Checks the values no run can use, naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.steps == 0 {
            return Err("`train.steps` must be at least 1".into());
        }
        if self.accumulation == 0 {
            return Err("`train.accumulation` must be at least 1".into());
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm < 0.0 {
            return Err("`train.max_grad_norm` must be at least 0 (0 disables clipping)".into());
        }
        if self.log_every == 0 {
            return Err("`train.log_every` must be at least 1".into());
        }
        if self
            .peak_tflops
            .is_some_and(|t| !(t.is_finite() && t > 0.0))
        {
            return Err("`train.peak_tflops` must be a positive number of TFLOP/s".into());
        }
        if self.max_consecutive_skips == 0 {
            return Err(
                "`train.max_consecutive_skips` must be at least 1 (`train.nan_policy = \"stop\"` \
                 stops at the first non-finite step)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// What to do when the loss or the gradients are NaN or infinite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanPolicy {
    /// Stop the run; the last good checkpoint stays the newest.
    Stop,
    /// Skip the update, count it, and stop after `max_consecutive_skips` in a row.
    Skip,
}

impl NanPolicy {
    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            NanPolicy::Stop => "stop",
            NanPolicy::Skip => "skip",
        }
    }
}

/// Dynamic loss scaling for fp16, as `torch.amp.GradScaler` does it: the loss is multiplied by
/// `scale` before the backward pass so that small gradients survive in fp16; a step whose
/// gradients overflow is skipped and the scale halved; after `growth_interval` good steps in a
/// row the scale doubles. Part of the checkpoint, so a resumed run scales exactly as before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// Current scale.
    pub scale: f64,
    /// Good steps since the last change of scale.
    pub good_steps: u64,
    /// Good steps in a row before the scale doubles.
    pub growth_interval: u64,
    /// Steps skipped for overflow so far.
    pub overflows: u64,
}

impl LossScaler {
    /// The scale never drops below this; an overflow at it is a real non-finite value.
    pub const MIN_SCALE: f64 = 1.0;
    /// Never above this (2^24), where f32 gradients would lose their low bits.
    pub const MAX_SCALE: f64 = 16_777_216.0;

    /// GradScaler's defaults: scale 2^16, doubling after 2000 good steps.
    pub fn new() -> Self {
        Self {
            scale: 65_536.0,
            good_steps: 0,
            growth_interval: 2000,
            overflows: 0,
        }
    }

    /// Records one step's outcome and adjusts the scale.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale = (self.scale * 2.0).min(Self::MAX_SCALE);
                self.good_steps = 0;
            }
        } else {
            self.overflows += 1;
            self.scale = (self.scale * 0.5).max(Self::MIN_SCALE);
            self.good_steps = 0;
        }
    }
}

impl Default for LossScaler {
    fn default() -> Self {
        Self::new()
    }
}

/// Moves a host batch to `device` as model inputs. The pair labels go along only when
/// `objective` has a pair head to train (NSP or SOP): an `mlm` batch runs neither the pooler nor
/// that head.
pub fn batch_to_device<B: Backend>(
    b: &HostBatch,
    device: &B::Device,
    objective: Objective,
) -> PretrainingBatch<B> {
    let int2 = |v: &[i64], cols: usize| -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), [b.batch_size, cols]), device)
    };
    PretrainingBatch {
        input_ids: int2(&b.input_ids, b.seq_len),
        token_type_ids: int2(&b.token_type_ids, b.seq_len),
        attention_mask: int2(&b.attention_mask, b.seq_len),
        masked_positions: int2(&b.masked_positions, b.max_predictions),
        masked_labels: int2(&b.masked_labels, b.max_predictions),
        masked_weights: Tensor::from_data(
            TensorData::new(b.masked_weights.clone(), [b.batch_size, b.max_predictions]),
            device,
        ),
        nsp_labels: objective.has_pair_label().then(|| {
            Tensor::from_data(
                TensorData::new(b.nsp_labels.clone(), [b.batch_size]),
                device,
            )
        }),
    }
}

/// What one optimiser step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Losses and counts summed over the micro-batches (losses weighted like the gradient).
    pub metrics: PretrainingMetrics,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Whether the update was applied (false: non-finite loss or gradient).
    pub applied: bool,
    /// fp16: the loss scale the step ran with.
    pub loss_scale: Option<f64>,
    /// fp16: not applied because the scaled values overflowed at a scale above the minimum
    /// (the scale has been lowered; not a NaN-policy event).
    pub overflow: bool,
    /// Data-parallel steps: seconds spent in collective calls.
    pub comm_s: Option<f64>,
    /// Sequences in the step (over all ranks).
    pub sequences: usize,
    /// Real tokens in the step.
    pub tokens: usize,
}

/// Model, optimiser and moments: the state that one step advances.
pub struct TrainState<B: AutodiffBackend> {
    /// The model being trained.
    pub model: BertForPreTraining<B>,
    /// Update rule and step counter.
    pub optimizer: Optimizer,
    /// Moments per parameter, in the naming table's order.
    pub moments: Vec<Option<Moments<B::InnerBackend>>>,
    /// Dynamic loss scaling (fp16 runs only).
    pub loss_scaler: Option<LossScaler>,
    /// What the batches train: without a pair label (`mlm`) the pooler and the NSP head are
    /// left as they are, on every rank alike.
    pub objective: Objective,
}

impl<B: AutodiffBackend> TrainState<B> {
    /// Fresh optimiser state for `model`.
    pub fn new(model: BertForPreTraining<B>, optimizer: Optimizer) -> Self {
        let mut model = model;
        let n = model.named_params_mut().len();
        let loss_scaler = (model.precision() == bert_model::Precision::Fp16).then(LossScaler::new);
        Self {
            model,
            optimizer,
            moments: vec![None; n],
            loss_scaler,
            objective: Objective::MlmNsp,
        }
    }

    /// `self` training `objective` (BERT's `mlm_nsp` unless set).
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// Forward and backward over `micro_batches`, then one update at `lr`, unless the loss or
    /// gradient norm is not finite. `dropout_seed` seeds the backend before each micro-batch so
    /// that dropout masks depend only on (run seed, step, micro-batch) and resume is exact.
    pub fn step(
        &mut self,
        micro_batches: &[HostBatch],
        lr: f64,
        max_grad_norm: f64,
        dropout_seed: u64,
        device: &B::Device,
    ) -> StepOutcome {
        match self.step_replicated(micro_batches, lr, max_grad_norm, dropout_seed, device, None) {
            Ok(out) => out,
            Err(e) => unreachable!("a step without a collective cannot fail: {e}"),
        }
    }

    /// [`step`](Self::step) as one rank of a data-parallel group: the counts that normalise the
    /// losses, the gradients and the metrics are summed over all ranks before the update, so
    /// N ranks with micro-batches of b rows step exactly like one rank with N·b. Micro-batch `i`
    /// of rank `r` is micro-batch `i·N + r` of the global step (its dropout stream and its data
    /// position), which makes a run resumed with another number of ranks and the same global
    /// batch continue the same way.
    ///
    /// The stages: count the step's masked tokens and rows (over all ranks), accumulate the
    /// micro-batches' gradients, sum them over the ranks, take the global norm, then unscale
    /// and clip and apply the update (or skip it when a value is not finite).
    pub fn step_replicated(
        &mut self,
        micro_batches: &[HostBatch],
        lr: f64,
        max_grad_norm: f64,
        dropout_seed: u64,
        device: &B::Device,
        replica: Option<&Replica<B::InnerBackend>>,
    ) -> Result<StepOutcome> {
        let replica = replica.filter(|r| r.world_size() > 1);
        let mut comm_s = replica.map(|_| 0.0);
        let counts = timed(&mut comm_s, || {
            StepCounts::of(micro_batches, replica, device)
        })?;
        let loss_scale = self.loss_scaler.as_ref().map(|s| s.scale);
        let scale_factor = loss_scale.unwrap_or(1.0);
        let mut acc = self.accumulate(
            micro_batches,
            &counts,
            scale_factor,
            dropout_seed,
            device,
            replica,
        );
        if let Some(r) = replica {
            timed(&mut comm_s, || {
                self.all_reduce_gradients(r, &mut acc, device)
            })?;
        }
        acc.sums.loss = acc.sums.mlm_loss + acc.sums.nsp_loss;
        // The gradients are `scale_factor` times the true ones; their norm is unscaled here and
        // the unscaling folded into the clipping factor (one multiply per tensor).
        let grad_norm = global_norm(&acc.grads) / scale_factor;
        let finite = acc.sums.loss.is_finite() && grad_norm.is_finite();
        let mut overflow = false;
        if let Some(scaler) = self.loss_scaler.as_mut() {
            overflow = !finite && scaler.scale > LossScaler::MIN_SCALE;
            scaler.update(finite);
        }
        if finite {
            let grad_scale = clip_factor(grad_norm, max_grad_norm) / scale_factor;
            self.apply(acc.grads, grad_scale, lr);
        }
        Ok(StepOutcome {
            metrics: acc.sums,
            grad_norm,
            applied: finite,
            loss_scale,
            overflow,
            comm_s,
            sequences: counts.rows,
            tokens: acc.tokens,
        })
    }

    /// Forward and backward over each micro-batch, each loss weighted by its share of the
    /// step's counts (and multiplied by the loss scale), its gradients added to the step's.
    fn accumulate(
        &mut self,
        micro_batches: &[HostBatch],
        counts: &StepCounts,
        scale_factor: f64,
        dropout_seed: u64,
        device: &B::Device,
        replica: Option<&Replica<B::InnerBackend>>,
    ) -> Accumulated<B::InnerBackend> {
        let (rank, world) = replica.map_or((0, 1), |r| (r.rank(), r.world_size()));
        let mut acc = Accumulated {
            grads: vec![None; self.moments.len()],
            sums: PretrainingMetrics::default(),
            tokens: 0,
        };
        for (i, host) in micro_batches.iter().enumerate() {
            let micro_seed = bert_rng::mix_seed(&[dropout_seed, (i * world + rank) as u64]);
            B::seed(device, micro_seed);
            bert_model::seed_dropout(micro_seed);
            let batch_weight: f64 = host.masked_weights.iter().map(|&w| w as f64).sum();
            let mlm_share = if counts.weight > 0.0 {
                batch_weight / counts.weight
            } else {
                0.0
            };
            let nsp_share = host.batch_size as f64 / counts.rows as f64;
            let out = self
                .model
                .forward_pretraining(batch_to_device(host, device, self.objective));
            let loss = out.mlm_loss.clone().mul_scalar(mlm_share)
                + out.nsp_loss.clone().mul_scalar(nsp_share);
            let m = out.metrics();
            let sums = &mut acc.sums;
            sums.mlm_loss += m.mlm_loss * mlm_share;
            sums.nsp_loss += m.nsp_loss * nsp_share;
            sums.mlm_correct += m.mlm_correct;
            sums.mlm_total += m.mlm_total;
            sums.nsp_correct += m.nsp_correct;
            sums.nsp_total += m.nsp_total;
            sums.sequences += m.sequences;
            acc.tokens += host.real_tokens();
            let loss = if scale_factor != 1.0 {
                loss.mul_scalar(scale_factor)
            } else {
                loss
            };
            let grads = loss.backward();
            for (slot, row) in acc.grads.iter_mut().zip(self.model.named_params_mut()) {
                if let Some(g) = row.param.grad_flat(&grads) {
                    *slot = Some(match slot.take() {
                        Some(a) => a + g,
                        None => g,
                    });
                }
            }
        }
        acc
    }

    /// The optimiser's update of every parameter that has a gradient, the gradient first
    /// multiplied by `grad_scale` (clipping and loss-scale removal in one factor).
    fn apply(&mut self, grads: Vec<Option<Tensor<B::InnerBackend, 1>>>, grad_scale: f64, lr: f64) {
        let optimizer = &self.optimizer;
        let pair_head = self.objective.has_pair_label();
        for ((mut row, grad), moments) in self
            .model
            .named_params_mut()
            .into_iter()
            .zip(grads)
            .zip(self.moments.iter_mut())
        {
            let Some(grad) = grad else { continue };
            // Without a pair head the all-reduce still carries these as zeros; weight decay
            // must not shrink what no loss trains.
            if !pair_head && matches!(row.group, ParamGroup::Pooler | ParamGroup::NspHead) {
                continue;
            }
            let new = optimizer.update(
                ParamSlot {
                    value: row.param.flat().inner(),
                    grad,
                    grad_scale,
                    decay: row.kind.decays(),
                    moments,
                },
                lr,
            );
            row.param.set_flat(Tensor::from_inner(new));
        }
        self.optimizer.finish_step();
    }

    /// Sums the accumulated gradients, metric sums and token count over the ranks with one
    /// all-reduce ([`Replica::all_reduce_gradients`]).
    fn all_reduce_gradients(
        &mut self,
        replica: &Replica<B::InnerBackend>,
        acc: &mut Accumulated<B::InnerBackend>,
        device: &B::Device,
    ) -> Result<()> {
        let sizes: Vec<usize> = self
            .model
            .named_params_mut()
            .iter()
            .map(|row| row.param.num_elements())
            .collect();
        let mut metrics = acc.sums.sums().to_vec();
        metrics.push(acc.tokens as f64);
        let m = replica.all_reduce_gradients(&mut acc.grads, &sizes, &metrics, device)?;
        let n = PretrainingMetrics::SUMS;
        acc.sums
            .set_sums(&crate::reduce::metric_sums(&m[..n]).map_err(|m| replica.error(m))?);
        acc.tokens = m[n].round() as usize;
        Ok(())
    }
}

/// The counts a step's losses are normalised by, over all ranks: N micro-batches then equal
/// one big batch exactly.
struct StepCounts {
    /// Masked-token weight of the whole step.
    weight: f64,
    /// Rows (sequences) of the whole step.
    rows: usize,
}

impl StepCounts {
    fn of<B: Backend>(
        micro_batches: &[HostBatch],
        replica: Option<&Replica<B>>,
        device: &B::Device,
    ) -> Result<Self> {
        let weight: f64 = micro_batches
            .iter()
            .map(|b| b.masked_weights.iter().map(|&w| w as f64).sum::<f64>())
            .sum();
        let rows: usize = micro_batches.iter().map(|b| b.batch_size).sum();
        let Some(r) = replica else {
            return Ok(Self { weight, rows });
        };
        let summed = r.all_reduce_values(&[weight, rows as f64], device, "step counts")?;
        Ok(Self {
            weight: summed[0],
            rows: summed[1].round() as usize,
        })
    }
}

/// What the micro-batches of a step add up to.
struct Accumulated<B: Backend> {
    /// Summed gradient per parameter (the naming table's order), flattened.
    grads: Vec<Option<Tensor<B, 1>>>,
    /// Loss and count sums (losses weighted like the gradient).
    sums: PretrainingMetrics,
    /// Real tokens.
    tokens: usize,
}

/// Runs `f`, adding its seconds to `seconds` when that counts them (data-parallel steps).
fn timed<T>(seconds: &mut Option<f64>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t0 = std::time::Instant::now();
    let out = f();
    if let Some(s) = seconds.as_mut() {
        *s += t0.elapsed().as_secs_f64();
    }
    out
}
