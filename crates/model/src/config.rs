//! `BertConfig`: the model's hyper-parameters, in HuggingFace `config.json` field names.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Activation of the feed-forward layers and of the MLM transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU, `x·Φ(x)` with the error function (BERT's and HuggingFace's `"gelu"`).
    Gelu,
    /// Tanh approximation of GELU (HuggingFace's `"gelu_new"`, `"gelu_pytorch_tanh"`).
    #[serde(alias = "gelu_pytorch_tanh")]
    GeluNew,
    /// Rectified linear unit.
    Relu,
    /// `x·sigmoid(x)` (HuggingFace's `"silu"` / `"swish"`).
    #[serde(alias = "swish")]
    Silu,
}

impl Activation {
    /// The name written to `config.json`.
    pub fn hf_name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluNew => "gelu_new",
            Activation::Relu => "relu",
            Activation::Silu => "silu",
        }
    }
}

/// BERT hyper-parameters. Serialises to and from HuggingFace `config.json`; unknown fields in
/// a published config (`architectures`, `transformers_version`, ...) are ignored on read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Number of WordPiece ids (rows of the word-embedding matrix).
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward and MLM-transform activation.
    #[serde(default = "default_act", deserialize_with = "de_activation")]
    pub hidden_act: Activation,
    /// Dropout after embeddings, attention output and feed-forward output.
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention probabilities.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Longest sequence the position embeddings cover.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Standard deviation of the normal weight initialisation.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// LayerNorm epsilon.
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Id of `[PAD]`.
    #[serde(default)]
    pub pad_token_id: usize,
}

