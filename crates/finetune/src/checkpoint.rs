//! Checkpoints of the run a sweep is in, so that `bert finetune --resume` continues it where it
//! stopped, step for step as if it had never stopped.
//!
//! Layout of `out_dir/checkpoints/run-0003-step-00000120/`:
//! - `config.json`, `model.safetensors`: the classifier, as [`save_classifier_dir`] writes it;
//! - `optimizer.safetensors`: the AdamW moments, as pre-training's checkpoints hold them;
//! - `run_state.json`: which run of the grid (index and settings), where it stands
//!   ([`RunProgress`]), and the size and CRC32 of the two weight files, written last.
//!
//! A checkpoint is written under a temporary name and renamed when complete; the two newest are
//! kept, so a damaged newest one (checked against its checksums) falls back to the one before.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bert_fsutil::write_atomic;
use bert_model::{
    load_classifier_dir, save_classifier_dir, BertConfig, BertForSequenceClassification,
    ClassifierTask, WEIGHTS_FILE,
};
use bert_train::{
    moments_file, read_moments_file, FileDigest, Moments, ParamShape, OPTIMIZER_FILE,
};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::error::{FinetuneError, Result};
use crate::train::{Resumed, RunProgress, RunSettings};

/// Folder of the checkpoints in the output folder.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
const STATE_FILE: &str = "run_state.json";
const PREFIX: &str = "run-";
/// Checkpoints kept: the newest and one to fall back to.
const KEEP: usize = 2;

/// What a checkpoint records besides tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CheckpointState {
    /// Index of the run in the sweep (0-based, the config's order).
    run: usize,
    /// That run's settings, to refuse a checkpoint of another grid.
    settings: RunSettings,
    /// Where the run stands.
    progress: RunProgress,
    /// Size and CRC32 of the weight files.
    files: BTreeMap<String, FileDigest>,
}

/// A checkpoint found in the output folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// Index of its run in the sweep.
    pub run: usize,
    /// Steps its run had taken.
    pub step: u64,
    /// Its folder.
    pub dir: PathBuf,
}

fn name(run: usize, step: u64) -> String {
    format!("{PREFIX}{run:04}-step-{step:08}")
}

fn parse(name: &str) -> Option<(usize, u64)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (run, step) = rest.split_once("-step-")?;
    Some((run.parse().ok()?, step.parse().ok()?))
}

/// The complete checkpoints under `root`, oldest first (temporary folders of a killed write
/// are not listed).
pub fn list(root: &Path) -> Vec<Found> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let (run, step) = parse(&e.file_name().to_string_lossy())?;
            let dir = e.path();
            dir.join(STATE_FILE)
                .is_file()
                .then_some(Found { run, step, dir })
        })
        .collect();
    found.sort_by_key(|f| (f.run, f.step));
    found
}

/// Removes every checkpoint and temporary folder under `root` (a run finished, or a sweep
/// starts afresh).
pub fn clear(root: &Path) -> Result<()> {
    if root.exists() {
        fs::remove_dir_all(root)
            .map_err(|e| FinetuneError::io(root, "removing the checkpoints", e))?;
    }
    Ok(())
}

/// Everything a checkpoint of one moment of a run holds.
pub struct Snapshot<'a, B: AutodiffBackend> {
    /// Index of the run in the sweep.
    pub run: usize,
    /// Its settings.
    pub settings: &'a RunSettings,
    /// Where it stands.
    pub progress: &'a RunProgress,
    /// Its weights.
    pub model: &'a mut BertForSequenceClassification<B>,
    /// Its optimiser moments.
    pub moments: &'a [Option<Moments<B::InnerBackend>>],
    /// The model's architecture.
    pub config: &'a BertConfig,
    /// The task.
    pub task: &'a ClassifierTask,
}

