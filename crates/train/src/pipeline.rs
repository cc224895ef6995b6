//! The run pipeline before training: the config's `[tokenizer]` and `[prepare]` steps, run when
//! their outputs do not exist yet, so that one `bert train` goes from raw text to a model.
//!
//! It lives in the training crate because it is driven by the run config's tables and calls
//! the data crate's steps; the data crate knows nothing of run configs, and the CLI only
//! reports what happened.

use std::path::{Path, PathBuf};

use bert_data::PrepareConfig;
use bert_data::TrainVocabOptions;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The `[tokenizer]` table: a WordPiece vocabulary trained before the data is prepared (what
/// `bert tokenizer train` does). Defaults are [`TrainVocabOptions`]'s, so the table and the
/// library cannot disagree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSection {
    /// Corpus files, folders or globs (resolved against the config's folder).
    pub inputs: Vec<String>,
    /// Vocabulary size, special tokens included.
    #[serde(default = "TokenizerSection::default_vocab_size")]
    pub vocab_size: usize,
    /// Uncased vocabulary: lower-case and strip accents.
    #[serde(default = "TokenizerSection::default_lowercase")]
    pub lowercase: bool,
    /// Minimum pair frequency for a merge.
    #[serde(default = "TokenizerSection::default_min_frequency")]
    pub min_frequency: u64,
    /// Folder for `vocab.txt` and `tokenizer.json` (resolved against the config's folder).
    pub out: PathBuf,
}

impl TokenizerSection {
    fn default_vocab_size() -> usize {
        TrainVocabOptions::default().vocab_size
    }
    fn default_lowercase() -> bool {
        TrainVocabOptions::default().lowercase
    }
    fn default_min_frequency() -> u64 {
        TrainVocabOptions::default().min_frequency
    }

    /// Checks the values no run can use, naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.inputs.is_empty() {
            return Err(
                "table `[tokenizer]`: `inputs`: give at least one corpus file, folder or glob"
                    .into(),
            );
        }
        Ok(())
    }

    /// What the data crate's WordPiece trainer needs; the corpus is read with its defaults.
    pub fn train_options(&self) -> TrainVocabOptions {
        TrainVocabOptions {
            corpus: bert_data::CorpusOptions {
                inputs: self.inputs.clone(),
                ..Default::default()
            },
            vocab_size: self.vocab_size,
            lowercase: self.lowercase,
            min_frequency: self.min_frequency,
            out: self.out.clone(),
            ..Default::default()
        }
    }

    /// Makes the relative paths relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        for input in &mut self.inputs {
            *input = bert_fsutil::resolve_relative(base, Path::new(input.as_str()))
                .display()
                .to_string();
        }
        self.out = bert_fsutil::resolve_relative(base, &self.out);
    }
}

/// What [`ensure_prepared`] did; each step is `None` when its output already existed (or the
/// config has no table for it).
#[derive(Debug, Default)]
pub struct PipelineReport {
    /// The vocabulary trained from the `[tokenizer]` table.
    pub vocabulary: Option<bert_data::TrainVocabReport>,
    /// The shards prepared from the `[prepare]` table.
    pub prepared: Option<bert_data::PrepareReport>,
}

/// Runs the config's `[tokenizer]` and `[prepare]` steps when `train` (`data.train`) holds no
/// shards yet (the vocabulary only when its `vocab.txt` does not exist either). `progress`
/// draws the data crate's progress bar. Nothing runs without a `[prepare]` table.
pub fn ensure_prepared(
    tokenizer: Option<&TokenizerSection>,
    prepare: Option<&PrepareConfig>,
    train: &Path,
    progress: bool,
) -> Result<PipelineReport> {
    let mut report = PipelineReport::default();
    let Some(prepare) = prepare else {
        return Ok(report);
    };
    if !prepare.makes(train) {
        tracing::info!(
            "the [prepare] table makes {}, and `data.train` {} is not inside it: the table is \
             neither run nor checked against the shards",
            prepare.out.display(),
            train.display()
        );
        return Ok(report);
    }
    if train.join(bert_data::INDEX_FILE).is_file() {
        tracing::info!("using the prepared shards in {}", train.display());
        return Ok(report);
    }
    if let Some(tokenizer) = tokenizer {
        if !tokenizer.out.join("vocab.txt").is_file() {
            tracing::info!(
                "training a {}-entry WordPiece vocabulary into {}",
                tokenizer.vocab_size,
                tokenizer.out.display()
            );
            report.vocabulary = Some(bert_data::train_wordpiece(&tokenizer.train_options())?);
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
pub fn require_prepared(train: &Path) -> Result<()> {
    if train.exists() {
        return Ok(());
    }
    Err(TrainError::NotPrepared {
        train: train.to_path_buf(),
    })
}
