//! Arrow IPC input: the committed fixtures (`tests/fixtures/arrow`, written by
//! `scripts/make_arrow_fixtures.py` with pyarrow and `datasets`) in both IPC formats give the
//! documents and instances of the same text in JSONL; grouping by an id column or a record
//! count; errors naming the file (truncation) and the row (null text) or listing the columns.
#![cfg(feature = "arrow")]

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, LargeStringArray, RecordBatch, StringArray};
use arrow_ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
use arrow_ipc::CompressionType;
use bert_data::{
    prepare, CorpusOptions, CorpusReader, Grouping, InputFormat, NonText, PrepareConfig, ShardSet,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/arrow")
        .join(name)
}

/// The reader's counters at the end of its inputs.
#[derive(Debug, PartialEq)]
struct Counts {
    files: u64,
    records: u64,
    bad_records: u64,
}

/// The documents (as paragraph lists) of `options`, and the counters at the end.
fn read_with(options: CorpusOptions) -> bert_data::Result<(Vec<Vec<String>>, Counts)> {
    let mut r = CorpusReader::open(options)?;
    let mut docs = Vec::new();
    while let Some(d) = r.next_document()? {
        docs.push(d.paragraphs);
    }
    // Every byte of every file is counted once the files are read.
    assert_eq!(r.bytes_read(), r.total_bytes());
    let stats = r.stats();
    let counts = Counts {
        files: stats.files,
        records: stats.records,
        bad_records: stats.bad_records,
    };
    Ok((docs, counts))
}

fn read(path: &Path) -> bert_data::Result<(Vec<Vec<String>>, Counts)> {
    read_with(CorpusOptions {
        inputs: vec![path.display().to_string()],
        ..Default::default()
    })
}

/// `path` read with its records grouped as `grouping` says.
fn read_grouped(path: &Path, grouping: Grouping) -> bert_data::Result<Vec<Vec<String>>> {
    read_with(CorpusOptions {
        inputs: vec![path.display().to_string()],
        groupings: vec![grouping],
        ..Default::default()
    })
    .map(|(docs, _)| docs)
}

fn by_id(field: &str) -> Grouping {
    Grouping {
        document_id_field: Some(field.into()),
        records_per_document: 0,
    }
}

fn by_count(records: usize) -> Grouping {
    Grouping {
        document_id_field: None,
        records_per_document: records,
    }
}

#[test]
fn arrow_stream_folder_and_file_give_the_jsonl_documents() {
    let (expected, _) = read(&fixture("docs.jsonl")).unwrap();
    assert_eq!(expected.len(), 12);
    assert!(expected.iter().any(|d| d.len() > 1), "multi-paragraph docs");

    // `save_to_disk`'s folder: two stream-format shards, read in order; its `state.json` and
    // `dataset_info.json` are not read as JSONL.
    let (from_folder, stats) = read(&fixture("docs_saved")).unwrap();
    assert_eq!(from_folder, expected);
    assert_eq!((stats.files, stats.records, stats.bad_records), (2, 12, 0));

    // One shard on its own.
    let (first, _) = read(&fixture("docs_saved/data-00000-of-00002.arrow")).unwrap();
    assert_eq!(first[..], expected[..first.len()]);
    assert!(!first.is_empty() && first.len() < expected.len());

    // The IPC file format (several record batches).
    let (from_file, stats) = read(&fixture("docs_file.arrow")).unwrap();
    assert_eq!(from_file, expected);
    assert_eq!((stats.files, stats.records), (1, 12));
}

/// `prepare` over `input` with the test vocabulary, writing to `dir/name`; the train split's
/// instances.
fn instances(dir: &Path, name: &str, input: &Path, grouping: Grouping) -> Vec<bert_data::Instance> {
    let cfg = PrepareConfig {
        out: dir.join(name),
        validation_fraction: 0.0,
        dupe_factor: 2,
        document_id_field: grouping.document_id_field,
        records_per_document: grouping.records_per_document,
        ..support::config(dir, vec![input.display().to_string()])
    };
    prepare(&cfg).unwrap();
    let set = ShardSet::open(&cfg.out.join("train"), None).unwrap();
    (0..set.len()).map(|i| set.instance(i)).collect()
}

#[test]
fn arrow_inputs_prepare_the_jsonl_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let none = Grouping::default;
    let expected = instances(dir, "jsonl", &fixture("docs.jsonl"), none());
    assert!(expected.len() > 10, "{} instances", expected.len());
    let folder = instances(dir, "folder", &fixture("docs_saved"), none());
    assert!(folder == expected, "save_to_disk folder differs from JSONL");
    let file = instances(dir, "file", &fixture("docs_file.arrow"), none());
    assert!(file == expected, "IPC file differs from JSONL");

    let expected = instances(dir, "books", &fixture("books.jsonl"), by_id("book_id"));
    for (name, input) in [
        ("books_saved", "books_saved"),
        ("books_file", "books_file.arrow"),
    ] {
        let got = instances(dir, name, &fixture(input), by_id("book_id"));
        assert!(
            got == expected,
            "{input} grouped by book_id differs from JSONL"
        );
    }
}

