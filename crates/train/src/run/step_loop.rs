//! The step loop: from the starting state to `train.steps`, each step counted and logged,
//! with evaluation and checkpoints at their intervals and an optional progress bar.

use std::path::PathBuf;
use std::time::Instant;

use bert_data::HostBatch;
use burn::tensor::backend::AutodiffBackend;

use super::nan::account_skips;
use super::setup::{RunContext, Started};
use crate::checkpoint::{self, TrainerState};
use crate::error::Result;
use crate::eval::evaluate_replicated;
use crate::fill_mask::{format_candidates, MaskProbes};
use crate::flops::{device_peak, train_flops, Peak};
use crate::metrics::{pair_fields, EvalRecord, MetricsLog, StepRecord};
use crate::provider::{DataProvider, TrainBatches};
use crate::schedule::Schedule;
use crate::step::{StepOutcome, TrainState};
use crate::tensorboard::EventLog;

/// Where the loop ended.
pub(super) struct LoopEnd<B: AutodiffBackend> {
    /// Counters after the last step.
    pub(super) trainer_state: TrainerState,
    /// The trained model and its optimiser.
    pub(super) state: TrainState<B>,
    /// The last evaluation, if any.
    pub(super) final_eval: Option<EvalRecord>,
    /// The newest good checkpoint (the one resumed from, when none was written since).
    pub(super) newest_ckpt: Option<PathBuf>,
    /// The step this invocation started at.
    pub(super) start_step: u64,
    /// When this invocation's loop started.
    pub(super) started: Instant,
}

/// The loop's state between steps.
struct StepLoop<'r, B: AutodiffBackend> {
    ctx: &'r RunContext<'r, B>,
    trainer_state: TrainerState,
    state: TrainState<B>,
    schedule: Schedule,
    /// The metrics file (rank 0 only).
    log: Option<MetricsLog>,
    /// (Rank 0, `train.tensorboard`) the TensorBoard event file.
    tb: Option<EventLog>,
    /// This rank's device peak, for MFU.
    peak: Option<Peak>,
    batches: Box<dyn TrainBatches + 'r>,
    validation: Option<Vec<HostBatch>>,
    bar: Option<indicatif::ProgressBar>,
    final_eval: Option<EvalRecord>,
    newest_ckpt: Option<PathBuf>,
    /// `eval.fill_mask`, encoded (rank 0, when the data has a tokenizer), filled at every
    /// evaluation so that a user sees what the model has learnt so far.
    probes: Option<MaskProbes>,
    /// The step's micro-batches, kept to reuse the allocation.
    micro: Vec<HostBatch>,
    started: Instant,
    /// Training seconds of earlier invocations (resume).
    elapsed_before: f64,
}

