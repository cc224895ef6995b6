//! The data crate's integration tests, in one binary: raw corpora to shards and back through
//! the loader (`pipeline`), the shard format and its refusals (`shards`), sentence-per-record
//! corpora grouped into documents (`grouping`), Parquet and Arrow input (`parquet_input`,
//! `arrow_input`), errors on bad input (`bad_input`), the resumable loader (`loader`), the
//! `mlm` and `mlm_sop` objectives (`objectives`), tokenizer parity with HuggingFace
//! (`tokenizer_parity`) and WordPiece vocabulary training (`train_vocab`).

mod support;

mod arrow_input;
mod bad_input;
mod grouping;
mod loader;
mod objectives;
mod parquet_input;
mod pipeline;
mod shards;
mod task_data;
mod tokenizer_parity;
mod train_vocab;
