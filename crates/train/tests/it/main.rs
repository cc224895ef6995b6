//! The training crate's integration tests, in one binary: one optimiser step (`step`), the
//! learning-rate schedule (`schedule`) and twelve AdamW steps (`torch_parity`) against
//! references, whole runs that learn (`learning`), resume bit for bit and catch damaged
//! checkpoints (`resume`), data parallelism over Burn's collective (`distributed`), precision
//! and shard checks before a run (`precision`, `shards`), `bert plot`'s renderer (`plot`), and the TensorBoard event files (`tensorboard`).
//!
//! Tests that train hold [`support::SERIAL`]: they share process-wide state (the backend's
//! generator, reseeded every micro-batch, and Burn's collective).

mod support;

mod distributed;
mod learning;
mod plot;
mod precision;
mod resume;
mod schedule;
mod shards;
mod step;
mod tensorboard;
mod torch_parity;
