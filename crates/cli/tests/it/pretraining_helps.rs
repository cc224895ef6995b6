//! What pre-training is worth, shown end to end with the binary: `bert prepare` and `bert train`
//! pre-train a small encoder on a corpus, then `bert finetune` fine-tunes it on a task whose
//! answer the pre-training text holds but the task's training split does not, and does the same
//! from random weights (`random_init = true`). The pre-trained encoder must win by a wide margin.
//!
//! The corpus speaks of animals and of tools, each in contexts of its own ("the goat ate the
//! grass", "he fixed the fence with the hammer"). The task asks whether the word in a neutral
//! sentence ("i think the goat is here") is an animal or a tool; its training split names half of
//! the words, its validation split only the other half. A model from random weights has never
//! seen the held-out words in any context, so it can only guess; masked-language-model
//! pre-training has placed them near the words of their kind, so the pre-trained one generalises.

use std::path::Path;

use bert_rng::Rng;

use crate::support::*;
use crate::train_cli::{prepare, write_config_with_model};

const ANIMALS: [&str; 16] = [
    "dog", "cat", "horse", "cow", "goat", "sheep", "duck", "mouse", "rabbit", "fox", "pig", "deer",
    "wolf", "bear", "owl", "frog",
];
const TOOLS: [&str; 16] = [
    "hammer", "knife", "spoon", "brush", "rope", "needle", "shovel", "ladder", "bucket", "kettle",
    "saw", "drill", "axe", "chisel", "broom", "rake",
];
const ANIMAL_CONTEXTS: [&str; 6] = [
    "the {} ate the grass in the field",
    "a hungry {} ran across the meadow",
    "the farmer fed the {} every morning",
    "the {} slept in the warm barn",
    "the young {} followed its mother",
    "we heard the {} call at night",
];
const TOOL_CONTEXTS: [&str; 6] = [
    "he fixed the fence with the {}",
    "the {} was made of steel and wood",
    "she bought a new {} at the shop",
    "the {} hung on the wall of the shed",
    "he sharpened the {} before work",
    "the old {} lay in the toolbox",
];
/// Sentences that name a word without saying what it is: the task's.
const NEUTRAL: [&str; 3] = [
    "i think the {} is here",
    "look at that {} over there",
    "where is my {} today",
];

/// Documents of animal and tool sentences, with the task's neutral sentences around unrelated
/// nouns so that their words are in the vocabulary too.
fn write_corpus(dir: &Path) -> std::path::PathBuf {
    let mut rng = Rng::new(41);
    let mut text = String::new();
    for _ in 0..300 {
        for _ in 0..6 {
            let (words, contexts) = if rng.below(2) == 0 {
                (&ANIMALS, &ANIMAL_CONTEXTS)
            } else {
                (&TOOLS, &TOOL_CONTEXTS)
            };
            let word = words[rng.below(16) as usize];
            let context = contexts[rng.below(6) as usize];
            text.push_str(&context.replace("{}", word));
            text.push_str(". ");
            if rng.below(4) == 0 {
                let neutral = NEUTRAL[rng.below(3) as usize];
                text.push_str(
                    &neutral.replace("{}", ["book", "letter", "coat"][rng.below(3) as usize]),
                );
                text.push_str(". ");
            }
        }
        text.push_str("\n\n");
    }
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).expect("write the corpus");
    path
}

/// The task's split over `words` (half of each kind): every neutral sentence of every word.
fn write_split(path: &Path, animals: &[&str], tools: &[&str]) {
    let mut text = String::from("sentence\tlabel\n");
    for (words, label) in [(animals, "animal"), (tools, "tool")] {
        for w in words {
            for n in NEUTRAL {
                text.push_str(&format!("{}\t{label}\n", n.replace("{}", w)));
            }
        }
    }
    std::fs::write(path, text).expect("write the split");
}

#[test]
fn a_pre_trained_encoder_fine_tunes_to_words_its_task_never_showed_and_random_weights_do_not() {
    let tmp = scratch("pretraining_helps");
    let dir = tmp.path().to_path_buf();
    let corpus = write_corpus(&dir);
    let shards = prepare(&dir, &corpus, "dynamic");
    let run = dir.join("pretrain");
    let config = write_config_with_model(
        &dir,
        &shards,
        &run,
        300,
        300,
        &crate::train_cli::small_model(""),
    );
    ok(bert(&[
        "train",
        "--config",
        config.to_str().expect("utf-8"),
    ]));

    write_split(&dir.join("train.tsv"), &ANIMALS[..8], &TOOLS[..8]);
    write_split(&dir.join("dev.tsv"), &ANIMALS[8..], &TOOLS[8..]);
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        format!(
            r#"[finetune]
init_from = "{export}"
tokenizer = "vocab/vocab.txt"
out_dir = "out"
max_seq_length = 16
epochs = 8
learning_rates = [5e-4]
batch_sizes = [8]
seeds = [1, 2, 3]
checkpoint_every = 0

[finetune.task]
name = "animal-or-tool"
train = "train.tsv"
validation = "dev.tsv"
text_a = "sentence"
labels = ["animal", "tool"]
"#,
            export = run.join("export").display()
        ),
    )
    .expect("write the task");
    let sweep = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "finetune",
            "--config",
            task.to_str().expect("utf-8"),
            "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(assert_ok(&bert(&args)).trim()).expect("--json")
    };
    let pretrained = sweep(&[]);
    let random = sweep(&[
        "--set",
        "finetune.random_init=true",
        "--set",
        "finetune.out_dir=\"random\"",
    ]);
    let mean = |report: &serde_json::Value| {
        report["grid"][0]["spread"]["mean"]
            .as_f64()
            .expect("a mean accuracy")
    };
    let (p, r) = (mean(&pretrained), mean(&random));
    eprintln!("held-out words: pre-trained {p:.3}, random weights {r:.3}");
    assert!(
        p >= 0.75 && p - r >= 0.2,
        "accuracy on words the task never showed: pre-trained {p:.3}, random weights {r:.3}"
    );
}
