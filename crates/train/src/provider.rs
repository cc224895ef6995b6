//! What the loop needs from the data: training batches with a restorable position, an
//! evaluation pass, and the facts to validate the run against.

use std::path::PathBuf;

use bert_data::HostBatch;

use crate::error::Result;

/// An endless stream of training batches (epochs roll over inside it).
pub trait TrainBatches {
    /// The next micro-batch.
    fn next_batch(&mut self) -> Result<HostBatch>;
    /// The position after the last returned batch, for checkpoints.
    fn cursor(&self) -> serde_json::Value;
}

/// Facts about a prepared dataset that the run is checked against.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFacts {
    /// Vocabulary size the shards were made with.
    pub vocab_size: usize,
    /// Hash of the vocabulary.
    pub vocab_hash: String,
    /// Longest sequence in the shards.
    pub max_seq_length: usize,
    /// Instances in the training split.
    pub train_instances: u64,
    /// What the instances train (`[prepare] objective`): decides the heads, the losses, the
    /// metrics and the exported class.
    pub objective: bert_data::Objective,
    /// Folder with `vocab.txt` / `tokenizer.json`, copied into checkpoints and exports.
    pub tokenizer_dir: Option<PathBuf>,
}

/// The data side of a run.
pub trait DataProvider {
    /// Facts to validate the run against.
    fn facts(&self) -> &DataFacts;
    /// Training batches, starting at `cursor` (from a checkpoint) or at the beginning.
    fn train(&self, cursor: Option<&serde_json::Value>) -> Result<Box<dyn TrainBatches + '_>>;
    /// One ordered pass over the validation split (fixed masks), at most `max_batches`;
    /// `None` when there is no validation split.
    fn validation(
        &self,
        batch_size: usize,
        max_batches: Option<usize>,
    ) -> Result<Option<Vec<HostBatch>>>;
}
