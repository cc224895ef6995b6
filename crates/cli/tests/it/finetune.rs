//! `bert finetune` as users run it: a grid of runs on a GLUE-style TSV task from a model folder,
//! the table, `results.json`, and the best run exported as a classifier folder that loads with
//! its labels and gives the logits the run ended with; the random-initialisation baseline; and
//! bad task files refused with the file and line named.

use std::path::Path;

use crate::support::*;
use bert_model::{load_classifier_dir, save_model_dir, BertForPreTraining, ClassifierTask};
use bert_rng::Rng;

const WORDS: [&str; 12] = [
    "the", "bridge", "house", "old", "man", "was", "in", "a", "town", "green", "road", "small",
];

/// A TSV split of the river task: label `yes` where the second sentence names a river.
fn write_split(path: &Path, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let sentence = |rng: &mut Rng| {
        let mut river = false;
        let words: Vec<&str> = (0..6)
            .map(|_| {
                if rng.next_u64().is_multiple_of(10) {
                    river = true;
                    "river"
                } else {
                    WORDS[(rng.next_u64() % 12) as usize]
                }
            })
            .collect();
        (words.join(" "), river)
    };
    let mut text = String::from("index\tsentence1\tsentence2\tlabel\n");
    for i in 0..n {
        let (a, _) = sentence(&mut rng);
        let (b, river) = sentence(&mut rng);
        text.push_str(&format!(
            "{i}\t{a}\t{b}\t{}\n",
            if river { "yes" } else { "no" }
        ));
    }
    std::fs::write(path, text).expect("write the split");
}

/// A model folder with the sample vocabulary, as `bert train` exports one.
fn write_model(dir: &Path) {
    let config = bert_testutil::small_bert_config(3000, 32);
    let model = BertForPreTraining::<burn::backend::Flex>::new(&config, 3, &Default::default());
    let vocab_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tests/fixtures");
    std::fs::create_dir_all(dir).expect("model folder");
    std::fs::copy(vocab_dir.join("sample-vocab.txt"), dir.join("vocab.txt")).expect("vocab");
    save_model_dir(&model, &config, dir, None).expect("save the model");
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("finetune.toml");
    std::fs::write(
        &config,
        r#"[finetune]
init_from = "model"
out_dir = "out"
max_seq_length = 32
epochs = 4
learning_rates = [1e-3, 2e-3]
batch_sizes = [16]
seeds = [1, 2]

[finetune.task]
name = "river"
train = "train.tsv"
validation = "dev.tsv"
text_a = "sentence1"
text_b = "sentence2"
labels = ["no", "yes"]
"#,
    )
    .expect("write the config");
    config
}

#[test]
fn a_sweep_reports_every_grid_point_and_exports_the_best_run() {
    let dir = scratch("finetune_sweep");
    write_model(&dir.join("model"));
    write_split(&dir.join("train.tsv"), 320, 1);
    write_split(&dir.join("dev.tsv"), 160, 2);
    let config = write_config(&dir);
    let out = bert(&["finetune", "--config", config.to_str().expect("utf-8")]);
    let all = ok(out);
    assert!(
        all.contains("river") && all.contains("<- best") && all.contains("best run:"),
        "{all}"
    );
    assert!(
        all.contains("run 4/4") && all.contains("epoch 4/4"),
        "progress per epoch: {all}"
    );
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/results.json")).expect("results.json"),
    )
    .expect("JSON");
    assert_eq!(results["runs"].as_array().expect("runs").len(), 4);
    assert_eq!(results["grid"].as_array().expect("grid").len(), 2);
    assert_eq!(results["metric"], "accuracy");
    let best = results["best_run"].as_u64().expect("a best run") as usize;
    let best_score = results["runs"][best]["score"].as_f64().expect("a score");
    assert!(best_score >= 0.9, "the task is learnt: {best_score}");
    for run in results["runs"].as_array().expect("runs") {
        assert!(run["score"].as_f64().expect("score") <= best_score);
        assert_eq!(run["epochs"].as_array().expect("epochs").len(), 4);
    }
    // The export loads as the task's classifier and scores what the best run scored.
    let export = dir.join("out/export");
    assert!(
        export.join("vocab.txt").is_file(),
        "the tokenizer travels with the export"
    );
    let (_, task, _, report) =
        load_classifier_dir::<burn::backend::Flex>(&export, None, 0, &Default::default())
            .expect("the export loads");
    assert_eq!(
        task,
        ClassifierTask::Classification {
            labels: vec!["no".into(), "yes".into()]
        }
    );
    assert!(report.initialized.is_empty());
    let again = bert(&[
        "finetune",
        "--config",
        config.to_str().expect("utf-8"),
        "--set",
        "finetune.init_from=\"out/export\"",
        "--set",
        "finetune.epochs=1",
        "--set",
        "finetune.learning_rates=[1e-9]",
        "--set",
        "finetune.seeds=[1]",
        "--set",
        "finetune.out_dir=\"again\"",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(assert_ok(&again).trim()).expect("--json");
    let rescored = json["runs"][0]["score"].as_f64().expect("score");
    assert!(
        (rescored - best_score).abs() < 0.02,
        "{rescored} against {best_score}"
    );
}

#[test]
fn the_random_initialisation_baseline_and_bad_task_files() {
    let dir = scratch("finetune_baseline");
    write_model(&dir.join("model"));
    write_split(&dir.join("train.tsv"), 64, 1);
    write_split(&dir.join("dev.tsv"), 32, 2);
    let config = write_config(&dir);
    let config = config.to_str().expect("utf-8");
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.random_init=true",
        "--set",
        "finetune.epochs=1",
        "--set",
        "finetune.learning_rates=[1e-3]",
        "--set",
        "finetune.seeds=[1]",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(assert_ok(&out).trim()).expect("--json");
    assert_eq!(json["random_init"], true);
    // A label outside the declared set, named with its file and line.
    let text = std::fs::read_to_string(dir.join("train.tsv")).expect("read");
    std::fs::write(
        dir.join("train.tsv"),
        format!("{text}64\ta b\tc d\tmaybe\n"),
    )
    .expect("write");
    let out = bert(&["finetune", "--config", config]);
    let train = dir.join("train.tsv");
    assert_user_error(
        &out,
        &[&format!("{}:66:", train.display()), "\"maybe\"", "no, yes"],
    );
    // A missing column.
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.task.text_b=\"question\"",
    ]);
    assert_user_error(&out, &["question", "sentence1, sentence2"]);
    // A key that does not exist, and a metric the task does not report.
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.learning_rate=1e-3",
    ]);
    assert_user_error(&out, &["learning_rate"]);
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.metric=\"pearson\"",
    ]);
    assert_user_error(&out, &["finetune.metric", "accuracy, f1, matthews"]);
}
