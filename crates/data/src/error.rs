//! The crate's error type: every failure names the file (and line or record) it concerns.

use std::path::PathBuf;

/// Everything that can go wrong between a raw corpus and a batch.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An operating-system call on a file or folder failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "opening".
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A corpus record could not be read (malformed JSON, missing text field, truncated stream).
    #[error("{}:{line}: {message}", path.display())]
    BadRecord {
        /// The corpus file.
        path: PathBuf,
        /// 1-based line (JSONL, text) or row (Parquet, Arrow) number.
        line: u64,
        /// What was wrong and what was expected.
        message: String,
    },
    /// An input path or glob matched nothing, or names something unreadable.
    #[error("input {input}: {message}")]
    Input {
        /// The path or glob as given.
        input: String,
        /// What was wrong.
        message: String,
    },
    /// The vocabulary or tokenizer file is unusable.
    #[error("vocabulary {}: {message}", path.display())]
    Vocab {
        /// The vocabulary or tokenizer file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The tokenizer failed on some text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A shard or index is corrupt, truncated, of an unknown version or inconsistent.
    #[error("shard {}: {message}", path.display())]
    Shard {
        /// The shard or index file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A shard's content does not match the checksum in its own header: the file is corrupt.
    #[error(
        "shard {}: checksum mismatch: header says {recorded}, content gives {actual}; the file \
         is corrupt (copy it again or re-run `bert prepare`)",
        path.display()
    )]
    ShardChecksum {
        /// The shard file.
        path: PathBuf,
        /// The checksum its header records.
        recorded: String,
        /// The checksum of its content.
        actual: String,
    },
    /// A shard's header disagrees with what `index.json` (or the run config) says about it:
    /// a replaced or swapped file, or shards of different prepare runs mixed.
    #[error(
        "shard {}: {field} is {found} there but {expected} in {expected_from}: the data was \
         replaced or comes from another prepare run (re-run `bert prepare`)",
        path.display()
    )]
    ShardMismatch {
        /// The shard file (or the split's `index.json`).
        path: PathBuf,
        /// The header key that differs, e.g. `checksum` or `masked_lm_prob`.
        field: String,
        /// The value the shard records.
        found: String,
        /// The value expected.
        expected: String,
        /// Where the expected value comes from, e.g. `index.json`.
        expected_from: String,
    },
    /// One instance (record) of a shard holds an impossible value.
    #[error("shard {}: instance {record}: {message}", path.display())]
    ShardRecord {
        /// The shard file.
        path: PathBuf,
        /// 0-based instance index inside the shard.
        record: usize,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A shard set was made with another vocabulary than the caller expects.
    #[error(
        "{}: made with vocabulary {found}, but vocabulary {expected} was expected \
         (re-run `bert prepare` with the model's vocabulary)",
        path.display()
    )]
    VocabMismatch {
        /// The shard set or shard.
        path: PathBuf,
        /// The hash the caller expected.
        expected: String,
        /// The hash recorded in the data.
        found: String,
    },
    /// The inputs gave nothing to train on, or no validation data where some was asked for.
    #[error("{0}")]
    Empty(String),
    /// Another process is writing the same output.
    #[error(transparent)]
    Locked(#[from] bert_fsutil::LockError),
    /// A configuration value is out of range or inconsistent.
    #[error("config: {0}")]
    Config(String),
    /// The loader's background thread stopped unexpectedly.
    #[error("loader: {0}")]
    Loader(String),
}

/// Result alias for this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Builds a closure that wraps an `io::Error` with an action and a path.
pub(crate) fn io_err<P: Into<PathBuf>>(
    action: &'static str,
    path: P,
) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.into();
    move |source| DataError::Io {
        action,
        path,
        source,
    }
}

impl From<bert_fsutil::FsError> for DataError {
    fn from(e: bert_fsutil::FsError) -> Self {
        DataError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}