/// Writes `snapshot` as a complete checkpoint under `root`, then removes all but the newest
/// [`KEEP`] (only once the new one is in place).
pub fn save<B: AutodiffBackend>(root: &Path, snapshot: Snapshot<'_, B>) -> Result<PathBuf> {
    fs::create_dir_all(root).map_err(|e| FinetuneError::io(root, "creating", e))?;
    let final_name = name(snapshot.run, snapshot.progress.step);
    let final_dir = root.join(&final_name);
    let tmp = bert_train::temp_checkpoint_dir(root, &final_name);
    save_classifier_dir(&*snapshot.model, snapshot.config, snapshot.task, &tmp, None)?;
    let moments = moments_file(
        &ParamShape::of_table(snapshot.model.named_params_mut()),
        snapshot.moments,
    )?;
    write_atomic(&tmp.join(OPTIMIZER_FILE), &moments)
        .map_err(|e| FinetuneError::io(&tmp.join(OPTIMIZER_FILE), "writing", e))?;
    let weights = tmp.join(WEIGHTS_FILE);
    let state = CheckpointState {
        run: snapshot.run,
        settings: snapshot.settings.clone(),
        progress: snapshot.progress.clone(),
        files: BTreeMap::from([
            (
                WEIGHTS_FILE.to_string(),
                FileDigest::of_file(&weights)
                    .map_err(|e| FinetuneError::io(&weights, "reading", e))?,
            ),
            (OPTIMIZER_FILE.to_string(), FileDigest::of_bytes(&moments)),
        ]),
    };
    let json = serde_json::to_vec_pretty(&state).expect("a run state serialises");
    write_atomic(&tmp.join(STATE_FILE), &json)
        .map_err(|e| FinetuneError::io(&tmp.join(STATE_FILE), "writing", e))?;
    bert_train::place_checkpoint(root, &tmp, &final_dir, KEEP, || {
        list(root).into_iter().map(|found| found.dir).collect()
    })?;
    Ok(final_dir)
}

fn read_state(dir: &Path) -> Result<CheckpointState> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).map_err(|e| FinetuneError::io(&path, "reading", e))?;
    let state: CheckpointState =
        serde_json::from_slice(&bytes).map_err(|e| FinetuneError::io(&path, "parsing", e))?;
    bert_train::verify_digests(
        dir,
        state
            .files
            .iter()
            .map(|(name, digest)| (name.as_str(), digest)),
    )?;
    Ok(state)
}

/// A run's model and position, loaded from a checkpoint.
pub struct Loaded<B: AutodiffBackend> {
    /// The weights.
    pub model: BertForSequenceClassification<B>,
    /// Where the run stood, and its moments.
    pub resumed: Resumed<B>,
    /// The checkpoint's folder.
    pub dir: PathBuf,
}

/// Loads the newest intact checkpoint of run `run` (whose settings must be `settings`) under
/// `root`: `None` when there is none. A checkpoint that fails its checksums is skipped with a
/// warning for the one before it; one of another grid is an error (the config changed).
pub fn load_latest<B: AutodiffBackend>(
    root: &Path,
    run: usize,
    settings: &RunSettings,
    device: &B::Device,
) -> Result<Option<Loaded<B>>> {
    for found in list(root).into_iter().rev().filter(|f| f.run == run) {
        let state = match read_state(&found.dir) {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!("skipping a damaged checkpoint: {e}");
                continue;
            }
        };
        if &state.settings != settings || state.run != run {
            return Err(FinetuneError::Resume(format!(
                "checkpoint {} is of a run with other settings ({:?}) than run {} of the config \
                 ({settings:?}); the config changed since it was written",
                found.dir.display(),
                state.settings,
                run + 1
            )));
        }
        let (_, _, mut model, report) =
            load_classifier_dir::<B>(&found.dir, None, settings.seed, device)?;
        if !report.initialized.is_empty() {
            return Err(FinetuneError::io(
                &found.dir.join(WEIGHTS_FILE),
                "damaged",
                format!("it lacks {:?}", report.initialized),
            ));
        }
        let params = ParamShape::of_table(model.named_params_mut());
        let moments = read_moments_file::<B::InnerBackend>(
            &found.dir.join(OPTIMIZER_FILE),
            &params,
            device,
            &[],
        )?;
        return Ok(Some(Loaded {
            model,
            resumed: Resumed {
                progress: state.progress,
                moments,
            },
            dir: found.dir,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_run_then_step_and_parse_back() {
        assert_eq!(name(3, 120), "run-0003-step-00000120");
        assert_eq!(parse(&name(3, 120)), Some((3, 120)));
        assert_eq!(parse("run-0003"), None);
        assert_eq!(parse(".tmp-run-0003-step-00000120-77"), None);
    }
}
