//! What corpus readers produce: one [`Record`] per paragraph block, JSONL line or Parquet
//! row, and the [`RawDocument`]s that grouping gathers records into. Its own module, so that
//! the format readers (`corpus`) and grouping (`grouping`) share these types without
//! importing each other.

/// One document as read: paragraphs whose hard line breaks are already joined with spaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawDocument {
    /// Non-empty paragraphs in order.
    pub paragraphs: Vec<String>,
}

/// One record as read from a file, before grouping.
#[derive(Debug)]
pub(crate) struct Record {
    /// Its paragraphs (possibly none: an empty record joins no document).
    pub paragraphs: Vec<String>,
    /// The value of the document id field, when the input is grouped by one.
    pub key: Option<String>,
}
