//! Bad corpus input: each error names file and line; skip mode counts instead.

use crate::support;

use std::io::Write;
use std::path::Path;

use bert_data::{prepare, DataError, PrepareConfig};

fn cfg(tmp: &Path, input: &Path) -> PrepareConfig {
    support::config(tmp, vec![input.display().to_string()])
}

fn good_line(i: usize) -> String {
    serde_json::json!({"text": format!("W{i} w2 w3 w4. W5 w6 w7 w8 w9.\n\nW10 w11 w12 w13.")})
        .to_string()
}

fn expect_bad_record(config: &PrepareConfig, file: &Path, line: u64, what: &str) {
    match prepare(config) {
        Err(e @ DataError::BadRecord { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{}:{line}: ", file.display())),
                "{msg}"
            );
            assert!(msg.contains(what), "{msg}");
        }
        other => panic!("expected a bad-record error, got {other:?}"),
    }
}

#[test]
fn malformed_json_line_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("wiki.jsonl");
    let lines = [
        good_line(0),
        good_line(1),
        "{\"text\": \"W1 w2.".into(),
        good_line(3),
    ];
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    expect_bad_record(&cfg(tmp.path(), &f), &f, 3, "malformed JSON");
    // No index is left for a failed run.
    assert!(!tmp.path().join("out/train/index.json").exists());
}

#[test]
fn missing_or_non_string_text_field_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("wiki.jsonl");
    std::fs::write(&f, format!("{}\n{{\"title\": \"x\"}}\n", good_line(0))).unwrap();
    expect_bad_record(&cfg(tmp.path(), &f), &f, 2, "no field \"text\"");
    std::fs::write(
        &f,
        format!("{}\n\n{}\n{{\"text\": 5}}\n", good_line(0), good_line(1)),
    )
    .unwrap();
    expect_bad_record(&cfg(tmp.path(), &f), &f, 4, "must be a string");
    // A configured field name is used.
    std::fs::write(&f, "{\"body\": \"W1 w2 w3. W4 w5.\"}\n").unwrap();
    let mut c = cfg(tmp.path(), &f);
    c.text_field = "body".into();
    c.validation_fraction = 0.0;
    let r = prepare(&c).unwrap();
    assert_eq!(r.documents, 1);
}

#[test]
fn truncated_gzip_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("wiki.jsonl.gz");
    let text: String = (0..2000).map(|i| good_line(i) + "\n").collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    match prepare(&cfg(tmp.path(), &f)) {
        Err(e @ DataError::BadRecord { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{}:", f.display())), "{msg}");
            assert!(msg.contains("truncated"), "{msg}");
        }
        other => panic!("expected a truncation error, got {other:?}"),
    }
    // Skip mode: the readable first half is used and the break counted once.
    let mut c = cfg(tmp.path(), &f);
    c.skip_bad_records = true;
    let r = prepare(&c).unwrap();
    assert_eq!(r.bad_records, 1);
    assert!(r.documents > 100 && r.documents < 2000, "{r:?}");
}

#[test]
fn truncated_zstd_and_bzip2_are_errors_too() {
    let tmp = tempfile::tempdir().unwrap();
    let text: String = (0..3000).map(|i| good_line(i) + "\n").collect();
    let zst = tmp.path().join("a.jsonl.zst");
    let z = zstd::encode_all(text.as_bytes(), 3).unwrap();
    std::fs::write(&zst, &z[..z.len() / 2]).unwrap();
    let bz2 = tmp.path().join("b.jsonl.bz2");
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(text.as_bytes()).unwrap();
    let b = bz.finish().unwrap();
    std::fs::write(&bz2, &b[..b.len() / 2]).unwrap();
    for f in [zst, bz2] {
        let err = prepare(&cfg(tmp.path(), &f)).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:", f.display())), "{err}");
    }
}

#[test]
fn skip_mode_counts_bad_records_and_invalid_utf8() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("wiki.jsonl");
    let mut bytes = Vec::new();
    for i in 0..10 {
        bytes.extend_from_slice(good_line(i).as_bytes());
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(b"not json\n{\"title\": 1}\n{\"text\": null}\n");
    // Invalid UTF-8 inside a string: replaced, counted, the record kept.
    bytes.extend_from_slice(b"{\"text\": \"W1 w2 \xff w3. W4 w5.\"}\n");
    std::fs::write(&f, &bytes).unwrap();
    let mut c = cfg(tmp.path(), &f);
    c.skip_bad_records = true;
    // 11 documents: too few to hold any out for validation.
    c.validation_fraction = 0.0;
    let r = prepare(&c).unwrap();
    assert_eq!(r.bad_records, 3);
    assert_eq!(r.invalid_utf8, 1);
    assert_eq!(r.documents, 11);
}

