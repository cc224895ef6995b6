//! Document grouping for corpora stored one sentence (or one paragraph) per record, such as
//! the HuggingFace copy of BookCorpus. Read as they are, such records become one-sentence
//! documents: next-sentence pairs can then only be random, "random" B-sentences come from the
//! neighbouring sentences of the same book, and the validation split cuts through books.
//! Grouping gathers consecutive records into one document, by an id field (a book id) or by
//! count, so instances are built as from whole books.
//!
//! A document never spans two files: a file's end closes the open document.

use std::collections::VecDeque;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::record::{RawDocument, Record};

/// How the records of one input are gathered into documents. The default keeps one document
/// per record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grouping {
    /// JSONL/Parquet field naming the document a record belongs to (a book id, say):
    /// consecutive records with equal values form one document.
    pub document_id_field: Option<String>,
    /// Consecutive records per document (0: no count limit). Alone it gathers every N
    /// records of a file; with `document_id_field` it cuts a longer document into pieces.
    pub records_per_document: usize,
}

impl Grouping {
    /// True when every record is a document of its own.
    pub fn is_none(&self) -> bool {
        self.document_id_field.is_none() && self.records_per_document <= 1
    }

    /// Records a document may hold before it is closed (`usize::MAX`: no limit).
    fn limit(&self) -> usize {
        match (self.records_per_document, &self.document_id_field) {
            (0, Some(_)) => usize::MAX,
            (0, None) => 1,
            (n, _) => n,
        }
    }

    /// Checks the settings, naming `what` (the input or the config table) in the message.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        if self.document_id_field.as_deref() == Some("") {
            return Err(format!(
                "{what}: document_id_field is empty (give the field holding the document id, \
                 or leave it out)"
            ));
        }
        Ok(())
    }
}

/// One entry of a prepare config's `inputs`: a path, folder or glob (grouped by the config's
/// own `document_id_field` / `records_per_document`), or a table with the path and a grouping
/// of its own, so that one config can mix whole-article records (Wikipedia) with
/// one-sentence records (BookCorpus).
///
/// ```toml
/// inputs = [
///     "data/wikipedia",
///     { path = "data/bookcorpus", records_per_document = 256 },
/// ]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum InputSpec {
    /// A file, folder or glob pattern, grouped by the config-wide settings.
    Path(String),
    /// A file, folder or glob with its own grouping.
    Table(InputTable),
}

/// The table form of an input: its path and its own grouping (absent keys: one document per
/// record, whatever the config-wide settings say).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTable {
    /// File, folder or glob pattern.
    pub path: String,
    /// See [`Grouping::document_id_field`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id_field: Option<String>,
    /// See [`Grouping::records_per_document`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_document: Option<usize>,
}

impl InputSpec {
    /// The file, folder or glob.
    pub fn path(&self) -> &str {
        match self {
            Self::Path(p) => p,
            Self::Table(t) => &t.path,
        }
    }

    /// The same input at another path (for resolving relative paths).
    pub fn with_path(&self, path: String) -> Self {
        match self {
            Self::Path(_) => Self::Path(path),
            Self::Table(t) => Self::Table(InputTable { path, ..t.clone() }),
        }
    }

    /// The grouping of this input: its own for a table, `config_wide` for a plain path.
    pub fn grouping(&self, config_wide: &Grouping) -> Grouping {
        match self {
            Self::Path(_) => config_wide.clone(),
            Self::Table(t) => Grouping {
                document_id_field: t.document_id_field.clone(),
                records_per_document: t.records_per_document.unwrap_or(0),
            },
        }
    }
}

impl From<String> for InputSpec {
    fn from(path: String) -> Self {
        Self::Path(path)
    }
}

impl From<&str> for InputSpec {
    fn from(path: &str) -> Self {
        Self::Path(path.to_owned())
    }
}

