//! The run configuration: one TOML file describes a run. It is parsed once, here, into typed
//! sections (the `[tokenizer]` and `[prepare]` tables included), so every default is written
//! once, next to its field, and unknown keys and impossible values are refused before any work,
//! each message naming the file, the table and the key.

use std::path::{Path, PathBuf};

use bert_model::{Activation, BertConfig, Precision};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::OptimizerConfig;
use bert_data::train_vocab::TrainVocabOptions;
use bert_data::{MaskingParams, PrepareConfig};

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Every random choice of the run (initialisation, dropout, data order, dynamic masks)
    /// follows from this seed.
    #[serde(default)]
    pub seed: u64,
    /// Run directory: checkpoints, `metrics.jsonl`, the resolved config.
    pub out_dir: PathBuf,
    /// `cpu`, `wgpu`, `cuda`, `cuda:N` or `ndarray` (the CLI's `--device` overrides it).
    #[serde(default = "default_device")]
    pub device: String,
    /// The model.
    pub model: ModelSection,
    /// The prepared shards and batching.
    pub data: DataSection,
    /// Optimiser.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleSection,
    /// Length of the run and its step.
    pub train: TrainSection,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalSection,
    /// Checkpoints.
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    /// Data parallelism: devices of this process and the collective's timeout.
    #[serde(default)]
    pub distributed: DistributedSection,
    /// The `bert prepare` table, when the same file also prepares the data (`bert train` runs
    /// it first when `data.train` does not exist yet, and otherwise checks the shards' masking
    /// against it). Its paths are resolved against the config's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare: Option<PrepareConfig>,
    /// A `[tokenizer]` table: train a WordPiece vocabulary before preparing, when its output
    /// does not exist yet (see `bert tokenizer train`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerSection>,
    /// Where `bert train` exports the final model as a HuggingFace folder, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_dir: Option<PathBuf>,
    /// The keys the overrides (`--set` and the flags that stand for one) assigned, dotted, so
    /// that a later rule can tell the command line's choices from the file's. Not part of the
    /// file or of the recorded config.
    #[serde(skip)]
    pub overridden: Vec<String>,
}

fn default_device() -> String {
    "cpu".into()
}

/// The `[tokenizer]` table: a WordPiece vocabulary trained before the data is prepared (what
/// `bert tokenizer train` does). Defaults are [`TrainVocabOptions`]'s, so the table and the
/// library cannot disagree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSection {
    /// Corpus files, folders or globs (resolved against the config's folder).
    pub inputs: Vec<String>,
    /// Vocabulary size, special tokens included.
    #[serde(default = "default_tokenizer_vocab_size")]
    pub vocab_size: usize,
    /// Uncased vocabulary: lower-case and strip accents.
    #[serde(default = "default_tokenizer_lowercase")]
    pub lowercase: bool,
    /// Minimum pair frequency for a merge.
    #[serde(default = "default_tokenizer_min_frequency")]
    pub min_frequency: u64,
    /// Folder for `vocab.txt` and `tokenizer.json` (resolved against the config's folder).
    pub out: PathBuf,
}

fn default_tokenizer_vocab_size() -> usize {
    TrainVocabOptions::default().vocab_size
}
fn default_tokenizer_lowercase() -> bool {
    TrainVocabOptions::default().lowercase
}
fn default_tokenizer_min_frequency() -> u64 {
    TrainVocabOptions::default().min_frequency
}

impl TokenizerSection {
    /// What the data crate's WordPiece trainer needs; the corpus is read with its defaults.
    pub fn train_options(&self) -> TrainVocabOptions {
        TrainVocabOptions {
            corpus: bert_data::corpus::CorpusOptions {
                inputs: self.inputs.clone(),
                ..Default::default()
            },
            vocab_size: self.vocab_size,
            lowercase: self.lowercase,
            min_frequency: self.min_frequency,
            out: self.out.clone(),
            ..Default::default()
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        for input in &mut self.inputs {
            *input = resolve_relative(base, Path::new(input.as_str()))
                .display()
                .to_string();
        }
        self.out = resolve_relative(base, &self.out);
    }
}

/// What to do when the loss or the gradients are NaN or infinite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanPolicy {
    /// Stop the run; the last good checkpoint stays the newest.
    Stop,
    /// Skip the update, count it, and stop after `max_consecutive_skips` in a row.
    Skip,
}

