//! `metrics.jsonl`: one JSON line per training step and per evaluation, appended as the run goes.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use bert_data::Objective;
use bert_fsutil::write_atomic;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// One training step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Always `"train"`.
    pub kind: String,
    /// Optimiser step (1-based: the number of updates done after it).
    pub step: u64,
    /// Total loss.
    pub loss: f64,
    /// MLM loss.
    pub mlm_loss: f64,
    /// NSP loss (`mlm_nsp` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsp_loss: Option<f64>,
    /// MLM accuracy on the step's masked positions.
    pub mlm_accuracy: f64,
    /// NSP accuracy on the step's sequences (`mlm_nsp` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsp_accuracy: Option<f64>,
    /// Sentence-order loss (`mlm_sop` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sop_loss: Option<f64>,
    /// Sentence-order accuracy on the step's sequences (`mlm_sop` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sop_accuracy: Option<f64>,
    /// Real tokens over the padded slots of the step's batches (1 when nothing is padding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_rate: Option<f64>,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Sequences per second over this step.
    pub seq_per_s: f64,
    /// Real tokens per second over this step.
    pub tokens_per_s: f64,
    /// Seconds since the run started (across resumes).
    pub elapsed_s: f64,
    /// True when the update was skipped (non-finite values).
    pub skipped: bool,
    /// fp16 only: the loss scale this step ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// fp16 only: the scaled gradients overflowed, so the update was skipped and the scale
    /// lowered (expected now and then; not a NaN-policy event).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflow: bool,
    /// Data-parallel runs: seconds of the step spent in collective calls (the count and the
    /// gradient all-reduce, waiting for the slowest rank included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_s: Option<f64>,
    /// Model FLOP/s of this rank over this step (the matrix products of its batches' shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_per_s: Option<f64>,
    /// Model FLOPs utilisation: `flops_per_s` over the device's peak, when it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfu: Option<f64>,
}

/// One evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Always `"eval"`.
    pub kind: String,
    /// Step after which it ran.
    pub step: u64,
    /// MLM loss (mean over masked positions).
    pub mlm_loss: f64,
    /// NSP loss (mean over sequences; `mlm_nsp` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsp_loss: Option<f64>,
    /// MLM accuracy.
    pub mlm_accuracy: f64,
    /// NSP accuracy (`mlm_nsp` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsp_accuracy: Option<f64>,
    /// Sentence-order loss (mean over sequences; `mlm_sop` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sop_loss: Option<f64>,
    /// Sentence-order accuracy (`mlm_sop` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sop_accuracy: Option<f64>,
    /// Sequences evaluated.
    pub sequences: u64,
}

/// A pair head's loss and accuracy under the names `objective` gives them, as
/// `[nsp_loss, nsp_accuracy, sop_loss, sop_accuracy]`: NSP for `mlm_nsp`, SOP for `mlm_sop`,
/// none for `mlm`.
pub(crate) fn pair_fields(objective: Objective, loss: f64, accuracy: f64) -> [Option<f64>; 4] {
    match objective {
        Objective::MlmNsp => [Some(loss), Some(accuracy), None, None],
        Objective::MlmSop => [None, None, Some(loss), Some(accuracy)],
        Objective::Mlm => [None; 4],
    }
}

/// `", NSP loss 0.6931, NSP accuracy 0.5000"` (or SOP), empty without a pair head: the tail
/// of the one-line summaries of a step or an evaluation.
fn pair_summary(nsp: (Option<f64>, Option<f64>), sop: (Option<f64>, Option<f64>)) -> String {
    let mut out = String::new();
    for (name, (loss, accuracy)) in [("NSP", nsp), ("SOP", sop)] {
        if let Some(l) = loss {
            out.push_str(&format!(", {name} loss {l:.4}"));
        }
        if let Some(a) = accuracy {
            out.push_str(&format!(", {name} accuracy {a:.4}"));
        }
    }
    out
}

impl EvalRecord {
    /// One line for people: `MLM loss …, MLM accuracy …[, NSP/SOP loss and accuracy] (N
    /// sequences)`.
    pub fn summary(&self) -> String {
        format!(
            "MLM loss {:.4}, MLM accuracy {:.4}{} ({} sequences)",
            self.mlm_loss,
            self.mlm_accuracy,
            pair_summary(
                (self.nsp_loss, self.nsp_accuracy),
                (self.sop_loss, self.sop_accuracy)
            ),
            self.sequences
        )
    }
}

/// The run's metrics file.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `dir/metrics.jsonl` for appending, first dropping every line after step `keep_upto`
    /// (a resumed run rewrites the steps the killed run did after its last checkpoint) and any
    /// torn last line.
    pub fn open(dir: &Path, keep_upto: u64) -> Result<Self> {
        Self::open_file(dir.join("metrics.jsonl"), keep_upto)
    }

    /// [`open`](Self::open) for a log at `path` (its folder must exist).
    pub fn open_file(path: PathBuf, keep_upto: u64) -> Result<Self> {
        if path.exists() {
            let f = File::open(&path).map_err(TrainError::io("reading", &path))?;
            let mut kept = String::new();
            for line in BufReader::new(f).lines() {
                let line = line.map_err(TrainError::io("reading", &path))?;
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if v.get("step")
                    .and_then(|s| s.as_u64())
                    .is_some_and(|s| s <= keep_upto)
                {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
            write_atomic(&path, kept.as_bytes())?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(TrainError::io("opening", &path))?;
        Ok(Self { path, file })
    }

    /// Appends one record as a line.
    pub fn append<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record).expect("records serialise");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(TrainError::io("appending to", &self.path))
    }
}

/// Reads every record of a metrics file (for `bert plot` and tests), skipping torn lines.
pub fn read_metrics(path: &Path) -> Result<(Vec<StepRecord>, Vec<EvalRecord>)> {
    let f = File::open(path).map_err(TrainError::io("reading", path))?;
    let mut steps = Vec::new();
    let mut evals = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(TrainError::io("reading", path))?;
        if let Ok(r) = serde_json::from_str::<StepRecord>(&line) {
            if r.kind == "train" {
                steps.push(r);
                continue;
            }
        }
        if let Ok(r) = serde_json::from_str::<EvalRecord>(&line) {
            if r.kind == "eval" {
                evals.push(r);
            }
        }
    }
    Ok((steps, evals))
}