#[test]
fn arrow_records_group_into_documents_by_an_id_column_or_a_count() {
    let jsonl = fixture("books.jsonl");
    let expected = read_grouped(&jsonl, by_id("book_id")).unwrap();
    assert_eq!(expected.len(), 4, "four books");
    let by_three = read_grouped(&jsonl, by_count(3)).unwrap();
    let (records, _) = read(&jsonl).unwrap();
    assert_eq!(by_three.len(), records.len().div_ceil(3));
    let capped = read_grouped(
        &jsonl,
        Grouping {
            document_id_field: Some("book_id".into()),
            records_per_document: 2,
        },
    )
    .unwrap();
    assert!(capped.len() > expected.len());

    // Stream (save_to_disk) and file format (batches of 4 rows: books cross batch
    // boundaries); a string id column and an integer one.
    for input in ["books_saved", "books_file.arrow"] {
        let path = fixture(input);
        for id in ["book_id", "book_no"] {
            assert_eq!(
                read_grouped(&path, by_id(id)).unwrap(),
                expected,
                "{input} by {id}"
            );
        }
        assert_eq!(
            read_grouped(&path, by_count(3)).unwrap(),
            by_three,
            "{input}"
        );
        let both = Grouping {
            document_id_field: Some("book_no".into()),
            records_per_document: 2,
        };
        assert_eq!(read_grouped(&path, both).unwrap(), capped, "{input}");
    }
}

/// Every shorter copy of `source` (cut after `k` bytes, for each `k` that `cut` accepts)
/// fails to read, with an error naming the copy; returns how many copies were tried.
fn cuts_are_errors(source: &Path, cut: impl Fn(usize, usize) -> bool) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(source).unwrap();
    let cut_path = tmp.path().join("cut.arrow");
    let mut tried = 0;
    for k in (0..bytes.len()).filter(|&k| cut(k, bytes.len())) {
        std::fs::write(&cut_path, &bytes[..k]).unwrap();
        let err = match read(&cut_path) {
            Ok((docs, _)) => panic!(
                "{} cut to {k} of {} bytes read as {} documents",
                source.display(),
                bytes.len(),
                docs.len()
            ),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&cut_path.display().to_string()),
            "cut at {k}: {err}"
        );
        tried += 1;
    }
    tried
}

#[test]
fn a_truncated_arrow_file_is_an_error_naming_it() {
    // The stream: every cut through its schema message (the first 336 bytes) and its
    // end-of-stream marker, among them the one dropping just that marker (which the IPC reader
    // alone would take for a whole, shorter stream), and every 17th through the batch.
    let stream = fixture("docs_saved/data-00001-of-00002.arrow");
    let tried = cuts_are_errors(&stream, |k, size| k < 400 || k + 16 > size || k % 17 == 0);
    assert!(tried > 500, "{tried}");
    let err = {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("no-eos.arrow");
        let bytes = std::fs::read(&stream).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 8]).unwrap();
        read(&p).unwrap_err().to_string()
    };
    assert!(err.contains("end-of-stream marker"), "{err}");

    // The file format: its footer is at the end, so any cut loses it.
    let file = fixture("docs_file.arrow");
    let tried = cuts_are_errors(&file, |k, size| k < 16 || k + 64 > size || k % 17 == 0);
    assert!(tried > 300, "{tried}");
}

/// Writes `columns` as one Arrow IPC file in batches of `rows_per_batch` rows: the stream
/// format unless `file_format`, buffers compressed with `compression` if any.
fn write_arrow(
    path: &Path,
    columns: Vec<(&str, ArrayRef)>,
    rows_per_batch: usize,
    file_format: bool,
    compression: Option<CompressionType>,
) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let options = IpcWriteOptions::default()
        .try_with_compression(compression)
        .unwrap();
    let out = std::fs::File::create(path).unwrap();
    let schema = batch.schema();
    let batches = (0..batch.num_rows())
        .step_by(rows_per_batch)
        .map(|at| batch.slice(at, rows_per_batch.min(batch.num_rows() - at)));
    if file_format {
        let mut w = FileWriter::try_new_with_options(out, &schema, options).unwrap();
        batches.for_each(|b| w.write(&b).unwrap());
        w.finish().unwrap();
    } else {
        let mut w = StreamWriter::try_new_with_options(out, &schema, options).unwrap();
        batches.for_each(|b| w.write(&b).unwrap());
        w.finish().unwrap();
    }
}

