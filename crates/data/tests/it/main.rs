//! The data crate's integration tests, in one binary: raw corpora to shards and back through
//! the loader (`pipeline`), the shard format and its refusals (`shards`), sentence-per-record
//! corpora grouped into documents (`grouping`), Parquet input (`parquet_input`), errors on bad
//! input (`bad_input`), the resumable loader (`loader`), tokenizer parity with HuggingFace
//! (`tokenizer_parity`) and WordPiece vocabulary training (`train_vocab`).

mod support;

mod bad_input;
mod grouping;
mod loader;
mod parquet_input;
mod pipeline;
mod shards;
mod tokenizer_parity;
mod train_vocab;
