//! `bert prepare`, `bert inspect` and `bert tokenizer train` as users run them.

use std::path::{Path, PathBuf};

use crate::support::{assert_ok, assert_user_error, bert};

/// A tiny vocabulary and a JSONL corpus whose words are all in it.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vocab.extend((0..50).map(|i| format!("w{i}")));
    let vocab_path = dir.join("vocab.txt");
    std::fs::write(&vocab_path, vocab.join("\n") + "\n").unwrap();
    let mut lines = String::new();
    for d in 0..60 {
        let mut doc = String::new();
        for s in 0..8 {
            let words: Vec<String> = (0..6)
                .map(|k| format!("w{}", (d * 7 + s * 3 + k) % 50))
                .collect();
            doc.push_str(&format!("W{} {}. ", d % 50, words.join(" ")));
        }
        lines.push_str(&serde_json::json!({ "text": doc }).to_string());
        lines.push('\n');
    }
    let corpus = dir.join("corpus.jsonl");
    std::fs::write(&corpus, lines).unwrap();
    (vocab_path, corpus)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn prepare_and_inspect_in_both_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let (vocab, corpus) = fixture(tmp.path());
    for mode in ["static", "dynamic"] {
        let out = tmp.path().join(mode);
        let stdout = assert_ok(&bert(&[
            "prepare",
            "--input",
            s(&corpus),
            "--vocab",
            s(&vocab),
            "--out",
            s(&out),
            "--masking",
            mode,
            "--max-seq-length",
            "32",
            "--dupe-factor",
            "2",
            "--validation-fraction",
            "0.1",
            "--seed",
            "7",
        ]));
        assert!(stdout.contains("train +"), "{stdout}");
        for f in [
            "index.json",
            "train/index.json",
            "validation/index.json",
            "train/vocab.txt",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        let report = assert_ok(&bert(&["inspect", s(&out), "--show", "2"]));
        assert!(report.contains(&format!("masking {mode}")), "{report}");
        assert!(
            report.contains("[CLS]") && report.contains("[MASK]"),
            "{report}"
        );
        let json = assert_ok(&bert(&["inspect", s(&out.join("train")), "--json"]));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let split = &v["splits"][0];
        assert_eq!(split["header"]["max_seq_length"], 32);
        assert_eq!(
            split["header"]["dupe_factor"],
            if mode == "static" { 2 } else { 1 }
        );
        let frac = split["masked_fraction"].as_f64().unwrap();
        assert!(frac > 0.1 && frac < 0.2, "{frac}");
    }
}

#[test]
fn prepare_reads_a_config_file_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (vocab, corpus) = fixture(tmp.path());
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[train]\nsteps = 10\n\n[prepare]\ninputs = [{:?}]\nvocab = {:?}\nout = {:?}\n\
             masking = \"dynamic\"\nmax_seq_length = 40\n",
            s(&corpus),
            s(&vocab),
            s(&tmp.path().join("from-config"))
        ),
    )
    .unwrap();
    let over = tmp.path().join("overridden");
    assert_ok(&bert(&[
        "prepare",
        "--config",
        s(&cfg),
        "--out",
        s(&over),
        "--seed",
        "3",
    ]));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(over.join("train/index.json")).unwrap()).unwrap();
    assert_eq!(index["masking"], "dynamic");
    assert_eq!(index["max_seq_length"], 40);
    assert_eq!(index["prepare"]["seed"], 3);
    assert!(!tmp.path().join("from-config").exists());
    // Unknown keys are refused with their name.
    std::fs::write(&cfg, "[prepare]\nmax_seq_lenght = 5\n").unwrap();
    assert_user_error(
        &bert(&["prepare", "--config", s(&cfg)]),
        &["max_seq_lenght"],
    );
}

#[test]
fn prepare_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let (vocab, _) = fixture(tmp.path());
    let out = tmp.path().join("out");
    let missing = tmp.path().join("missing.jsonl");
    assert_user_error(
        &bert(&[
            "prepare",
            "--input",
            s(&missing),
            "--vocab",
            s(&vocab),
            "--out",
            s(&out),
        ]),
        &["missing.jsonl", "no such file"],
    );
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"W1 w2.\"}\n{\"text\": \"W1\n").unwrap();
    assert_user_error(
        &bert(&[
            "prepare",
            "--input",
            s(&bad),
            "--vocab",
            s(&vocab),
            "--out",
            s(&out),
        ]),
        &[&format!("{}:2:", bad.display()), "malformed JSON"],
    );
    let no_text = tmp.path().join("no_text.jsonl");
    std::fs::write(&no_text, "{\"body\": \"W1 w2.\"}\n").unwrap();
    assert_user_error(
        &bert(&[
            "prepare",
            "--input",
            s(&no_text),
            "--vocab",
            s(&vocab),
            "--out",
            s(&out),
        ]),
        &[&format!("{}:1:", no_text.display()), "no field \"text\""],
    );
    // Skipping works from the command line.
    assert_ok(&bert(&[
        "prepare",
        "--input",
        s(&bad),
        "--vocab",
        s(&vocab),
        "--out",
        s(&out),
        "--skip-bad-records",
        // One document: nothing to hold out.
        "--validation-fraction",
        "0",
    ]));
    assert_user_error(
        &bert(&["inspect", s(&tmp.path().join("nothing"))]),
        &["index.json"],
    );
    assert_user_error(
        &bert(&[
            "prepare",
            "--input",
            s(&bad),
            "--vocab",
            s(&vocab),
            "--masking",
            "sometimes",
        ]),
        &["sometimes"],
    );
}

#[test]
fn tokenizer_train_writes_a_usable_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, corpus) = fixture(tmp.path());
    let out = tmp.path().join("vocab");
    let stdout = assert_ok(&bert(&[
        "tokenizer",
        "train",
        "--input",
        s(&corpus),
        "--vocab-size",
        "120",
        "--lowercase",
        "--out",
        s(&out),
    ]));
    assert!(stdout.contains("vocab.txt"), "{stdout}");
    // The trained vocabulary drives a prepare run.
    assert_ok(&bert(&[
        "prepare",
        "--input",
        s(&corpus),
        "--vocab",
        s(&out.join("tokenizer.json")),
        "--out",
        s(&tmp.path().join("shards")),
        "--max-seq-length",
        "32",
        "--validation-fraction",
        "0.2",
    ]));
    assert!(tmp.path().join("shards/train/tokenizer.json").is_file());
}

#[test]
fn tokenizer_train_is_uncased_unless_told_otherwise_like_the_config_table() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, corpus) = fixture(tmp.path());
    let train = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = vec![
            "tokenizer",
            "train",
            "--input",
            s(&corpus),
            "--vocab-size",
            "200",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", s(&out)]);
        assert_ok(&bert(&args));
        std::fs::read_to_string(out.join("vocab.txt")).unwrap()
    };
    let has_upper = |vocab: &str| {
        vocab
            .lines()
            .filter(|l| !l.starts_with('['))
            .any(|l| l.chars().any(char::is_uppercase))
    };
    // The default, the bare switch and `true` give the same uncased vocabulary.
    let default = train("default", &[]);
    assert!(
        !has_upper(&default),
        "default vocabulary has upper-case entries"
    );
    assert_eq!(train("switch", &["--lowercase"]), default);
    assert_eq!(train("true", &["--lowercase", "true"]), default);
    assert!(
        has_upper(&train("cased", &["--lowercase", "false"])),
        "cased vocabulary"
    );
}
