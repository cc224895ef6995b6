//! Raw corpora to BERT pre-training shards, and the loader that streams them to the trainer.
//!
//! No Burn dependency: batches leave this crate as plain host arrays ([`HostBatch`]); the
//! trainer turns them into tensors on its device.

pub mod batch;

pub use batch::HostBatch;
