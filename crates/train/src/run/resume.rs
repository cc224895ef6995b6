//! Resuming a run: finding the newest intact checkpoint, checking that it belongs to the same
//! run (its identity), and restoring model, optimiser and trainer state from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bert_model::{load_model_dir, BertConfig};
use burn::tensor::backend::AutodiffBackend;

use super::setup::{RunContext, Started};
use crate::checkpoint::{self, TrainerState};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::provider::DataFacts;
use crate::step::TrainState;

/// Continues from the newest intact checkpoint in `found` (oldest first): its state, with
/// this invocation's config recorded in it.
pub(super) fn resume<B: AutodiffBackend>(
    ctx: &RunContext<'_, B>,
    found: &[(u64, PathBuf)],
) -> Result<Started<B>> {
    let config = ctx.config;
    let restored = restore_newest_good::<B>(
        found,
        &ctx.ckpt_root,
        config,
        &ctx.model_config,
        (ctx.world_size, &ctx.facts),
        ctx.device,
    )?;
    let mut trainer_state = restored.trainer;
    let state = restored.state;
    let dir = restored.dir;
    let world_size = ctx.world_size;
    if trainer_state.world_size != world_size {
        tracing::info!(
            "the checkpoint was written by {} rank(s), the run continues on {world_size} \
             with the same global batch",
            trainer_state.world_size
        );
    }
    if let Ok(old) = serde_json::from_value::<RunConfig>(trainer_state.run_config.clone()) {
        if old.train.precision != config.train.precision {
            tracing::warn!(
                "`train.precision` was {} and is now {}: the run continues, but not \
                 bit-for-bit as it would have in {}",
                old.train.precision,
                config.train.precision,
                old.train.precision
            );
        }
    }
    trainer_state.run_config = ctx.run_config_json.clone();
    tracing::info!(
        "resuming from {} (step {})",
        dir.display(),
        trainer_state.step
    );
    Ok(Started {
        trainer_state,
        state,
        resumed_from: Some(dir),
    })
}

/// The keys that make a run what it is, each with its value as the config file writes it
/// (`model` and `optimizer` key by key, e.g. `model.hidden_size`; an absent value is
/// `unset`). The global batch counts, not how it is split over ranks and micro-batches: a run
/// may resume on another number of ranks.
fn identity(config: &RunConfig, world_size: usize) -> BTreeMap<String, String> {
    let b = config.data.batch_size;
    let a = config.train.accumulation;
    let mut keys = BTreeMap::from([
        ("seed".to_string(), config.seed.to_string()),
        (
            "data.train".to_string(),
            config.data.train.display().to_string(),
        ),
        (
            GLOBAL_BATCH.to_string(),
            format!("{} ({b} × {world_size} × {a})", b * world_size * a),
        ),
        (
            "data.pad_to_max_length".to_string(),
            config.data.pad_to_max_length.to_string(),
        ),
    ]);
    for (table, value) in [
        ("model", serde_json::to_value(&config.model)),
        ("optimizer", serde_json::to_value(&config.optimizer)),
    ] {
        flatten(table, &value.unwrap_or_default(), &mut keys);
    }
    keys
}

/// The identity key of the global batch.
const GLOBAL_BATCH: &str = "the global batch (data.batch_size × ranks × train.accumulation)";

/// `value`'s leaves under dotted names below `prefix`, written as in TOML.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        serde_json::Value::Null => {
            out.insert(prefix.to_string(), "unset".into());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The run config a checkpoint recorded, for its identity keys. Its `[tokenizer]` and
/// `[prepare]` tables are not part of the identity and are dropped first: a key those tables
/// have since renamed or refused must not make an older run impossible to resume.
fn stored_run_config(dir: &Path, recorded: &serde_json::Value) -> Result<RunConfig> {
    let mut value = recorded.clone();
    if let Some(tables) = value.as_object_mut() {
        tables.remove("tokenizer");
        tables.remove("prepare");
    }
    serde_json::from_value(value).map_err(|e| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message: format!("unreadable run config: {e}"),
    })
}

