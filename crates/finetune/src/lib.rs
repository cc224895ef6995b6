//! Downstream evaluation of a pre-trained encoder: how good is it once fine-tuned?
//!
//! People judge a pre-training run by fine-tuning it on GLUE-style tasks. This crate is where
//! `bert finetune` (issue 28) is being built. So far it has:
//! - [`metrics`]: the scores as the GLUE benchmark defines them (accuracy, F1 of the positive
//!   class, Matthews correlation, Pearson and Spearman correlation) and the spread of a score
//!   over seeds and grid points, held to scikit-learn and SciPy by committed fixtures
//!   (`scripts/make_glue_metric_fixtures.py`);
//! - [`encode`]: examples (read by `bert_data::read_task_split`) to `[CLS] A [SEP] B [SEP]`
//!   inputs, truncated as `transformers` truncates pairs;
//! - [`train`]: one fine-tuning run with BERT's recipe on a
//!   `bert_model::BertForSequenceClassification`, evaluated after every epoch;
//! - [`config`], [`sweep`]: `bert finetune --config FILE`: the grid of runs, the spread of the
//!   score at each grid point, and the export of the best run;
//! - [`checkpoint`]: checkpoints of the run in progress, for `bert finetune --resume`.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod encode;
mod error;
pub mod metrics;
pub mod sweep;
pub mod train;

pub use config::{FinetuneConfig, FinetuneSection, TaskSection};
pub use encode::{encode_examples, Encoded};
pub use error::{FinetuneError, Result};
pub use metrics::{MetricError, Spread};
pub use sweep::{
    run_sweep, GridPoint, RunResult, SweepEvent, SweepOptions, SweepReport, EXPORT_DIR,
    RESULTS_FILE,
};
pub use train::{
    evaluate, fine_tune, EpochReport, Resumed, RunEvent, RunProgress, RunSettings, Scores,
    StepStats,
};
