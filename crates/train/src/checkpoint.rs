//! Checkpoints: a directory per step, written under a temporary name and renamed when complete.
//!
//! Layout of `checkpoints/step-00001000/`:
//! - `config.json`, `model.safetensors`: the model, HuggingFace names and layout (any command
//!   that takes a model folder takes a checkpoint);
//! - `optimizer.safetensors`: moments `<hf name>.exp_avg` / `<hf name>.exp_avg_sq`;
//! - `trainer_state.json`: step, counters, data cursor, optimiser config and step, the resolved
//!   run config, versions;
//! - tokenizer files (`vocab.txt`, `tokenizer.json`, …) when the data knows them.
//!
//! `trainer_state.json` is written last and records the size and CRC32 of `model.safetensors`
//! and `optimizer.safetensors` ([`TrainerState::files`]); loading checks them first
//! ([`verify_files`]), so a damaged weight file is an error naming it, never silently used.
//! Checkpoints written before checksums existed load with a warning.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use bert_fsutil::{sync_dir, write_atomic};
use bert_model::WEIGHTS_FILE;
use bert_model::{save_model_dir, BertConfig, BertForPreTraining, ParamGroup};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::digest::FileDigest;
use crate::error::{Result, TrainError};
use crate::optim::{Moments, Optimizer};
use crate::step::TrainState;

/// File holding the optimiser moments.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File holding the trainer state.
pub const STATE_FILE: &str = "trainer_state.json";
const PREFIX: &str = "step-";
/// Files whose size and CRC32 every checkpoint records.
pub const CHECKSUMMED_FILES: [&str; 2] = [WEIGHTS_FILE, OPTIMIZER_FILE];
/// Key of the optimiser file's metadata listing the parameters saved without moments (they
/// had no update yet); any other parameter without moments is damage.
const WITHOUT_MOMENTS_KEY: &str = "without_moments";

/// The `[checkpoint]` table: how often checkpoints are written and how many are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// Write a checkpoint every N steps (and always at the end).
    pub every: u64,
    /// Keep the newest N checkpoints.
    pub keep: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self {
            every: 1000,
            keep: 3,
        }
    }
}

impl CheckpointSection {
    /// Checks the values no run can use, naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.every == 0 {
            return Err("`checkpoint.every` must be at least 1".into());
        }
        if self.keep == 0 {
            return Err("`checkpoint.keep` must be at least 1".into());
        }
        Ok(())
    }
}

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
    /// The shards' objective: what the model's heads were trained for, and the class an
    /// export of this checkpoint is written as. Absent in checkpoints of runs before
    /// objectives existed, which were all `mlm_nsp`.
    #[serde(default)]
    pub objective: bert_data::Objective,
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
    /// Size and CRC32 of the weight files by file name ([`CHECKSUMMED_FILES`]), filled in by
    /// [`save`]; empty in checkpoints written before checksums were recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileDigest>,
}

fn one_rank() -> usize {
    1
}

/// The directory name of step `step`'s checkpoint.
pub fn checkpoint_name(step: u64) -> String {
    format!("{PREFIX}{step:08}")
}

/// Complete checkpoints in `root` (those with a trainer state), oldest first. Temporary
/// directories left by a killed run are not listed (and are removed by [`clean_partial`]).
/// A listed checkpoint may still be damaged since: [`read_verified_state`] tells.
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

