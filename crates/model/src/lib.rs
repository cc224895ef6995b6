//! BERT for pre-training on Burn, numerically identical to HuggingFace `transformers`.
//!
//! - [`BertConfig`]: hyper-parameters in `config.json` names, with the standard presets.
//! - [`BertForPreTraining`]: encoder, pooler, MLM head (decoder tied to the word embeddings)
//!   and NSP head; [`BertForPreTraining::forward_pretraining`] computes the MLM head only on the
//!   masked positions, [`BertForPreTraining::forward_full`] on every position.
//! - [`BertForPreTraining::named_params_mut`]: the one table of HuggingFace parameter names,
//!   used by import, export and the optimiser's weight-decay groups.
//! - [`load_model_dir`], [`save_model_dir`]: HuggingFace folders (also this project's checkpoint
//!   format).
//! - [`BertForSequenceClassification`]: the encoder with a classification or regression head,
//!   for fine-tuning; [`load_classifier_dir`], [`save_classifier_dir`] for its folders.
//! - [`fused`]: the fused CPU kernels (softmax, cross-entropy, LayerNorm, GELU, dropout, AdamW)
//!   and their composed references.
//!
//! The modules are private, apart from `fused`, and their public items re-exported here, so
//! each item has one path.

#![warn(missing_docs)]

mod activation;
mod backend;
mod classification;
mod config;
mod dropout;
mod embeddings;
mod encoder;
mod error;
pub mod fused;
mod hf;
mod host;
mod inference;
mod init;
mod model;
mod params;
mod precision;
mod pretraining;

pub use activation::gelu_erf;
pub use classification::{
    load_classifier_dir, save_classifier_dir, BertForSequenceClassification, ClassifierTask,
};
pub use config::{Activation, BertConfig, PRESETS};
pub use dropout::seed_dropout;
pub use error::{ModelError, Result};
pub use hf::{
    load_model_dir, save_model_dir, save_model_dir_as, Architecture, LoadReport, SourceLayout,
    CONFIG_FILE, TOKENIZER_FILES, WEIGHTS_FILE, WEIGHTS_INDEX_FILE,
};
pub use host::host_values;
pub use inference::{fill_mask, ForwardInputs, ForwardOutputs, Prediction};
pub use model::{BertForPreTraining, BertModel, EncoderOutput, FullOutput};
pub use params::{NamedParam, ParamGroup, ParamKind, ParamMut};
pub use precision::Precision;
pub use pretraining::{PretrainingBatch, PretrainingMetrics, PretrainingOutput};