#[test]
fn missing_inputs_and_bad_vocabularies_fail_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(tmp.path(), &tmp.path().join("nope.jsonl"));
    let err = prepare(&c).unwrap_err().to_string();
    assert!(
        err.contains("nope.jsonl") && err.contains("no such file"),
        "{err}"
    );
    let err = prepare(&cfg(tmp.path(), &tmp.path().join("*.none")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("glob matched no files"), "{err}");
    assert!(!c.out.exists(), "nothing written for a refused run");

    let f = tmp.path().join("c.jsonl");
    std::fs::write(&f, good_line(0) + "\n").unwrap();
    let mut c = cfg(tmp.path(), &f);
    c.model_vocab_size = 100;
    let err = prepare(&c).unwrap_err().to_string();
    assert!(
        err.contains("more than the model's vocab_size 100"),
        "{err}"
    );
    let bad_vocab = tmp.path().join("v2.txt");
    std::fs::write(&bad_vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nw1\n").unwrap();
    let mut c = cfg(tmp.path(), &f);
    c.vocab = bad_vocab;
    let err = prepare(&c).unwrap_err().to_string();
    assert!(err.contains("missing special token(s) [MASK]"), "{err}");
    assert!(!c.out.exists());
}

/// `n` good records, then a malformed one, then good ones again.
fn corpus_failing_at(path: &Path, n: usize) {
    let mut lines: Vec<String> = (0..n).map(good_line).collect();
    lines.push("{\"text\": \"W1 w2.".into());
    lines.extend((0..10).map(good_line));
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Names in `dir` that a prepare run uses for staging.
fn staging_left(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn a_failed_prepare_leaves_nothing_under_the_output_name() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("wiki.jsonl");
    // Past the first processing chunk (1,024 documents), so shards are being written.
    corpus_failing_at(&f, 2500);
    let c = cfg(tmp.path(), &f);
    expect_bad_record(&c, &f, 2501, "malformed JSON");
    assert!(!c.out.exists(), "a failed run left {}", c.out.display());
    assert_eq!(staging_left(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_failed_rerun_keeps_the_previous_output() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.jsonl");
    std::fs::write(
        &good,
        (0..300).map(|i| good_line(i) + "\n").collect::<String>(),
    )
    .unwrap();
    let c = cfg(tmp.path(), &good);
    let report = prepare(&c).unwrap();
    let files = [
        "index.json",
        "vocab.txt",
        "train/index.json",
        "train/shard-00000.safetensors",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(c.out.join(f)).unwrap())
        .collect();

    let bad = tmp.path().join("bad.jsonl");
    corpus_failing_at(&bad, 2500);
    let mut rerun = cfg(tmp.path(), &bad);
    rerun.seed = 7;
    assert!(prepare(&rerun).is_err());
    for (f, bytes) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(c.out.join(f)).unwrap(), bytes, "{f} changed");
    }
    assert_eq!(staging_left(&c.out), Vec::<String>::new());
    let set = bert_data::ShardSet::open(&c.out.join("train"), None).unwrap();
    assert_eq!(set.len() as u64, report.train_instances);
}

#[test]
fn a_rerun_replaces_the_output_and_keeps_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.jsonl");
    std::fs::write(
        &good,
        (0..300).map(|i| good_line(i) + "\n").collect::<String>(),
    )
    .unwrap();
    let c = cfg(tmp.path(), &good);
    prepare(&c).unwrap();
    std::fs::write(c.out.join("NOTES.md"), "mine").unwrap();
    let old_index = std::fs::read(c.out.join("train/index.json")).unwrap();
    // A staging folder of a killed run (no such process) is cleaned up.
    std::fs::create_dir(c.out.join(".prepare.tmp-999999999")).unwrap();

    let mut rerun = c.clone();
    rerun.seed = 99;
    rerun.shard_size = 100;
    let report = prepare(&rerun).unwrap();
    assert_ne!(
        std::fs::read(c.out.join("train/index.json")).unwrap(),
        old_index
    );
    assert_eq!(
        std::fs::read_to_string(c.out.join("NOTES.md")).unwrap(),
        "mine"
    );
    assert_eq!(staging_left(&c.out), Vec::<String>::new());
    let set = bert_data::ShardSet::open(&c.out.join("train"), None).unwrap();
    assert_eq!(set.len() as u64, report.train_instances);
    // No shard of the first run is left behind in the split folder.
    let shards = std::fs::read_dir(c.out.join("train"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".safetensors")
        })
        .count();
    assert_eq!(shards, set.index().shards.len());
}

#[test]
fn an_output_path_that_is_a_file_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.jsonl");
    std::fs::write(&good, good_line(0) + "\n").unwrap();
    let mut c = cfg(tmp.path(), &good);
    c.out = good.clone();
    let err = prepare(&c).unwrap_err().to_string();
    assert!(err.contains("exists and is not a folder"), "{err}");
    assert_eq!(std::fs::read_to_string(&good).unwrap(), good_line(0) + "\n");
}