impl NanPolicy {
    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            NanPolicy::Stop => "stop",
            NanPolicy::Skip => "skip",
        }
    }
}

/// The model: a preset or a `config.json`, overrides, and optional initial weights.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// tiny, mini, small, medium, base or large.
    #[serde(default)]
    pub preset: Option<String>,
    /// A HuggingFace `config.json` to start from instead of a preset.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Start from these weights (a HuggingFace folder or a checkpoint of ours), e.g. phase 2
    /// from phase 1.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// With `init_from` a checkpoint of ours: `fresh` (default) starts a new optimiser and
    /// schedule, `carry` takes over its optimiser moments.
    #[serde(default)]
    pub init_optimizer: InitOptimizer,
    /// Overrides (HuggingFace names). `vocab_size` defaults to the data's vocabulary.
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// Override.
    #[serde(default)]
    pub hidden_size: Option<usize>,
    /// Override.
    #[serde(default)]
    pub num_hidden_layers: Option<usize>,
    /// Override.
    #[serde(default)]
    pub num_attention_heads: Option<usize>,
    /// Override.
    #[serde(default)]
    pub intermediate_size: Option<usize>,
    /// Override: gelu, gelu_new, relu, silu.
    #[serde(default)]
    pub hidden_act: Option<Activation>,
    /// Override.
    #[serde(default)]
    pub hidden_dropout_prob: Option<f64>,
    /// Override.
    #[serde(default)]
    pub attention_probs_dropout_prob: Option<f64>,
    /// Override.
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Override.
    #[serde(default)]
    pub type_vocab_size: Option<usize>,
    /// Override.
    #[serde(default)]
    pub initializer_range: Option<f64>,
    /// Override.
    #[serde(default)]
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

/// The prepared data and how it is batched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training shard directory (from `bert prepare`).
    pub train: PathBuf,
    /// Validation shard directory; evaluation is skipped without it.
    #[serde(default)]
    pub validation: Option<PathBuf>,
    /// Sequences per micro-batch on each device.
    pub batch_size: usize,
    /// Pad every batch to `max_seq_length` instead of to its longest row.
    #[serde(default)]
    pub pad_to_max_length: bool,
    /// Batches prepared ahead on background threads.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Masks the loader draws for dynamic shards, replacing the prepared settings key by key
    /// (another rate or rule without preparing again). Refused for static shards.
    #[serde(default)]
    pub masking: MaskingOverride,
}

fn default_prefetch() -> usize {
    4
}

/// `[data.masking]`: dynamic-masking settings that replace the ones the shards were prepared
/// with; a key left out keeps the prepared value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingOverride {
    /// Fraction of tokens to predict (MosaicBERT: 0.3).
    pub masked_lm_prob: Option<f64>,
    /// Cap on predictions per sequence (`fixed` only).
    pub max_predictions_per_seq: Option<usize>,
    /// Mask all pieces of a word together.
    pub whole_word_masking: Option<bool>,
    /// `fixed` (Google's count) or `bernoulli` (each token with probability masked_lm_prob).
    pub mask_count: Option<bert_data::masking::MaskCount>,
}

impl MaskingOverride {
    /// True when no key is set (the prepared masking applies).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `prepared` with the keys given here replaced.
    pub fn apply(&self, prepared: MaskingParams) -> MaskingParams {
        MaskingParams {
            masked_lm_prob: self.masked_lm_prob.unwrap_or(prepared.masked_lm_prob),
            max_predictions_per_seq: self
                .max_predictions_per_seq
                .unwrap_or(prepared.max_predictions_per_seq),
            whole_word_masking: self
                .whole_word_masking
                .unwrap_or(prepared.whole_word_masking),
            count: self.mask_count.unwrap_or(prepared.count),
        }
    }
}

