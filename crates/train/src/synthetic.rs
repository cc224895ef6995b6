//! Synthetic batches shaped like real ones (random tokens, 15% masked positions, NSP labels):
//! for benchmarks (`bert bench`) and for tests of the loop that must not depend on a corpus.

use bert_data::HostBatch;
use bert_rng::Rng;

use crate::error::{Result, TrainError};
use crate::provider::{DataFacts, DataProvider, TrainBatches};

/// Batch `i` is a pure function of `(seed, i)`, so the cursor is just `i`.
#[derive(Clone, Debug)]
pub struct SyntheticData {
    facts: DataFacts,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Tokens per sequence (every row full length, as a packed pre-training batch is).
    pub seq_len: usize,
    /// Masked slots per sequence (15% of the length, as BERT: 20 for 128).
    pub max_predictions: usize,
    seed: u64,
}

impl SyntheticData {
    /// Batches of `batch_size × seq_len` over a vocabulary of `vocab_size`.
    pub fn new(vocab_size: usize, batch_size: usize, seq_len: usize, seed: u64) -> Self {
        let max_predictions = ((seq_len as f64 * 0.15).round() as usize).max(1);
        Self {
            facts: DataFacts {
                vocab_size,
                vocab_hash: format!("synthetic-{vocab_size}"),
                max_seq_length: seq_len,
                train_instances: u64::MAX,
                tokenizer_dir: None,
                objective: bert_data::Objective::MlmNsp,
            },
            batch_size,
            seq_len,
            max_predictions,
            seed,
        }
    }

    /// Batch number `index`.
    pub fn batch(&self, index: u64) -> HostBatch {
        let mut rng = Rng::keyed(&[self.seed, index]);
        let (b, s, p) = (self.batch_size, self.seq_len, self.max_predictions);
        let vocab = self.facts.vocab_size as u64;
        let mut input_ids = Vec::with_capacity(b * s);
        let mut token_type_ids = Vec::with_capacity(b * s);
        let mut masked_positions = Vec::with_capacity(b * p);
        let mut masked_labels = Vec::with_capacity(b * p);
        for _ in 0..b {
            let split = rng.range_inclusive(2, s.saturating_sub(2).max(2));
            for i in 0..s {
                input_ids.push(5 + rng.below(vocab.saturating_sub(5).max(1)) as i64);
                token_type_ids.push(i64::from(i >= split));
            }
            let mut positions: Vec<usize> = (1..s).collect();
            rng.shuffle(&mut positions);
            let mut chosen: Vec<usize> = positions.into_iter().take(p).collect();
            chosen.sort_unstable();
            for &pos in &chosen {
                masked_positions.push(pos as i64);
                masked_labels.push(5 + rng.below(vocab.saturating_sub(5).max(1)) as i64);
            }
            for _ in chosen.len()..p {
                masked_positions.push(0);
                masked_labels.push(0);
            }
        }
        let real = (s - 1).min(p);
        HostBatch {
            batch_size: b,
            seq_len: s,
            max_predictions: p,
            attention_mask: vec![1; b * s],
            input_ids,
            token_type_ids,
            masked_positions,
            masked_labels,
            masked_weights: (0..b)
                .flat_map(|_| (0..p).map(move |k| if k < real { 1.0 } else { 0.0 }))
                .collect(),
            nsp_labels: (0..b).map(|_| rng.below(2) as i64).collect(),
        }
    }
}

struct SyntheticStream<'a> {
    data: &'a SyntheticData,
    next: u64,
}

impl TrainBatches for SyntheticStream<'_> {
    fn next_batch(&mut self) -> Result<HostBatch> {
        let b = self.data.batch(self.next);
        self.next += 1;
        Ok(b)
    }
    fn cursor(&self) -> serde_json::Value {
        serde_json::json!({ "synthetic_batch": self.next })
    }
}

impl DataProvider for SyntheticData {
    fn facts(&self) -> &DataFacts {
        &self.facts
    }

    fn train(&self, cursor: Option<&serde_json::Value>) -> Result<Box<dyn TrainBatches + '_>> {
        let next = match cursor {
            None => 0,
            Some(c) => c
                .get("synthetic_batch")
                .and_then(|v| v.as_u64())
                .ok_or_else(|| TrainError::Cursor {
                    cursor: c.to_string(),
                    kind: "synthetic-data",
                    why: String::new(),
                })?,
        };
        Ok(Box::new(SyntheticStream { data: self, next }))
    }

    fn validation(
        &self,
        _batch_size: usize,
        max_batches: Option<usize>,
    ) -> Result<Option<Vec<HostBatch>>> {
        let n = max_batches.unwrap_or(2) as u64;
        Ok(Some((0..n).map(|i| self.batch(u64::MAX - i)).collect()))
    }
}
