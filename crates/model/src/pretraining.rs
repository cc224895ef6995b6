//! The pre-training forward pass: MLM on gathered masked positions, NSP, losses and accuracies.

use burn::tensor::{backend::Backend, Int, Tensor};

use crate::model::BertForPreTraining;

/// One pre-training batch on a device. Rows are padded to a common length; the masked-position
/// arrays are padded to `max_predictions` with weight 0.
#[derive(Debug, Clone)]
pub struct PretrainingBatch<B: Backend> {
    /// `[batch, seq]` token ids (masked tokens already replaced).
    pub input_ids: Tensor<B, 2, Int>,
    /// `[batch, seq]` segment ids, 0 for A and 1 for B.
    pub token_type_ids: Tensor<B, 2, Int>,
    /// `[batch, seq]`, 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor<B, 2, Int>,
    /// `[batch, max_predictions]` positions (within the row) of the masked tokens.
    pub masked_positions: Tensor<B, 2, Int>,
    /// `[batch, max_predictions]` original ids at those positions.
    pub masked_labels: Tensor<B, 2, Int>,
    /// `[batch, max_predictions]` 1.0 for real predictions, 0.0 for padding slots.
    pub masked_weights: Tensor<B, 2>,
    /// `[batch]` labels of the sentence-level head: NSP (0 when B follows A, 1 when B is random,
    /// HuggingFace's convention) or SOP (0 in order, 1 swapped). `None` for MLM-only training:
    /// then neither the pooler nor the head runs, so neither gets a gradient.
    pub nsp_labels: Option<Tensor<B, 1, Int>>,
}

/// Losses and counts of one pre-training forward pass. Counts are sums (not ratios) so that
/// evaluation can add them up across batches exactly.
#[derive(Debug, Clone)]
pub struct PretrainingOutput<B: Backend> {
    /// `mlm_loss + nsp_loss`, shape `[1]`: what the optimiser minimises (`mlm_loss` alone
    /// without sentence-level labels).
    pub loss: Tensor<B, 1>,
    /// Mean cross-entropy over real masked positions, `[1]`.
    pub mlm_loss: Tensor<B, 1>,
    /// Mean NSP (or SOP) cross-entropy over the batch, `[1]` (0 without sentence-level labels).
    pub nsp_loss: Tensor<B, 1>,
    /// Weighted count of masked positions predicted correctly, `[1]`.
    pub mlm_correct: Tensor<B, 1>,
    /// Weighted count of masked positions (sum of weights), `[1]`.
    pub mlm_total: Tensor<B, 1>,
    /// Number of NSP labels predicted correctly, `[1]`.
    pub nsp_correct: Tensor<B, 1>,
    /// Number of NSP labels: the batch's sequences, or 0 without sentence-level labels.
    pub nsp_total: usize,
    /// Number of sequences in the batch.
    pub sequences: usize,
}

/// Scalars read back from a [`PretrainingOutput`] (one device sync); `default()` is all zeros,
/// the start of a sum over batches.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PretrainingMetrics {
    /// Total loss.
    pub loss: f64,
    /// MLM loss.
    pub mlm_loss: f64,
    /// NSP loss.
    pub nsp_loss: f64,
    /// Weighted correct MLM predictions.
    pub mlm_correct: f64,
    /// Weighted MLM predictions.
    pub mlm_total: f64,
    /// Correct NSP predictions.
    pub nsp_correct: f64,
    /// NSP predictions (0 in MLM-only training).
    pub nsp_total: f64,
    /// Sequences.
    pub sequences: f64,
}

impl PretrainingMetrics {
    /// Number of values in [`sums`](Self::sums).
    pub const SUMS: usize = 7;

    /// The additive fields (everything but `loss`) in a fixed order, to send partial sums
    /// through one all-reduce; [`set_sums`](Self::set_sums) reads them back.
    pub fn sums(&self) -> [f64; Self::SUMS] {
        [
            self.mlm_loss,
            self.nsp_loss,
            self.mlm_correct,
            self.mlm_total,
            self.nsp_correct,
            self.nsp_total,
            self.sequences,
        ]
    }

    /// Sets the additive fields from values in [`sums`](Self::sums) order (`loss` is kept).
    pub fn set_sums(&mut self, v: &[f64; Self::SUMS]) {
        [
            self.mlm_loss,
            self.nsp_loss,
            self.mlm_correct,
            self.mlm_total,
            self.nsp_correct,
            self.nsp_total,
            self.sequences,
        ] = *v;
    }