fn ids_and_texts(texts: &[Option<&str>]) -> Vec<(&'static str, ArrayRef)> {
    let ids: Int64Array = (0..texts.len() as i64).collect();
    vec![
        ("id", Arc::new(ids) as ArrayRef),
        (
            "text",
            Arc::new(StringArray::from(texts.to_vec())) as ArrayRef,
        ),
    ]
}

#[test]
fn arrow_errors_name_file_row_and_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [Some("W1 w2. W3 w4."), Some("W5 w6."), None, Some("W7 w8.")];
    for file_format in [false, true] {
        let path = tmp.path().join(format!("null-{file_format}.arrow"));
        // Two rows per batch: the null is the first row of the second batch.
        write_arrow(&path, ids_and_texts(&rows), 2, file_format, None);
        let err = read(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:3:", path.display())), "{err}");
        assert!(err.contains("row 3") && err.contains("is null"), "{err}");
        let (docs, stats) = read_with(CorpusOptions {
            inputs: vec![path.display().to_string()],
            skip_bad_records: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((docs.len(), stats.bad_records), (3, 1));
        assert_eq!(docs[2], ["W7 w8."]);
    }

    let books = fixture("books_file.arrow");
    let err = read_with(CorpusOptions {
        inputs: vec![books.display().to_string()],
        text_field: "body".into(),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&books.display().to_string())
            && err.contains("no column \"body\"")
            && err.contains("book_id, book_no, text")
            && err.contains("text_field"),
        "{err}"
    );
    let err = read_grouped(&fixture("books_saved"), by_id("book"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data-00000-of-00001.arrow")
            && err.contains("no column \"book\"")
            && err.contains("book_id, book_no, text")
            && err.contains("document_id_field"),
        "{err}"
    );
    let err = read_with(CorpusOptions {
        inputs: vec![books.display().to_string()],
        text_field: "book_no".into(),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("column \"book_no\" holds Int64 values"),
        "{err}"
    );

    // A null id names its row too.
    let path = tmp.path().join("null-id.arrow");
    let ids = StringArray::from(vec![Some("a"), Some("a"), None]);
    let texts = StringArray::from(vec!["W1 w2.", "W3 w4.", "W5 w6."]);
    write_arrow(
        &path,
        vec![
            ("book", Arc::new(ids) as ArrayRef),
            ("text", Arc::new(texts) as ArrayRef),
        ],
        8,
        false,
        None,
    );
    let err = read_grouped(&path, by_id("book")).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:3:", path.display())) && err.contains("is null"),
        "{err}"
    );
}

#[test]
fn compressed_buffers_and_large_strings_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = support::gen_docs(30, 5);
    let jsonl = tmp.path().join("docs.jsonl");
    support::write_jsonl(&jsonl, &docs);
    let (expected, _) = read(&jsonl).unwrap();
    let texts: Vec<&str> = docs.iter().map(String::as_str).collect();
    for compression in [
        None,
        Some(CompressionType::LZ4_FRAME),
        Some(CompressionType::ZSTD),
    ] {
        for file_format in [false, true] {
            let path = tmp
                .path()
                .join(format!("{compression:?}-{file_format}.arrow"));
            let large = LargeStringArray::from(texts.clone());
            let columns = vec![
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(0..30)) as ArrayRef,
                ),
                ("text", Arc::new(large) as ArrayRef),
            ];
            write_arrow(&path, columns, 7, file_format, compression);
            let (got, _) = read(&path).unwrap();
            assert_eq!(got, expected, "{compression:?}, file format {file_format}");
        }
    }
}

#[test]
fn arrow_under_another_name_is_not_text_and_read_when_the_format_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (expected, _) = read(&fixture("docs.jsonl")).unwrap();
    for source in ["docs_file.arrow", "docs_saved/data-00000-of-00002.arrow"] {
        let renamed = tmp.path().join("corpus.dat");
        std::fs::copy(fixture(source), &renamed).unwrap();
        let options = |format, non_text| CorpusOptions {
            inputs: vec![renamed.display().to_string()],
            format,
            non_text,
            ..Default::default()
        };
        let err = read_with(options(InputFormat::Auto, NonText::Error))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Arrow IPC") && err.contains("name it .arrow"),
            "{source}: {err}"
        );
        let (docs, _) = read_with(options(InputFormat::Arrow, NonText::Error)).unwrap();
        assert_eq!(docs[..], expected[..docs.len()], "{source}");
    }
    assert_eq!("feather".parse::<InputFormat>(), Ok(InputFormat::Arrow));
    let err = "csv".parse::<InputFormat>().unwrap_err();
    assert!(err.contains("parquet or arrow"), "{err}");
    // A compressed Arrow file is refused up front, naming it.
    let gz = tmp.path().join("docs.arrow.gz");
    std::fs::write(&gz, b"\x1f\x8b").unwrap();
    let err = read(&gz).unwrap_err().to_string();
    assert!(
        err.contains("docs.arrow.gz") && err.contains("decompress"),
        "{err}"
    );
}
