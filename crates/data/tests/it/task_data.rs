//! Downstream task splits (`read_task_split`): GLUE's TSV, JSONL and Parquet give the same
//! examples; every bad row is an error naming the file and the line or row.
#![cfg(feature = "parquet")]

use std::path::Path;
use std::sync::Arc;

use bert_data::{read_task_split, LabelSpace, TaskColumns, TaskExample, TaskFormat, TaskLabel};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

fn pair_columns() -> TaskColumns {
    TaskColumns {
        text_a: "premise".into(),
        text_b: Some("hypothesis".into()),
        label: "label".into(),
    }
}

fn nli() -> LabelSpace {
    LabelSpace::Classes(vec![
        "entailment".into(),
        "neutral".into(),
        "contradiction".into(),
    ])
}

/// MNLI-shaped rows: quotes inside the text (GLUE's TSVs do not quote fields).
fn rows() -> Vec<(&'static str, &'static str, u32)> {
    vec![
        ("The cat sat on the mat.", "A cat is sitting.", 0),
        ("He said \"no\" twice.", "He agreed.", 2),
        ("It rained all day in town.", "The town is in Wales.", 1),
    ]
}

fn expected() -> Vec<TaskExample> {
    rows()
        .into_iter()
        .map(|(a, b, l)| TaskExample {
            text_a: a.into(),
            text_b: Some(b.into()),
            label: TaskLabel::Class(l),
        })
        .collect()
}

fn names() -> [&'static str; 3] {
    ["entailment", "neutral", "contradiction"]
}

fn write_tsv(path: &Path) {
    let mut text = String::from("index\tpremise\thypothesis\tlabel\n");
    for (i, (a, b, l)) in rows().into_iter().enumerate() {
        text.push_str(&format!("{i}\t{a}\t{b}\t{}\n", names()[l as usize]));
    }
    std::fs::write(path, text).expect("write");
}

fn write_jsonl(path: &Path) {
    let text: String = rows()
        .into_iter()
        .map(|(a, b, l)| {
            format!(
                "{}\n",
                serde_json::json!({"premise": a, "hypothesis": b, "label": names()[l as usize]})
            )
        })
        .collect();
    std::fs::write(path, text).expect("write");
}

/// As the Hub's `glue` parquet: labels are class indices.
fn write_parquet(path: &Path, labels: &[i64]) {
    let schema = Arc::new(
        parse_message_type(
            "message schema { REQUIRED BYTE_ARRAY premise (UTF8); \
             REQUIRED BYTE_ARRAY hypothesis (UTF8); REQUIRED INT64 label; }",
        )
        .expect("schema"),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).expect("create");
    let mut writer = SerializedFileWriter::new(file, schema, props).expect("writer");
    let mut group = writer.next_row_group().expect("row group");
    for texts in [
        rows()
            .iter()
            .map(|r| ByteArray::from(r.0))
            .collect::<Vec<_>>(),
        rows().iter().map(|r| ByteArray::from(r.1)).collect(),
    ] {
        let mut col = group.next_column().expect("column").expect("a column");
        col.typed::<ByteArrayType>()
            .write_batch(&texts, None, None)
            .expect("write");
        col.close().expect("close");
    }
    let mut col = group.next_column().expect("column").expect("a column");
    col.typed::<Int64Type>()
        .write_batch(labels, None, None)
        .expect("write");
    col.close().expect("close");
    group.close().expect("close");
    writer.close().expect("close");
}

#[test]
fn tsv_jsonl_and_parquet_give_the_same_examples() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (tsv, jsonl, parquet) = (
        tmp.path().join("dev.tsv"),
        tmp.path().join("dev.jsonl"),
        tmp.path().join("dev.parquet"),
    );
    write_tsv(&tsv);
    write_jsonl(&jsonl);
    write_parquet(&parquet, &[0, 2, 1]);
    for path in [&tsv, &jsonl, &parquet] {
        let format = TaskFormat::of(path).expect("known extension");
        let examples = read_task_split(path, format, &pair_columns(), &nli()).expect("reads");
        assert_eq!(examples, expected(), "{}", path.display());
    }
}

#[test]
fn single_sentences_scores_and_numeric_labels() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // SST-2's TSV: `sentence` and a 0/1 label.
    let sst = tmp.path().join("train.tsv");
    std::fs::write(
        &sst,
        "sentence\tlabel\nit 's a charming journey . \t1\nflat , dull \t0\n",
    )
    .expect("write");
    let columns = TaskColumns {
        text_a: "sentence".into(),
        text_b: None,
        label: "label".into(),
    };
    let binary = LabelSpace::Classes(vec!["0".into(), "1".into()]);
    let examples = read_task_split(&sst, TaskFormat::Tsv, &columns, &binary).expect("reads");
    assert_eq!(examples.len(), 2);
    assert_eq!(examples[0].text_b, None);
    assert_eq!(examples[0].label, TaskLabel::Class(1));
    // STS-B's scores, as JSONL numbers and strings.
    let sts = tmp.path().join("sts.jsonl");
    std::fs::write(
        &sts,
        "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": 3.8}\n\n\
         {\"premise\": \"c\", \"hypothesis\": \"d\", \"label\": \"0.25\"}\n\
         {\"premise\": \"e\", \"hypothesis\": \"f\", \"label\": 5}\n",
    )
    .expect("write");
    let scores: Vec<TaskLabel> =
        read_task_split(&sts, TaskFormat::Jsonl, &pair_columns(), &LabelSpace::Score)
            .expect("reads")
            .into_iter()
            .map(|e| e.label)
            .collect();
    assert_eq!(
        scores,
        [
            TaskLabel::Score(3.8),
            TaskLabel::Score(0.25),
            TaskLabel::Score(5.0)
        ]
    );
}

