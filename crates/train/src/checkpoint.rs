//! Checkpoints: a directory per step, written under a temporary name and renamed when complete.
//!
//! Layout of `checkpoints/step-00001000/`:
//! - `config.json`, `model.safetensors`: the model, HuggingFace names and layout (any command
//!   that takes a model folder takes a checkpoint);
//! - `optimizer.safetensors`: moments `<hf name>.exp_avg` / `<hf name>.exp_avg_sq`;
//! - `trainer_state.json`: step, counters, data cursor, optimiser config and step, the resolved
//!   run config, versions;
//! - tokenizer files (`vocab.txt`, `tokenizer.json`, …) when the data knows them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use bert_model::fsutil::{sync_dir, write_atomic};
use bert_model::params::ParamMut;
use bert_model::{save_model_dir, BertConfig, BertForPreTraining};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::{Moments, Optimizer};
use crate::step::TrainState;

/// File holding the optimiser moments.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File holding the trainer state.
pub const STATE_FILE: &str = "trainer_state.json";
const PREFIX: &str = "step-";

/// Everything besides tensors that a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimiser steps completed.
    pub step: u64,
    /// Sequences consumed.
    pub sequences_seen: u64,
    /// Real tokens consumed.
    pub tokens_seen: u64,
    /// Steps skipped for non-finite values, in total and in a row at the end.
    pub skipped_steps: u64,
    /// Skips in a row at the time of the checkpoint.
    pub consecutive_skips: u32,
    /// The training loader's position (epoch and index), as the data crate serialises it.
    pub data_cursor: serde_json::Value,
    /// Optimiser configuration and step counter.
    pub optimizer: Optimizer,
    /// The run's seed. Dropout is seeded per (seed, step, micro-batch) and dynamic masks per
    /// (seed, epoch, sample), so the seed, the step and the cursor are the complete RNG state.
    pub seed: u64,
    /// Hash of the vocabulary the data was prepared with.
    pub vocab_hash: String,
    /// The resolved run config (TOML as JSON).
    pub run_config: serde_json::Value,
    /// Seconds of training so far (for throughput across resumes).
    pub elapsed_s: f64,
    /// Versions of this crate and of Burn.
    pub versions: HashMap<String, String>,
    /// fp16 runs: the dynamic loss scaler (scale, good steps, overflows so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<crate::step::LossScaler>,
    /// Data-parallel ranks the run had when this checkpoint was written (its global batch is
    /// `data.batch_size × world_size × train.accumulation`).
    #[serde(default = "one_rank")]
    pub world_size: usize,
}

fn one_rank() -> usize {
    1
}

/// The directory name of step `step`'s checkpoint.
pub fn checkpoint_name(step: u64) -> String {
    format!("{PREFIX}{step:08}")
}

/// Complete checkpoints in `root`, oldest first. Temporary directories left by a killed run
/// are not listed (and are removed by [`clean_partial`]).
pub fn list_checkpoints(root: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix(PREFIX)?.parse::<u64>().ok()?;
            let path = e.path();
            path.join(STATE_FILE).is_file().then_some((step, path))
        })
        .collect();
    found.sort();
    found
}

