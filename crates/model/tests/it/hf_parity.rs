//! Every committed HuggingFace fixture: import it and match HuggingFace's own outputs to 1e-4.

use crate::support::*;
use bert_model::{load_model_dir, ForwardInputs, ParamGroup, SourceLayout};

const TOL: f32 = 1e-4;

#[test]
fn full_outputs_match_huggingface() {
    let device = Default::default();
    for dir in fixture_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (config, model, report) = load_model_dir::<Cpu>(&dir, 0, &device).unwrap();
        let inputs = read_inputs(&dir);
        let expected = read_expected(&dir);
        let out = model.forward_full(
            int2(&inputs.input_ids, &device),
            int2(&inputs.token_type_ids, &device),
            int2(&inputs.attention_mask, &device),
        );
        assert_close(
            &format!("{name}/last_hidden_state"),
            &host(out.last_hidden_state),
            &expected["last_hidden_state"],
            TOL,
        );
        assert_close(
            &format!("{name}/pooler_output"),
            &host(out.pooler_output),
            &expected["pooler_output"],
            TOL,
        );
        if report.layout == SourceLayout::PreTraining {
            assert!(
                report.initialized.is_empty(),
                "{name}: {:?}",
                report.initialized
            );
            assert_close(
                &format!("{name}/prediction_logits"),
                &host(out.prediction_logits),
                &expected["prediction_logits"],
                TOL,
            );
            assert_close(
                &format!("{name}/seq_relationship_logits"),
                &host(out.seq_relationship_logits),
                &expected["seq_relationship_logits"],
                TOL,
            );
        } else {
            // A plain BertModel file: the heads are fresh, and the user is told so.
            assert_eq!(
                report.initialized,
                vec![ParamGroup::MlmHead, ParamGroup::NspHead],
                "{name}"
            );
            assert!(!expected.contains_key("prediction_logits"));
        }
        assert!(config.validate().is_ok());
    }
}

#[test]
fn pretraining_losses_match_huggingface() {
    let device = Default::default();
    let mut checked = 0;
    for dir in fixture_dirs() {
        let inputs = read_inputs(&dir);
        if inputs.masked_positions.is_none() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (_, model, _) = load_model_dir::<Cpu>(&dir, 0, &device).unwrap();
        let expected = read_expected(&dir);
        let m = model
            .forward_pretraining(batch_from_inputs(&inputs, &device))
            .metrics();
        let scalar = |k: &str| expected[k].1[0] as f64;
        for (key, got) in [
            ("mlm_loss", m.mlm_loss),
            ("nsp_loss", m.nsp_loss),
            ("loss", m.loss),
        ] {
            assert!(
                (got - scalar(key)).abs() < 1e-4,
                "{name}/{key}: got {got}, HuggingFace {}",
                scalar(key)
            );
        }
        assert!(
            (m.mlm_accuracy() - scalar("mlm_accuracy")).abs() < 1e-6,
            "{name}/mlm_accuracy {m:?}"
        );
        assert!(
            (m.nsp_accuracy() - scalar("nsp_accuracy")).abs() < 1e-6,
            "{name}/nsp_accuracy {m:?}"
        );
        let real_slots: f32 = inputs
            .masked_weights
            .as_ref()
            .unwrap()
            .iter()
            .flatten()
            .sum();
        assert_eq!(m.mlm_total, real_slots as f64);
        checked += 1;
    }
    assert!(checked >= 1, "no fixture carries masked positions");
}

#[test]
fn forward_json_matches_huggingface() {
    let device = Default::default();
    for dir in fixture_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (config, model, report) = load_model_dir::<Cpu>(&dir, 0, &device).unwrap();
        let text = std::fs::read_to_string(dir.join("inputs.json")).unwrap();
        let inputs: ForwardInputs = serde_json::from_str(&text).unwrap();
        let out = inputs.run(&model, &config, &device).unwrap();
        let expected = read_expected(&dir);
        let flat3 = |v: &Vec<Vec<Vec<f32>>>| -> (Vec<usize>, Vec<f32>) {
            (
                vec![v.len(), v[0].len(), v[0][0].len()],
                v.iter().flatten().flatten().copied().collect(),
            )
        };
        let flat2 = |v: &Vec<Vec<f32>>| -> (Vec<usize>, Vec<f32>) {
            (
                vec![v.len(), v[0].len()],
                v.iter().flatten().copied().collect(),
            )
        };
        assert_close(
            &format!("{name}/json last_hidden_state"),
            &flat3(&out.last_hidden_state),
            &expected["last_hidden_state"],
            TOL,
        );
        assert_close(
            &format!("{name}/json pooler_output"),
            &flat2(&out.pooler_output),
            &expected["pooler_output"],
            TOL,
        );
        if report.layout == SourceLayout::PreTraining {
            assert_close(
                &format!("{name}/json prediction_logits"),
                &flat3(&out.prediction_logits),
                &expected["prediction_logits"],
                TOL,
            );
            assert_close(
                &format!("{name}/json nsp"),
                &flat2(&out.seq_relationship_logits),
                &expected["seq_relationship_logits"],
                TOL,
            );
        }
    }
}
