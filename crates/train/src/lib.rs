//! The BERT pre-training loop: run config, AdamW/LAMB, schedule, accumulation, global-norm
//! clipping, evaluation, metrics, checkpoints and exact resume. Generic over the Burn backend.
//!
//! The modules are private and their public items are re-exported here, so every item has one
//! path (`bert_train::RunConfig`). They are layered: a module imports only modules of a lower
//! layer (the test in `layering.rs` checks every `crate::` path against `LAYERS`), lowest
//! first:
//!
//! 1. `digest`, `reduce`: file checksums; sums with the same bits on every run.
//! 2. `error`.
//! 3. `schedule`, `optim`, `metrics`, `tensorboard`, `flops`, `provider`, `model_spec`:
//!    components that need nothing but the error type (each with its config section).
//! 4. `collective`: one rank's membership of Burn's collective.
//! 5. `step`: one optimiser step.
//! 6. `eval`, `checkpoint`.
//! 7. `shard_data`, `pipeline`, `synthetic`, `fill_mask`, `plot`.
//! 8. `config`: the run config, composing the sections.
//! 9. `run`: one rank's run.
//! 10. `distributed`: several ranks of one run.
//! 11. `bench`.

#![warn(missing_docs)]

mod bench;
mod checkpoint;
mod collective;
mod config;
mod digest;
mod distributed;
mod error;
mod eval;
mod fill_mask;
mod flops;
#[cfg(test)]
mod layering;
mod metrics;
mod model_spec;
mod optim;
mod pipeline;
mod plot;
mod provider;
mod reduce;
mod run;
mod schedule;
mod shard_data;
mod step;
mod synthetic;
mod tensorboard;

/// The module layers, lowest first: a module may import (`use crate::…`) only modules of an
/// earlier layer. Read by the layering test; keep it in step with the list above.
#[cfg_attr(not(test), allow(dead_code))]
const LAYERS: &[&[&str]] = &[
    &["digest", "reduce"],
    &["error"],
    &[
        "schedule",
        "optim",
        "metrics",
        "tensorboard",
        "flops",
        "provider",
        "model_spec",
    ],
    &["collective"],
    &["step"],
    &["eval", "checkpoint"],
    &["shard_data", "pipeline", "synthetic", "fill_mask", "plot"],
    &["config"],
    &["run"],
    &["distributed"],
    &["bench"],
];

pub use bench::{peak_rss_mib, run_bench, BenchConfig, BenchReport};
pub use checkpoint::{
    checkpoint_objective, clean_partial, export_architecture, list_checkpoints,
    load_model_verified, moments_file, place_checkpoint, read_moments_file, read_verified_state,
    temp_checkpoint_dir, verify_digests, CheckpointSection, ParamShape, TrainerState,
    OPTIMIZER_FILE, TEMP_PREFIX,
};
pub use collective::{AbortFlag, DistributedSection, ProcessGroup, Replica};
pub use config::{apply_override, describe_toml_error, load_prepare_config, RunConfig};
pub use digest::FileDigest;
pub use distributed::{on_ranks, train_replicas, GroupHost};
pub use error::{Result, TrainError};
pub use eval::{evaluate, evaluate_replicated, EvalSection};
pub use fill_mask::{format_candidates, predict_masks, Candidates, MaskProbes};
pub use flops::{device_peak, forward_flops, train_flops, Peak};
pub use metrics::{read_metrics, EvalRecord, MetricsLog, StepRecord};
pub use model_spec::{InitOptimizer, ModelSection};
pub use optim::{clip_factor, Moments, Optimizer, OptimizerConfig, OptimizerKind, ParamSlot};
pub use pipeline::{require_prepared, PipelineReport, TokenizerSection};
pub use plot::{plot_run, render_png, PlotOptions, PlotSummary, TRAIN_COLOUR};
pub use provider::{DataFacts, DataProvider, TrainBatches};
pub use reduce::global_norm;
pub use run::{check_data_fits_model, lock_run_dir, train, train_rank, RunOptions, RunSummary};
pub use schedule::{DecayOver, Schedule, ScheduleSection};
pub use shard_data::{DataSection, MaskingOverride, ShardData};
pub use step::{LossScaler, NanPolicy, StepOutcome, TrainSection, TrainState};
pub use synthetic::SyntheticData;
pub use tensorboard::{read_events, Event as TensorBoardEvent, EventLog, EVENT_FILE, TB_DIR};
