//! The run pipeline before training: the config's `[tokenizer]` and `[prepare]` steps, run when
//! their outputs do not exist yet, so that one `bert train` goes from raw text to a model.
//!
//! It lives in the training crate because it is driven by the run config ([`RunConfig`], parsed
//! here) and calls the data crate's steps; the data crate knows nothing of run configs, and the
//! CLI only reports what happened.

use crate::config::RunConfig;
use crate::error::{Result, TrainError};

/// What [`ensure_prepared`] did; each step is `None` when its output already existed (or the
/// config has no table for it).
#[derive(Debug, Default)]
pub struct PipelineReport {
    /// The vocabulary trained from the `[tokenizer]` table.
    pub vocabulary: Option<bert_data::train_vocab::TrainVocabReport>,
    /// The shards prepared from the `[prepare]` table.
    pub prepared: Option<bert_data::PrepareReport>,
}

/// Runs the config's `[tokenizer]` and `[prepare]` steps when `data.train` holds no shards yet
/// (the vocabulary only when its `vocab.txt` does not exist either). `progress` draws the
/// data crate's progress bar. Nothing runs without a `[prepare]` table.
pub fn ensure_prepared(config: &RunConfig, progress: bool) -> Result<PipelineReport> {
    let mut report = PipelineReport::default();
    let Some(prepare) = &config.prepare else {
        return Ok(report);
    };
    if config
        .data
        .train
        .join(bert_data::shard::INDEX_FILE)
        .is_file()
    {
        tracing::info!(
            "using the prepared shards in {}",
            config.data.train.display()
        );
        return Ok(report);
    }
    if let Some(tokenizer) = &config.tokenizer {
        if !tokenizer.out.join("vocab.txt").is_file() {
            tracing::info!(
                "training a {}-entry WordPiece vocabulary into {}",
                tokenizer.vocab_size,
                tokenizer.out.display()
            );
            report.vocabulary = Some(bert_data::train_vocab::train_wordpiece(
                &tokenizer.train_options(),
            )?);
        }
    }
    let mut prepare = prepare.clone();
    prepare.progress = progress;
    tracing::info!(
        "preparing {} into {}",
        prepare.input_paths().join(", "),
        prepare.out.display()
    );
    report.prepared = Some(bert_data::prepare(&prepare)?);
    Ok(report)
}

/// For a data-parallel process other than rank 0, which never prepares: the shards must be
/// there already, or the error says who prepares them.
pub fn require_prepared(config: &RunConfig) -> Result<()> {
    if config.data.train.exists() {
        return Ok(());
    }
    Err(TrainError::NotPrepared {
        train: config.data.train.clone(),
    })
}
