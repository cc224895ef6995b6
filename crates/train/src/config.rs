//! The run configuration: one TOML file describes a run. It is parsed once, here, into the
//! typed sections of the components they configure (each section, with its defaults and its
//! checks, lives beside its component: [`ScheduleSection`] in `schedule`, [`DataSection`] in
//! `shard_data`, …), so every default is written once and unknown keys and impossible values
//! are refused before any work, each message naming the file, the table and the key. This
//! module composes the sections, reads the file and applies `--set` overrides.

use std::path::{Path, PathBuf};

use bert_data::PrepareConfig;
use bert_fsutil::resolve_relative;
use bert_model::BertConfig;
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointSection;
use crate::collective::DistributedSection;
use crate::error::{Result, TrainError};
use crate::eval::EvalSection;
use crate::model_spec::ModelSection;
use crate::optim::OptimizerConfig;
use crate::pipeline::{self, PipelineReport, TokenizerSection};
use crate::schedule::ScheduleSection;
use crate::shard_data::{DataSection, ShardData};
use crate::step::TrainSection;

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
    #[serde(default = "RunConfig::default_device")]
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
    /// The file this config was read from, for messages that arise later (the model's values
    /// are checked once the data's vocabulary is known). Not part of the recorded config.
    #[serde(skip)]
    pub source: PathBuf,
}

impl RunConfig {
    fn default_device() -> String {
        "cpu".into()
    }
}

/// Applies one `--set a.b.c=value` override to a parsed TOML document. The value is parsed as
/// TOML (`3`, `1e-4`, `true`, `"x"`, `[1, 2]`), or taken as a string when it does not parse.
/// Returns the dotted key it assigned.
pub fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<String> {
    let bad = |message: String| TrainError::Override {
        assignment: assignment.to_string(),
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

/// The error of a config that failed with `overrides` applied, blamed on the override that
/// caused it: the one whose key the message names, else the first that makes the file (which
/// is fine alone) fail; else on the file.
fn blame(
    file: &toml::Table,
    overrides: &[String],
    keys: &[String],
    path: &Path,
    message: String,
) -> TrainError {
    let on_file = |message: String| TrainError::Config {
        path: path.to_path_buf(),
        message,
    };
    if overrides.is_empty() {
        return on_file(message);
    }
    if let Some((assignment, _)) = overrides
        .iter()
        .zip(keys)
        .find(|(_, key)| message.contains(&format!("`{key}`")))
    {
        return TrainError::Override {
            assignment: assignment.clone(),
            message,
        };
    }
    if RunConfig::from_table(file.clone(), path).is_err() {
        return on_file(message);
    }
    for assignment in overrides {
        let mut one = file.clone();
        if apply_override(&mut one, assignment).is_ok() {
            if let Err(alone) = RunConfig::from_table(one, path) {
                return TrainError::Override {
                    assignment: assignment.clone(),
                    message: alone,
                };
            }
        }
    }
    TrainError::Override {
        assignment: overrides.join(" "),
        message,
    }
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

    /// Parses a run config text (see [`RunConfig::load`]). A value that an override made
    /// unusable is blamed on that `--set`, not on the file.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        let bad = |message: String| TrainError::Config {
            path: path.to_path_buf(),
            message,
        };
        let file: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let mut doc = file.clone();
        let mut overridden = Vec::with_capacity(overrides.len());
        for o in overrides {
            overridden.push(apply_override(&mut doc, o)?);
        }
        let mut config = match Self::from_table(doc, path) {
            Ok(c) => c,
            Err(message) => return Err(blame(&file, overrides, &overridden, path, message)),
        };
        config.overridden = overridden;
        Ok(config)
    }

    /// The config a parsed document (overrides applied) describes, with its paths resolved
    /// against `path`'s folder and its values checked; the error as one line naming the key.
    fn from_table(doc: toml::Table, path: &Path) -> std::result::Result<Self, String> {
        let mut config: RunConfig = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| describe_toml_error(&e))?;
        // Relative paths are relative to the config file, so a config runs from anywhere.
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.resolve_paths(&base);
        config.source = path.to_path_buf();
        config.validate()?;
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

    /// Checks values that no run can use, naming the key: each section's own checks, then
    /// those that need two sections.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.train.validate()?;
        self.data.validate()?;
        self.optimizer.validate()?;
        self.schedule.validate(self.train.steps)?;
        self.checkpoint.validate()?;
        self.distributed.validate()?;
        self.eval.validate()?;
        self.model.validate()?;
        if let Some(t) = &self.tokenizer {
            t.validate()?;
        }
        if let Some(p) = &self.prepare {
            p.validate()
                .map_err(|e| format!("table `[prepare]`: {e}"))?;
        }
        Ok(())
    }

    /// Opens the run's shards (`data.train`, `data.validation`), checked against its
    /// `[prepare]` table (see [`ShardData::open`]).
    pub fn open_shards(&self) -> Result<ShardData> {
        ShardData::open(
            &self.data,
            self.prepare.as_ref(),
            self.seed,
            self.train.accumulation,
        )
    }

    /// Runs the `[tokenizer]` and `[prepare]` tables when `data.train` holds no shards yet
    /// (see [`pipeline::ensure_prepared`]).
    pub fn ensure_prepared(&self, progress: bool) -> Result<PipelineReport> {
        pipeline::ensure_prepared(
            self.tokenizer.as_ref(),
            self.prepare.as_ref(),
            &self.data.train,
            progress,
        )
    }

    /// The model config: preset, `config.json` or `init_from`'s, then the overrides.
    /// `data_vocab_size` fills `vocab_size` when no override gives it.
    pub fn model_config(&self, data_vocab_size: usize) -> Result<BertConfig> {
        self.model.resolve(data_vocab_size, &self.source)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bert_data::MaskingParams;
    use bert_data::TrainVocabOptions;
    use bert_model::Activation;

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
        use bert_data::MaskCount;
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
        assert_eq!(c.schedule.warmup_steps(c.train.steps), 1);
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
            // Set on the command line: the error is the override's, not the file's.
            assert!(
                err.contains(&format!("`--set {key}`"))
                    && err.contains(table)
                    && err.contains(name)
                    && !err.contains("cfg/run.toml"),
                "{key}: {err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
        // Written in the file: the file is named.
        let in_file = full.replacen("[train]\n", "[train]\nstepz = 3\n", 1);
        assert_ne!(in_file, full);
        let err = parse(&in_file, &[]).unwrap_err().to_string();
        assert!(
            err.contains("cfg/run.toml") && err.contains("[train]") && err.contains("stepz"),
            "{err}"
        );
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
    fn numbers_no_run_can_use_are_refused_naming_the_key() {
        for (set, key) in [
            ("train.peak_tflops=0", "`train.peak_tflops`"),
            ("train.peak_tflops=-3.5", "`train.peak_tflops`"),
            (
                "train.max_consecutive_skips=0",
                "`train.max_consecutive_skips`",
            ),
            ("eval.max_batches=0", "`eval.max_batches`"),
            ("data.validation=\"data/train\"", "`data.validation`"),
        ] {
            let err = parse(MINIMAL, &[set]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("`--set {set}`")) && err.contains(key),
                "{set}: {err}"
            );
        }
        assert!(parse(MINIMAL, &["train.peak_tflops=989.4"]).is_ok());
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
