//! One-sentence-per-record corpora (the HuggingFace BookCorpus layout): grouped into books,
//! next-sentence pairs are fair coins again and the validation split holds whole books.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;
use bert_data::{prepare, InputSpec, MaskingMode, PrepareConfig, ShardSet};
use bert_rng::Rng;

/// Books in the generated corpus; book `b`'s sentences all start with the word `w{b}`, and
/// their other words come from `w{BOOKS}` up, so each sentence names its book.
const BOOKS: usize = 60;

/// Id of `w{b}` in the test vocabulary (after six special and punctuation entries).
fn marker_id(book: usize) -> u32 {
    6 + book as u32
}

/// One JSONL record per sentence, books in order: `{"book_id", "text"}`.
fn write_sentence_records(path: &Path, with_ids: bool) {
    let mut rng = Rng::new(7);
    let mut out = String::new();
    for book in 0..BOOKS {
        for _ in 0..rng.range_inclusive(200, 300) {
            let mut words = vec![format!("W{book}")];
            for _ in 0..rng.range_inclusive(5, 14) {
                words.push(format!(
                    "w{}",
                    BOOKS as u64 + rng.below((WORDS - BOOKS) as u64)
                ));
            }
            let text = words.join(" ") + ".";
            let record = if with_ids {
                serde_json::json!({"book_id": format!("b{book}"), "text": text})
            } else {
                serde_json::json!({"text": text})
            };
            out.push_str(&record.to_string());
            out.push('\n');
        }
    }
    std::fs::write(path, out).unwrap();
}

/// What the instances of one prepared dataset say about books and pairs.
#[derive(Debug, Default)]
struct Books {
    instances: usize,
    is_next: usize,
    /// Books whose sentences open segment A, per split.
    train_books: BTreeSet<u32>,
    validation_books: BTreeSet<u32>,
    /// Instances whose A side spans two books.
    mixed_a: usize,
    /// IsNext pairs whose B comes from another book, and NotNext pairs whose B comes from
    /// the same book.
    wrong_b: usize,
}

fn survey(out: &Path) -> Books {
    let mut books = Books::default();
    for split in ["train", "validation"] {
        let set = ShardSet::open(&out.join(split), None).unwrap();
        let sep = set.vocab().special().sep;
        for i in 0..set.len() {
            let inst = set.instance(i);
            // The original ids: a masked position may hold a random word.
            let mut ids = inst.input_ids.clone();
            for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
                ids[p as usize] = l;
            }
            let first_sep = ids.iter().position(|&t| t == sep).unwrap();
            let markers = |range: &[u32]| -> BTreeSet<u32> {
                range
                    .iter()
                    .copied()
                    .filter(|&t| (marker_id(0)..marker_id(BOOKS)).contains(&t))
                    .collect()
            };
            let a = markers(&ids[1..first_sep]);
            let b = markers(&ids[first_sep + 1..]);
            books.instances += 1;
            let is_next = inst.nsp_label == 0;
            books.is_next += usize::from(is_next);
            if a.len() != 1 {
                books.mixed_a += 1;
                continue;
            }
            let book = *a.iter().next().unwrap();
            if split == "train" {
                books.train_books.insert(book);
            } else {
                books.validation_books.insert(book);
            }
            // A truncated B may have lost its sentence starts; judge only B with a marker.
            if !b.is_empty() && (b == a) != is_next {
                books.wrong_b += 1;
            }
        }
    }
    books
}

/// Sequence length and masking as the shipped phase-1 configs (128, static); four copies so
/// that the share of IsNext pairs is measured on enough coins.
fn config(tmp: &Path, corpus: &Path, out: &str) -> PrepareConfig {
    PrepareConfig {
        masking: MaskingMode::Static,
        max_seq_length: 128,
        max_predictions_per_seq: 20,
        dupe_factor: 4,
        out: tmp.join(out),
        validation_fraction: 0.1,
        random_document_pool: 50,
        ..support::config(tmp, vec![corpus.display().to_string()])
    }
}

