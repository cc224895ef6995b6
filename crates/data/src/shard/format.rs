//! The shard format's types and names: format name and version, the masking mode, the header
//! that describes a shard set, an index's entry for one shard, and shard file names.

use serde::{Deserialize, Serialize};

use crate::masking::MaskingParams;
use crate::objective::{Objective, ObjectiveSpec};

/// Format name recorded in every shard and index.
pub const FORMAT_NAME: &str = "bert-pretraining-shards";
/// Format version of `mlm_nsp` sets, which this build writes exactly as builds before
/// objectives existed did (and reads).
pub const FORMAT_VERSION: u32 = 1;
/// Format version of `mlm` and `mlm_sop` sets: version 1 plus the `objective` (and
/// `mlm_format`) header keys. Written only for those objectives, so that a build that predates
/// objectives refuses such a set by its version instead of training NSP on it.
pub const FORMAT_VERSION_OBJECTIVES: u32 = 2;

/// The format version a set of `spec` is written with.
pub fn format_version_for(spec: &ObjectiveSpec) -> u32 {
    if spec.objective == Objective::MlmNsp {
        FORMAT_VERSION
    } else {
        FORMAT_VERSION_OBJECTIVES
    }
}
/// Name of the per-split index file.
pub const INDEX_FILE: &str = "index.json";

/// When masks are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskingMode {
    /// At prepare time; shards hold masked inputs, positions and labels (`dupe_factor` copies).
    #[default]
    Static,
    /// In the loader, from `(seed, epoch, instance index)`; shards hold unmasked instances.
    Dynamic,
}

impl MaskingMode {
    /// `"static"` or `"dynamic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dynamic => "dynamic",
        }
    }
}

impl std::str::FromStr for MaskingMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "static" => Ok(Self::Static),
            "dynamic" => Ok(Self::Dynamic),
            other => Err(format!(
                "unknown masking mode {other:?} (expected static or dynamic)"
            )),
        }
    }
}

/// What a shard set is: everything the trainer must check against its own config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetHeader {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Format version: [`FORMAT_VERSION`] for `mlm_nsp` sets, [`FORMAT_VERSION_OBJECTIVES`]
    /// for the others.
    pub format_version: u32,
    /// `train` or `validation`.
    pub split: String,
    /// Hash of the vocabulary the ids refer to (see `tokenizer::vocab_hash`).
    pub vocab_hash: String,
    /// Number of ids in that vocabulary.
    pub vocab_size: usize,
    /// Longest instance, `[CLS]` and `[SEP]`s included.
    pub max_seq_length: usize,
    /// Static or dynamic masking.
    pub masking: MaskingMode,
    /// Masking parameters (used at prepare time for static, by the loader for dynamic).
    pub masking_params: MaskingParams,
    /// Differently-masked copies per document pass (static; 1 for dynamic).
    pub dupe_factor: usize,
    /// Instances in the whole set.
    pub instances: u64,
    /// Tokens (special tokens included) in the whole set.
    pub tokens: u64,
}

/// One shard as listed in an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the split folder.
    pub file: String,
    /// Instances in the shard.
    pub instances: u64,
    /// Tokens in the shard.
    pub tokens: u64,
    /// `crc32:xxxxxxxx`, as in the shard header.
    pub checksum: String,
}

/// File name of shard `index`.
pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:05}.safetensors")
}