fn error(path: &Path, format: TaskFormat, labels: &LabelSpace) -> String {
    read_task_split(path, format, &pair_columns(), labels)
        .expect_err("refused")
        .to_string()
}

#[test]
fn a_label_outside_the_declared_set_names_the_file_and_line() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let tsv = tmp.path().join("dev.tsv");
    write_tsv(&tsv);
    let text = std::fs::read_to_string(&tsv).expect("read") + "3\ta\tb\tmaybe\n";
    std::fs::write(&tsv, text).expect("write");
    let err = error(&tsv, TaskFormat::Tsv, &nli());
    assert!(
        err.starts_with(&format!("{}:5:", tsv.display()))
            && err.contains("\"maybe\"")
            && err.contains("entailment, neutral, contradiction"),
        "{err}"
    );
    let jsonl = tmp.path().join("dev.jsonl");
    std::fs::write(
        &jsonl,
        "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\"}\n\
         {\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": 7}\n",
    )
    .expect("write");
    let err = error(&jsonl, TaskFormat::Jsonl, &nli());
    assert!(
        err.starts_with(&format!("{}:2:", jsonl.display())) && err.contains("label 7"),
        "{err}"
    );
    // The Hub's test splits carry label -1: no class.
    let parquet = tmp.path().join("test.parquet");
    write_parquet(&parquet, &[0, -1, 1]);
    let err = error(&parquet, TaskFormat::Parquet, &nli());
    assert!(
        err.starts_with(&format!("{}:2:", parquet.display())) && err.contains("-1"),
        "{err}"
    );
    let scores = tmp.path().join("sts.tsv");
    std::fs::write(
        &scores,
        "premise\thypothesis\tlabel\na\tb\t4.2\nc\td\thigh\n",
    )
    .expect("write");
    let err = error(&scores, TaskFormat::Tsv, &LabelSpace::Score);
    assert!(
        err.starts_with(&format!("{}:3:", scores.display())) && err.contains("\"high\""),
        "{err}"
    );
}

#[test]
fn a_missing_column_names_the_file_and_the_columns_there_are() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let tsv = tmp.path().join("dev.tsv");
    std::fs::write(
        &tsv,
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tneutral\n",
    )
    .expect("write");
    let err = error(&tsv, TaskFormat::Tsv, &nli());
    assert!(
        err.starts_with(&format!("{}:1:", tsv.display()))
            && err.contains("\"premise\"")
            && err.contains("sentence1, sentence2"),
        "{err}"
    );
    let jsonl = tmp.path().join("dev.jsonl");
    std::fs::write(&jsonl, "{\"premise\": \"a\", \"label\": \"neutral\"}\n").expect("write");
    let err = error(&jsonl, TaskFormat::Jsonl, &nli());
    assert!(
        err.starts_with(&format!("{}:1:", jsonl.display())) && err.contains("\"hypothesis\""),
        "{err}"
    );
    let parquet = tmp.path().join("dev.parquet");
    write_parquet(&parquet, &[0, 1, 2]);
    let columns = TaskColumns {
        text_b: Some("question".into()),
        ..pair_columns()
    };
    let err = read_task_split(&parquet, TaskFormat::Parquet, &columns, &nli())
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("\"question\"") && err.contains("premise, hypothesis, label"),
        "{err}"
    );
    // A TSV row with a field too few.
    std::fs::write(&tsv, "premise\thypothesis\tlabel\na\tneutral\n").expect("write");
    let err = error(&tsv, TaskFormat::Tsv, &nli());
    assert!(
        err.starts_with(&format!("{}:2:", tsv.display())) && err.contains("2 tab-separated fields"),
        "{err}"
    );
}

#[test]
fn an_empty_split_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for (name, text) in [
        ("a.tsv", "premise\thypothesis\tlabel\n"),
        ("b.tsv", ""),
        ("c.jsonl", "\n\n"),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).expect("write");
        let err = error(&path, TaskFormat::of(&path).expect("format"), &nli());
        assert!(
            err.contains(&path.display().to_string()) && err.contains("no examples"),
            "{err}"
        );
    }
    let err = TaskFormat::of(Path::new("train.csv"))
        .expect_err("unknown")
        .to_string();
    assert!(err.contains("train.csv") && err.contains(".tsv"), "{err}");
}
