//! Raw corpora to BERT pre-training shards, and the loader that streams them to the trainer.
//!
//! The pipeline, one private module a stage: `corpus` reads documents (`grouping` gathers
//! one-sentence records into documents), `segment` splits sentences, `tokenizer` turns them
//! into WordPiece ids, `instances` builds NSP pairs as Google's original
//! `create_pretraining_data.py` (and ALBERT's sentence-order pairs), `packing` RoBERTa's packed
//! `mlm` sequences (the [`Objective`] chooses), `masking` draws masked-LM predictions, `shard`
//! stores them (safetensors), [`prepare()`] runs all of it with bounded memory, the loader
//! ([`TrainLoader`], [`EvalLoader`]) streams batches with a resumable cursor and [`inspect()`]
//! reports what a shard set holds. Their public items are re-exported here, so each has one
//! path.
//!
//! No Burn dependency: batches leave this crate as plain host arrays ([`HostBatch`]); the
//! trainer turns them into tensors on its device.

#![warn(missing_docs)]

mod ascii_wordpiece;
mod batch;
mod corpus;
mod error;
mod grouping;
mod inspect;
mod instances;
mod loader;
mod masking;
mod objective;
mod packing;
mod prepare;
mod record;
mod segment;
mod shard;
mod staging;
mod task_data;
mod tokenizer;
mod train_vocab;
mod verified;
mod wordpiece_learn;

pub use batch::{fill_rate, HostBatch};
pub use corpus::{CorpusOptions, CorpusReader, InputFormat, NonText};
pub use error::{DataError, Result};
pub use grouping::{Grouping, InputSpec, InputTable};
pub use inspect::{inspect, inspect_with, InspectReport, SplitReport};
pub use instances::Instance;
pub use loader::{epoch_order, Cursor, EvalLoader, LoaderConfig, ShardSet, TrainLoader};
pub use masking::{num_to_predict, MaskCount, MaskingParams};
pub use objective::{MlmFormat, Objective, ObjectiveSpec};
pub use prepare::{prepare, PrepareConfig, PrepareReport};
pub use segment::split_sentences;
pub use shard::{
    format_version_for, DatasetHeader, MaskingMode, ShardWriter, FORMAT_NAME, FORMAT_VERSION,
    FORMAT_VERSION_OBJECTIVES, INDEX_FILE,
};
pub use staging::lock_for_reading;
pub use task_data::{read_task_split, LabelSpace, TaskColumns, TaskExample, TaskFormat, TaskLabel};
pub use tokenizer::{vocab_hash, Vocab, VocabTxtOptions, WordPieceTokenizer};
pub use train_vocab::{train_wordpiece, TrainVocabOptions, TrainVocabReport};
pub use verified::{Verify, VerifySummary};