/// Learning-rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Warm-up length in optimiser steps (default: 1% of the run, BERT used 10k of 1M).
    #[serde(default)]
    pub warmup_steps: Option<u64>,
    /// Warm-up as a fraction of the run (instead of `warmup_steps`).
    #[serde(default)]
    pub warmup_proportion: Option<f64>,
    /// Decay exponent (1 = linear).
    #[serde(default = "default_power")]
    pub power: f64,
    /// `after_warmup` (HuggingFace: the decay runs from the peak over the steps after
    /// warm-up) or `run` (Google's `polynomial_decay`, NVIDIA's `PolyWarmUpScheduler`: the
    /// decay's progress counts from step 0, so warm-up ends below the peak).
    #[serde(default)]
    pub decay_over: crate::schedule::DecayOver,
}

fn default_power() -> f64 {
    1.0
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            warmup_steps: None,
            warmup_proportion: None,
            power: 1.0,
            decay_over: Default::default(),
        }
    }
}

/// The step loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Total optimiser steps; data epochs roll over inside the run.
    pub steps: u64,
    /// Micro-batches per optimiser step (global batch = batch_size × devices × accumulation).
    #[serde(default = "one")]
    pub accumulation: usize,
    /// Clip gradients by their global norm (over all parameters); `0` disables.
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
    /// `stop` or `skip` on NaN/infinite loss or gradients.
    #[serde(default = "default_policy")]
    pub nan_policy: NanPolicy,
    /// With `skip`: stop after this many skipped steps in a row.
    #[serde(default = "default_skips")]
    pub max_consecutive_skips: u32,
    /// Log a line every N steps (metrics.jsonl gets every step).
    #[serde(default = "one_u64")]
    pub log_every: u64,
    /// Float type of the matrix products: `fp32` (default), `bf16` (the GPU choice: bf16
    /// products with f32 accumulation, f32 weights, optimiser and norms) or `fp16` (adds
    /// dynamic loss scaling). Checkpoints and exports are f32 whatever it is.
    #[serde(default)]
    pub precision: Precision,
}

fn one() -> usize {
    1
}
fn one_u64() -> u64 {
    1
}
fn default_clip() -> f64 {
    1.0
}
fn default_policy() -> NanPolicy {
    NanPolicy::Stop
}
fn default_skips() -> u32 {
    5
}

/// Data parallelism (see `docs/distributed.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedSection {
    /// Devices of this process, one replica each (`["cuda:0", "cuda:1"]`); empty: the one
    /// `device`. The CLI's `--devices` overrides it.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Seconds a rank waits for the others at a collective call (join, gradient all-reduce,
    /// evaluation) before it stops with an error naming itself and the call.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
}

fn default_timeout() -> f64 {
    300.0
}

impl Default for DistributedSection {
    fn default() -> Self {
        Self {
            devices: Vec::new(),
            timeout_s: default_timeout(),
        }
    }
}

/// Evaluation on the validation shards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate every N steps (and always at the end); none: only at the end.
    #[serde(default)]
    pub every: Option<u64>,
    /// Evaluate on at most this many batches (default: the whole validation set).
    #[serde(default)]
    pub max_batches: Option<usize>,
    /// Batch size for evaluation (default: the training batch size).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Sentences with `[MASK]` whose top predictions `bert train` logs at every evaluation
    /// (from the model being trained) and prints after exporting.
    #[serde(default)]
    pub fill_mask: Vec<String>,
}

/// Checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Write a checkpoint every N steps (and always at the end).
    #[serde(default = "default_ckpt_every")]
    pub every: u64,
    /// Keep the newest N checkpoints.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_ckpt_every() -> u64 {
    1000
}
fn default_keep() -> usize {
    3
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self {
            every: default_ckpt_every(),
            keep: default_keep(),
        }
    }
}

pub use bert_data::fsutil::resolve_relative;