/// Removes temporary checkpoint directories a killed run left behind.
pub fn clean_partial(root: &Path) {
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn moments_to_safetensors<B: AutodiffBackend>(state: &mut TrainState<B>) -> Result<Vec<u8>> {
    let names: Vec<String> = state
        .model
        .named_params_mut()
        .into_iter()
        .map(|r| r.hf_name)
        .collect();
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, m) in names.iter().zip(&state.moments) {
        if let Some(Moments { m, v }) = m {
            for (suffix, t) in [("exp_avg", m), ("exp_avg_sq", v)] {
                let values = t
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .unwrap_or_default();
                let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
                buffers.push((format!("{name}.{suffix}"), vec![values.len()], bytes));
            }
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = buffers
        .iter()
        .map(|(n, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .expect("shape and byte length agree by construction");
            (n.clone(), view)
        })
        .collect();
    safetensors::serialize(views, &None).map_err(|e| TrainError::Checkpoint {
        path: PathBuf::from(OPTIMIZER_FILE),
        message: e.to_string(),
    })
}

/// Writes a complete checkpoint of `state` as `root/step-NNNNNNNN`, then removes the oldest
/// beyond `keep` (only after the new one is in place).
pub fn save<B: AutodiffBackend>(
    root: &Path,
    state: &mut TrainState<B>,
    config: &BertConfig,
    trainer: &TrainerState,
    tokenizer_dir: Option<&Path>,
    keep: usize,
) -> Result<PathBuf> {
    fs::create_dir_all(root).map_err(TrainError::io("creating", root))?;
    let final_dir = root.join(checkpoint_name(trainer.step));
    let tmp = root.join(format!(
        ".tmp-{}-{}",
        checkpoint_name(trainer.step),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&tmp);
    save_model_dir(&state.model, config, &tmp, tokenizer_dir)?;
    write_atomic(&tmp.join(OPTIMIZER_FILE), &moments_to_safetensors(state)?)?;
    let json = serde_json::to_vec_pretty(trainer).expect("trainer state serialises");
    write_atomic(&tmp.join(STATE_FILE), &json)?;
    sync_dir(&tmp);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(TrainError::io("replacing", &final_dir))?;
    }
    fs::rename(&tmp, &final_dir).map_err(TrainError::io("renaming into place", &final_dir))?;
    sync_dir(root);
    let all = list_checkpoints(root);
    if all.len() > keep {
        for (_, old) in &all[..all.len() - keep] {
            let _ = fs::remove_dir_all(old);
        }
    }
    Ok(final_dir)
}

/// Reads `trainer_state.json` of a checkpoint.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).map_err(TrainError::io("reading", &path))?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message: format!("{STATE_FILE}: {e}"),
    })
}

/// Loads the optimiser moments of a checkpoint into `moments` (naming-table order of `model`).
pub fn load_moments<B: AutodiffBackend>(
    dir: &Path,
    model: &mut BertForPreTraining<B>,
    device: &B::Device,
) -> Result<Vec<Option<Moments<B::InnerBackend>>>> {
    let path = dir.join(OPTIMIZER_FILE);
    let bytes = fs::read(&path).map_err(TrainError::io("reading", &path))?;
    let bad = |message: String| TrainError::Checkpoint {
        path: path.clone(),
        message,
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let read = |name: &str, len: usize| -> Result<Option<Tensor<B::InnerBackend, 1>>> {
        let Ok(view) = st.tensor(name) else {
            return Ok(None);
        };
        if view.dtype() != Dtype::F32 || view.shape() != [len] {
            return Err(bad(format!(
                "`{name}` has shape {:?} {:?}, expected [{len}] F32",
                view.shape(),
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Some(Tensor::from_data(
            TensorData::new(values, [len]),
            device,
        )))
    };
    let mut out = Vec::new();
    for row in model.named_params_mut() {
        let len = match row.param {
            ParamMut::D1(p) => p.val().dims().iter().product::<usize>(),
            ParamMut::D2(p) => p.val().dims().iter().product::<usize>(),
        };
        let m = read(&format!("{}.exp_avg", row.hf_name), len)?;
        let v = read(&format!("{}.exp_avg_sq", row.hf_name), len)?;
        out.push(match (m, v) {
            (Some(m), Some(v)) => Some(Moments { m, v }),
            (None, None) => None,
            _ => {
                return Err(bad(format!(
                    "`{}` has only one of its two moments",
                    row.hf_name
                )))
            }
        });
    }
    Ok(out)
}

/// Versions recorded in every checkpoint.
pub fn versions() -> HashMap<String, String> {
    [
        (
            "bert-train".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("burn".to_string(), "0.21.0".to_string()),
    ]
    .into()
}
