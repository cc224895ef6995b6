//! Corpus readers: plain text, JSONL (and Parquet with the `parquet` feature, Arrow IPC with
//! the `arrow` feature), optionally compressed, turned into a stream of raw documents (lists
//! of paragraphs).
//!
//! Reading streams: one record at a time, whatever the file size. Errors name the file and
//! the 1-based line (or row) where they happened; with `skip_bad_records` a bad record is
//! skipped and counted instead.
//!
//! One module per job: `inputs` (inputs to a file list, and each file's format), `decompress`
//! (opening a file by its compression), `lines` (a line-oriented file read line by line),
//! `text` and `jsonl` (records of those formats), `parquet` (with the `parquet` feature),
//! `arrow` (with the `arrow` feature) and `reader` ([`CorpusReader`], which drives them all). This module holds the options and
//! counters every format reader shares; the record types they produce are in
//! `crate::record`, so no format reader needs the others or the driver.

use serde::{Deserialize, Serialize};

use crate::grouping::Grouping;

#[cfg(feature = "arrow")]
mod arrow;
mod decompress;
mod inputs;
mod jsonl;
mod lines;
#[cfg(feature = "parquet")]
mod parquet;
mod reader;
mod sniff;
mod text;

pub use crate::record::RawDocument;
pub use reader::CorpusReader;

/// How records are laid out in an input file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Decide per file from its extension (after any `.gz`, `.zst`, `.bz2`): `.jsonl`,
    /// `.json`, `.ndjson` are JSONL, `.parquet` is Parquet, `.arrow`, `.arrows`, `.feather`,
    /// `.ipc` are Arrow IPC, anything else is plain text.
    #[default]
    Auto,
    /// Plain text: paragraphs separated by blank lines; a document is one paragraph block or
    /// one whole file (see `doc_per_file`).
    Text,
    /// One JSON object per line; the document text is in a named string field.
    Jsonl,
    /// Apache Parquet with a string column holding the document text.
    Parquet,
    /// Apache Arrow IPC, file or stream format (what HuggingFace `datasets` writes), with a
    /// string column holding the document text.
    #[serde(alias = "ipc", alias = "feather")]
    Arrow,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "text" | "txt" => Ok(Self::Text),
            "jsonl" | "json" => Ok(Self::Jsonl),
            "parquet" => Ok(Self::Parquet),
            "arrow" | "ipc" | "feather" => Ok(Self::Arrow),
            other => Err(format!(
                "unknown input format {other:?} (expected auto, text, jsonl, parquet or arrow)"
            )),
        }
    }
}

/// What to do with an input file that is not text (an image, an archive, a binary; see
/// `sniff`): its first block holds a known binary magic number, a NUL byte, or mostly bytes
/// that are not UTF-8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonText {
    /// Leave the file out, with a warning naming it and why (and count it).
    #[default]
    Skip,
    /// Stop with an error naming the file.
    Error,
}

impl std::str::FromStr for NonText {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "skip" => Ok(Self::Skip),
            "error" => Ok(Self::Error),
            other => Err(format!(
                "unknown non_text {other:?} (expected skip or error)"
            )),
        }
    }
}

/// What to read and how.
#[derive(Clone, Debug)]
pub struct CorpusOptions {
    /// Files, directories (read recursively, in sorted order) or glob patterns.
    pub inputs: Vec<String>,
    /// Record layout, or `Auto` to decide by extension.
    pub format: InputFormat,
    /// JSONL / Parquet / Arrow field holding the document text.
    pub text_field: String,
    /// Plain text: a whole file is one document (blank lines separate paragraphs) instead of
    /// every blank-line-separated block being a document.
    pub doc_per_file: bool,
    /// Skip (and count) malformed records instead of failing.
    pub skip_bad_records: bool,
    /// Files that are not text (JSONL and plain text inputs; Parquet and Arrow check their
    /// own format).
    pub non_text: NonText,
    /// How each input's records are gathered into documents, by position in `inputs`; an
    /// input without an entry keeps one document per record.
    pub groupings: Vec<Grouping>,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        Self {
            inputs: Vec::new(),
            format: InputFormat::Auto,
            text_field: "text".into(),
            doc_per_file: false,
            skip_bad_records: false,
            non_text: NonText::Skip,
            groupings: Vec::new(),
        }
    }
}

impl CorpusOptions {
    /// The grouping of input number `input`.
    pub(crate) fn grouping(&self, input: usize) -> Grouping {
        self.groupings.get(input).cloned().unwrap_or_default()
    }
}

/// Counters kept while reading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusStats {
    /// Input files opened.
    pub files: u64,
    /// Input files left out because they are not text (see [`NonText`]).
    #[serde(default)]
    pub skipped_files: u64,
    /// Documents returned.
    pub documents: u64,
    /// Records read (equal to `documents` unless records are grouped; empty ones count too).
    #[serde(default)]
    pub records: u64,
    /// Records skipped because they were malformed (only with `skip_bad_records`).
    pub bad_records: u64,
    /// Lines or records in which invalid UTF-8 was replaced by U+FFFD.
    pub invalid_utf8: u64,
}
