//! The whole training step against PyTorch: the same initial HuggingFace model, the same
//! batches, AdamW with BERT's settings, global-norm clipping and the warm-up/decay schedule,
//! twelve steps (fixtures by `scripts/make_hf_training_fixture.py`: `BertForPreTraining` with
//! transformers 5.24, and `BertForMaskedLM` for the `mlm` objective with transformers 5.25).

use std::path::Path;

use bert_data::{HostBatch, Objective};
use bert_model::load_model_dir;
use bert_train::TrainState;
use bert_train::{DecayOver, Schedule};
use bert_train::{Optimizer, OptimizerConfig, OptimizerKind};

use crate::support::SERIAL;

type B = burn::backend::Autodiff<burn::backend::Flex>;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read_f32(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                v.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn twelve_adamw_steps_match_pytorch() {
    twelve_steps_match(&fixture("adamw_steps"), Objective::MlmNsp);
}

/// MLM-only training (`objective = "mlm"`) is a `BertForMaskedLM` step: no NSP loss, and the
/// pooler and NSP head (which that class lacks) neither trained nor exported.
#[test]
fn twelve_mlm_only_adamw_steps_match_pytorch_masked_lm() {
    twelve_steps_match(&fixture("adamw_steps_mlm"), Objective::Mlm);
}

fn twelve_steps_match(dir: &Path, objective: Objective) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = dir.to_path_buf();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let batches: Vec<HostBatch> =
        serde_json::from_slice(&std::fs::read(dir.join("batches.json")).unwrap()).unwrap();
    let device = Default::default();
    let (_, model, report) = load_model_dir::<B>(&dir, 0, &device).unwrap();
    let absent = match objective {
        Objective::Mlm => vec![
            bert_model::ParamGroup::Pooler,
            bert_model::ParamGroup::NspHead,
        ],
        _ => vec![],
    };
    assert_eq!(report.initialized, absent);
    assert_eq!(
        expected["objective"].as_str().unwrap_or("mlm_nsp"),
        objective.as_str()
    );
    let schedule = Schedule {
        peak_lr: expected["peak_lr"].as_f64().unwrap(),
        warmup_steps: expected["warmup_steps"].as_u64().unwrap(),
        total_steps: expected["total_steps"].as_u64().unwrap(),
        power: 1.0,
        decay_over: DecayOver::AfterWarmup,
    };
    let config = OptimizerConfig {
        kind: OptimizerKind::Adamw,
        ..OptimizerConfig::default()
    };
    let mut state = TrainState::new(model, Optimizer::new(config)).with_objective(objective);
    let untrained: Vec<_> = state.model.to_host_tensors().unwrap();
    let max_norm = expected["max_grad_norm"].as_f64().unwrap();
    for (step, (batch, want)) in batches
        .iter()
        .zip(expected["steps"].as_array().unwrap())
        .enumerate()
    {
        let lr = schedule.lr(step as u64);
        assert!(
            (lr - want["lr"].as_f64().unwrap()).abs() < 1e-12,
            "schedule at step {step}"
        );
        let out = state.step(std::slice::from_ref(batch), lr, max_norm, 0, &device);
        assert!(out.applied);
        for (key, got) in [
            ("loss", out.metrics.loss),
            ("mlm_loss", out.metrics.mlm_loss),
            ("nsp_loss", out.metrics.nsp_loss),
            ("grad_norm", out.grad_norm),
        ] {
            let want = want[key].as_f64().unwrap();
            assert!(
                (got - want).abs() < 2e-4 * want.abs().max(1.0),
                "step {}: {key} {got} vs PyTorch {want}",
                step + 1
            );
        }
    }
    // Final weights, in HuggingFace layout, against PyTorch's.
    let out = std::env::temp_dir().join(format!("bert-torch-parity-{}", std::process::id()));
    let config = bert_model::BertConfig::load(&dir.join("config.json")).unwrap();
    let architecture = bert_train::export_architecture(objective);
    bert_model::save_model_dir_as(&state.model, &config, &out, None, architecture).unwrap();
    let ours = read_f32(&out.join("model.safetensors"));
    let theirs = read_f32(&dir.join("final.safetensors"));
    assert_eq!(
        ours.iter().map(|t| &t.0).collect::<Vec<_>>(),
        theirs.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{name}: max |diff| {worst} after 12 steps");
    }
    std::fs::remove_dir_all(&out).unwrap();
    // What the objective does not train is left exactly as it was (no weight decay either).
    let after = state.model.to_host_tensors().unwrap();
    for (a, b) in untrained.iter().zip(&after) {
        let head = a.name.starts_with("bert.pooler") || a.name.starts_with("cls.seq_relationship");
        if head && objective == Objective::Mlm {
            assert_eq!(a, b, "{} changed in an mlm run", a.name);
        }
    }
}
