//! Raw corpora to BERT pre-training shards, and the loader that streams them to the trainer.
//!
//! The pipeline: [`corpus`] reads documents ([`grouping`] gathers one-sentence records into
//! documents), [`segment`] splits sentences, [`tokenizer`]
//! turns them into WordPiece ids, [`instances`] builds NSP pairs as Google's original
//! `create_pretraining_data.py`, [`masking`] draws masked-LM predictions, [`shard`] stores them
//! (safetensors), [`prepare`](mod@prepare) runs all of it with bounded memory, [`loader`] streams batches
//! with a resumable cursor and [`inspect`](mod@inspect) reports what a shard set holds.
//!
//! No Burn dependency: batches leave this crate as plain host arrays ([`HostBatch`]); the
//! trainer turns them into tensors on its device.

#![warn(missing_docs)]

pub mod ascii_wordpiece;
pub mod batch;
pub mod corpus;
pub mod error;
pub mod fsutil;
pub mod grouping;
pub mod inspect;
pub mod instances;
pub mod loader;
pub mod masking;
pub mod prepare;
mod record;
pub mod segment;
pub mod shard;
mod staging;
pub mod tokenizer;
pub mod train_vocab;
pub mod verified;
pub mod wordpiece_learn;

pub use batch::HostBatch;
pub use error::{DataError, Result};

pub use corpus::InputFormat;
pub use grouping::{Grouping, InputSpec};
pub use inspect::{inspect, InspectReport, SplitReport};
pub use loader::{Cursor, EvalLoader, LoaderConfig, ShardSet, TrainLoader};
pub use masking::MaskingParams;
pub use prepare::{prepare, PrepareConfig, PrepareReport};
pub use shard::{DatasetHeader, MaskingMode};
pub use tokenizer::{Vocab, WordPieceTokenizer};
pub use verified::{Verify, VerifySummary};
