//! `bert finetune`: every run of a config's grid (learning rates × batch sizes × seeds), one
//! after another, then the spread of the score at each grid point, the best point and the best
//! run, whose model is exported as a `BertForSequenceClassification` folder.
//!
//! `results.json` in the output folder is rewritten (atomically) after every run, so a run that
//! is stopped keeps the runs it finished; the folder is locked while the sweep runs.

use std::path::{Path, PathBuf};

use bert_data::{read_task_split, VocabTxtOptions, WordPieceTokenizer};
use bert_fsutil::{write_atomic, FolderLock};
use bert_model::{
    load_classifier_dir, save_classifier_dir, BertConfig, BertForSequenceClassification,
    CONFIG_FILE,
};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

use crate::config::FinetuneConfig;
use crate::encode::encode_examples;
use crate::error::{FinetuneError, Result};
use crate::metrics::Spread;
use crate::train::{fine_tune, EpochReport, RunSettings, Scores};

/// File name of the sweep's results in the output folder.
pub const RESULTS_FILE: &str = "results.json";
/// Folder name of the best run's export in the output folder.
pub const EXPORT_DIR: &str = "export";

/// One finished run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// Its hyper-parameters.
    pub settings: RunSettings,
    /// Its epochs' reports.
    pub epochs: Vec<EpochReport>,
    /// The ranking metric after the last epoch (absent where it is undefined).
    pub score: Option<f64>,
}

/// The runs of one grid point over the seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridPoint {
    /// Learning rate.
    pub learning_rate: f64,
    /// Batch size.
    pub batch_size: usize,
    /// The spread of the score over the seeds (absent when no run has one).
    pub spread: Option<Spread>,
}

/// What a sweep gave.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepReport {
    /// The task's name.
    pub task: String,
    /// The metric that ranks runs.
    pub metric: String,
    /// The folder the runs started from.
    pub init_from: PathBuf,
    /// Whether the weights were drawn fresh (the baseline) instead.
    pub random_init: bool,
    /// Every run, in the order they ran.
    pub runs: Vec<RunResult>,
    /// Every grid point.
    pub grid: Vec<GridPoint>,
    /// Index into `grid` of the point with the best mean score.
    pub best_point: Option<usize>,
    /// Index into `runs` of the run with the best score.
    pub best_run: Option<usize>,
    /// Where the best run's model was exported.
    pub export: Option<PathBuf>,
}

/// The tokenizer file of `config`: `finetune.tokenizer`, else `tokenizer.json` or `vocab.txt`
/// in the model folder.
fn tokenizer_path(config: &FinetuneConfig) -> Result<PathBuf> {
    let f = &config.finetune;
    if let Some(t) = &f.tokenizer {
        return Ok(t.clone());
    }
    ["tokenizer.json", "vocab.txt"]
        .iter()
        .map(|name| f.init_from.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            FinetuneError::Config(format!(
                "{} holds no tokenizer.json or vocab.txt; set `finetune.tokenizer`",
                f.init_from.display()
            ))
        })
}

fn score_of(scores: &Scores, metric: &str) -> Option<f64> {
    match metric {
        "accuracy" => scores.accuracy,
        "f1" => scores.f1,
        "matthews" => scores.matthews,
        "pearson" => scores.pearson,
        "spearman" => scores.spearman,
        _ => None,
    }
}