fn default_act() -> Activation {
    Activation::Gelu
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_init_range() -> f64 {
    0.02
}
fn default_ln_eps() -> f64 {
    1e-12
}

/// Reads `hidden_act`, naming the accepted values when it is unknown.
fn de_activation<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Activation, D::Error> {
    let name = String::deserialize(d)?;
    match name.as_str() {
        "gelu" => Ok(Activation::Gelu),
        "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluNew),
        "relu" => Ok(Activation::Relu),
        "silu" | "swish" => Ok(Activation::Silu),
        other => Err(serde::de::Error::custom(format!(
            "unknown hidden_act `{other}`: expected gelu, gelu_new, gelu_pytorch_tanh, relu, silu or swish"
        ))),
    }
}

/// The standard sizes from the BERT papers and Turc et al. ("Well-Read Students").
pub const PRESETS: [&str; 6] = ["tiny", "mini", "small", "medium", "base", "large"];

impl BertConfig {
    /// A preset by name (`tiny`, `mini`, `small`, `medium`, `base`, `large`) with the standard
    /// uncased vocabulary size (30522); change `vocab_size` to match your vocabulary.
    pub fn preset(name: &str) -> Result<Self> {
        let (layers, hidden, heads, inter) = match name {
            "tiny" => (2, 128, 2, 512),
            "mini" => (4, 256, 4, 1024),
            "small" => (4, 512, 8, 2048),
            "medium" => (8, 512, 8, 2048),
            "base" => (12, 768, 12, 3072),
            "large" => (24, 1024, 16, 4096),
            other => return Err(ModelError::UnknownPreset(other.to_string())),
        };
        Ok(Self {
            vocab_size: 30522,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: inter,
            hidden_act: Activation::Gelu,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        })
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks that the config describes a buildable model; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ModelError::InvalidConfig {
                    field,
                    message: "must be greater than 0".into(),
                });
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(ModelError::InvalidConfig {
                field: "num_attention_heads",
                message: format!(
                    "({}) must divide hidden_size ({})",
                    self.num_attention_heads, self.hidden_size
                ),
            });
        }
        for (field, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(ModelError::InvalidConfig {
                    field,
                    message: format!("is {p}, expected a probability in [0, 1)"),
                });
            }
        }
        if !(self.initializer_range > 0.0 && self.initializer_range.is_finite()) {
            return Err(ModelError::InvalidConfig {
                field: "initializer_range",
                message: format!("is {}, expected a positive number", self.initializer_range),
            });
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(ModelError::InvalidConfig {
                field: "layer_norm_eps",
                message: format!("is {}, expected a positive number", self.layer_norm_eps),
            });
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(ModelError::InvalidConfig {
                field: "pad_token_id",
                message: format!(
                    "({}) must be smaller than vocab_size ({})",
                    self.pad_token_id, self.vocab_size
                ),
            });
        }
        Ok(())
    }

    /// Parses a HuggingFace `config.json` text and validates it.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::Json {
                path: path.to_path_buf(),
                what: "HuggingFace config.json",
                message: e.to_string(),
            })?;
        if let Some(model_type) = value.get("model_type").and_then(|v| v.as_str()) {
            if model_type != "bert" {
                return Err(ModelError::Json {
                    path: path.to_path_buf(),
                    what: "BERT config.json",
                    message: format!("model_type is `{model_type}`, expected `bert`"),
                });
            }
        }
        if let Some(kind) = value
            .get("position_embedding_type")
            .and_then(|v| v.as_str())
        {
            if kind != "absolute" {
                return Err(ModelError::Json {
                    path: path.to_path_buf(),
                    what: "BERT config.json",
                    message: format!(
                        "position_embedding_type is `{kind}`; only `absolute` is supported"
                    ),
                });
            }
        }
        let config: Self = serde_json::from_value(value).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            what: "HuggingFace config.json",
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a HuggingFace `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// The `config.json` that `transformers` loads as `BertForPreTraining`.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("BertConfig always serialises");
        let obj = value
            .as_object_mut()
            .expect("BertConfig serialises to an object");
        obj.insert("hidden_act".into(), self.hidden_act.hf_name().into());
        obj.insert(
            "architectures".into(),
            serde_json::json!(["BertForPreTraining"]),
        );
        obj.insert("model_type".into(), "bert".into());
        obj.insert("position_embedding_type".into(), "absolute".into());
        obj.insert("classifier_dropout".into(), serde_json::Value::Null);
        obj.insert("use_cache".into(), true.into());
        obj.insert("torch_dtype".into(), "float32".into());
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_published_sizes() {
        let base = BertConfig::preset("base").unwrap();
        assert_eq!(
            (
                base.num_hidden_layers,
                base.hidden_size,
                base.num_attention_heads,
                base.intermediate_size
            ),
            (12, 768, 12, 3072)
        );
        for name in PRESETS {
            let c = BertConfig::preset(name).unwrap();
            c.validate().unwrap();
            assert_eq!(c.intermediate_size, 4 * c.hidden_size, "{name}");
        }
        assert!(matches!(
            BertConfig::preset("huge"),
            Err(ModelError::UnknownPreset(_))
        ));
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = BertConfig::preset("tiny").unwrap();
        c.num_attention_heads = 3;
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("num_attention_heads") && err.contains("128"),
            "{err}"
        );
        let mut c = BertConfig::preset("tiny").unwrap();
        c.intermediate_size = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("intermediate_size"));
        let mut c = BertConfig::preset("tiny").unwrap();
        c.hidden_dropout_prob = 1.5;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hidden_dropout_prob"));
    }

    #[test]
    fn reads_hf_json_and_rejects_unknown_activation() {
        let p = Path::new("config.json");
        let text = r#"{"architectures":["BertForMaskedLM"],"model_type":"bert","vocab_size":99,
            "hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":37,
            "hidden_act":"gelu_pytorch_tanh","transformers_version":"4.57.1"}"#;
        let c = BertConfig::from_json_str(text, p).unwrap();
        assert_eq!(c.hidden_act, Activation::GeluNew);
        assert_eq!(c.layer_norm_eps, 1e-12);
        let bad = text.replace("gelu_pytorch_tanh", "mish");
        let err = BertConfig::from_json_str(&bad, p).unwrap_err().to_string();
        assert!(err.contains("unknown hidden_act `mish`"), "{err}");
        let roberta = text.replace("\"bert\"", "\"roberta\"");
        assert!(BertConfig::from_json_str(&roberta, p).is_err());
    }

    #[test]
    fn hf_json_round_trips() {
        let c = BertConfig::preset("mini").unwrap();
        let text = serde_json::to_string(&c.to_hf_json()).unwrap();
        assert!(text.contains("\"BertForPreTraining\""));
        assert_eq!(BertConfig::from_json_str(&text, Path::new("x")).unwrap(), c);
    }
}
