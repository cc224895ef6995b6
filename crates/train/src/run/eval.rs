//! Evaluation: the validation metrics of a model, on one device or summed over the ranks of
//! a data-parallel group.

use bert_model::{BertForPreTraining, PretrainingMetrics};
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::distributed::Replica;
use crate::error::{Result, TrainError};
use crate::metrics::EvalRecord;
use crate::step::batch_to_device;

/// Evaluates `model` (without autodiff, so without dropout) on `batches`.
pub fn evaluate<B: AutodiffBackend>(
    model: &BertForPreTraining<B>,
    batches: &[bert_data::HostBatch],
    step: u64,
    device: &B::Device,
) -> EvalRecord {
    match evaluate_replicated(model, batches, step, device, None) {
        Ok(e) => e,
        Err(e) => unreachable!("an evaluation without a collective cannot fail: {e}"),
    }
}

/// The first [`PretrainingMetrics::SUMS`] values of an all-reduced vector, as
/// [`PretrainingMetrics::set_sums`] takes them.
pub(crate) fn sums_of<B: Backend>(
    values: &[f64],
    replica: &Replica<B>,
) -> Result<[f64; PretrainingMetrics::SUMS]> {
    values
        .get(..PretrainingMetrics::SUMS)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| TrainError::Distributed {
            rank: replica.rank(),
            world_size: replica.world_size(),
            message: format!(
                "the all-reduce returned {} metric values, expected {}",
                values.len(),
                PretrainingMetrics::SUMS
            ),
        })
}

/// [`evaluate`] as one rank of a data-parallel group: each rank evaluates its share of the
/// batches and the sums are reduced over the ranks, so every rank gets the whole set's figures.
pub fn evaluate_replicated<B: AutodiffBackend>(
    model: &BertForPreTraining<B>,
    batches: &[bert_data::HostBatch],
    step: u64,
    device: &B::Device,
    replica: Option<&Replica<B::InnerBackend>>,
) -> Result<EvalRecord> {
    let inner = burn::module::AutodiffModule::valid(model);
    let mut acc = PretrainingMetrics::default();
    for b in batches {
        let m = inner
            .forward_pretraining(batch_to_device::<B::InnerBackend>(b, device))
            .metrics();
        acc.mlm_loss += m.mlm_loss * m.mlm_total;
        acc.nsp_loss += m.nsp_loss * m.nsp_total;
        acc.mlm_correct += m.mlm_correct;
        acc.mlm_total += m.mlm_total;
        acc.nsp_correct += m.nsp_correct;
        acc.nsp_total += m.nsp_total;
    }
    if let Some(r) = replica.filter(|r| r.world_size() > 1) {
        let v = r.all_reduce_values(&acc.sums(), device, "evaluation")?;
        acc.set_sums(&sums_of(&v, r)?);
    }
    Ok(EvalRecord {
        kind: "eval".into(),
        step,
        mlm_loss: if acc.mlm_total > 0.0 {
            acc.mlm_loss / acc.mlm_total
        } else {
            0.0
        },
        nsp_loss: if acc.nsp_total > 0.0 {
            acc.nsp_loss / acc.nsp_total
        } else {
            0.0
        },
        mlm_accuracy: acc.mlm_accuracy(),
        nsp_accuracy: acc.nsp_accuracy(),
        sequences: acc.nsp_total as u64,
    })
}
