//! Test fixtures: a small WordPiece vocabulary and generated corpora, all in temp dirs.

use std::path::{Path, PathBuf};

use bert_data::PrepareConfig;
use bert_rng::Rng;

/// Words in the generated vocabulary (`w0` … `w{N-1}`), plus `##x0` … `##x9` pieces.
pub const WORDS: usize = 400;

/// Writes the test vocabulary and returns its path.
pub fn make_vocab(dir: &Path) -> PathBuf {
    let mut tokens: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tokens.extend((0..WORDS).map(|i| format!("w{i}")));
    tokens.extend((0..10).map(|i| format!("##x{i}")));
    let p = dir.join("vocab.txt");
    std::fs::write(&p, tokens.join("\n") + "\n").unwrap();
    p
}

/// A sentence of 4–20 words, capitalised and ended with a period (so the segmenter splits
/// it); about one word in ten is split into a word piece and a `##x` continuation.
fn sentence(rng: &mut Rng) -> String {
    let n = rng.range_inclusive(4, 20);
    let mut words = Vec::with_capacity(n);
    for j in 0..n {
        let w = rng.below(WORDS as u64);
        let mut word = if rng.bernoulli(0.1) {
            format!("w{w}x{}", rng.below(10))
        } else {
            format!("w{w}")
        };
        if j == 0 {
            word = word.replacen('w', "W", 1);
        }
        words.push(word);
    }
    words.join(" ") + "."
}

/// `n` documents of 3–30 sentences each, paragraphs of up to 5 sentences separated by a
/// blank line, lines hard-wrapped every 3 sentences.
pub fn gen_docs(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let sentences = rng.range_inclusive(3, 30);
            let mut text = String::new();
            for k in 0..sentences {
                if k > 0 {
                    text.push_str(if k % 5 == 0 {
                        "\n\n"
                    } else if k % 3 == 0 {
                        "\n"
                    } else {
                        " "
                    });
                }
                text.push_str(&sentence(&mut rng));
            }
            text
        })
        .collect()
}

/// Writes documents as JSONL records `{"id", "text"}`.
pub fn write_jsonl(path: &Path, docs: &[String]) {
    let mut s = String::new();
    for (i, d) in docs.iter().enumerate() {
        s.push_str(&serde_json::json!({"id": i.to_string(), "text": d}).to_string());
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// A prepare config over `inputs` with the test vocabulary, writing to `dir/out`.
pub fn config(dir: &Path, inputs: Vec<String>) -> PrepareConfig {
    PrepareConfig {
        inputs: inputs.into_iter().map(Into::into).collect(),
        vocab: make_vocab(dir),
        out: dir.join("out"),
        max_seq_length: 64,
        max_predictions_per_seq: 10,
        shard_size: 500,
        random_document_pool: 100,
        validation_fraction: 0.05,
        progress: false,
        ..PrepareConfig::default()
    }
}

/// The shared folder (`/work/shared` next to the repository), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    p.is_dir().then_some(p)
}