/// Refuses checkpoint `dir` when it belongs to another run: an identity key or the vocabulary
/// differs (the same global batch split over other ranks is the same run).
fn check_resume(
    dir: &Path,
    state: &TrainerState,
    config: &RunConfig,
    world_size: usize,
    facts: &DataFacts,
) -> Result<()> {
    let old = stored_run_config(dir, &state.run_config)?;
    let global = |c: &RunConfig, w: usize| c.data.batch_size * w * c.train.accumulation;
    let (was, now) = (
        identity(&old, state.world_size),
        identity(config, world_size),
    );
    let unset = "unset".to_string();
    let names: std::collections::BTreeSet<&String> = was.keys().chain(now.keys()).collect();
    let mut differ: Vec<String> = names
        .into_iter()
        .filter_map(|key| {
            let (a, b) = (
                was.get(key).unwrap_or(&unset),
                now.get(key).unwrap_or(&unset),
            );
            // The same global batch split another way is the same run (elastic resume).
            let same_global =
                key == GLOBAL_BATCH && global(&old, state.world_size) == global(config, world_size);
            (a != b && !same_global).then(|| format!("`{key}` was {a} and is now {b}"))
        })
        .collect();
    if state.vocab_hash != facts.vocab_hash {
        differ.push(format!(
            "the vocabulary hash was {} and is now {}",
            state.vocab_hash, facts.vocab_hash
        ));
    }
    if state.objective != facts.objective {
        differ.push(format!(
            "the shards' objective was {} and is now {} (to continue a run on another \
             objective, start a new run with `model.init_from` = this checkpoint)",
            state.objective, facts.objective
        ));
    }
    if !differ.is_empty() {
        return Err(TrainError::ResumeMismatch {
            path: dir.to_path_buf(),
            message: format!(
                "{}. Start a new run directory (`--out`) for a different run; total steps, evaluation and checkpoint intervals may change on resume",
                differ.join("; ")
            ),
        });
    }
    Ok(())
}

/// What a checkpoint restores.
struct Restored<B: AutodiffBackend> {
    dir: PathBuf,
    trainer: TrainerState,
    state: TrainState<B>,
}

/// Restores the newest intact checkpoint of `found` (oldest first), skipping damaged newer
/// ones with a warning that names them. A checkpoint of another run (`check_resume`) stops at
/// once: older ones of the same directory would not match either, and going back silently
/// would hide the changed config. `run` is the world size and the data's vocabulary hash.
fn restore_newest_good<B: AutodiffBackend>(
    found: &[(u64, PathBuf)],
    root: &Path,
    config: &RunConfig,
    model_config: &BertConfig,
    run: (usize, &DataFacts),
    device: &B::Device,
) -> Result<Restored<B>> {
    let mut tried = Vec::new();
    for (_, dir) in found.iter().rev() {
        match restore::<B>(dir, config, model_config, run, device) {
            Ok(restored) => return Ok(restored),
            Err(e) if e.is_damaged_checkpoint() => {
                tracing::warn!(
                    "skipping damaged checkpoint {}, trying an older one: {e}",
                    dir.display()
                );
                tried.push(format!("`{}`: {e}", dir.display()));
            }
            Err(e) => return Err(e),
        }
    }
    Err(TrainError::NoUsableCheckpoint {
        root: root.to_path_buf(),
        tried,
    })
}

/// Reads checkpoint `dir` whole: state, identity check, checksums, weights and moments.
fn restore<B: AutodiffBackend>(
    dir: &Path,
    config: &RunConfig,
    model_config: &BertConfig,
    (world_size, facts): (usize, &DataFacts),
    device: &B::Device,
) -> Result<Restored<B>> {
    let trainer = checkpoint::read_state(dir)?;
    check_resume(dir, &trainer, config, world_size, facts)?;
    checkpoint::verify_files(dir, &trainer)?;
    let (loaded_config, mut model, report) = load_model_dir::<B>(dir, config.seed, device)?;
    checkpoint::require_every_tensor(dir, &report)?;
    if loaded_config != *model_config {
        return Err(TrainError::ResumeMismatch {
            path: dir.to_path_buf(),
            message: "the model config differs from the checkpoint's".into(),
        });
    }
    let moments = checkpoint::load_moments::<B>(dir, &mut model, device, &[])?;
    let state = TrainState {
        model,
        optimizer: trainer.optimizer.clone(),
        moments,
        loss_scaler: None,
        objective: trainer.objective,
    };
    Ok(Restored {
        dir: dir.to_path_buf(),
        trainer,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_config_resumes_whatever_its_prepare_and_tokenizer_tables_hold() {
        let dir = Path::new("runs/x/checkpoints/step-00000010");
        let text = crate::config::tests::MINIMAL.replacen(
            "[train]",
            "[prepare]\ninputs = [\"corpus\"]\nvocab = \"vocab.txt\"\n[train]",
            1,
        );
        let config = RunConfig::parse(&text, Path::new("/cfg/run.toml"), &[]).unwrap();
        let mut recorded = serde_json::to_value(&config).unwrap();
        // Keys an older version wrote and this one refuses.
        recorded["prepare"]["whole_word"] = serde_json::json!(true);
        recorded["tokenizer"] = serde_json::json!({ "retired_key": 1 });
        let old = stored_run_config(dir, &recorded).unwrap();
        assert_eq!(identity(&old, 1), identity(&config, 1));

        // An identity table it cannot read is still an error naming the checkpoint.
        recorded["optimizer"]["retired_key"] = serde_json::json!(1);
        let err = stored_run_config(dir, &recorded).unwrap_err().to_string();
        assert!(
            err.contains("unreadable run config") && err.contains("step-00000010"),
            "{err}"
        );
    }
}
