//! WordPiece training writes a vocabulary that loads both ways and covers its corpus.

use crate::support;

use bert_data::CorpusOptions;
use bert_data::{train_wordpiece, TrainVocabOptions};
use bert_data::{VocabTxtOptions, WordPieceTokenizer};

#[test]
fn trained_vocabulary_loads_and_tokenizes_its_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    let docs = support::gen_docs(200, 21);
    support::write_jsonl(&corpus, &docs);
    let report = train_wordpiece(&TrainVocabOptions {
        corpus: CorpusOptions {
            inputs: vec![corpus.display().to_string()],
            ..Default::default()
        },
        vocab_size: 300,
        out: tmp.path().join("vocab"),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(report.documents, 200);
    assert!(
        report.vocab_size <= 300 && report.vocab_size > 50,
        "{report:?}"
    );
    let txt =
        WordPieceTokenizer::from_vocab_txt(&report.vocab_txt, VocabTxtOptions::default()).unwrap();
    let json = WordPieceTokenizer::from_tokenizer_json(&report.tokenizer_json).unwrap();
    assert_eq!(txt.vocab().hash(), report.vocab_hash);
    let s = txt.vocab().special();
    assert_eq!((s.pad, s.unk, s.cls, s.sep, s.mask), (0, 1, 2, 3, 4));
    let unk = s.unk;
    for d in docs.iter().take(20) {
        let a = txt.encode_raw(d).unwrap();
        assert_eq!(a, json.encode_raw(d).unwrap());
        assert!(
            !a.contains(&unk),
            "every character of the corpus is in the alphabet"
        );
        // Subword pieces reassemble the (lowercased) words.
        let words: Vec<String> = d.split_whitespace().map(|w| w.to_lowercase()).collect();
        assert_eq!(txt.vocab().decode(&a).replace(" .", "."), words.join(" "));
    }
    // Too small a target is refused.
    let err = train_wordpiece(&TrainVocabOptions {
        corpus: CorpusOptions {
            inputs: vec![corpus.display().to_string()],
            ..Default::default()
        },
        vocab_size: 5,
        out: tmp.path().join("v2"),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("no room"), "{err}");
}

/// The same corpus gives the same `vocab.txt`, byte for byte, every time (HuggingFace's trainer
/// numbered tokens in a randomly seeded hash order: three runs, three files).
#[test]
fn training_twice_gives_the_same_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    support::write_jsonl(&corpus, &support::gen_docs(150, 5));
    let train = |out: &str| {
        let report = train_wordpiece(&TrainVocabOptions {
            corpus: CorpusOptions {
                inputs: vec![corpus.display().to_string()],
                ..Default::default()
            },
            vocab_size: 400,
            out: tmp.path().join(out),
            ..Default::default()
        })
        .unwrap();
        std::fs::read(report.vocab_txt).unwrap()
    };
    let first = train("a");
    for out in ["b", "c"] {
        assert!(train(out) == first, "vocab.txt differs between runs");
    }
}
