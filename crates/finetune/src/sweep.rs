//! `bert finetune`: every run of a config's grid (learning rates × batch sizes × seeds), one
//! after another, then the spread of the score at each grid point, the best point and the best
//! run, whose model is exported as a `BertForSequenceClassification` folder.
//!
//! The output folder is locked while the sweep runs. `results.json` there is rewritten
//! (atomically) after every run, and the run in progress is checkpointed
//! ([`crate::checkpoint`]) every `checkpoint_every` steps and after every epoch. `--resume`
//! ([`SweepOptions::resume`]) keeps the finished runs, continues the one in progress from its
//! newest checkpoint and runs the rest, giving the results an uninterrupted sweep gives. The
//! export is replaced whenever a run beats the best so far, so it always holds the best finished
//! run.
//!
//! Data parallelism: with several devices or processes the whole sweep runs in one group of
//! ranks (`bert_train::on_ranks`); every rank runs every run on its share of each batch and
//! keeps the same report, and global rank 0 alone reports, checkpoints, exports and writes the
//! results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bert_data::{read_task_split, VocabTxtOptions, WordPieceTokenizer};
use bert_fsutil::{sync_dir, write_atomic, FolderLock};
use bert_model::{
    load_classifier_dir, save_classifier_dir, BertConfig, BertForSequenceClassification,
    ClassifierTask, Precision, CONFIG_FILE,
};
use bert_train::{FileDigest, ProcessGroup, Replica};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Snapshot, CHECKPOINTS_DIR};
use crate::config::FinetuneConfig;
use crate::encode::{encode_examples, Encoded};
use crate::error::{FinetuneError, Result};
use crate::metrics::Spread;
use crate::train::{fine_tune, EpochReport, RunEvent, RunSettings, Scores};

/// File name of the sweep's results in the output folder.
pub const RESULTS_FILE: &str = "results.json";
/// Folder name of the best run's export in the output folder.
pub const EXPORT_DIR: &str = "export";
/// Folder of the runs' metrics logs in the output folder: `run-NNNN.jsonl` (1-based), a line
/// per step ([`crate::train::StepStats`]) and per epoch (`"kind": "eval"`, the step, the
/// epoch's report).
pub const METRICS_DIR: &str = "metrics";

/// An epoch's line in a run's metrics log.
#[derive(Serialize)]
struct EpochRecord<'a> {
    kind: &'static str,
    step: u64,
    #[serde(flatten)]
    report: &'a EpochReport,
}

/// One finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Its hyper-parameters.
    pub settings: RunSettings,
    /// Its epochs' reports.
    pub epochs: Vec<EpochReport>,
    /// The ranking metric after the last epoch (absent where it is undefined).
    pub score: Option<f64>,
}

/// The runs of one grid point over the seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Learning rate.
    pub learning_rate: f64,
    /// Batch size.
    pub batch_size: usize,
    /// The spread of the score over the seeds (absent when no run has one).
    pub spread: Option<Spread>,
}

/// What a sweep gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// The task's name.
    pub task: String,
    /// The metric that ranks runs.
    pub metric: String,
    /// The folder the runs started from.
    pub init_from: PathBuf,
    /// Whether the weights were drawn fresh (the baseline) instead.
    pub random_init: bool,
    /// The float type of the matrix products.
    #[serde(default)]
    pub precision: Precision,
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
    /// Size and CRC32 of the task's files (`train`, `validation`), so that `--resume` refuses
    /// data that changed under a sweep.
    #[serde(default)]
    pub inputs: BTreeMap<String, FileDigest>,
}

/// How `bert finetune` runs a sweep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepOptions {
    /// Continue the sweep the output folder holds (`--resume`); without it, a folder holding
    /// one is refused.
    pub resume: bool,
    /// This process's place among several processes of one data-parallel group
    /// (torchrun-style, as `bert train`); `None`: this process is the whole group. Every process
    /// runs the same config and must see the same `out_dir` (a shared file system); process 0
    /// alone locks it and writes there.
    pub group: Option<ProcessGroup>,
}