impl<'de> Deserialize<'de> for InputSpec {
    // Hand-written rather than `untagged`, so that a bad table says which key is wrong
    // instead of "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = InputSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a path or glob, or a table { path, document_id_field, records_per_document }",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<InputSpec, E> {
                Ok(InputSpec::Path(s.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<InputSpec, A::Error> {
                InputTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(InputSpec::Table)
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

/// The document being gathered.
#[derive(Debug)]
struct OpenDocument {
    doc: RawDocument,
    key: Option<String>,
    records: usize,
}

/// Gathers consecutive records into documents; finished documents queue up in order.
#[derive(Debug, Default)]
pub(crate) struct Grouper {
    open: Option<OpenDocument>,
    ready: VecDeque<RawDocument>,
}

impl Grouper {
    /// Adds the next record of the current file.
    pub fn push(&mut self, record: Record, grouping: &Grouping) {
        if record.paragraphs.is_empty() {
            return;
        }
        if self.open.as_ref().is_some_and(|o| o.key != record.key) {
            self.close();
        }
        let open = self.open.get_or_insert_with(|| OpenDocument {
            doc: RawDocument::default(),
            key: record.key,
            records: 0,
        });
        open.doc.paragraphs.extend(record.paragraphs);
        open.records += 1;
        if open.records >= grouping.limit() {
            self.close();
        }
    }

    /// Closes the open document (at the end of a file).
    pub fn close(&mut self) {
        if let Some(open) = self.open.take() {
            if !open.doc.paragraphs.is_empty() {
                self.ready.push_back(open.doc);
            }
        }
    }

    /// The next finished document, if any.
    pub fn pop(&mut self) -> Option<RawDocument> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str, key: Option<&str>) -> Record {
        Record {
            paragraphs: vec![text.to_owned()],
            key: key.map(str::to_owned),
        }
    }

    fn drain(g: &mut Grouper) -> Vec<Vec<String>> {
        std::iter::from_fn(|| g.pop())
            .map(|d| d.paragraphs)
            .collect()
    }

    #[test]
    fn records_with_one_id_form_one_document_cut_at_the_count() {
        let grouping = Grouping {
            document_id_field: Some("book".into()),
            records_per_document: 3,
        };
        let mut g = Grouper::default();
        for (t, k) in [
            ("a1", "a"),
            ("a2", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("b3", "b"),
            ("b4", "b"),
            ("a3", "a"),
        ] {
            g.push(rec(t, Some(k)), &grouping);
        }
        g.close();
        assert_eq!(
            drain(&mut g),
            vec![
                vec!["a1", "a2"],
                vec!["b1", "b2", "b3"],
                vec!["b4"],
                vec!["a3"]
            ]
        );
    }

    #[test]
    fn count_grouping_and_no_grouping() {
        let by_two = Grouping {
            records_per_document: 2,
            ..Grouping::default()
        };
        let mut g = Grouper::default();
        for t in ["1", "2", "3"] {
            g.push(rec(t, None), &by_two);
        }
        g.push(
            Record {
                paragraphs: vec![],
                key: None,
            },
            &by_two,
        );
        g.close();
        assert_eq!(drain(&mut g), vec![vec!["1", "2"], vec!["3"]]);
        let mut g = Grouper::default();
        for t in ["1", "2"] {
            g.push(rec(t, None), &Grouping::default());
        }
        assert_eq!(drain(&mut g), vec![vec!["1"], vec!["2"]]);
    }

    #[test]
    fn inputs_are_paths_or_tables_and_bad_keys_are_named() {
        #[derive(Deserialize)]
        struct T {
            inputs: Vec<InputSpec>,
        }
        let t: T =
            serde_json::from_str(r#"{"inputs": ["a", {"path": "b", "records_per_document": 7}]}"#)
                .unwrap();
        assert_eq!(t.inputs[0], InputSpec::Path("a".into()));
        let wide = Grouping {
            document_id_field: Some("id".into()),
            records_per_document: 0,
        };
        assert_eq!(t.inputs[0].grouping(&wide), wide);
        assert_eq!(
            t.inputs[1].grouping(&wide),
            Grouping {
                document_id_field: None,
                records_per_document: 7
            }
        );
        let err = serde_json::from_str::<T>(r#"{"inputs": [{"path": "b", "records_per_doc": 7}]}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("records_per_doc"), "{err}");
        assert!(Grouping {
            document_id_field: Some(String::new()),
            records_per_document: 0
        }
        .validate("x")
        .is_err());
    }
}
