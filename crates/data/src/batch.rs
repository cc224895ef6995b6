//! The batch contract between the loader and the trainer.

use serde::{Deserialize, Serialize};

/// One batch of pre-training instances as flat row-major host arrays.
///
/// Rows are padded to `seq_len` (the longest row in the batch, or `max_seq_length`, as the
/// loader is configured); masked-position arrays are padded to `max_predictions` with weight 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostBatch {
    /// Number of sequences.
    pub batch_size: usize,
    /// Padded sequence length.
    pub seq_len: usize,
    /// Masked slots per sequence (`max_predictions_per_seq`).
    pub max_predictions: usize,
    /// `[batch_size * seq_len]` token ids, masked tokens already replaced.
    pub input_ids: Vec<i64>,
    /// `[batch_size * seq_len]` 0 for segment A (and padding), 1 for segment B (`mlm`: all 0).
    pub token_type_ids: Vec<i64>,
    /// `[batch_size * seq_len]` 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// `[batch_size * max_predictions]` positions of masked tokens (0 in padding slots).
    pub masked_positions: Vec<i64>,
    /// `[batch_size * max_predictions]` original ids at those positions (0 in padding slots).
    pub masked_labels: Vec<i64>,
    /// `[batch_size * max_predictions]` 1.0 for real predictions, 0.0 for padding slots.
    pub masked_weights: Vec<f32>,
    /// `[batch_size]` the pair label: `mlm_nsp` 0 when B is the true continuation of A, 1 when
    /// B is random; `mlm_sop` 0 in order, 1 swapped; `mlm` always 0 (no head reads it).
    pub nsp_labels: Vec<i64>,
}

impl HostBatch {
    /// Number of real (non-padding) tokens, for tokens/s.
    pub fn real_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }

    /// Padded token slots: `batch_size × seq_len`, what the model computes over.
    pub fn padded_slots(&self) -> usize {
        self.batch_size * self.seq_len
    }

    /// Packing efficiency: real tokens ÷ padded slots, in [0, 1] (0 for an empty batch). Near
    /// 1 for `mlm`'s packed sequences; lower for pair objectives' short and truncated pairs,
    /// and lower still when batches are padded to `max_seq_length` rather than to their
    /// longest row. For the step log: sum [`real_tokens`](Self::real_tokens) and
    /// [`padded_slots`](Self::padded_slots) over the micro-batches of a step (or the ranks)
    /// and divide, rather than averaging the rates of unequal batches.
    pub fn fill_rate(&self) -> f64 {
        fill_rate(self.real_tokens(), self.padded_slots())
    }
}

/// `real ÷ slots`, 0 when there are no slots: the fill rate of any number of batches.
pub fn fill_rate(real_tokens: usize, padded_slots: usize) -> f64 {
    if padded_slots == 0 {
        0.0
    } else {
        real_tokens as f64 / padded_slots as f64
    }
}
