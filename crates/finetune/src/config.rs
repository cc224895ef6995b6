//! The fine-tuning config: a TOML file with a `[finetune]` table (the model to start from, the
//! recipe and the grid) and a `[finetune.task]` table (the data and its labels), every key
//! overridable with `--set finetune.KEY=VALUE`. Relative paths are relative to the file.

use std::path::{Path, PathBuf};

use bert_data::{LabelSpace, TaskColumns, TaskFormat};
use bert_fsutil::resolve_relative;
use bert_model::{ClassifierTask, Precision};
use serde::{Deserialize, Serialize};

use crate::error::{FinetuneError, Result};
use crate::train::RunSettings;

/// The `[finetune.task]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSection {
    /// A name for reports (`sst2`, `mrpc`, …).
    pub name: String,
    /// The training split.
    pub train: PathBuf,
    /// The split every epoch is scored on (GLUE's dev set).
    pub validation: PathBuf,
    /// `tsv`, `jsonl` or `parquet`; by default from the files' extensions.
    #[serde(default)]
    pub format: Option<String>,
    /// Column of the first (or only) sentence.
    pub text_a: String,
    /// Column of the second sentence of a pair task.
    #[serde(default)]
    pub text_b: Option<String>,
    /// Column of the label.
    #[serde(default = "default_label_column")]
    pub label: String,
    /// Class names, class `i` being `labels[i]` (a classification task).
    #[serde(default)]
    pub labels: Vec<String>,
    /// A regression task (STS-B): the label is a real score; `labels` must then be empty.
    #[serde(default)]
    pub regression: bool,
}

fn default_label_column() -> String {
    "label".into()
}

/// The `[finetune]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSection {
    /// The model folder to start from: a checkpoint or export of `bert train`, or a
    /// HuggingFace BERT folder.
    pub init_from: PathBuf,
    /// Draw every weight fresh from the seed instead (same architecture and tokenizer): the
    /// baseline that shows what pre-training is worth.
    #[serde(default)]
    pub random_init: bool,
    /// The tokenizer (`vocab.txt` or `tokenizer.json`); by default the one in `init_from`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Lowercase text (uncased vocabularies; a `vocab.txt` only).
    #[serde(default = "default_true")]
    pub lowercase: bool,
    /// Where results and the best run's export go.
    pub out_dir: PathBuf,
    /// Tokens per example.
    #[serde(default = "default_max_seq_length")]
    pub max_seq_length: usize,
    /// Passes over the training split per run.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// The grid's learning rates (BERT's: 2e-5, 3e-5, 5e-5).
    #[serde(default = "default_learning_rates")]
    pub learning_rates: Vec<f64>,
    /// The grid's batch sizes (BERT's: 16, 32).
    #[serde(default = "default_batch_sizes")]
    pub batch_sizes: Vec<usize>,
    /// One run per seed at every grid point.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Share of each run's steps spent warming up.
    #[serde(default = "default_warmup")]
    pub warmup_proportion: f64,
    /// Decoupled weight decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0: none).
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
    /// Dropout before the head; by default the model's `classifier_dropout`, else its hidden
    /// dropout.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// The float type of the matrix products: `fp32`, or `bf16` (bf16 inputs, f32 accumulation
    /// and f32 master weights, as `torch.autocast`; the backend must have bf16).
    #[serde(default)]
    pub precision: Precision,
    /// Data parallelism: one replica per device named (`["cuda:0", "cuda:1"]`; `["cpu", "cpu"]`
    /// runs two on the CPU), each global batch of `batch_sizes` split between them. Empty: the
    /// one device of `--device`.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Data parallelism: how long a rank waits for the others at a collective call (each step's
    /// all-reduce; rank 0 may be writing a checkpoint or the export meanwhile) before it stops
    /// with an error naming itself, instead of hanging on a rank that died.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Checkpoint the run in progress every N steps (0: only after each epoch), for `--resume`.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// The score that ranks runs: `accuracy`, `f1`, `matthews`, `pearson` or `spearman`; by
    /// default accuracy for classification, Pearson for regression.
    #[serde(default)]
    pub metric: Option<String>,
    /// The task.
    pub task: TaskSection,
}

fn default_true() -> bool {
    true
}
fn default_max_seq_length() -> usize {
    128
}
fn default_epochs() -> usize {
    3
}
fn default_learning_rates() -> Vec<f64> {
    vec![2e-5, 3e-5, 5e-5]
}
fn default_batch_sizes() -> Vec<usize> {
    vec![16, 32]
}
fn default_seeds() -> Vec<u64> {
    vec![1]
}
fn default_warmup() -> f64 {
    0.1
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_clip() -> f64 {
    1.0
}
fn default_timeout_s() -> u64 {
    900
}
fn default_checkpoint_every() -> u64 {
    500
}

/// The metric names, in the order reports show them.
pub const METRICS: [&str; 5] = ["accuracy", "f1", "matthews", "pearson", "spearman"];

/// A whole fine-tuning config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// The `[finetune]` table.
    pub finetune: FinetuneSection,
}