/// Applies one `--set a.b.c=value` override to a parsed TOML document. The value is parsed as
/// TOML (`3`, `1e-4`, `true`, `"x"`, `[1, 2]`), or taken as a string when it does not parse.
/// Returns the dotted key it assigned.
pub fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<String> {
    let bad = |message: String| TrainError::Config {
        path: PathBuf::from("--set"),
        message,
    };
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| bad(format!("`{assignment}` is not key=value")))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(bad(format!("`{assignment}` has an empty key")));
    }
    let value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut table = doc;
    for part in &parts[..parts.len() - 1] {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| bad(format!("`{key}`: `{part}` is not a table")))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(key.to_string())
}

/// A TOML deserialisation error as one line naming the table and the key. The toml crate puts
/// the path on a line of its own (`in `data.masking``): for an unknown, missing or duplicate
/// field it is the table holding it, for a bad value it is the key itself.
pub fn describe_toml_error(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let mut lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let path = match lines.last().and_then(|l| l.strip_prefix("in `")) {
        Some(rest) => {
            let path = rest.trim_end_matches('`').to_string();
            lines.pop();
            Some(path)
        }
        None => None,
    };
    let message = lines.join(" ");
    let about_a_field = ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|p| message.starts_with(p));
    match (path, about_a_field) {
        (Some(path), true) => format!("table `[{path}]`: {message}"),
        (Some(path), false) => format!("`{path}`: {message}"),
        (None, true) => format!("the top level: {message}"),
        (None, false) => message,
    }
}

/// Reads the `[prepare]` table of a TOML file (a run config, or a file of prepare keys only,
/// for `bert prepare --config`), refusing unknown keys, with paths resolved against the file's
/// folder. The other tables of a run config are not read: `bert prepare` needs none of them.
pub fn load_prepare_config(path: &Path) -> Result<PrepareConfig> {
    let bad = |message: String| TrainError::Config {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(TrainError::io("reading", path))?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(format!("not valid TOML: {e}")))?;
    let (value, name) = match table.remove("prepare") {
        Some(toml::Value::Table(t)) => (toml::Value::Table(t), "table `[prepare]`"),
        Some(_) => return Err(bad("`prepare` must be a table".into())),
        None => (toml::Value::Table(table), "the prepare keys"),
    };
    let mut config: PrepareConfig = value.try_into().map_err(|e: toml::de::Error| {
        // The table is the root of what was deserialised, so the error cannot name it.
        let detail = describe_toml_error(&e);
        let detail = detail.strip_prefix("the top level: ").unwrap_or(&detail);
        bad(format!("{name}: {detail}"))
    })?;
    config.resolve_relative_to(path.parent().unwrap_or(Path::new("")));
    Ok(config)
}