#[test]
fn sentence_records_grouped_by_book_give_fair_pairs_and_a_book_level_split() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("bookcorpus.jsonl");
    write_sentence_records(&corpus, true);

    // As the records come: one-sentence documents.
    let ungrouped = config(tmp.path(), &corpus, "ungrouped");
    prepare(&ungrouped).unwrap();
    let before = survey(&ungrouped.out);
    let share = before.is_next as f64 / before.instances as f64;
    eprintln!(
        "ungrouped: IsNext share {share:.4} of {} instances",
        before.instances
    );
    assert!(share < 0.3, "ungrouped IsNext share {share}: {before:?}");
    assert!(
        !before.train_books.is_disjoint(&before.validation_books),
        "one-sentence documents put every book on both sides of the split: {before:?}"
    );

    // Grouped by the book id field.
    let grouped = PrepareConfig {
        document_id_field: Some("book_id".into()),
        ..config(tmp.path(), &corpus, "grouped")
    };
    let report = prepare(&grouped).unwrap();
    assert_eq!(report.documents, BOOKS as u64, "{report:?}");
    let after = survey(&grouped.out);
    let share = after.is_next as f64 / after.instances as f64;
    eprintln!(
        "grouped by book_id: IsNext share {share:.4} of {} instances, {} forced",
        after.instances, report.forced_random_next
    );
    assert!(
        (0.47..=0.53).contains(&share),
        "grouped IsNext share {share} ({} forced): {after:?}",
        report.forced_random_next
    );
    // Every pair not forced NotNext (a one-sentence chunk: Google's rule, mostly from books
    // whose per-document target length came out shorter than a sentence) is a fair coin.
    let flips = (after.instances as u64 - report.forced_random_next) as f64;
    let tol = 2.5 * flips.sqrt();
    assert!(
        (after.is_next as f64 - flips / 2.0).abs() < tol,
        "IsNext {} of {flips} coin flips ± {tol}",
        after.is_next
    );
    assert_eq!(after.mixed_a, 0, "segment A is one stretch of one book");
    assert_eq!(
        after.wrong_b, 0,
        "IsNext B from A's book, random B from another book"
    );
    assert!(!after.validation_books.is_empty());
    assert!(
        after.train_books.is_disjoint(&after.validation_books),
        "a book is in both splits: {:?}",
        after
            .train_books
            .intersection(&after.validation_books)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        after.train_books.len() + after.validation_books.len(),
        BOOKS
    );
}

#[test]
fn sentence_records_without_ids_grouped_by_count_give_fair_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("bookcorpus.jsonl");
    write_sentence_records(&corpus, false);
    // Given as a table entry: the per-input grouping the shipped configs use for BookCorpus
    // next to Wikipedia.
    let cfg = PrepareConfig {
        inputs: vec![InputSpec::Table(bert_data::InputTable {
            path: corpus.display().to_string(),
            document_id_field: None,
            records_per_document: Some(150),
        })],
        ..config(tmp.path(), &corpus, "by-count")
    };
    let report = prepare(&cfg).unwrap();
    let records = report.records;
    assert_eq!(report.documents, records.div_ceil(150), "{report:?}");
    let books = survey(&cfg.out);
    let share = books.is_next as f64 / books.instances as f64;
    eprintln!(
        "grouped by 150 records: IsNext share {share:.4} of {} instances",
        books.instances
    );
    assert!((0.47..=0.53).contains(&share), "IsNext share {share}");
}

#[test]
fn a_document_id_field_on_plain_text_or_missing_from_a_record_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("books.txt");
    std::fs::write(&text, "One sentence.\n\nAnother one.\n").unwrap();
    let cfg = PrepareConfig {
        document_id_field: Some("book_id".into()),
        ..support::config(tmp.path(), vec![text.display().to_string()])
    };
    let err = prepare(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("books.txt") && err.contains("needs JSONL or Parquet"),
        "{err}"
    );

    let jsonl = tmp.path().join("c.jsonl");
    std::fs::write(
        &jsonl,
        "{\"book_id\": 1, \"text\": \"W1 w2.\"}\n{\"text\": \"W1 w3.\"}\n",
    )
    .unwrap();
    let cfg = PrepareConfig {
        document_id_field: Some("book_id".into()),
        ..support::config(tmp.path(), vec![jsonl.display().to_string()])
    };
    let err = prepare(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("c.jsonl")
            && err.contains("c.jsonl:2")
            && err.contains("no field \"book_id\""),
        "{err}"
    );
    assert!(!cfg.out.exists() || !cfg.out.join("train/index.json").exists());
}
