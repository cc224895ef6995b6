//! Evaluation: the validation metrics of a model, on one device or summed over the ranks of
//! a data-parallel group, and the `[eval]` table that says when and on how much.

use bert_data::Objective;
use bert_model::{BertForPreTraining, PretrainingMetrics};
use burn::tensor::backend::AutodiffBackend;

use crate::collective::Replica;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::metrics::{pair_fields, EvalRecord};
use crate::step::batch_to_device;

/// The `[eval]` table: evaluation on the validation shards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Evaluate every N steps (and always at the end); none: only at the end.
    pub every: Option<u64>,
    /// Evaluate on at most this many batches (default: the whole validation set).
    pub max_batches: Option<usize>,
    /// Batch size for evaluation (default: the training batch size).
    pub batch_size: Option<usize>,
    /// Sentences with `[MASK]` whose top predictions `bert train` logs at every evaluation
    /// (from the model being trained) and prints after exporting.
    pub fill_mask: Vec<String>,
}

impl EvalSection {
    /// Checks the values no run can use, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.every == Some(0) {
            return Err("`eval.every` must be at least 1".into());
        }
        if let Some(text) = self.fill_mask.iter().find(|t| !t.contains("[MASK]")) {
            return Err(format!(
                "`eval.fill_mask`: \"{text}\" has no `[MASK]` to fill"
            ));
        }
        if self.batch_size == Some(0) {
            return Err("`eval.batch_size` must be at least 1".into());
        }
        if self.max_batches == Some(0) {
            return Err(
                "`eval.max_batches` must be at least 1 (leave it out to evaluate on the whole \
                 validation set, or leave `data.validation` out for no evaluation)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Evaluates `model` (without autodiff, so without dropout) on `batches` of `objective`'s
/// instances; no sequences at all is an error, never a loss of 0.
pub fn evaluate<B: AutodiffBackend>(
    model: &BertForPreTraining<B>,
    batches: &[bert_data::HostBatch],
    objective: Objective,
    step: u64,
    device: &B::Device,
) -> Result<EvalRecord> {
    evaluate_replicated(model, batches, objective, step, device, None)
}

/// [`evaluate`] as one rank of a data-parallel group: each rank evaluates its share of the
/// batches and the sums are reduced over the ranks, so every rank gets the whole set's figures.
pub fn evaluate_replicated<B: AutodiffBackend>(
    model: &BertForPreTraining<B>,
    batches: &[bert_data::HostBatch],
    objective: Objective,
    step: u64,
    device: &B::Device,
    replica: Option<&Replica<B::InnerBackend>>,
) -> Result<EvalRecord> {
    let inner = burn::module::AutodiffModule::valid(model);
    let mut acc = PretrainingMetrics::default();
    for b in batches {
        let m = inner
            .forward_pretraining(batch_to_device::<B::InnerBackend>(b, device, objective))
            .metrics();
        acc.mlm_loss += m.mlm_loss * m.mlm_total;
        acc.nsp_loss += m.nsp_loss * m.nsp_total;
        acc.mlm_correct += m.mlm_correct;
        acc.mlm_total += m.mlm_total;
        acc.nsp_correct += m.nsp_correct;
        acc.nsp_total += m.nsp_total;
        acc.sequences += m.sequences;
    }
    if let Some(r) = replica.filter(|r| r.world_size() > 1) {
        let v = r.all_reduce_values(&acc.sums(), device, "evaluation")?;
        acc.set_sums(&crate::reduce::metric_sums(&v).map_err(|m| r.error(m))?);
    }
    if acc.sequences == 0.0 || acc.mlm_total == 0.0 {
        return Err(TrainError::EmptyEvaluation {
            sequences: acc.sequences as u64,
            predictions: acc.mlm_total as u64,
        });
    }
    let pair_loss = acc.nsp_loss / acc.nsp_total.max(1.0);
    let [nsp_loss, nsp_accuracy, sop_loss, sop_accuracy] =
        pair_fields(objective, pair_loss, acc.nsp_accuracy());
    Ok(EvalRecord {
        kind: "eval".into(),
        step,
        mlm_loss: acc.mlm_loss / acc.mlm_total,
        nsp_loss,
        mlm_accuracy: acc.mlm_accuracy(),
        nsp_accuracy,
        sop_loss,
        sop_accuracy,
        sequences: acc.sequences as u64,
    })
}
