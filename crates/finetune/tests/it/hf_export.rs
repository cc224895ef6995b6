//! The export of `bert finetune` as `transformers` reads it: the fixture
//! (`scripts/make_finetune_export_fixture.py`) ran `bert finetune` on a small pair task from a
//! `transformers` `BertModel` and recorded what `AutoModelForSequenceClassification` computes
//! with the export. The same sweep here gives the same labels and, on every dev pair, the same
//! logits to 1e-4.

use std::path::{Path, PathBuf};

use bert_data::{read_task_split, VocabTxtOptions, WordPieceTokenizer};
use bert_finetune::{encode_examples, run_sweep, FinetuneConfig, SweepOptions, EXPORT_DIR};
use bert_model::{load_classifier_dir, BertForSequenceClassification, ClassifierTask};
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_export")
}

/// Logits of `model` on the dev pairs, each scored alone (no padding).
fn dev_logits(
    model: &BertForSequenceClassification<Flex>,
    config: &FinetuneConfig,
) -> Vec<Vec<f32>> {
    let dir = fixture();
    let tokenizer =
        WordPieceTokenizer::from_vocab_txt(&dir.join("vocab.txt"), VocabTxtOptions::default())
            .expect("the fixture's vocabulary");
    let examples = read_task_split(
        &dir.join("dev.tsv"),
        bert_data::TaskFormat::Tsv,
        &config.columns(),
        &config.label_space(),
    )
    .expect("dev.tsv");
    let encoded =
        encode_examples(&tokenizer, &examples, config.finetune.max_seq_length).expect("encodes");
    let device = Default::default();
    encoded
        .iter()
        .map(|e| {
            let n = e.ids.len();
            let row = |v: Vec<i64>| {
                Tensor::<Flex, 2, Int>::from_data(TensorData::new(v, [1, n]), &device)
            };
            let logits = model.forward(
                row(e.ids.iter().map(|&i| i64::from(i)).collect()),
                row(e.types.iter().map(|&t| i64::from(t)).collect()),
                row(vec![1; n]),
            );
            logits.into_data().to_vec::<f32>().expect("f32 logits")
        })
        .collect()
}

#[test]
fn the_fine_tuned_export_gives_in_transformers_the_logits_it_gives_here() {
    let dir = fixture();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("expected.json"),
    )
    .expect("JSON");
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = scratch.path().join("out");
    let config = FinetuneConfig::load(
        &dir.join("finetune.toml"),
        &[format!("finetune.out_dir={:?}", out.display().to_string())],
    )
    .expect("the fixture's config");
    let report = run_sweep::<Autodiff<Flex>>(
        &config,
        &[Default::default()],
        SweepOptions::default(),
        |_| {},
    )
    .expect("the sweep runs");
    assert_eq!(report.best_run, Some(0));
    let (_, task, ours, load) =
        load_classifier_dir::<Flex>(&out.join(EXPORT_DIR), None, 0, &Default::default())
            .expect("the export loads");
    assert!(load.initialized.is_empty());
    assert_eq!(
        task,
        ClassifierTask::Classification {
            labels: vec!["no".into(), "yes".into()]
        }
    );
    assert_eq!(
        expected["id2label"],
        serde_json::json!({"0": "no", "1": "yes"}),
        "transformers read the labels"
    );
    assert_eq!(expected["problem_type"], "single_label_classification");

    let theirs: Vec<Vec<f64>> = serde_json::from_value(expected["logits"].clone()).expect("logits");
    let logits = dev_logits(&ours, &config);
    assert_eq!(logits.len(), theirs.len());
    let mut worst = 0.0f64;
    for (a, b) in logits.iter().zip(&theirs) {
        assert_eq!(a.len(), 2);
        for (&x, &y) in a.iter().zip(b) {
            worst = worst.max((f64::from(x) - y).abs());
        }
    }
    assert!(
        worst < 1e-4,
        "largest logit difference to transformers: {worst}"
    );

    // The comparison sees the fine-tuning: the model before it gives other logits.
    let (_, _, before, _) = load_classifier_dir::<Flex>(
        &dir.join("start"),
        Some(task),
        config.finetune.seeds[0],
        &Default::default(),
    )
    .expect("the start model loads");
    let moved = dev_logits(&before, &config)
        .iter()
        .zip(&theirs)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - y).abs()))
        .fold(0.0, f64::max);
    eprintln!("largest logit difference to transformers {worst:.2e}; fine-tuning moved them by {moved:.3}");
    assert!(moved > 0.05, "fine-tuning moved the logits by only {moved}");
}