    /// MLM accuracy in `[0, 1]` (0 when there were no predictions).
    pub fn mlm_accuracy(&self) -> f64 {
        if self.mlm_total > 0.0 {
            self.mlm_correct / self.mlm_total
        } else {
            0.0
        }
    }

    /// NSP accuracy in `[0, 1]`.
    pub fn nsp_accuracy(&self) -> f64 {
        if self.nsp_total > 0.0 {
            self.nsp_correct / self.nsp_total
        } else {
            0.0
        }
    }
}

impl<B: Backend> PretrainingOutput<B> {
    /// Reads the scalars back to the host.
    pub fn metrics(&self) -> PretrainingMetrics {
        let all = Tensor::cat(
            vec![
                self.loss.clone(),
                self.mlm_loss.clone(),
                self.nsp_loss.clone(),
                self.mlm_correct.clone(),
                self.mlm_total.clone(),
                self.nsp_correct.clone(),
            ],
            0,
        );
        // NaN metrics (not an error) when the device cannot answer: the trainer's NaN policy
        // then stops or skips, as for any non-finite loss.
        let v: Vec<f64> = crate::host::host_values(all, "the step's metrics")
            .unwrap_or_else(|_| vec![f64::NAN; 6]);
        PretrainingMetrics {
            loss: v[0],
            mlm_loss: v[1],
            nsp_loss: v[2],
            mlm_correct: v[3],
            mlm_total: v[4],
            nsp_correct: v[5],
            nsp_total: self.nsp_total as f64,
            sequences: self.sequences as f64,
        }
    }
}

impl<B: Backend> BertForPreTraining<B> {
    /// The pre-training forward pass. The MLM head runs only on the gathered masked positions,
    /// which is most of the saving over a full-sequence head (15% of positions).
    pub fn forward_pretraining(&self, batch: PretrainingBatch<B>) -> PretrainingOutput<B> {
        let [rows, seq] = batch.input_ids.dims();
        let [_, predictions] = batch.masked_positions.dims();
        let device = batch.input_ids.device();
        let encoded =
            self.bert
                .forward(batch.input_ids, batch.token_type_ids, batch.attention_mask);
        let hidden = encoded.last_hidden_state.dims()[2];

        // Flat index of each masked slot into the [rows * seq] hidden states.
        let row_offsets = Tensor::<B, 1, Int>::arange(0..rows as i64, &device)
            .mul_scalar(seq as i64)
            .reshape([rows, 1]);
        let flat_index = (batch.masked_positions + row_offsets).reshape([rows * predictions]);
        let gathered = encoded
            .last_hidden_state
            .reshape([rows * seq, hidden])
            .select(0, flat_index);
        let mlm_logits = self.mlm.forward(gathered, self.word_embeddings());

        let weights = batch.masked_weights.reshape([rows * predictions]);
        let (mlm_nll, mlm_hit) = crate::fused::cross_entropy(
            mlm_logits,
            batch.masked_labels.reshape([rows * predictions]),
        );
        let mlm_total = weights.clone().sum();
        // An all-padding batch has no predictions: its MLM loss is 0, not NaN.
        let denominator = mlm_total.clone().clamp_min(1e-6);
        let mlm_loss = (mlm_nll * weights.clone()).sum() / denominator;
        let mlm_correct = (mlm_hit * weights).sum();

        let Some(nsp_labels) = batch.nsp_labels else {
            return PretrainingOutput {
                loss: mlm_loss.clone(),
                mlm_loss,
                nsp_loss: Tensor::zeros([1], &device),
                mlm_correct,
                mlm_total,
                nsp_correct: Tensor::zeros([1], &device),
                nsp_total: 0,
                sequences: rows,
            };
        };
        let nsp_logits = self.nsp_logits(encoded.pooler_output);
        let (nsp_nll, nsp_hit) = crate::fused::cross_entropy(nsp_logits, nsp_labels);
        let nsp_loss = nsp_nll.mean();
        let nsp_correct = nsp_hit.sum();

        PretrainingOutput {
            loss: mlm_loss.clone() + nsp_loss.clone(),
            mlm_loss,
            nsp_loss,
            mlm_correct,
            mlm_total,
            nsp_correct,
            nsp_total: rows,
            sequences: rows,
        }
    }
}