impl FinetuneConfig {
    /// Reads `path`, applies `--set` overrides (`finetune.learning_rates=[3e-5]`), resolves
    /// relative paths against the file's folder and checks every value.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let bad = |message: String| {
            FinetuneError::Config(format!("config {}: {message}", path.display()))
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        for o in overrides {
            bert_train::apply_override(&mut doc, o)
                .map_err(|e| FinetuneError::Config(e.to_string()))?;
        }
        let mut config: FinetuneConfig = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| bad(bert_train::describe_toml_error(&e)))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let f = &mut config.finetune;
        for p in [
            &mut f.init_from,
            &mut f.out_dir,
            &mut f.task.train,
            &mut f.task.validation,
        ] {
            *p = resolve_relative(&base, p);
        }
        if let Some(t) = f.tokenizer.as_mut() {
            *t = resolve_relative(&base, t);
        }
        config.validate().map_err(bad)?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let f = &self.finetune;
        if f.learning_rates.is_empty() || f.batch_sizes.is_empty() || f.seeds.is_empty() {
            return Err(
                "`finetune.learning_rates`, `batch_sizes` and `seeds` each need at least one value"
                    .into(),
            );
        }
        for run in self.runs() {
            run.validate().map_err(|e| e.to_string())?;
        }
        if let Some(d) = f.classifier_dropout {
            if !(0.0..1.0).contains(&d) {
                return Err(format!(
                    "`finetune.classifier_dropout` is {d}, expected a value in [0, 1)"
                ));
            }
        }
        if f.timeout_s == 0 {
            return Err("`finetune.timeout_s` is 0, expected at least 1 second".into());
        }
        if f.max_seq_length < 4 {
            return Err(format!(
                "`finetune.max_seq_length` is {}, expected at least 4",
                f.max_seq_length
            ));
        }
        let t = &f.task;
        match (t.regression, t.labels.len()) {
            (true, 0) => {}
            (true, _) => return Err(
                "`finetune.task.labels` must be empty for a regression task (`regression = true`)"
                    .into(),
            ),
            (false, n) if n < 2 => {
                return Err(
                    "`finetune.task.labels` needs the class names (at least two), or set \
                     `regression = true`"
                        .into(),
                )
            }
            _ => {}
        }
        if let Some(metric) = &f.metric {
            let allowed: &[&str] = if t.regression {
                &["pearson", "spearman"]
            } else if t.labels.len() == 2 {
                &["accuracy", "f1", "matthews"]
            } else {
                &["accuracy", "matthews"]
            };
            if !allowed.contains(&metric.as_str()) {
                return Err(format!(
                    "`finetune.metric` is {metric:?}; this task reports {}",
                    allowed.join(", ")
                ));
            }
        }
        if let Some(format) = &t.format {
            self.format_of(Path::new(format))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The task's format, from `format` or from `path`'s extension.
    pub fn format_of(&self, path: &Path) -> Result<TaskFormat> {
        match self.finetune.task.format.as_deref() {
            Some("tsv") => Ok(TaskFormat::Tsv),
            Some("jsonl") => Ok(TaskFormat::Jsonl),
            Some("parquet") => Ok(TaskFormat::Parquet),
            Some(other) => Err(FinetuneError::Config(format!(
                "`finetune.task.format` is {other:?}, expected tsv, jsonl or parquet"
            ))),
            None => Ok(TaskFormat::of(path)?),
        }
    }

    /// The columns the task reads.
    pub fn columns(&self) -> TaskColumns {
        let t = &self.finetune.task;
        TaskColumns {
            text_a: t.text_a.clone(),
            text_b: t.text_b.clone(),
            label: t.label.clone(),
        }
    }

    /// The task's labels as the reader takes them.
    pub fn label_space(&self) -> LabelSpace {
        let t = &self.finetune.task;
        if t.regression {
            LabelSpace::Score
        } else {
            LabelSpace::Classes(t.labels.clone())
        }
    }

    /// The task as the model's head and export state it.
    pub fn classifier_task(&self) -> ClassifierTask {
        let t = &self.finetune.task;
        if t.regression {
            ClassifierTask::Regression
        } else {
            ClassifierTask::Classification {
                labels: t.labels.clone(),
            }
        }
    }

    /// The metric that ranks runs.
    pub fn metric(&self) -> &str {
        match &self.finetune.metric {
            Some(m) => m,
            None if self.finetune.task.regression => "pearson",
            None => "accuracy",
        }
    }

    /// Every run of the sweep, grid point by grid point (learning rate, then batch size), a
    /// run per seed.
    pub fn runs(&self) -> Vec<RunSettings> {
        let f = &self.finetune;
        let mut runs = Vec::new();
        for &learning_rate in &f.learning_rates {
            for &batch_size in &f.batch_sizes {
                for &seed in &f.seeds {
                    runs.push(RunSettings {
                        learning_rate,
                        batch_size,
                        epochs: f.epochs,
                        warmup_proportion: f.warmup_proportion,
                        weight_decay: f.weight_decay,
                        max_grad_norm: f.max_grad_norm,
                        seed,
                    });
                }
            }
        }
        runs
    }
}