/// What a sweep tells its caller as it goes (for progress and logs).
pub enum SweepEvent<'a> {
    /// A run starts: its 1-based index, the number of runs, its settings, and the step it
    /// continues from when it is resumed.
    Run {
        /// 1-based index.
        run: usize,
        /// Runs in the sweep.
        runs: usize,
        /// Its settings.
        settings: &'a RunSettings,
        /// The checkpoint's step when resumed.
        resumed_at: Option<u64>,
    },
    /// A step of the current run was taken.
    Step {
        /// Steps taken so far in the run.
        step: u64,
        /// Steps of the whole run.
        total_steps: u64,
        /// The step's training loss.
        loss: f64,
    },
    /// An epoch of the current run was scored.
    Epoch {
        /// 1-based index of the run.
        run: usize,
        /// Runs in the sweep.
        runs: usize,
        /// Its settings.
        settings: &'a RunSettings,
        /// The epoch's report.
        report: &'a EpochReport,
    },
    /// A checkpoint was written.
    Checkpoint(&'a Path),
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

/// Everything a run needs that is the same for every run of the sweep.
struct SweepContext<'a> {
    config: &'a FinetuneConfig,
    model_config: &'a BertConfig,
    task: &'a ClassifierTask,
    train: &'a [Encoded],
    eval: &'a [Encoded],
    pad: u32,
    checkpoints: PathBuf,
    export_dir: PathBuf,
    tokenizer_file: PathBuf,
    metric: &'a str,
    runs: usize,
}

/// What a finished run gave its sweep.
struct RunOutcome {
    epochs: Vec<EpochReport>,
    score: Option<f64>,
    exported: bool,
}

