//! BERT for pre-training on Burn, numerically identical to HuggingFace `transformers`.
//!
//! - [`BertConfig`]: hyper-parameters in `config.json` names, with the standard presets.
//! - [`BertForPreTraining`]: encoder, pooler, MLM head (decoder tied to the word embeddings)
//!   and NSP head; [`BertForPreTraining::forward_pretraining`] computes the MLM head only on the
//!   masked positions, [`BertForPreTraining::forward_full`] on every position.
//! - [`params`]: the one table of HuggingFace parameter names, used by import, export and the
//!   optimiser's weight-decay groups.
//! - [`hf`]: loading and saving HuggingFace folders (also this project's checkpoint format).

pub mod activation;
pub mod backend;
pub mod config;
pub mod dropout;
pub mod embeddings;
pub mod encoder;
pub mod error;
pub mod fsutil;
pub mod fused;
pub mod hf;
pub mod host;
pub mod inference;
pub mod init;
pub mod model;
pub mod params;
pub mod precision;
pub mod pretraining;

pub use config::{Activation, BertConfig, PRESETS};
pub use error::{ModelError, Result};
pub use hf::{load_model_dir, save_model_dir, LoadReport, SourceLayout};
pub use host::host_values;
pub use inference::{fill_mask, ForwardInputs, ForwardOutputs, Prediction};
pub use model::{BertForPreTraining, BertModel, EncoderOutput, FullOutput};
pub use params::{ParamGroup, ParamKind};
pub use precision::Precision;
pub use pretraining::{PretrainingBatch, PretrainingMetrics, PretrainingOutput};
