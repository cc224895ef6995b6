//! Test support shared by the training crate's integration tests: a generated corpus and the
//! dynamic-masking shards prepared from it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bert_data::CorpusOptions;
use bert_data::{prepare, MaskingMode, PrepareConfig};
use bert_data::{train_wordpiece, TrainVocabOptions};
use bert_rng::Rng;

/// Held by every test that trains (`train`, `train_replicas`, `TrainState::step`), so that in
/// this one test binary they run one at a time: they share process-wide state, the backend's
/// generator that each micro-batch reseeds (dropout draws from it, seeded per step) and Burn's
/// collective (one data-parallel group per process).
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Made-up names, places and trades from syllables, so that nothing is copied from anywhere.
pub fn word(rng: &mut Rng) -> String {
    const ONSETS: [&str; 12] = ["br", "k", "m", "t", "v", "s", "dr", "l", "p", "g", "h", "n"];
    const VOWELS: [&str; 6] = ["a", "e", "i", "o", "u", "ai"];
    const CODAS: [&str; 8] = ["n", "r", "ck", "m", "ll", "st", "th", "nd"];
    let mut w = String::new();
    for _ in 0..2 {
        w.push_str(ONSETS[rng.below(12) as usize]);
        w.push_str(VOWELS[rng.below(6) as usize]);
    }
    w.push_str(CODAS[rng.below(8) as usize]);
    w
}

/// Documents about one of `topics` topics each: a topic has its own person, place and craft,
/// so a masked name is predictable from the rest of its document, and a random B-segment from
/// another document usually names other people (NSP is learnable).
pub fn write_corpus(path: &Path) {
    let mut rng = Rng::new(5);
    let topics: Vec<[String; 3]> = (0..40)
        .map(|_| [word(&mut rng), word(&mut rng), word(&mut rng)])
        .collect();
    let verbs = [
        "visited",
        "left",
        "described",
        "remembered",
        "painted",
        "crossed",
    ];
    let times = [
        "in the spring",
        "at noon",
        "after the storm",
        "before dawn",
        "on market day",
    ];
    let mut text = String::new();
    for _ in 0..360 {
        let [person, place, craft] = &topics[rng.below(topics.len() as u64) as usize];
        for _ in 0..rng.range_inclusive(6, 12) {
            let v = verbs[rng.below(6) as usize];
            let t = times[rng.below(5) as usize];
            let s = match rng.below(3) {
                0 => format!("{person} {v} {place} {t}. "),
                1 => format!("The {craft} of {place} was known to {person}. "),
                _ => format!("In {place}, {person} worked as a {craft} {t}. "),
            };
            text.push_str(&s);
        }
        text.push_str("\n\n");
    }
    std::fs::write(path, text).unwrap();
}

/// Writes the corpus, trains a 300-entry vocabulary and prepares dynamic-masking shards in
/// `dir`; returns the shard folder.
pub fn prepare_shards(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus.txt");
    write_corpus(&corpus);
    let corpus_opts = CorpusOptions {
        inputs: vec![corpus.display().to_string()],
        ..Default::default()
    };
    train_wordpiece(&TrainVocabOptions {
        corpus: corpus_opts,
        vocab_size: 300,
        lowercase: true,
        out: dir.join("vocab"),
        ..Default::default()
    })
    .unwrap();
    let shards = dir.join("shards");
    prepare(&PrepareConfig {
        inputs: vec![corpus.display().to_string().into()],
        vocab: dir.join("vocab/vocab.txt"),
        out: shards.clone(),
        masking: MaskingMode::Dynamic,
        max_seq_length: 64,
        max_predictions_per_seq: 10,
        validation_fraction: 0.1,
        seed: 3,
        progress: false,
        ..Default::default()
    })
    .unwrap();
    shards
}

pub use bert_testutil::{scratch, scratch_dir, Scratch};