/// Name prefix of a checkpoint folder being written (renamed into place when complete), for
/// pre-training's and fine-tuning's checkpoints alike.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Removes temporary checkpoint directories (named [`TEMP_PREFIX`]…) a killed run left behind
/// in `root`.
pub fn clean_partial(root: &Path) {
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The optimiser moments of the parameters `params` (naming-table order, one entry of `moments`
/// each) as a safetensors file: `<hf name>.exp_avg` / `<hf name>.exp_avg_sq`, and the list of
/// parameters without moments (no update reached them yet) in the metadata. Any model's
/// checkpoint uses it: pre-training's and fine-tuning's.
pub fn moments_file<B: Backend>(
    params: &[ParamShape],
    moments: &[Option<Moments<B>>],
) -> Result<Vec<u8>> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut without: Vec<&str> = Vec::new();
    for (name, m) in params.iter().map(|p| &p.name).zip(moments) {
        if m.is_none() {
            without.push(name);
        }
        if let Some(Moments { m, v }) = m {
            for (suffix, t) in [("exp_avg", m), ("exp_avg_sq", v)] {
                let values: Vec<f32> =
                    bert_model::host_values(t.clone(), &format!("the moments of {name}"))?;
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
    let metadata = HashMap::from([(
        WITHOUT_MOMENTS_KEY.to_string(),
        serde_json::to_string(&without).expect("a list of names serialises"),
    )]);
    safetensors::serialize(views, &Some(metadata)).map_err(|e| TrainError::Checkpoint {
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
    let tmp = temp_checkpoint_dir(root, &checkpoint_name(trainer.step));
    save_model_dir(&state.model, config, &tmp, tokenizer_dir)?;
    let moments = moments_file(
        &ParamShape::of_table(state.model.named_params_mut()),
        &state.moments,
    )?;
    write_atomic(&tmp.join(OPTIMIZER_FILE), &moments)?;
    let mut trainer = trainer.clone();
    // The weights are digested as they lie on disk (the model crate writes them); the state
    // that records the digests is written last, so a listed checkpoint always has them.
    trainer.files = BTreeMap::from([
        (
            WEIGHTS_FILE.to_string(),
            FileDigest::of_file(&tmp.join(WEIGHTS_FILE))
                .map_err(TrainError::io("reading", tmp.join(WEIGHTS_FILE)))?,
        ),
        (OPTIMIZER_FILE.to_string(), FileDigest::of_bytes(&moments)),
    ]);
    drop(moments);
    let json = serde_json::to_vec_pretty(&trainer).expect("trainer state serialises");
    write_atomic(&tmp.join(STATE_FILE), &json)?;
    place_checkpoint(root, &tmp, &final_dir, keep, || {
        list_checkpoints(root)
            .into_iter()
            .map(|(_, dir)| dir)
            .collect()
    })?;
    Ok(final_dir)
}

/// The empty folder a checkpoint named `name` is written into under `root` before
/// [`place_checkpoint`] renames it (its prefix marks it half-written for [`clean_partial`]).
pub fn temp_checkpoint_dir(root: &Path, name: &str) -> PathBuf {
    let tmp = root.join(format!("{TEMP_PREFIX}{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    tmp
}

/// Puts the complete checkpoint folder `tmp` in place as `final_dir` (replacing a folder of
/// that name), makes the rename durable, then removes all but the newest `keep` of the
/// checkpoints `listed` returns, oldest first: a crash at any point leaves the newest complete
/// checkpoint.
pub fn place_checkpoint(
    root: &Path,
    tmp: &Path,
    final_dir: &Path,
    keep: usize,
    listed: impl FnOnce() -> Vec<PathBuf>,
) -> Result<()> {
    sync_dir(tmp);
    if final_dir.exists() {
        fs::remove_dir_all(final_dir).map_err(TrainError::io("replacing", final_dir))?;
    }
    fs::rename(tmp, final_dir).map_err(TrainError::io("renaming into place", final_dir))?;
    sync_dir(root);
    let all = listed();
    if all.len() > keep {
        for old in &all[..all.len() - keep] {
            let _ = fs::remove_dir_all(old);
        }
    }
    Ok(())
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

/// Checks the size and CRC32 that `state` records for each weight file of checkpoint `dir`.
/// A checkpoint written before checksums were recorded passes with a warning (its files are
/// still parsed and shape-checked when loaded).
pub fn verify_files(dir: &Path, state: &TrainerState) -> Result<()> {
    if state.files.is_empty() {
        tracing::warn!(
            "checkpoint {} records no checksums (written by an older version): its weight files \
             are loaded unverified",
            dir.display()
        );
        return Ok(());
    }
    let recorded = CHECKSUMMED_FILES
        .iter()
        .map(|&name| {
            state
                .files
                .get(name)
                .map(|digest| (name, digest))
                .ok_or_else(|| TrainError::Checkpoint {
                    path: dir.to_path_buf(),
                    message: format!("{STATE_FILE} records no checksum for `{name}`"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    verify_digests(dir, recorded)
}

/// Checks that each file of folder `dir` has the size and CRC32 recorded for it (a
/// checkpoint's record of what it wrote): the first that differs is a [`TrainError::Checksum`].
pub fn verify_digests<'a>(
    dir: &Path,
    recorded: impl IntoIterator<Item = (&'a str, &'a FileDigest)>,
) -> Result<()> {
    for (name, expected) in recorded {
        let path = dir.join(name);
        let actual = FileDigest::of_file(&path).map_err(TrainError::io("reading", &path))?;
        if &actual != expected {
            return Err(TrainError::Checksum {
                path,
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// Reads and checks a checkpoint's state: `trainer_state.json` parses and the weight files
/// match their checksums. What [`list_checkpoints`] lists may still be damaged; this says.
pub fn read_verified_state(dir: &Path) -> Result<TrainerState> {
    let state = read_state(dir)?;
    verify_files(dir, &state)?;
    Ok(state)
}

/// Loads a model folder for inference or conversion (`forward`, `eval`, `export`, `import`,
/// `fill-mask`): one of this project's checkpoints has its recorded checksums checked first, so
/// a damaged file is reported as such rather than loaded (a HuggingFace folder records none).
/// A folder of another tool may lack the heads: they are initialised from `seed` and listed in
/// the report; one of ours must hold every tensor.
pub fn load_model_verified<B: burn::tensor::backend::Backend>(
    dir: &Path,
    seed: u64,
    device: &B::Device,
) -> Result<(BertConfig, BertForPreTraining<B>, bert_model::LoadReport)> {
    let ours = dir.join(STATE_FILE).is_file();
    if ours {
        read_verified_state(dir)?;
    }
    let loaded = bert_model::load_model_dir::<B>(dir, seed, device)?;
    if ours {
        require_every_tensor(dir, &loaded.2)?;
    }
    Ok(loaded)
}

/// The HuggingFace class a model trained on `objective` is exported as: `BertForMaskedLM` for
/// `mlm`, whose pooler and NSP head were never trained; `BertForPreTraining` otherwise (for
/// `mlm_sop` its `cls.seq_relationship` head holds the SOP classifier, 0 = in order,
/// 1 = swapped).
pub fn export_architecture(objective: bert_data::Objective) -> bert_model::Architecture {
    if objective.has_pair_label() {
        bert_model::Architecture::ForPreTraining
    } else {
        bert_model::Architecture::ForMaskedLm
    }
}

/// The objective a model folder was trained on: from its trainer state when it is one of
/// this project's checkpoints (verified), `None` for other folders.
pub fn checkpoint_objective(dir: &Path) -> Result<Option<bert_data::Objective>> {
    if !dir.join(STATE_FILE).is_file() {
        return Ok(None);
    }
    Ok(Some(read_verified_state(dir)?.objective))
}

/// Refuses one of this project's checkpoints whose weights file lacks tensors: it wrote every
/// one, so a missing tensor means a damaged or edited file (`--resume` then goes back to an
/// older checkpoint). Fresh initialisation is only for folders of other tools, such as a
/// plain `BertModel` without the pre-training heads.
pub(crate) fn require_every_tensor(dir: &Path, report: &bert_model::LoadReport) -> Result<()> {
    if report.initialized.is_empty() {
        return Ok(());
    }
    Err(TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message: format!(
            "`{WEIGHTS}` lacks the weights of {:?}; a checkpoint of this project holds every \
             tensor, so the file is damaged or was edited (it is not filled in with fresh \
             weights)",
            report.initialized,
            WEIGHTS = bert_model::WEIGHTS_FILE
        ),
    })
}

/// The parameters a checkpoint's optimiser file says it saved without moments (no update had
/// reached them yet); `None` for files written before the list was recorded.
fn saved_without_moments(bytes: &[u8], path: &Path) -> Result<Option<BTreeSet<String>>> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let Some(list) = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(WITHOUT_MOMENTS_KEY))
    else {
        return Ok(None);
    };
    serde_json::from_str(list)
        .map(Some)
        .map_err(|e| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("metadata `{WITHOUT_MOMENTS_KEY}`: {e}"),
        })
}

/// One parameter as the optimiser file knows it: its HuggingFace name, its number of values
/// and its model part.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamShape {
    /// HuggingFace name.
    pub name: String,
    /// Number of values.
    pub len: usize,
    /// Model part (a part a run drew fresh may lack moments).
    pub group: ParamGroup,
}

impl ParamShape {
    /// The shapes of a model's naming table, in its order.
    pub fn of_table<B: burn::tensor::backend::Backend>(
        rows: Vec<bert_model::NamedParam<'_, B>>,
    ) -> Vec<ParamShape> {
        rows.into_iter()
            .map(|row| ParamShape {
                len: row.param.num_elements(),
                name: row.hf_name,
                group: row.group,
            })
            .collect()
    }
}

/// Loads the optimiser moments of a checkpoint (naming-table order of `model`).
///
/// Every parameter must have both moments, except those the file lists as saved without
/// (no update had reached them) and those of `fresh` groups (freshly initialised by an
/// `init_from` that lacked them). Anything else missing is [`TrainError::MissingMoments`]:
/// silently starting it from zero moments would change the run. Files from before the list
/// was recorded may lack moments only altogether (a checkpoint before the first update).
/// Checksums are the caller's to check first ([`verify_files`]).
pub fn load_moments<B: AutodiffBackend>(
    dir: &Path,
    model: &mut BertForPreTraining<B>,
    device: &B::Device,
    fresh: &[ParamGroup],
) -> Result<Vec<Option<Moments<B::InnerBackend>>>> {
    let params = ParamShape::of_table(model.named_params_mut());
    read_moments_file(&dir.join(OPTIMIZER_FILE), &params, device, fresh)
}

/// Reads the moments of `params` from the optimiser file at `path` (written by
/// [`moments_file`]), under the rules of [`load_moments`].
pub fn read_moments_file<B: Backend>(
    path: &Path,
    params: &[ParamShape],
    device: &B::Device,
    fresh: &[ParamGroup],
) -> Result<Vec<Option<Moments<B>>>> {
    let path = path.to_path_buf();
    let bytes = fs::read(&path).map_err(TrainError::io("reading", &path))?;
    let bad = |message: String| TrainError::Checkpoint {
        path: path.clone(),
        message,
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let listed = saved_without_moments(&bytes, &path)?;
    let may_lack = |name: &str, group: ParamGroup| {
        fresh.contains(&group)
            || match &listed {
                Some(list) => list.contains(name),
                None => st.is_empty(),
            }
    };
    let read = |name: &str, len: usize| -> Result<Option<Tensor<B, 1>>> {
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
    for p in params {
        let m = read(&format!("{}.exp_avg", p.name), p.len)?;
        let v = read(&format!("{}.exp_avg_sq", p.name), p.len)?;
        let missing = |moment: &'static str| TrainError::MissingMoments {
            path: path.clone(),
            parameter: p.name.clone(),
            moment,
        };
        out.push(match (m, v) {
            (Some(m), Some(v)) => Some(Moments { m, v }),
            (None, None) if may_lack(&p.name, p.group) => None,
            (None, None) => return Err(missing("`exp_avg` or `exp_avg_sq`")),
            (None, Some(_)) => return Err(missing("`exp_avg`")),
            (Some(_), None) => return Err(missing("`exp_avg_sq`")),
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

/// The vocabulary hash a model folder (an `init_from`) was trained with, and the file it
/// comes from: the hash a checkpoint of ours records in `trainer_state.json` (`state`), else
/// that of the folder's `vocab.txt` or `tokenizer.json`. `None` when the folder has neither.
pub fn model_dir_vocab_hash(
    dir: &Path,
    state: Option<&TrainerState>,
) -> Result<Option<(PathBuf, String)>> {
    if let Some(state) = state {
        return Ok(Some((dir.join(STATE_FILE), state.vocab_hash.clone())));
    }
    let unreadable = |path: &Path, e: bert_data::DataError| TrainError::Config {
        path: path.to_path_buf(),
        message: format!(
            "`model.init_from`: cannot read its vocabulary to compare with the data's: {e}"
        ),
    };
    let txt = dir.join("vocab.txt");
    if txt.is_file() {
        let vocab = bert_data::Vocab::read_vocab_txt(&txt).map_err(|e| unreadable(&txt, e))?;
        return Ok(Some((txt, vocab.hash().to_string())));
    }
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        let tokenizer = bert_data::WordPieceTokenizer::from_tokenizer_json(&json)
            .map_err(|e| unreadable(&json, e))?;
        return Ok(Some((json, tokenizer.vocab().hash().to_string())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_digest_read_in_pieces_equals_the_digest_of_its_bytes() {
        // Longer than the 1 MiB read buffer, and not a multiple of it.
        let bytes: Vec<u8> = (0..(3 << 20) + 12345u32)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        fs::write(&path, &bytes).unwrap();
        let digest = FileDigest::of_file(&path).unwrap();
        assert_eq!(digest, FileDigest::of_bytes(&bytes));
        assert_eq!(digest.bytes, bytes.len() as u64);
        // Known value: CRC32 (IEEE) of "123456789" is cbf43926.
        assert_eq!(FileDigest::of_bytes(b"123456789").crc32, "cbf43926");
    }

    #[test]
    fn a_digest_reads_as_checksum_and_size() {
        let d = FileDigest::of_bytes(b"123456789");
        assert_eq!(d.to_string(), "CRC32 cbf43926 (9 bytes)");
    }
}