/// Runs the sweep `config` describes on `device`. `progress` sees each run's settings (with
/// its 1-based index and the number of runs) and each epoch's report as they come.
pub fn run_sweep<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: &B::Device,
    mut progress: impl FnMut(usize, usize, &RunSettings, &EpochReport),
) -> Result<SweepReport> {
    let f = &config.finetune;
    let _lock = FolderLock::acquire(&f.out_dir.join(".lock"), &f.out_dir)
        .map_err(|e| FinetuneError::Config(e.to_string()))?;
    let tokenizer_file = tokenizer_path(config)?;
    let tokenizer = WordPieceTokenizer::from_path(
        &tokenizer_file,
        VocabTxtOptions {
            lowercase: f.lowercase,
            strip_accents: None,
        },
    )?;
    let task = config.classifier_task();
    let read = |path: &Path| -> Result<_> {
        let examples = read_task_split(
            path,
            config.format_of(path)?,
            &config.columns(),
            &config.label_space(),
        )?;
        encode_examples(&tokenizer, &examples, f.max_seq_length)
    };
    let train = read(&f.task.train)?;
    let eval = read(&f.task.validation)?;
    let model_config = BertConfig::load(&f.init_from.join(CONFIG_FILE))?;
    model_config.validate()?;
    let vocab = tokenizer.vocab();
    vocab.check_model_vocab_size(model_config.vocab_size, &tokenizer_file)?;
    if train
        .iter()
        .chain(&eval)
        .any(|e| e.ids.len() > model_config.max_position_embeddings)
    {
        return Err(FinetuneError::Config(format!(
            "`finetune.max_seq_length` is {}, the model has {} positions",
            f.max_seq_length, model_config.max_position_embeddings
        )));
    }
    let pad = vocab.special().pad;
    let metric = config.metric().to_string();
    let mut report = SweepReport {
        task: f.task.name.clone(),
        metric: metric.clone(),
        init_from: f.init_from.clone(),
        random_init: f.random_init,
        runs: Vec::new(),
        grid: Vec::new(),
        best_point: None,
        best_run: None,
        export: None,
    };
    let runs = config.runs();
    let mut best: Option<(f64, BertForSequenceClassification<B::InnerBackend>)> = None;
    for (i, settings) in runs.iter().enumerate() {
        let mut model = if f.random_init {
            BertForSequenceClassification::<B>::new(
                &model_config,
                task.outputs(),
                f.classifier_dropout
                    .unwrap_or(model_config.hidden_dropout_prob),
                settings.seed,
                device,
            )
        } else {
            load_classifier_dir::<B>(&f.init_from, Some(task.clone()), settings.seed, device)?.2
        };
        if let Some(p) = f.classifier_dropout {
            model.set_classifier_dropout(p);
        }
        let (model, epochs) = fine_tune(model, &task, &train, &eval, settings, pad, device, |e| {
            progress(i + 1, runs.len(), settings, e)
        })?;
        let score = epochs.last().and_then(|e| score_of(&e.eval, &metric));
        if let Some(s) = score {
            if best.as_ref().is_none_or(|(b, _)| s > *b) {
                best = Some((s, model.valid()));
                report.best_run = Some(report.runs.len());
            }
        }
        report.runs.push(RunResult {
            settings: settings.clone(),
            epochs,
            score,
        });
        report.grid = grid(&report.runs);
        report.best_point = best_point(&report.grid);
        write_results(&f.out_dir, &report)?;
    }
    if let Some((_, model)) = best {
        let dir = f.out_dir.join(EXPORT_DIR);
        save_classifier_dir(&model, &model_config, &task, &dir, tokenizer_file.parent())?;
        report.export = Some(dir);
        write_results(&f.out_dir, &report)?;
    }
    Ok(report)
}

fn grid(runs: &[RunResult]) -> Vec<GridPoint> {
    let mut points: Vec<GridPoint> = Vec::new();
    for run in runs {
        let s = &run.settings;
        if !points
            .iter()
            .any(|p| p.learning_rate == s.learning_rate && p.batch_size == s.batch_size)
        {
            let scores: Vec<f64> = runs
                .iter()
                .filter(|r| {
                    r.settings.learning_rate == s.learning_rate
                        && r.settings.batch_size == s.batch_size
                })
                .filter_map(|r| r.score)
                .collect();
            points.push(GridPoint {
                learning_rate: s.learning_rate,
                batch_size: s.batch_size,
                spread: Spread::of(&scores),
            });
        }
    }
    points
}

fn best_point(grid: &[GridPoint]) -> Option<usize> {
    grid.iter()
        .enumerate()
        .filter_map(|(i, p)| p.spread.map(|s| (i, s.mean)))
        .fold(None, |best: Option<(usize, f64)>, (i, m)| match best {
            Some((_, b)) if b >= m => best,
            _ => Some((i, m)),
        })
        .map(|(i, _)| i)
}

fn write_results(out_dir: &Path, report: &SweepReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| FinetuneError::Config(format!("cannot serialise the results: {e}")))?;
    write_atomic(&out_dir.join(RESULTS_FILE), text.as_bytes())
        .map_err(|e| FinetuneError::Config(e.to_string()))
}

impl SweepReport {
    /// The table `bert finetune` prints: the score at every grid point over the seeds, the
    /// best point marked, then the best run and where it was exported.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} ({}), {}: {} runs\n{:>10} {:>6}  {:>8} {:>8} {:>8} {:>8}  runs\n",
            self.task,
            if self.random_init {
                "random initialisation".to_string()
            } else {
                format!("from {}", self.init_from.display())
            },
            self.metric,
            self.runs.len(),
            "lr",
            "batch",
            "mean",
            "sd",
            "min",
            "max"
        );
        for (i, p) in self.grid.iter().enumerate() {
            let mark = if Some(i) == self.best_point {
                "  <- best"
            } else {
                ""
            };
            match p.spread {
                Some(s) => out.push_str(&format!(
                    "{:>10.1e} {:>6}  {:>8.4} {:>8.4} {:>8.4} {:>8.4}  {}{mark}\n",
                    p.learning_rate, p.batch_size, s.mean, s.std, s.min, s.max, s.runs
                )),
                None => out.push_str(&format!(
                    "{:>10.1e} {:>6}  (the metric is undefined in every run)\n",
                    p.learning_rate, p.batch_size
                )),
            }
        }
        if let Some(run) = self.best_run.and_then(|i| self.runs.get(i)) {
            let s = &run.settings;
            out.push_str(&format!(
                "best run: lr {:.1e}, batch {}, seed {}: {} {:.4}",
                s.learning_rate,
                s.batch_size,
                s.seed,
                self.metric,
                run.score.unwrap_or(f64::NAN)
            ));
            if let Some(dir) = &self.export {
                out.push_str(&format!(", exported to {}", dir.display()));
            }
            out.push('\n');
        }
        out
    }
}
