//! `BertForSequenceClassification` against HuggingFace `transformers`: folders it wrote load with
//! their labels and give its logits; our folders read back bit for bit; fine-tuning starts from a
//! pre-training folder with a fresh head and nothing else fresh.

use std::path::{Path, PathBuf};

use crate::support::*;
use bert_model::{
    load_classifier_dir, load_model_dir, save_classifier_dir, save_model_dir_as, Architecture,
    BertForSequenceClassification, ClassifierTask, ModelError, ParamGroup,
};
use burn::tensor::{Int, Tensor, TensorData};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/classifier")
        .join(name)
}

fn logits(
    model: &BertForSequenceClassification<Cpu>,
    inputs: &FixtureInputs,
) -> (Vec<usize>, Vec<f32>) {
    let device = Default::default();
    host(model.forward(
        int2(&inputs.input_ids, &device),
        int2(&inputs.token_type_ids, &device),
        int2(&inputs.attention_mask, &device),
    ))
}

fn three_labels() -> ClassifierTask {
    ClassifierTask::Classification {
        labels: vec![
            "contradiction".into(),
            "entailment".into(),
            "neutral".into(),
        ],
    }
}

#[test]
fn transformers_classifiers_load_with_their_task_and_give_their_logits() {
    for (name, task, dropout) in [
        ("three_labels", three_labels(), 0.2),
        ("regression", ClassifierTask::Regression, 0.1),
    ] {
        let dir = fixture(name);
        let (_, read_task, model, report) =
            load_classifier_dir::<Cpu>(&dir, None, 0, &Default::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read_task, task, "{name}: the task from config.json");
        assert!(
            report.initialized.is_empty(),
            "{name}: {:?}",
            report.initialized
        );
        assert!(report.ignored.is_empty(), "{name}: {:?}", report.ignored);
        assert_eq!(
            model.classifier_dropout(),
            dropout,
            "{name}: classifier_dropout"
        );
        let inputs = read_inputs(&dir);
        let expected = read_expected(&dir);
        assert_close(
            &format!("{name}: logits"),
            &logits(&model, &inputs),
            &expected["logits"],
            1e-4,
        );
    }
}

#[test]
fn an_exported_classifier_reads_back_bit_for_bit_with_its_labels() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for (name, task) in [
        ("three_labels", three_labels()),
        ("regression", ClassifierTask::Regression),
    ] {
        let (config, _, model, _) =
            load_classifier_dir::<Cpu>(&fixture(name), None, 0, &Default::default())
                .expect("loads");
        let out = tmp.path().join(name);
        save_classifier_dir(&model, &config, &task, &out, None).expect("saves");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("config.json")).expect("config.json"),
        )
        .expect("JSON");
        assert_eq!(json["architectures"][0], "BertForSequenceClassification");
        assert_eq!(json["problem_type"], task.problem_type());
        let (_, back_task, back, report) =
            load_classifier_dir::<Cpu>(&out, None, 99, &Default::default()).expect("reloads");
        assert_eq!(back_task, task);
        assert!(report.initialized.is_empty());
        let ours = read_safetensors_f32(&out.join("model.safetensors"));
        let theirs = read_safetensors_f32(&fixture(name).join("model.safetensors"));
        assert_eq!(ours.len(), theirs.len(), "{name}: the same tensors");
        for (key, value) in &theirs {
            assert_eq!(ours.get(key), Some(value), "{name}: {key}");
        }
        let inputs = read_inputs(&fixture(name));
        assert_eq!(logits(&back, &inputs), logits(&model, &inputs));
    }
}

#[test]
fn fine_tuning_starts_from_a_pretraining_folder_with_a_fresh_head_only() {
    let pretraining = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pretraining_v5");
    let device = Default::default();
    let (_, task, model, report) =
        load_classifier_dir::<Cpu>(&pretraining, Some(three_labels()), 7, &device)
            .expect("loads the encoder");
    assert_eq!(task, three_labels());
    assert_eq!(report.initialized, [ParamGroup::Classifier]);
    assert_eq!(model.outputs(), 3);
    // The encoder and pooler are the pre-trained ones.
    let (_, pre, _) = load_model_dir::<Cpu>(&pretraining, 0, &device).expect("loads");
    let inputs = read_inputs(&pretraining);
    let pooled = |bert: &bert_model::BertModel<Cpu>| {
        host(
            bert.forward(
                int2(&inputs.input_ids, &device),
                int2(&inputs.token_type_ids, &device),
                int2(&inputs.attention_mask, &device),
            )
            .pooler_output,
        )
    };
    assert_eq!(pooled(&model.bert), pooled(&pre.bert));
    // The fresh head follows the seed.
    let (_, _, again, _) =
        load_classifier_dir::<Cpu>(&pretraining, Some(three_labels()), 7, &device).expect("loads");
    let (_, _, other, _) =
        load_classifier_dir::<Cpu>(&pretraining, Some(three_labels()), 8, &device).expect("loads");
    let head = |m: &BertForSequenceClassification<Cpu>| host(m.classifier.weight.val());
    assert_eq!(head(&again), head(&model));
    assert_ne!(head(&other), head(&model));
    // A classifier folder of another label count keeps its encoder and gets a fresh head.
    let (_, _, _, report) = load_classifier_dir::<Cpu>(
        &fixture("three_labels"),
        Some(ClassifierTask::Regression),
        1,
        &device,
    )
    .expect("loads");
    assert_eq!(report.initialized, [ParamGroup::Classifier]);
}

#[test]
fn a_classifier_trains_end_to_end_under_autodiff() {
    let dir = fixture("three_labels");
    let device = Default::default();
    let (_, _, model, _) = load_classifier_dir::<CpuAd>(&dir, None, 0, &device).expect("loads");
    let inputs = read_inputs(&dir);
    let logits = model.forward(
        int2(&inputs.input_ids, &device),
        int2(&inputs.token_type_ids, &device),
        int2(&inputs.attention_mask, &device),
    );
    let labels =
        Tensor::<CpuAd, 1, Int>::from_data(TensorData::new(vec![0i64, 2, 1], [3]), &device);
    let (nll, _) = bert_model::fused::cross_entropy(logits, labels);
    let grads = nll.mean().backward();
    let mut model = model;
    for row in model.named_params_mut() {
        let g = row.param.grad_flat(&grads);
        assert!(g.is_some(), "{} gets a gradient", row.hf_name);
    }
}

#[test]
fn a_classifier_folder_is_not_written_from_a_pretraining_model() {
    let (config, model, _) = load_model_dir::<Cpu>(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pretraining_v5"),
        0,
        &Default::default(),
    )
    .expect("loads");
    let tmp = tempfile::tempdir().expect("temp dir");
    let err = save_model_dir_as(
        &model,
        &config,
        tmp.path(),
        None,
        Architecture::ForSequenceClassification,
    )
    .expect_err("refused");
    assert!(matches!(err, ModelError::WrongExport { .. }), "{err}");
    assert!(err.to_string().contains("save_classifier_dir"), "{err}");
    assert!(!tmp.path().join("model.safetensors").exists());
}

#[test]
fn a_bad_label_table_names_the_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("three_labels").join(file), tmp.path().join(file)).expect("copy");
    }
    let path = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace("\"2\": \"neutral\"", "\"7\": \"neutral\""),
    )
    .expect("write");
    let err = load_classifier_dir::<Cpu>(tmp.path(), None, 0, &Default::default())
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("id2label") && err.contains(&path.display().to_string()),
        "{err}"
    );
}
