//! The BERT pre-training loop: run config, AdamW/LAMB, schedule, accumulation, global-norm
//! clipping, evaluation, metrics, checkpoints and exact resume. Generic over the Burn backend.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod distributed;
pub mod error;
pub mod fill_mask;
pub mod metrics;
pub mod optim;
pub mod pipeline;
pub mod plot;
pub mod provider;
pub mod reduce;
pub mod run;
pub mod schedule;
pub mod shard_data;
pub mod step;
pub mod synthetic;

pub use config::RunConfig;
pub use error::{Result, TrainError};