/// Runs the sweep `config` describes on `devices`, or continues the one its output folder
/// holds (`options.resume`). Several devices, or other processes (`options.group`), form one
/// data-parallel group for the whole sweep, each global batch split between the ranks.
/// `progress` sees every run, step, epoch and checkpoint as they come (from rank 0).
pub fn run_sweep<B: AutodiffBackend>(
    config: &FinetuneConfig,
    devices: &[B::Device],
    options: SweepOptions,
    progress: impl FnMut(SweepEvent<'_>) + Send,
) -> Result<SweepReport> {
    let f = &config.finetune;
    let Some(device) = devices.first() else {
        return Err(FinetuneError::Config(
            "no device to fine-tune on: name at least one".into(),
        ));
    };
    let group = options.group.as_ref();
    // Process 0 owns the output folder; the others read the sweep it holds (to skip the same
    // finished runs) and write nothing.
    let owner = group.is_none_or(|g| g.process_rank == 0);
    let _lock = if owner {
        Some(
            FolderLock::acquire(&f.out_dir.join(".lock"), &f.out_dir)
                .map_err(|e| FinetuneError::Config(e.to_string()))?,
        )
    } else {
        None
    };
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
    f.precision
        .ensure_supported::<B>(device)
        .map_err(|e| FinetuneError::Config(format!("`finetune.precision`: {e}")))?;
    let metric = config.metric().to_string();
    let mut inputs = BTreeMap::new();
    for (key, path) in [("train", &f.task.train), ("validation", &f.task.validation)] {
        let digest =
            FileDigest::of_file(path).map_err(|e| FinetuneError::io(path, "reading", e))?;
        inputs.insert(key.to_string(), digest);
    }
    let fresh = SweepReport {
        task: f.task.name.clone(),
        metric: metric.clone(),
        init_from: f.init_from.clone(),
        random_init: f.random_init,
        precision: f.precision,
        runs: Vec::new(),
        grid: Vec::new(),
        best_point: None,
        best_run: None,
        export: None,
        inputs,
    };
    let runs = config.runs();
    let context = SweepContext {
        config,
        model_config: &model_config,
        task: &task,
        train: &train,
        eval: &eval,
        pad,
        checkpoints: f.out_dir.join(CHECKPOINTS_DIR),
        export_dir: f.out_dir.join(EXPORT_DIR),
        tokenizer_file,
        metric: &metric,
        runs: runs.len(),
    };
    if owner {
        recover_export(&f.out_dir, &context.export_dir)?;
    }
    let report = earlier_sweep(&f.out_dir, &fresh, &runs, options.resume)?;
    if owner {
        bert_train::clean_partial(&context.checkpoints);
    }
    let progress = Mutex::new(progress);
    if devices.len() == 1 && group.is_none() {
        return continue_sweep::<B>(
            &context,
            &runs,
            report,
            options.resume,
            device,
            None,
            &progress,
        );
    }
    let _host = bert_train::GroupHost::start(group, devices.len())?;
    bert_train::on_ranks::<B::InnerBackend, _, FinetuneError, _>(
        devices,
        group,
        Duration::from_secs(f.timeout_s),
        |rank, replica| {
            continue_sweep::<B>(
                &context,
                &runs,
                report.clone(),
                options.resume,
                &devices[rank % devices.len()],
                Some(replica),
                &progress,
            )
        },
    )
}

/// Runs `runs` from the first one `report` lacks to the end on `device` (one rank of a
/// data-parallel group with `replica`), adding each to the report. Global rank 0 alone writes
/// `results.json` and clears the checkpoints of a finished run; every rank keeps the same
/// report, since every rank gets the same scores.
fn continue_sweep<B: AutodiffBackend>(
    context: &SweepContext<'_>,
    runs: &[RunSettings],
    mut report: SweepReport,
    resume: bool,
    device: &B::Device,
    replica: Option<&Replica<B::InnerBackend>>,
    progress: &Mutex<impl FnMut(SweepEvent<'_>) + Send>,
) -> Result<SweepReport> {
    let out_dir = &context.config.finetune.out_dir;
    let writer = replica.is_none_or(|r| r.is_writer());
    let mut best = report
        .best_run
        .and_then(|i| report.runs.get(i))
        .and_then(|r| r.score);
    let first = report.runs.len();
    for (i, settings) in runs.iter().enumerate().skip(first) {
        // Only the run in progress when the sweep stopped can have checkpoints.
        let resume = resume && i == first;
        let outcome = run_one::<B>(
            context, i, settings, best, resume, device, replica, progress,
        )?;
        if outcome.exported {
            best = outcome.score;
            report.best_run = Some(report.runs.len());
            report.export = Some(context.export_dir.clone());
        }
        report.runs.push(RunResult {
            settings: settings.clone(),
            epochs: outcome.epochs,
            score: outcome.score,
        });
        report.grid = grid(&report.runs);
        report.best_point = best_point(&report.grid);
        if writer {
            write_results(out_dir, &report)?;
            checkpoint::clear(&context.checkpoints)?;
        }
    }
    Ok(report)
}

/// Run `index` of the sweep on `device`, as one rank of a data-parallel group with `replica`.
/// Rank 0 alone reports progress, writes checkpoints and replaces the export when the run
/// beats `best`; every rank continues from the newest checkpoint when resuming.
#[allow(clippy::too_many_arguments)]
fn run_one<B: AutodiffBackend>(
    context: &SweepContext<'_>,
    index: usize,
    settings: &RunSettings,
    best: Option<f64>,
    resume: bool,
    device: &B::Device,
    replica: Option<&Replica<B::InnerBackend>>,
    progress: &Mutex<impl FnMut(SweepEvent<'_>) + Send>,
) -> Result<RunOutcome> {
    let f = &context.config.finetune;
    let writer = replica.is_none_or(|r| r.is_writer());
    let report = |event: SweepEvent<'_>| {
        if writer {
            (progress.lock().unwrap_or_else(|p| p.into_inner()))(event);
        }
    };
    let loaded = if resume {
        checkpoint::load_latest::<B>(&context.checkpoints, index, settings, device)?
    } else {
        None
    };
    report(SweepEvent::Run {
        run: index + 1,
        runs: context.runs,
        settings,
        resumed_at: loaded.as_ref().map(|l| l.resumed.progress.step),
    });
    let (mut model, resumed) = match loaded {
        Some(l) => {
            if writer {
                tracing::info!("run {} continues from {}", index + 1, l.dir.display());
            }
            (l.model, Some(l.resumed))
        }
        None => {
            let mut model = if f.random_init {
                BertForSequenceClassification::<B>::new(
                    context.model_config,
                    context.task.outputs(),
                    f.classifier_dropout
                        .unwrap_or(context.model_config.hidden_dropout_prob),
                    settings.seed,
                    device,
                )
            } else {
                load_classifier_dir::<B>(
                    &f.init_from,
                    Some(context.task.clone()),
                    settings.seed,
                    device,
                )?
                .2
            };
            if let Some(p) = f.classifier_dropout {
                model.set_classifier_dropout(p);
            }
            (model, None)
        }
    };
    model.set_precision(f.precision);
    // Rank 0 logs every step and epoch of the run; a resumed run first drops what the stopped
    // one logged after its checkpoint (and a fresh run whatever a stopped one left).
    let mut last_step = resumed.as_ref().map_or(0, |r| r.progress.step);
    let mut log = if writer {
        let dir = f.out_dir.join(METRICS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| FinetuneError::io(&dir, "creating", e))?;
        Some(bert_train::MetricsLog::open_file(
            dir.join(format!("run-{:04}.jsonl", index + 1)),
            last_step,
        )?)
    } else {
        None
    };
    let (model, epochs) = fine_tune(
        model,
        context.task,
        context.train,
        context.eval,
        settings,
        context.pad,
        device,
        resumed,
        f.checkpoint_every,
        replica,
        |event| {
            let Some(log) = log.as_mut() else {
                return Ok(());
            };
            match event {
                RunEvent::Step { stats, total_steps } => {
                    log.append(stats)?;
                    last_step = stats.step;
                    report(SweepEvent::Step {
                        step: stats.step,
                        total_steps,
                        loss: stats.loss,
                    })
                }
                RunEvent::Epoch(epoch) => {
                    log.append(&EpochRecord {
                        kind: "eval",
                        step: last_step,
                        report: epoch,
                    })?;
                    report(SweepEvent::Epoch {
                        run: index + 1,
                        runs: context.runs,
                        settings,
                        report: epoch,
                    })
                }
                RunEvent::Checkpoint {
                    progress: at,
                    model,
                    moments,
                } => {
                    let dir = checkpoint::save(
                        &context.checkpoints,
                        Snapshot {
                            run: index,
                            settings,
                            progress: at,
                            model,
                            moments,
                            config: context.model_config,
                            task: context.task,
                        },
                    )?;
                    report(SweepEvent::Checkpoint(&dir));
                }
            }
            Ok(())
        },
    )?;
    let score = epochs
        .last()
        .and_then(|e| score_of(&e.eval, context.metric));
    let beats = score.is_some_and(|s| best.is_none_or(|b| s > b));
    if writer && beats {
        // The export is replaced before the results name the run as best: a sweep stopped in
        // between reruns the run, which gives the same model again.
        replace_dir(&f.out_dir, &context.export_dir, |tmp| {
            save_classifier_dir(
                &model.valid(),
                context.model_config,
                context.task,
                tmp,
                context.tokenizer_file.parent(),
            )
            .map_err(FinetuneError::from)
        })?;
    }
    Ok(RunOutcome {
        epochs,
        score,
        exported: beats,
    })
}

/// The report to continue from: the finished runs of the sweep `out_dir` holds when resuming
/// (checked to be of this config and data), else `fresh`. Without `resume`, a folder holding an
/// earlier sweep is refused rather than overwritten.
fn earlier_sweep(
    out_dir: &Path,
    fresh: &SweepReport,
    runs: &[RunSettings],
    resume: bool,
) -> Result<SweepReport> {
    let results = out_dir.join(RESULTS_FILE);
    let has_checkpoints = !checkpoint::list(&out_dir.join(CHECKPOINTS_DIR)).is_empty();
    if !resume {
        if results.exists() || has_checkpoints {
            return Err(FinetuneError::Config(format!(
                "{} holds an earlier sweep ({}): pass `--resume` to continue it, or choose another \
                 `finetune.out_dir`",
                out_dir.display(),
                if results.exists() {
                    RESULTS_FILE
                } else {
                    CHECKPOINTS_DIR
                }
            )));
        }
        return Ok(fresh.clone());
    }
    if !results.exists() {
        if !has_checkpoints {
            tracing::info!(
                "--resume: {} holds no earlier sweep; starting one",
                out_dir.display()
            );
        }
        return Ok(fresh.clone());
    }
    let text =
        std::fs::read_to_string(&results).map_err(|e| FinetuneError::io(&results, "reading", e))?;
    let earlier: SweepReport =
        serde_json::from_str(&text).map_err(|e| FinetuneError::io(&results, "parsing", e))?;
    let differs = |what: &str, was: String, is: String| {
        Err(FinetuneError::Resume(format!(
            "{} was written for {what} {was}, the config now gives {is}",
            results.display()
        )))
    };
    if earlier.task != fresh.task
        || earlier.metric != fresh.metric
        || earlier.precision != fresh.precision
        || earlier.random_init != fresh.random_init
        || earlier.init_from != fresh.init_from
    {
        return differs(
            "task, metric, precision, random_init, init_from",
            format!(
                "{}, {}, {}, {}, {}",
                earlier.task,
                earlier.metric,
                earlier.precision,
                earlier.random_init,
                earlier.init_from.display()
            ),
            format!(
                "{}, {}, {}, {}, {}",
                fresh.task,
                fresh.metric,
                fresh.precision,
                fresh.random_init,
                fresh.init_from.display()
            ),
        );
    }
    for (key, digest) in &fresh.inputs {
        if let Some(was) = earlier.inputs.get(key) {
            if was != digest {
                return differs(
                    &format!("the {key} split with"),
                    was.to_string(),
                    digest.to_string(),
                );
            }
        }
    }
    if earlier.runs.len() > runs.len() {
        return differs(
            "a grid of at least",
            format!("{} runs", earlier.runs.len()),
            format!("{} runs", runs.len()),
        );
    }
    for (i, (done, planned)) in earlier.runs.iter().zip(runs).enumerate() {
        if &done.settings != planned {
            return differs(
                &format!("run {} with", i + 1),
                format!("{:?}", done.settings),
                format!("{planned:?}"),
            );
        }
    }
    if earlier.best_run.is_some() && !out_dir.join(EXPORT_DIR).is_dir() {
        return Err(FinetuneError::Resume(format!(
            "{} names a best run, but its export {} is missing",
            results.display(),
            out_dir.join(EXPORT_DIR).display()
        )));
    }
    tracing::info!(
        "--resume: {} of {} runs finished in {}",
        earlier.runs.len(),
        runs.len(),
        out_dir.display()
    );
    Ok(SweepReport {
        inputs: fresh.inputs.clone(),
        ..earlier
    })
}

/// The name the export is moved to while its replacement is renamed into place.
fn old_export(out_dir: &Path) -> PathBuf {
    out_dir.join(format!(".{EXPORT_DIR}-old"))
}

/// Puts back an export that a sweep stopped while replacing it had moved aside, and removes
/// half-written ones.
fn recover_export(out_dir: &Path, export_dir: &Path) -> Result<()> {
    let old = old_export(out_dir);
    if old.is_dir() {
        if export_dir.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| FinetuneError::io(&old, "removing", e))?;
        } else {
            std::fs::rename(&old, export_dir)
                .map_err(|e| FinetuneError::io(export_dir, "restoring the export", e))?;
        }
    }
    let _ = std::fs::remove_dir_all(out_dir.join(format!(".{EXPORT_DIR}-new")));
    Ok(())
}

/// Replaces the folder `dir` with what `write` puts in a fresh temporary folder: the old folder
/// stays whole until the new one is complete, and [`recover_export`] puts it back if the process
/// dies between the two renames.
fn replace_dir(out_dir: &Path, dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = out_dir.join(format!(".{EXPORT_DIR}-new"));
    let old = old_export(out_dir);
    let fail = FinetuneError::io;
    let _ = std::fs::remove_dir_all(&tmp);
    write(&tmp)?;
    sync_dir(&tmp);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| fail(dir, "moving the old export aside", e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| fail(dir, "renaming into place", e))?;
    sync_dir(out_dir);
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| fail(&old, "removing", e))?;
    }
    Ok(())
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
