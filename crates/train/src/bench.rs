//! `bert bench`: times full training steps (forward, backward, optimiser) on synthetic batches
//! shaped like real ones, after warm-up. Users run it to size their runs.

use std::time::Instant;

use bert_model::{BertConfig, BertForPreTraining, Precision};
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

use crate::flops::{forward_flops, Peak};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::step::TrainState;
use crate::synthetic::SyntheticData;

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Model size.
    pub model: BertConfig,
    /// Sequences per step.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first (kernel selection, allocator warm-up).
    pub warmup: usize,
    /// Float type of the matrix products.
    pub precision: Precision,
    /// The device's peak, for MFU (see `crate::flops::device_peak`).
    pub peak: Option<Peak>,
}

/// The measurements, as `--json` prints them.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Sequences per second at the median step time.
    pub seq_per_s: f64,
    /// Median seconds per step.
    pub median_step_s: f64,
    /// Fastest step.
    pub min_step_s: f64,
    /// The first step, untimed in the median: on GPU backends mostly kernel compilation and
    /// autotuning (a second run with the caches kept starts faster).
    pub first_step_s: f64,
    /// Float type of the matrix products.
    pub precision: Precision,
    /// Slowest timed step.
    pub max_step_s: f64,
    /// Tokens per second at the median step time.
    pub tokens_per_s: f64,
    /// Peak resident memory of the process in MiB (VmHWM), when the OS reports it.
    pub peak_rss_mib: Option<f64>,
    /// Model parameters.
    pub parameters: usize,
    /// Model FLOPs per step (forward + backward ≈ 3× forward; MLM head on masked positions).
    pub flops_per_step: f64,
    /// Achieved model FLOP/s at the median step.
    pub flops_per_s: f64,
    /// Model FLOPs utilisation: `flops_per_s` over the device's peak, when it is known.
    pub mfu: Option<f64>,
    /// Where the peak comes from.
    pub peak_source: Option<String>,
    /// Batch, sequence length, masked positions per sequence.
    pub shape: [usize; 3],
    /// Timed steps.
    pub steps: usize,
    /// Loss of every step, warm-up included: the same seed gives the same model and batches on
    /// every backend, so with dropout 0 these compare backends' numerics.
    pub losses: Vec<f64>,
    /// Global gradient norm (before clipping) of every step, warm-up included.
    pub grad_norms: Vec<f64>,
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs the benchmark on backend `B`.
pub fn run_bench<B: AutodiffBackend>(config: &BenchConfig, device: &B::Device) -> BenchReport {
    let data = SyntheticData::new(
        config.model.vocab_size,
        config.batch_size,
        config.seq_len,
        17,
    );
    let model =
        BertForPreTraining::<B>::new(&config.model, 17, device).with_precision(config.precision);
    let parameters = burn::module::Module::num_params(&model);
    let mut state = TrainState::new(model, Optimizer::new(OptimizerConfig::default()));
    let mut times = Vec::with_capacity(config.steps);
    let mut losses = Vec::with_capacity(config.warmup + config.steps);
    let mut grad_norms = Vec::with_capacity(config.warmup + config.steps);
    let mut first_step_s = f64::NAN;
    for i in 0..config.warmup + config.steps {
        let batch = data.batch(i as u64);
        let t0 = Instant::now();
        let out = state.step(std::slice::from_ref(&batch), 1e-4, 1.0, i as u64, device);
        // `step` reads the loss and gradient norm back, so the device work is finished here.
        let dt = t0.elapsed().as_secs_f64();
        if i == 0 {
            first_step_s = dt;
            tracing::info!(
                seconds = format!("{dt:.2}"),
                "first step done (includes kernel compilation and autotuning on GPU backends)"
            );
        }
        tracing::debug!(
            step = i,
            seconds = dt,
            loss = out.metrics.loss,
            "bench step"
        );
        losses.push(out.metrics.loss);
        grad_norms.push(out.grad_norm);
        if i >= config.warmup {
            times.push(dt);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = if times.is_empty() {
        f64::NAN
    } else if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    let flops = 3.0
        * forward_flops(
            &config.model,
            config.batch_size,
            config.seq_len,
            data.max_predictions,
        );
    BenchReport {
        seq_per_s: config.batch_size as f64 / median,
        median_step_s: median,
        min_step_s: times.first().copied().unwrap_or(f64::NAN),
        first_step_s,
        precision: config.precision,
        max_step_s: times.last().copied().unwrap_or(f64::NAN),
        tokens_per_s: (config.batch_size * config.seq_len) as f64 / median,
        peak_rss_mib: peak_rss_mib(),
        parameters,
        flops_per_step: flops,
        flops_per_s: flops / median,
        mfu: config.peak.as_ref().map(|p| flops / median / p.flops),
        peak_source: config.peak.as_ref().map(|p| p.source.clone()),
        shape: [config.batch_size, config.seq_len, data.max_predictions],
        steps: config.steps,
        losses,
        grad_norms,
    }
}
