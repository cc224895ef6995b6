//! The shard format: one safetensors file per shard, plus an `index.json` per split folder.
//!
//! Tensors (all 1-D, little-endian): `input_ids` (U16 when the vocabulary has at most 65,536
//! ids, else U32) and `token_type_ids` (U8) concatenated over instances, `offsets` (U64,
//! `instances + 1` entries) delimiting them, `nsp_labels` (U8). Static shards add
//! `masked_positions` (U16), `masked_labels` (like `input_ids`) and `mask_offsets` (U64).
//! The `__metadata__` header records format name and version, vocabulary hash and size,
//! sequence length, masking mode and parameters, counts and a CRC32 checksum, and, for sets of
//! another objective than `mlm_nsp` (format version 2), `objective` and `mlm_format`. The
//! pair label of every objective is stored in `nsp_labels` (`mlm_sop`: 1 = swapped; `mlm`:
//! all 0). See `docs/data-format.md`.
//!
//! One module per job: `format` (types and names), `metadata` (the facts a header records and
//! their checks), `index` (a split's `index.json`), `checksum`, `writer`, `reader` (mapping,
//! header checks, decoding) and `verify` (the reader's payload checks). Everything public is
//! re-exported here, so callers keep naming `shard::…`.

mod checksum;
mod format;
mod index;
mod metadata;
mod reader;
mod verify;
mod writer;

pub use format::{
    format_version_for, DatasetHeader, MaskingMode, ShardEntry, FORMAT_NAME, FORMAT_VERSION,
    FORMAT_VERSION_OBJECTIVES, INDEX_FILE,
};
pub use index::DatasetIndex;
pub(crate) use metadata::check_objective;
pub use reader::ShardReader;
pub use writer::ShardWriter;
