//! Parquet input: documents from a string column, errors naming file and row.
#![cfg(feature = "parquet")]

use crate::support;

use std::path::Path;
use std::sync::Arc;

use bert_data::{CorpusOptions, CorpusReader};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// Writes `(id, text)` rows (text `None` = null) in row groups of `group` rows, snappy; the
/// id is the row number.
fn write_parquet(path: &Path, texts: &[Option<String>], group: usize) {
    write_parquet_with_ids(path, texts, group, |row| row as i64);
}

/// As [`write_parquet`], with the id of row `r` given by `id(r)`.
fn write_parquet_with_ids(
    path: &Path,
    texts: &[Option<String>],
    group: usize,
    id: impl Fn(usize) -> i64,
) {
    let schema = Arc::new(
        parse_message_type(
            "message schema { REQUIRED INT64 id; OPTIONAL BYTE_ARRAY text (UTF8); }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
    for (g, chunk) in texts.chunks(group).enumerate() {
        let mut rg = writer.next_row_group().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let ids: Vec<i64> = (0..chunk.len()).map(|i| id(g * group + i)).collect();
        col.typed::<Int64Type>()
            .write_batch(&ids, None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = chunk
            .iter()
            .flatten()
            .map(|s| ByteArray::from(s.as_str()))
            .collect();
        let defs: Vec<i16> = chunk.iter().map(|t| i16::from(t.is_some())).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, Some(&defs), None)
            .unwrap();
        col.close().unwrap();
        rg.close().unwrap();
    }
    writer.close().unwrap();
}

fn read(path: &Path, field: &str, skip: bool) -> bert_data::Result<(Vec<Vec<String>>, u64)> {
    let mut r = CorpusReader::open(CorpusOptions {
        inputs: vec![path.display().to_string()],
        text_field: field.into(),
        skip_bad_records: skip,
        ..Default::default()
    })?;
    let mut docs = Vec::new();
    while let Some(d) = r.next_document()? {
        docs.push(d.paragraphs);
    }
    Ok((docs, r.stats().bad_records))
}

#[test]
fn parquet_documents_match_jsonl_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = support::gen_docs(50, 31);
    let pq = tmp.path().join("wiki.parquet");
    write_parquet(&pq, &docs.iter().cloned().map(Some).collect::<Vec<_>>(), 16);
    let jl = tmp.path().join("wiki.jsonl");
    support::write_jsonl(&jl, &docs);
    let (from_pq, bad) = read(&pq, "text", false).unwrap();
    let (from_jl, _) = read(&jl, "text", false).unwrap();
    assert_eq!(bad, 0);
    assert_eq!(from_pq.len(), 50);
    assert_eq!(from_pq, from_jl);
}

#[test]
fn parquet_errors_name_file_row_and_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let pq = tmp.path().join("wiki.parquet");
    let rows = vec![
        Some("W1 w2. W3 w4.".to_string()),
        Some("W5 w6.".to_string()),
        None,
        Some("W7 w8.".to_string()),
    ];
    write_parquet(&pq, &rows, 3);
    let err = read(&pq, "text", false).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:3:", pq.display())), "{err}");
    assert!(err.contains("is null"), "{err}");
    let (docs, bad) = read(&pq, "text", true).unwrap();
    assert_eq!((docs.len(), bad), (3, 1));
    let err = read(&pq, "body", false).unwrap_err().to_string();
    assert!(
        err.contains("no column \"body\"") && err.contains("id, text"),
        "{err}"
    );
}

#[test]
fn parquet_rows_group_into_documents_by_an_id_column() {
    let tmp = tempfile::tempdir().unwrap();
    let pq = tmp.path().join("books.parquet");
    // Seven one-sentence rows of books 0, 0, 0, 1, 1, 2, 2; row groups of 2 rows, so a book
    // crosses a row-group boundary.
    let rows: Vec<Option<String>> = (0..7).map(|i| Some(format!("W{i} w1."))).collect();
    let book = [0i64, 0, 0, 1, 1, 2, 2];
    write_parquet_with_ids(&pq, &rows, 2, |r| book[r]);
    let read_grouped = |field: &str| {
        let mut r = CorpusReader::open(CorpusOptions {
            inputs: vec![pq.display().to_string()],
            groupings: vec![bert_data::Grouping {
                document_id_field: Some(field.into()),
                records_per_document: 0,
            }],
            ..Default::default()
        })?;
        let mut docs = Vec::new();
        while let Some(d) = r.next_document()? {
            docs.push(d.paragraphs);
        }
        Ok::<_, bert_data::DataError>((docs, r.stats().records))
    };
    let (docs, records) = read_grouped("id").unwrap();
    assert_eq!(records, 7);
    assert_eq!(
        docs,
        vec![
            vec!["W0 w1.", "W1 w1.", "W2 w1."],
            vec!["W3 w1.", "W4 w1."],
            vec!["W5 w1.", "W6 w1."],
        ]
    );
    let err = read_grouped("book").unwrap_err().to_string();
    assert!(
        err.contains("no column \"book\"") && err.contains("document_id_field"),
        "{err}"
    );
}
