//! Parity with HuggingFace on the shared reference tokenizer files (skipped when absent).

use crate::support;

use std::path::PathBuf;

use bert_data::split_sentences;
use bert_data::{CorpusOptions, CorpusReader};
use bert_data::{VocabTxtOptions, WordPieceTokenizer};

fn shared_files() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let Some(shared) = support::shared_dir() else {
        eprintln!("note: ../shared not found; skipping tokenizer parity");
        return None;
    };
    let m = shared.join("models/bert-uncased-wordpiece");
    let files = (
        m.join("vocab.txt"),
        m.join("tokenizer.json"),
        shared.join("corpora"),
    );
    if !files.0.is_file() || !files.1.is_file() || !files.2.is_dir() {
        eprintln!("note: shared tokenizer or corpora missing; skipping tokenizer parity");
        return None;
    }
    Some(files)
}

/// A few hundred sentences from both shared corpora.
fn sample_sentences(corpora: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for (input, per_source) in [("books", 200usize), ("wiki/foldoc.jsonl", 200)] {
        let reader = CorpusReader::open(CorpusOptions {
            inputs: vec![corpora.join(input).display().to_string()],
            ..Default::default()
        })
        .unwrap();
        let mut taken = 0;
        for (k, doc) in reader.enumerate() {
            if k % 7 != 0 {
                continue;
            }
            for p in doc.unwrap().paragraphs {
                for s in split_sentences(&p) {
                    if taken < per_source {
                        out.push(s);
                        taken += 1;
                    }
                }
            }
            if taken >= per_source {
                break;
            }
        }
    }
    out
}

#[test]
fn vocab_txt_and_tokenizer_json_agree_with_known_ids() {
    let Some((vocab, json, corpora)) = shared_files() else {
        return;
    };
    let from_txt = WordPieceTokenizer::from_vocab_txt(&vocab, VocabTxtOptions::default()).unwrap();
    let from_json = WordPieceTokenizer::from_tokenizer_json(&json).unwrap();
    assert_eq!(from_txt.vocab().len(), 30_522);
    assert_eq!(from_txt.vocab().hash(), from_json.vocab().hash());
    let s = from_txt.vocab().special();
    assert_eq!(
        (s.pad, s.unk, s.cls, s.sep, s.mask),
        (0, 100, 101, 102, 103)
    );
    // Ids published for bert-base-uncased.
    for t in [&from_txt, &from_json] {
        assert_eq!(t.encode_raw("Hello world").unwrap(), vec![7592, 2088]);
        assert_eq!(t.encode_raw("the.").unwrap(), vec![1996, 1012]);
        // Accents stripped and lowercased like BertTokenizer(do_lower_case=True).
        assert_eq!(t.encode_raw("Café").unwrap(), t.encode_raw("cafe").unwrap());
    }
    // Padding and truncation to 128 in the shared tokenizer.json are switched off.
    let long = "word ".repeat(300);
    assert_eq!(from_json.encode(&long).unwrap().len(), 300);
    let sentences = sample_sentences(&corpora);
    assert!(sentences.len() >= 300, "{}", sentences.len());
    let mut pieces = 0;
    for sentence in &sentences {
        let a = from_txt.encode_raw(sentence).unwrap();
        let b = from_json.encode_raw(sentence).unwrap();
        assert_eq!(a, b, "{sentence:?}");
        assert!(!a.is_empty());
        pieces += a
            .iter()
            .filter(|&&id| from_txt.vocab().continuation()[id as usize])
            .count();
    }
    assert!(pieces > 0, "the sample exercises ## continuations");
}

/// `crates/data/tests/fixtures/bert_tokenizer_sample.json`, from
/// `scripts/make_tokenizer_fixture.py` (Python `BertTokenizer`).
#[derive(serde::Deserialize)]
struct PythonFixture {
    texts: Vec<String>,
    vocabularies: Vec<PythonIds>,
}

#[derive(serde::Deserialize)]
struct PythonIds {
    /// A file next to the fixture, or `shared:` + a path under `../shared`.
    vocab: String,
    lowercase: bool,
    ids: Vec<Vec<u32>>,
}