/// Trains from `start` until `train.steps`.
pub(super) fn run_steps<'r, B: AutodiffBackend>(
    ctx: &'r RunContext<'r, B>,
    data: &'r dyn DataProvider,
    start: Started<B>,
    progress: bool,
) -> Result<LoopEnd<B>> {
    let config = ctx.config;
    let Started {
        trainer_state,
        state,
        resumed_from,
    } = start;
    let schedule = Schedule::new(
        &config.schedule,
        config.optimizer.learning_rate,
        config.train.steps,
    );
    let log = if ctx.writer {
        Some(MetricsLog::open(&config.out_dir, trainer_state.step)?)
    } else {
        None
    };
    let device_name = config
        .distributed
        .devices
        .first()
        .map_or(config.device.as_str(), String::as_str);
    let peak = device_peak(
        device_name,
        config.train.precision,
        config.train.peak_tflops,
    );
    if ctx.writer {
        match &peak {
            Some(p) => tracing::info!("MFU against {:.1} TFLOP/s: {}", p.flops / 1e12, p.source),
            None => tracing::info!(
                "no peak known for `{device_name}`: MFU is not logged (set `train.peak_tflops`)"
            ),
        }
    }
    let tb = if ctx.writer && config.train.tensorboard {
        Some(EventLog::open(&config.out_dir, trainer_state.step)?)
    } else {
        None
    };
    let cursor = (!trainer_state.data_cursor.is_null()).then_some(&trainer_state.data_cursor);
    let batches = data.train(cursor)?;
    let eval_batch = config.eval.batch_size.unwrap_or(config.data.batch_size);
    let validation = data.validation(eval_batch, config.eval.max_batches)?;

    let probes = match (&ctx.facts.tokenizer_dir, config.eval.fill_mask.is_empty()) {
        (Some(dir), false) if ctx.writer => {
            Some(MaskProbes::new(dir, &config.eval.fill_mask, false)?)
        }
        _ => None,
    };

    let start_step = trainer_state.step;
    let started = Instant::now();
    let elapsed_before = trainer_state.elapsed_s;
    let bar = progress_bar(progress, start_step, config.train.steps);
    let mut run = StepLoop {
        ctx,
        trainer_state,
        state,
        schedule,
        log,
        tb,
        peak,
        batches,
        validation,
        bar,
        final_eval: None,
        // After a resume the newest good checkpoint is the one resumed from (newer ones may
        // be damaged); a fresh run has none yet.
        newest_ckpt: resumed_from,
        probes,
        micro: Vec::with_capacity(config.train.accumulation),
        started,
        elapsed_before,
    };
    while run.trainer_state.step < config.train.steps {
        run.step()?;
    }
    if let Some(bar) = run.bar {
        bar.finish();
    }
    Ok(LoopEnd {
        trainer_state: run.trainer_state,
        state: run.state,
        final_eval: run.final_eval,
        newest_ckpt: run.newest_ckpt,
        start_step,
        started,
    })
}

