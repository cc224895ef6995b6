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
    /// `[batch_size * seq_len]` 0 for segment A (and padding), 1 for segment B.
    pub token_type_ids: Vec<i64>,
    /// `[batch_size * seq_len]` 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// `[batch_size * max_predictions]` positions of masked tokens (0 in padding slots).
    pub masked_positions: Vec<i64>,
    /// `[batch_size * max_predictions]` original ids at those positions (0 in padding slots).
    pub masked_labels: Vec<i64>,
    /// `[batch_size * max_predictions]` 1.0 for real predictions, 0.0 for padding slots.
    pub masked_weights: Vec<f32>,
    /// `[batch_size]` 0 when B is the true continuation of A, 1 when B is random.
    pub nsp_labels: Vec<i64>,
}

impl HostBatch {
    /// Number of real (non-padding) tokens, for tokens/s.
    pub fn real_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }
}
