//! Parquet input (HuggingFace `wikipedia` / `bookcorpus` dumps): one document per row from a
//! named string column, read with parquet's arrow-free record API, one row group at a time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::Field;
use parquet::schema::types::Type;

use super::text::paragraphs_of;
use super::{CorpusOptions, CorpusStats};
use crate::error::{io_err, DataError, Result};
use crate::record::Record;

/// An open Parquet file streaming the text column.
pub(crate) struct ParquetFile {
    path: PathBuf,
    rows: RowIter<'static>,
    /// Column naming each row's document, when grouped by one.
    id_field: Option<String>,
    /// Rows read so far (the next row is `row + 1`, 1-based in errors).
    row: u64,
    size: u64,
    counter: Arc<AtomicU64>,
    finished: bool,
}

impl ParquetFile {
    /// Opens `path` and projects it onto the `text_field` column and the `id_field` column, if
    /// any (an error lists the columns that exist when one is missing).
    pub(crate) fn open(
        path: &Path,
        text_field: &str,
        id_field: Option<&str>,
        counter: Arc<AtomicU64>,
    ) -> Result<Self> {
        let file = File::open(path).map_err(io_err("opening", path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bad = |message: String| DataError::BadRecord {
            path: path.to_path_buf(),
            line: 0,
            message,
        };
        let reader = SerializedFileReader::new(file)
            .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        let schema = reader.metadata().file_metadata().schema();
        let fields = schema.get_fields();
        let column = |name: &str, setting: &str| {
            fields
                .iter()
                .find(|f| f.name() == name)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
                    bad(format!(
                        "no column {name:?} (columns: {}); set {setting}",
                        names.join(", ")
                    ))
                })
        };
        let mut projected = vec![column(text_field, "text_field")?];
        if let Some(id) = id_field {
            projected.push(column(id, "document_id_field")?);
        }
        let projection = Type::group_type_builder(schema.name())
            .with_fields(projected)
            .build()
            .map_err(|e| bad(format!("cannot project onto {text_field:?}: {e}")))?;
        let rows = RowIter::from_file_into(Box::new(reader))
            .project(Some(projection))
            .map_err(|e| bad(format!("cannot read column {text_field:?}: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            rows,
            id_field: id_field.map(str::to_owned),
            row: 0,
            size,
            counter,
            finished: false,
        })
    }

    /// The next record, `None` at the end of the file.
    pub(crate) fn next_record(
        &mut self,
        options: &CorpusOptions,
        _stats: &mut CorpusStats,
    ) -> Result<Option<Record>> {
        if self.finished {
            return Ok(None);
        }
        let Some(row) = self.rows.next() else {
            self.finished = true;
            self.counter.fetch_add(self.size, Ordering::Relaxed);
            return Ok(None);
        };
        self.row += 1;
        let bad = |message: String| DataError::BadRecord {
            path: self.path.clone(),
            line: self.row,
            message,
        };
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                // A decoding error cannot be stepped over inside a row group.
                self.finished = true;
                return Err(bad(format!("row {}: cannot decode ({e})", self.row)));
            }
        };
        let column = |name: &str| {
            row.get_column_iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, f)| f)
        };
        let text = match column(&options.text_field) {
            Some(Field::Str(s)) => s.clone(),
            Some(Field::Null) | None => {
                return Err(bad(format!(
                    "row {}: column {:?} is null (expected document text)",
                    self.row, options.text_field
                )))
            }
            Some(other) => {
                return Err(bad(format!(
                    "row {}: column {:?} is not a string ({other:?})",
                    self.row, options.text_field
                )))
            }
        };
        let key = match self.id_field.as_deref() {
            None => None,
            Some(id) => Some(match column(id) {
                Some(Field::Str(s)) => s.clone(),
                Some(Field::Null) | None => {
                    return Err(bad(format!(
                        "row {}: document id column {id:?} is null",
                        self.row
                    )))
                }
                Some(other) => other.to_string(),
            }),
        };
        Ok(Some(Record {
            paragraphs: paragraphs_of(&text),
            key,
        }))
    }
}
