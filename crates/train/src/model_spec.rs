//! Which model a run trains: the `[model]` table (a preset, a `config.json` or the weights of
//! `init_from`, then key-by-key overrides) and the [`BertConfig`] it resolves to.

use std::path::{Path, PathBuf};

use bert_model::{Activation, BertConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The `[model]` table: a preset or a `config.json`, overrides, and optional initial weights.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// tiny, mini, small, medium, base or large.
    pub preset: Option<String>,
    /// A HuggingFace `config.json` to start from instead of a preset.
    pub config: Option<PathBuf>,
    /// Start from these weights (a HuggingFace folder or a checkpoint of ours), e.g. phase 2
    /// from phase 1.
    pub init_from: Option<PathBuf>,
    /// With `init_from` a checkpoint of ours: `fresh` (default) starts a new optimiser and
    /// schedule, `carry` takes over its optimiser moments.
    pub init_optimizer: InitOptimizer,
    /// Overrides (HuggingFace names). `vocab_size` defaults to the data's vocabulary.
    pub vocab_size: Option<usize>,
    /// Override.
    pub hidden_size: Option<usize>,
    /// Override.
    pub num_hidden_layers: Option<usize>,
    /// Override.
    pub num_attention_heads: Option<usize>,
    /// Override.
    pub intermediate_size: Option<usize>,
    /// Override: gelu, gelu_new, relu, silu.
    pub hidden_act: Option<Activation>,
    /// Override.
    pub hidden_dropout_prob: Option<f64>,
    /// Override.
    pub attention_probs_dropout_prob: Option<f64>,
    /// Override.
    pub max_position_embeddings: Option<usize>,
    /// Override.
    pub type_vocab_size: Option<usize>,
    /// Override.
    pub initializer_range: Option<f64>,
    /// Override.
    pub layer_norm_eps: Option<f64>,
}

/// Whether `init_from` also brings its optimiser state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitOptimizer {
    /// New moments, schedule from step 0.
    #[default]
    Fresh,
    /// Moments from the `init_from` checkpoint; the schedule still starts at step 0.
    Carry,
}

impl ModelSection {
    /// Checks that the table names a model, naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.preset.is_some() && self.config.is_some() {
            return Err("set only one of `model.preset` and `model.config`".into());
        }
        if self.preset.is_none() && self.config.is_none() && self.init_from.is_none() {
            return Err("set `model.preset` (tiny, mini, small, medium, base, large), `model.config` or `model.init_from`".into());
        }
        Ok(())
    }

    /// The model config: preset, `config.json` or `init_from`'s, then the overrides.
    /// `data_vocab_size` fills `vocab_size` when no override gives it. `source` is the run
    /// config file the table came from, for messages.
    pub fn resolve(&self, data_vocab_size: usize, source: &Path) -> Result<BertConfig> {
        let m = self;
        let bad = |message: String| TrainError::Config {
            path: source.to_path_buf(),
            message,
        };
        let mut c = if let Some(name) = &m.preset {
            let mut c =
                BertConfig::preset(name).map_err(|e| bad(format!("`model.preset`: {e}")))?;
            c.vocab_size = data_vocab_size;
            c
        } else if let Some(path) = &m.config {
            BertConfig::load(path)?
        } else if let Some(dir) = &m.init_from {
            BertConfig::load(&dir.join(bert_model::CONFIG_FILE))?
        } else {
            return Err(bad(
                "no `model.preset`, `model.config` or `model.init_from`".into(),
            ));
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = m.$f { c.$f = v; } )* };
        }
        over!(
            vocab_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size,
            hidden_act,
            hidden_dropout_prob,
            attention_probs_dropout_prob,
            max_position_embeddings,
            type_vocab_size,
            initializer_range,
            layer_norm_eps
        );
        c.validate().map_err(|e| match e {
            bert_model::ModelError::InvalidConfig { field, message } => {
                let from = if toml::Value::try_from(m)
                    .ok()
                    .and_then(|t| t.get(field).cloned())
                    .is_some()
                {
                    format!("`model.{field}`")
                } else if let Some(name) = &m.preset {
                    format!("`{field}` of preset `{name}` (set `model.{field}` to change it)")
                } else {
                    format!(
                        "`{field}` of the model's config.json (set `model.{field}` to change it)"
                    )
                };
                bad(format!("{from} {message}"))
            }
            other => bad(format!("table `[model]`: {other}")),
        })?;
        if c.vocab_size < data_vocab_size {
            return Err(bad(format!(
                "`model.vocab_size` ({}) is smaller than the data's vocabulary ({data_vocab_size})",
                c.vocab_size
            )));
        }
        Ok(c)
    }
}