#[test]
fn ids_match_python_bert_tokenizer_on_the_bundled_sample() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(fixtures.join("bert_tokenizer_sample.json")).unwrap();
    let fixture: PythonFixture = serde_json::from_str(&text).unwrap();
    assert!(fixture.texts.len() > 200, "{} texts", fixture.texts.len());
    let mut checked = 0;
    for expected in &fixture.vocabularies {
        let vocab = match expected.vocab.strip_prefix("shared:") {
            None => fixtures.join(&expected.vocab),
            Some(rel) => match support::shared_dir() {
                Some(shared) if shared.join(rel).is_file() => shared.join(rel),
                _ => {
                    eprintln!("note: {rel} not in ../shared; skipping its parity check");
                    continue;
                }
            },
        };
        let tok = WordPieceTokenizer::from_vocab_txt(
            &vocab,
            VocabTxtOptions {
                lowercase: expected.lowercase,
                strip_accents: None,
            },
        )
        .unwrap();
        let special = tok.vocab().special();
        let structural = [special.pad, special.cls, special.sep, special.mask];
        let mut unk = 0;
        for (text, want) in fixture.texts.iter().zip(&expected.ids) {
            let what = format!(
                "{} (lowercase {}): {text:?}",
                expected.vocab, expected.lowercase
            );
            assert_eq!(&tok.encode_raw(text).unwrap(), want, "{what}");
            // What prepare stores: the same, less structural tokens written in the text.
            let kept: Vec<u32> = want
                .iter()
                .copied()
                .filter(|id| !structural.contains(id))
                .collect();
            assert_eq!(tok.encode(text).unwrap(), kept, "{what}");
            unk += want.iter().filter(|&&id| id == special.unk).count();
        }
        assert!(unk > 0, "the edge cases exercise [UNK]");
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the sample vocabulary is checked uncased and cased"
    );
}

/// Every sentence and every whole paragraph of a corpus, through `encode` (the ASCII encoder
/// with HuggingFace for the rest) and through HuggingFace alone; returns the sentences checked.
fn check_ascii_encoder(tok: &WordPieceTokenizer, inputs: &[PathBuf]) -> usize {
    let reader = CorpusReader::open(CorpusOptions {
        inputs: inputs.iter().map(|p| p.display().to_string()).collect(),
        doc_per_file: true,
        ..Default::default()
    })
    .unwrap();
    let mut sentences = 0;
    for doc in reader {
        for paragraph in doc.unwrap().paragraphs {
            assert_eq!(
                tok.encode(&paragraph).unwrap(),
                tok.encode_hf(&paragraph).unwrap(),
                "{paragraph:?}"
            );
            for s in split_sentences(&paragraph) {
                assert_eq!(tok.encode(&s).unwrap(), tok.encode_hf(&s).unwrap(), "{s:?}");
                sentences += 1;
            }
        }
    }
    sentences
}

#[test]
fn ascii_encoder_matches_huggingface_on_whole_corpora() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = root.join("../../data/sample");
    let vocab = root.join("tests/fixtures/sample-vocab.txt");
    for lowercase in [true, false] {
        let options = VocabTxtOptions {
            lowercase,
            strip_accents: None,
        };
        let tok = WordPieceTokenizer::from_vocab_txt(&vocab, options).unwrap();
        let n = check_ascii_encoder(&tok, std::slice::from_ref(&sample));
        assert!(n > 2_000, "{n} sentences in data/sample");
    }
    let Some((vocab, json, corpora)) = shared_files() else {
        return;
    };
    let from_txt = WordPieceTokenizer::from_vocab_txt(&vocab, VocabTxtOptions::default()).unwrap();
    let from_json = WordPieceTokenizer::from_tokenizer_json(&json).unwrap();
    assert!(
        from_json.uses_ascii_encoder(),
        "the published BERT tokenizer.json"
    );
    for tok in [&from_txt, &from_json] {
        let n = check_ascii_encoder(tok, &[corpora.join("books"), corpora.join("wiki")]);
        assert!(n > 10_000, "{n} sentences in the shared corpora");
    }
}