impl RunConfig {
    /// Reads a run config, applies `--set` overrides, and validates it.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(TrainError::io("reading", path))?;
        Self::parse(&text, path, overrides)
    }

    /// Moves the run's outputs to `out` (`bert train --out`): `out_dir` becomes `out`, and an
    /// `export_dir` from the file inside the old `out_dir` moves with it to the same place
    /// inside `out`, so two runs of one config with different `--out` never export into one
    /// folder. An `export_dir` an override set, or one outside the old run folder, is where the
    /// user wants the export and stays; one outside is returned so the caller can say where the
    /// export will go.
    pub fn move_run_to(&mut self, out: PathBuf) -> Option<&Path> {
        let old = std::mem::replace(&mut self.out_dir, out);
        if self.overridden.iter().any(|k| k == "export_dir") {
            return None;
        }
        let export = self.export_dir.as_mut()?;
        match export.strip_prefix(&old) {
            Ok(inside) => {
                *export = self.out_dir.join(inside);
                None
            }
            Err(_) => Some(export.as_path()),
        }
    }

    /// Parses a run config text (see [`RunConfig::load`]).
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        let bad = |message: String| TrainError::Config {
            path: path.to_path_buf(),
            message,
        };
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let mut overridden = Vec::with_capacity(overrides.len());
        for o in overrides {
            overridden.push(apply_override(&mut doc, o)?);
        }
        let mut config: RunConfig = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| bad(describe_toml_error(&e)))?;
        config.overridden = overridden;
        // Relative paths are relative to the config file, so a config runs from anywhere.
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.resolve_paths(&base);
        config.validate().map_err(bad)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| *p = resolve_relative(base, p);
        fix(&mut self.out_dir);
        fix(&mut self.data.train);
        if let Some(v) = self.data.validation.as_mut() {
            fix(v);
        }
        if let Some(p) = self.model.config.as_mut() {
            fix(p);
        }
        if let Some(p) = self.model.init_from.as_mut() {
            fix(p);
        }
        if let Some(p) = self.export_dir.as_mut() {
            fix(p);
        }
        if let Some(p) = self.prepare.as_mut() {
            p.resolve_relative_to(base);
        }
        if let Some(t) = self.tokenizer.as_mut() {
            t.resolve_paths(base);
        }
    }

    /// Checks values that no run can use, naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.train.steps == 0 {
            return Err("`train.steps` must be at least 1".into());
        }
        if self.data.batch_size == 0 {
            return Err("`data.batch_size` must be at least 1".into());
        }
        if self.train.accumulation == 0 {
            return Err("`train.accumulation` must be at least 1".into());
        }
        // The keys given, over valid defaults, through the masking's own range check.
        self.data
            .masking
            .apply(MaskingParams::default())
            .validate()
            .map_err(|m| format!("`[data.masking]`: {m}"))?;
        if self.data.prefetch == 0 {
            return Err("`data.prefetch` must be at least 1".into());
        }
        if !(self.optimizer.learning_rate > 0.0 && self.optimizer.learning_rate.is_finite()) {
            return Err(format!(
                "`optimizer.learning_rate` is {}, expected a positive number",
                self.optimizer.learning_rate
            ));
        }
        for (key, b) in [
            ("optimizer.beta1", self.optimizer.beta1),
            ("optimizer.beta2", self.optimizer.beta2),
        ] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("`{key}` is {b}, expected a value in [0, 1)"));
            }
        }
        if self.optimizer.epsilon.is_nan() || self.optimizer.epsilon <= 0.0 {
            return Err("`optimizer.epsilon` must be positive".into());
        }
        if self.optimizer.weight_decay.is_nan() || self.optimizer.weight_decay < 0.0 {
            return Err("`optimizer.weight_decay` must be at least 0".into());
        }
        if self.train.max_grad_norm.is_nan() || self.train.max_grad_norm < 0.0 {
            return Err("`train.max_grad_norm` must be at least 0 (0 disables clipping)".into());
        }
        if self.schedule.warmup_steps.is_some() && self.schedule.warmup_proportion.is_some() {
            return Err(
                "set only one of `schedule.warmup_steps` and `schedule.warmup_proportion`".into(),
            );
        }
        if let Some(p) = self.schedule.warmup_proportion {
            if !(0.0..1.0).contains(&p) {
                return Err(format!(
                    "`schedule.warmup_proportion` is {p}, expected a fraction in [0, 1)"
                ));
            }
        }
        if let Some(w) = self.schedule.warmup_steps {
            if w >= self.train.steps {
                return Err(format!(
                    "`schedule.warmup_steps` ({w}) must be shorter than the run (`train.steps` = {})",
                    self.train.steps
                ));
            }
        }
        if self.schedule.power.is_nan() || self.schedule.power <= 0.0 {
            return Err("`schedule.power` must be positive".into());
        }
        if self.checkpoint.every == 0 {
            return Err("`checkpoint.every` must be at least 1".into());
        }
        if self.checkpoint.keep == 0 {
            return Err("`checkpoint.keep` must be at least 1".into());
        }
        if !(self.distributed.timeout_s.is_finite() && self.distributed.timeout_s > 0.0) {
            return Err(format!(
                "`distributed.timeout_s` must be a positive number of seconds, not {}",
                self.distributed.timeout_s
            ));
        }
        if self.eval.every == Some(0) {
            return Err("`eval.every` must be at least 1".into());
        }
        if let Some(text) = self.eval.fill_mask.iter().find(|t| !t.contains("[MASK]")) {
            return Err(format!(
                "`eval.fill_mask`: \"{text}\" has no `[MASK]` to fill"
            ));
        }
        if self.eval.batch_size == Some(0) {
            return Err("`eval.batch_size` must be at least 1".into());
        }
        if self.train.log_every == 0 {
            return Err("`train.log_every` must be at least 1".into());
        }
        if self.model.preset.is_some() && self.model.config.is_some() {
            return Err("set only one of `model.preset` and `model.config`".into());
        }
        if self.model.preset.is_none()
            && self.model.config.is_none()
            && self.model.init_from.is_none()
        {
            return Err("set `model.preset` (tiny, mini, small, medium, base, large), `model.config` or `model.init_from`".into());
        }
        if let Some(t) = &self.tokenizer {
            if t.inputs.is_empty() {
                return Err(
                    "table `[tokenizer]`: `inputs`: give at least one corpus file, folder or glob"
                        .into(),
                );
            }
        }
        if let Some(p) = &self.prepare {
            p.validate()
                .map_err(|e| format!("table `[prepare]`: {e}"))?;
        }
        Ok(())
    }

    /// Warm-up steps after resolving the proportion (default 1% of the run).
    pub fn warmup_steps(&self) -> u64 {
        match (self.schedule.warmup_steps, self.schedule.warmup_proportion) {
            (Some(w), _) => w,
            (None, Some(p)) => (p * self.train.steps as f64).round() as u64,
            (None, None) => self.train.steps / 100,
        }
    }

    /// The model config: preset, `config.json` or `init_from`'s, then the overrides.
    /// `data_vocab_size` fills `vocab_size` when no override gives it.
    pub fn model_config(&self, data_vocab_size: usize) -> Result<BertConfig> {
        let m = &self.model;
        let bad = |message: String| TrainError::Config {
            path: PathBuf::from("model"),
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
            BertConfig::load(&dir.join(bert_model::hf::CONFIG_FILE))?
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
        c.validate().map_err(|e| bad(e.to_string()))?;
        if c.vocab_size < data_vocab_size {
            return Err(bad(format!(
                "`model.vocab_size` ({}) is smaller than the data's vocabulary ({data_vocab_size})",
                c.vocab_size
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The smallest valid run config; other modules' tests extend it.
    pub(crate) const MINIMAL: &str = r#"
        seed = 1
        out_dir = "runs/x"
        [model]
        preset = "tiny"
        [data]
        train = "data/train"
        batch_size = 8
        [train]
        steps = 100
    "#;

    fn parse(text: &str, overrides: &[&str]) -> Result<RunConfig> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        RunConfig::parse(text, Path::new("cfg/run.toml"), &o)
    }

    #[test]
    fn distributed_table_is_read_and_checked() {
        let c = parse(MINIMAL, &[]).unwrap();
        assert!(c.distributed.devices.is_empty());
        assert_eq!(c.distributed.timeout_s, 300.0);
        let c = parse(
            MINIMAL,
            &[
                "distributed.devices=[\"cuda:0\",\"cuda:1\"]",
                "distributed.timeout_s=30",
            ],
        )
        .unwrap();
        assert_eq!(c.distributed.devices, ["cuda:0", "cuda:1"]);
        assert_eq!(c.distributed.timeout_s, 30.0);
        for bad in ["0", "-5"] {
            let err = parse(MINIMAL, &[&format!("distributed.timeout_s={bad}")])
                .unwrap_err()
                .to_string();
            assert!(err.contains("distributed.timeout_s"), "{err}");
        }
        let err = parse(MINIMAL, &["distributed.nodes=2"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nodes"), "{err}");
    }

    #[test]
    fn data_masking_table_replaces_prepared_keys_and_is_checked() {
        use bert_data::masking::MaskCount;
        let c = parse(MINIMAL, &[]).unwrap();
        assert!(c.data.masking.is_empty());
        let c = parse(
            MINIMAL,
            &[
                "data.masking.masked_lm_prob=0.3",
                "data.masking.mask_count=\"bernoulli\"",
            ],
        )
        .unwrap();
        let prepared = MaskingParams::default();
        assert_eq!(
            c.data.masking.apply(prepared),
            MaskingParams {
                masked_lm_prob: 0.3,
                count: MaskCount::Bernoulli,
                ..prepared
            }
        );
        for (bad, key) in [
            ("data.masking.masked_lm_prob=1.5", "masked_lm_prob"),
            (
                "data.masking.max_predictions_per_seq=0",
                "max_predictions_per_seq",
            ),
            ("data.masking.mask_count=\"poisson\"", "poisson"),
            ("data.masking.rate=0.3", "rate"),
        ] {
            let err = parse(MINIMAL, &[bad]).unwrap_err().to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_are_berts() {
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.optimizer.epsilon, 1e-6);
        assert_eq!(c.optimizer.weight_decay, 0.01);
        assert_eq!(c.train.max_grad_norm, 1.0);
        assert_eq!(c.warmup_steps(), 1);
        assert_eq!(c.out_dir, Path::new("cfg/runs/x"));
        assert_eq!(
            resolve_relative(Path::new("configs"), Path::new("../runs/q")),
            Path::new("runs/q")
        );
        assert_eq!(
            resolve_relative(Path::new("configs"), Path::new("/abs/x")),
            Path::new("/abs/x")
        );
        assert_eq!(
            resolve_relative(Path::new(""), Path::new("../x")),
            Path::new("../x")
        );
        let m = c.model_config(1000).unwrap();
        assert_eq!((m.hidden_size, m.vocab_size), (128, 1000));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = parse(
            &MINIMAL.replace("steps = 100", "steps = 100\nstepz = 3"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("stepz"), "{err}");
        let err = parse(MINIMAL, &["data.batch_size=0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("data.batch_size"), "{err}");
        let err = parse(MINIMAL, &["schedule.warmup_steps=100"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("warmup_steps") && err.contains("shorter"),
            "{err}"
        );
        let err = parse(MINIMAL, &["optimizer.kind=\"sgd\""])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sgd"), "{err}");
        let err = parse(
            MINIMAL,
            &["eval.fill_mask=[\"a [MASK] .\", \"no mask here\"]"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("eval.fill_mask") && err.contains("\"no mask here\""),
            "{err}"
        );
        let err = parse(MINIMAL, &["train.precision=\"bfloat16\""])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("precision") && err.contains("bfloat16") && err.contains("bf16"),
            "{err}"
        );
        assert_eq!(
            parse(MINIMAL, &["train.precision=\"bf16\""])
                .unwrap()
                .train
                .precision,
            bert_model::Precision::Bf16
        );
        assert_eq!(
            parse(MINIMAL, &[]).unwrap().train.precision,
            bert_model::Precision::Fp32
        );
        let err = parse(MINIMAL, &["model.num_attention_heads=3"])
            .unwrap()
            .model_config(100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_attention_heads"), "{err}");
        let err = parse(MINIMAL, &["model.vocab_size=50"])
            .unwrap()
            .model_config(100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vocab_size"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_in_every_table_naming_file_table_and_key() {
        let full = format!(
            "{MINIMAL}\n[tokenizer]\ninputs = [\"corpus\"]\nout = \"tok\"\n\
             [prepare]\ninputs = [\"corpus\"]\nvocab = \"tok/vocab.txt\"\n"
        );
        let c = parse(&full, &[]).unwrap();
        let t = c.tokenizer.as_ref().unwrap();
        // Paths are the config folder's; defaults are the library's.
        assert_eq!(t.out, Path::new("cfg/tok"));
        assert_eq!(t.inputs, ["cfg/corpus"]);
        let defaults = TrainVocabOptions::default();
        assert_eq!(
            (t.vocab_size, t.lowercase, t.min_frequency),
            (
                defaults.vocab_size,
                defaults.lowercase,
                defaults.min_frequency
            )
        );
        let p = c.prepare.as_ref().unwrap();
        assert_eq!(p.vocab, Path::new("cfg/tok/vocab.txt"));
        assert_eq!(p.masked_lm_prob, MaskingParams::default().masked_lm_prob);
        for (key, table) in [
            ("tokenizer.lowercas=true", "[tokenizer]"),
            ("prepare.max_seq_lenght=5", "[prepare]"),
            ("train.stepz=3", "[train]"),
            ("data.masking.rate=0.3", "[data.masking]"),
        ] {
            let err = parse(&full, &[key]).unwrap_err().to_string();
            let name = key.split('=').next().unwrap().rsplit('.').next().unwrap();
            assert!(
                err.contains("cfg/run.toml") && err.contains(table) && err.contains(name),
                "{key}: {err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
        let err = parse(&full, &["colour=1"]).unwrap_err().to_string();
        assert!(err.contains("top level") && err.contains("colour"), "{err}");
        // A bad value names its key.
        let err = parse(&full, &["tokenizer.vocab_size=\"big\""])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`tokenizer.vocab_size`: invalid type"),
            "{err}"
        );
        // Values the prepare step would refuse are refused when the run file is read.
        let err = parse(&full, &["prepare.dupe_factor=0"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[prepare]") && err.contains("dupe_factor"),
            "{err}"
        );
    }

    #[test]
    fn a_prepare_file_is_read_with_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[prepare]\nvocab = \"v.txt\"\nseed = 3\n").unwrap();
        let p = load_prepare_config(&path).unwrap();
        assert_eq!((p.seed, p.vocab.clone()), (3, dir.path().join("v.txt")));
        std::fs::write(&path, "vocab = \"v.txt\"\n").unwrap();
        assert_eq!(
            load_prepare_config(&path).unwrap().vocab,
            dir.path().join("v.txt")
        );
        std::fs::write(&path, "[prepare]\nmax_seq_lenght = 5\n").unwrap();
        let err = load_prepare_config(&path).unwrap_err().to_string();
        assert!(
            err.contains("p.toml") && err.contains("[prepare]") && err.contains("max_seq_lenght"),
            "{err}"
        );
    }

    #[test]
    fn overrides_parse_as_toml() {
        let c = parse(
            MINIMAL,
            &[
                "train.steps=5000",
                "optimizer.learning_rate=2e-4",
                "optimizer.kind=lamb",
                "model.hidden_act=relu",
            ],
        )
        .unwrap();
        assert_eq!(c.train.steps, 5000);
        assert_eq!(c.optimizer.learning_rate, 2e-4);
        assert_eq!(c.optimizer.kind, crate::optim::OptimizerKind::Lamb);
        assert_eq!(c.model_config(10).unwrap().hidden_act, Activation::Relu);
        assert!(parse(MINIMAL, &["novalue"]).is_err());
    }

    #[test]
    fn out_moves_an_export_inside_the_run_folder_and_keeps_one_outside() {
        let path = Path::new("/cfg/run.toml");
        let inside = MINIMAL.replacen("[model]", "export_dir = \"runs/x/export\"\n[model]", 1);
        let mut c = RunConfig::parse(&inside, path, &[]).unwrap();
        assert_eq!(c.move_run_to(PathBuf::from("/elsewhere/y")), None);
        assert_eq!(c.out_dir, PathBuf::from("/elsewhere/y"));
        assert_eq!(c.export_dir, Some(PathBuf::from("/elsewhere/y/export")));

        let outside = MINIMAL.replacen("[model]", "export_dir = \"exports/x\"\n[model]", 1);
        let mut c = RunConfig::parse(&outside, path, &[]).unwrap();
        assert_eq!(
            c.move_run_to(PathBuf::from("/elsewhere/y")),
            Some(Path::new("/cfg/exports/x"))
        );
        assert_eq!(c.export_dir, Some(PathBuf::from("/cfg/exports/x")));

        let mut c = RunConfig::parse(MINIMAL, path, &[]).unwrap();
        assert_eq!(c.move_run_to(PathBuf::from("/elsewhere/y")), None);
        assert_eq!(c.export_dir, None);

        // An export folder set on the command line stays where it was put, even inside.
        let set = ["export_dir = \"runs/x/mine\"".to_string()];
        let mut c = RunConfig::parse(&inside, path, &set).unwrap();
        assert_eq!(c.move_run_to(PathBuf::from("/elsewhere/y")), None);
        assert_eq!(c.out_dir, PathBuf::from("/elsewhere/y"));
        assert_eq!(c.export_dir, Some(PathBuf::from("/cfg/runs/x/mine")));
    }
}