impl<B: AutodiffBackend> StepLoop<'_, B> {
    /// One optimiser step and everything due after it.
    fn step(&mut self) -> Result<()> {
        let ctx = self.ctx;
        let config = ctx.config;
        let step = self.trainer_state.step;
        self.micro.clear();
        for _ in 0..config.train.accumulation {
            self.micro.push(self.batches.next_batch()?);
        }
        let lr = self.schedule.lr(step);
        let t0 = Instant::now();
        let dropout_seed = bert_rng::mix_seed(&[config.seed, 0xD80F, step]);
        let out = self.state.step_replicated(
            &self.micro,
            lr,
            config.train.max_grad_norm,
            dropout_seed,
            ctx.device,
            ctx.replica,
        )?;
        let dt = t0.elapsed().as_secs_f64().max(1e-9);
        let record = self.count(&out, lr, dt);
        if let Some(log) = self.log.as_mut() {
            log.append(&record)?;
        }
        if let Some(tb) = self.tb.as_mut() {
            tb.scalars(record.step, &train_scalars(&record))?;
        }
        self.trainer_state.loss_scaler = self.state.loss_scaler.clone();
        account_skips(
            &mut self.trainer_state,
            &out,
            self.state.loss_scaler.as_ref(),
            config,
            self.newest_ckpt.as_ref(),
        )?;
        self.trainer_state.optimizer = self.state.optimizer.clone();
        self.show_progress(&out, lr, &record);
        let last = self.trainer_state.step == config.train.steps;
        self.evaluate_if_due(last)?;
        self.checkpoint_if_due(last)
    }

    /// Advances the counters and the data cursor past the step, and returns its record.
    fn count(&mut self, out: &StepOutcome, lr: f64, dt: f64) -> StepRecord {
        let ts = &mut self.trainer_state;
        ts.step += 1;
        ts.sequences_seen += out.sequences as u64;
        ts.tokens_seen += out.tokens as u64;
        ts.data_cursor = self.batches.cursor();
        ts.elapsed_s = self.elapsed_before + self.started.elapsed().as_secs_f64();
        let m = out.metrics;
        let flops = train_flops(
            &self.ctx.model_config,
            self.micro
                .iter()
                .map(|b| (b.batch_size, b.seq_len, b.max_predictions)),
        );
        let flops_per_s = flops / dt;
        let [nsp_loss, nsp_accuracy, sop_loss, sop_accuracy] =
            pair_fields(self.ctx.facts.objective, m.nsp_loss, m.nsp_accuracy());
        // This rank's micro-batches: the ranks' batches are alike in shape.
        let (real, slots) = self.micro.iter().fold((0, 0), |(r, s), b| {
            (r + b.real_tokens(), s + b.padded_slots())
        });
        StepRecord {
            kind: "train".into(),
            step: ts.step,
            loss: m.loss,
            mlm_loss: m.mlm_loss,
            nsp_loss,
            mlm_accuracy: m.mlm_accuracy(),
            nsp_accuracy,
            sop_loss,
            sop_accuracy,
            fill_rate: Some(bert_data::fill_rate(real, slots)),
            lr,
            grad_norm: out.grad_norm,
            seq_per_s: out.sequences as f64 / dt,
            tokens_per_s: out.tokens as f64 / dt,
            elapsed_s: ts.elapsed_s,
            skipped: !out.applied,
            loss_scale: out.loss_scale,
            overflow: out.overflow,
            comm_s: out.comm_s,
            flops_per_s: Some(flops_per_s),
            mfu: self.peak.as_ref().map(|p| flops_per_s / p.flops),
        }
    }

    /// The progress bar, and (rank 0) a log line every `train.log_every` steps.
    fn show_progress(&self, out: &StepOutcome, lr: f64, record: &StepRecord) {
        let m = out.metrics;
        let pair_acc = record.nsp_accuracy.or(record.sop_accuracy);
        let pair_name = if record.sop_accuracy.is_some() {
            "sop"
        } else {
            "nsp"
        };
        if let Some(bar) = &self.bar {
            bar.set_position(self.trainer_state.step);
            let pair = pair_acc
                .map(|a| format!(" {pair_name} acc {a:.3}"))
                .unwrap_or_default();
            bar.set_message(format!(
                "loss {:.4} mlm acc {:.3}{pair} lr {:.2e}",
                m.loss,
                m.mlm_accuracy(),
                lr
            ));
        }
        if self.ctx.writer
            && self
                .trainer_state
                .step
                .is_multiple_of(self.ctx.config.train.log_every)
        {
            tracing::info!(
                step = self.trainer_state.step,
                loss = format!("{:.4}", m.loss),
                mlm_acc = format!("{:.3}", m.mlm_accuracy()),
                nsp_acc = record.nsp_accuracy.map(|a| format!("{a:.3}")),
                sop_acc = record.sop_accuracy.map(|a| format!("{a:.3}")),
                lr = format!("{lr:.3e}"),
                grad_norm = format!("{:.3}", out.grad_norm),
                seq_per_s = format!("{:.1}", record.seq_per_s),
                fill = record.fill_rate.map(|f| format!("{:.1}%", f * 100.0)),
                mfu = record.mfu.map(|u| format!("{:.1}%", u * 100.0)),
                "train"
            );
        }
    }

    /// Evaluates on the validation split at `eval.every` and after the `last` step.
    fn evaluate_if_due(&mut self, last: bool) -> Result<()> {
        let ctx = self.ctx;
        let step = self.trainer_state.step;
        let eval_due = last
            || ctx
                .config
                .eval
                .every
                .is_some_and(|e| step.is_multiple_of(e));
        if !eval_due {
            return Ok(());
        }
        self.fill_probes(step);
        let Some(v) = &self.validation else {
            return Ok(());
        };
        let e = evaluate_replicated(
            &self.state.model,
            v,
            ctx.facts.objective,
            step,
            ctx.device,
            ctx.replica,
        )?;
        if ctx.writer {
            let four = |v: Option<f64>| v.map(|v| format!("{v:.4}"));
            tracing::info!(
                step = e.step,
                mlm_loss = format!("{:.4}", e.mlm_loss),
                mlm_acc = format!("{:.4}", e.mlm_accuracy),
                nsp_loss = four(e.nsp_loss),
                nsp_acc = four(e.nsp_accuracy),
                sop_loss = four(e.sop_loss),
                sop_acc = four(e.sop_accuracy),
                "validation"
            );
        }
        if let Some(log) = self.log.as_mut() {
            log.append(&e)?;
        }
        if let Some(tb) = self.tb.as_mut() {
            let scalars: Vec<(&str, f64)> = [
                ("eval/mlm_loss", Some(e.mlm_loss)),
                ("eval/mlm_accuracy", Some(e.mlm_accuracy)),
                ("eval/nsp_loss", e.nsp_loss),
                ("eval/nsp_accuracy", e.nsp_accuracy),
                ("eval/sop_loss", e.sop_loss),
                ("eval/sop_accuracy", e.sop_accuracy),
            ]
            .into_iter()
            .filter_map(|(tag, v)| v.map(|v| (tag, v)))
            .collect();
            tb.scalars(e.step, &scalars)?;
        }
        self.final_eval = Some(e);
        Ok(())
    }

    /// Logs the top candidates for `eval.fill_mask` from the model as it is at `step`. A probe
    /// the model cannot take (longer than its positions) is warned about once and the probes
    /// dropped: they must not stop a run.
    fn fill_probes(&mut self, step: u64) {
        let Some(probes) = &self.probes else {
            return;
        };
        let model = burn::module::AutodiffModule::valid(&self.state.model);
        match probes.fill(&model, &self.ctx.model_config, 3, self.ctx.device) {
            Ok(filled) => {
                for (i, (text, masks)) in filled.into_iter().enumerate() {
                    let candidates = format_candidates(&masks);
                    tracing::info!(step, "fill-mask \"{text}\": {candidates}");
                    if let Some(tb) = self.tb.as_mut() {
                        let line = format!("{text} → {candidates}");
                        if let Err(e) = tb.text(step, &format!("fill_mask/{i}"), &line) {
                            tracing::warn!(
                                "the fill-mask probes are not logged to TensorBoard: {e}"
                            );
                            self.tb = None;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!("`eval.fill_mask` is not filled during this run: {e}");
                self.probes = None;
            }
        }
    }

    /// (Rank 0) writes a checkpoint at `checkpoint.every` and after the `last` step.
    fn checkpoint_if_due(&mut self, last: bool) -> Result<()> {
        let ctx = self.ctx;
        let config = ctx.config;
        if ctx.writer
            && (last
                || self
                    .trainer_state
                    .step
                    .is_multiple_of(config.checkpoint.every))
        {
            let dir = checkpoint::save(
                &ctx.ckpt_root,
                &mut self.state,
                &ctx.model_config,
                &self.trainer_state,
                ctx.facts.tokenizer_dir.as_deref(),
                config.checkpoint.keep,
            )?;
            tracing::info!("checkpoint {}", dir.display());
            self.newest_ckpt = Some(dir);
        }
        Ok(())
    }
}

/// A training step's figures as TensorBoard scalars (tags `train/…`).
fn train_scalars(r: &StepRecord) -> Vec<(&'static str, f64)> {
    let mut v = vec![
        ("train/loss", r.loss),
        ("train/mlm_loss", r.mlm_loss),
        ("train/mlm_accuracy", r.mlm_accuracy),
    ];
    for (tag, value) in [
        ("train/nsp_loss", r.nsp_loss),
        ("train/nsp_accuracy", r.nsp_accuracy),
        ("train/sop_loss", r.sop_loss),
        ("train/sop_accuracy", r.sop_accuracy),
        ("train/fill_rate", r.fill_rate),
    ] {
        if let Some(value) = value {
            v.push((tag, value));
        }
    }
    v.extend([
        ("train/learning_rate", r.lr),
        ("train/grad_norm", r.grad_norm),
        ("train/sequences_per_s", r.seq_per_s),
        ("train/tokens_per_s", r.tokens_per_s),
        ("train/skipped", f64::from(u8::from(r.skipped))),
    ]);
    if let Some(f) = r.flops_per_s {
        v.push(("train/model_tflops_per_s", f / 1e12));
    }
    if let Some(u) = r.mfu {
        v.push(("train/mfu", u));
    }
    if let Some(scale) = r.loss_scale {
        v.push(("train/loss_scale", scale));
    }
    v
}

/// The bar over the run's steps, starting at `start`, when `show`.
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
