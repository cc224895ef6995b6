//! Errors of the training crate.

use std::path::PathBuf;

/// Everything that stops a run, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run config is invalid; names the key.
    #[error("config `{path}`: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A `--set` override (or a flag that stands for one) is malformed or gives an unusable
    /// value.
    #[error("`--set {assignment}`: {message}")]
    Override {
        /// The `key=value` as given.
        assignment: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The model crate failed (loading, saving, bad weights).
    #[error(transparent)]
    Model(#[from] bert_model::ModelError),
    /// The data crate failed (shards, loader, vocabulary training, preparing, reading a
    /// tokenizer); its message already says which file and why.
    #[error(transparent)]
    Data(Box<bert_data::DataError>),
    /// A file could not be written or its folder synced.
    #[error(transparent)]
    Fs(#[from] bert_fsutil::FsError),
    /// A [`DataProvider`](crate::DataProvider) outside this crate failed (its own words).
    #[error("data: {0}")]
    Provider(String),
    /// The shards do not match the masking of the run config's `[prepare]` table.
    #[error("{source}; `bert train` runs the [prepare] table only when `{}` does not exist: delete `{}` and it prepares the data again with this table", train.display(), out.display())]
    PrepareTableMismatch {
        /// What differs, naming the shard index.
        source: Box<bert_data::DataError>,
        /// `data.train`.
        train: PathBuf,
        /// The table's `out`.
        out: PathBuf,
    },
    /// An evaluation had nothing to measure: no sequences, or no masked positions.
    #[error("evaluation on {sequences} sequences with {predictions} masked positions: there is nothing to measure (the validation data is empty, or `eval.max_batches` is 0); give `data.validation` a split with instances, or leave it out to train without evaluation")]
    EmptyEvaluation {
        /// Sequences evaluated (over all ranks).
        sequences: u64,
        /// Masked positions among them.
        predictions: u64,
    },
    /// Another process trains into the same run folder.
    #[error(transparent)]
    Locked(#[from] bert_fsutil::LockError),
    /// A shard folder has no instances.
    #[error("`{key}` `{}` holds no instances: prepare it from a corpus with text (a validation split needs `validation_fraction` > 0), or, for `data.validation`, leave the key out to train without evaluation", path.display())]
    NoInstances {
        /// The shard folder.
        path: PathBuf,
        /// The config key that names it.
        key: &'static str,
    },
    /// A checkpoint's data cursor belongs to another kind of data.
    #[error("checkpoint data cursor {cursor} is not a {kind} cursor{why}")]
    Cursor {
        /// The cursor as recorded.
        cursor: String,
        /// The data source that refused it.
        kind: &'static str,
        /// Why, when more can be said (starts with `: `).
        why: String,
    },
    /// `bert plot` cannot draw: no steps yet, or a size out of range.
    #[error("{0}")]
    Plot(String),
    /// The PNG encoder failed.
    #[error("encoding the plot: {0}")]
    Png(#[from] png::EncodingError),
    /// A data-parallel rank other than 0 found no shards (only rank 0 prepares them).
    #[error("`data.train` `{}` does not exist: prepare the data before starting ranks other than 0 (rank 0 prepares it when the config has a [prepare] table)", train.display())]
    NotPrepared {
        /// The missing `data.train` folder.
        train: PathBuf,
    },
    /// `fill-mask` cannot run: no tokenizer beside the model, or no `[MASK]` in the text.
    #[error("{0}")]
    FillMask(String),
    /// A file operation failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint is unusable.
    #[error("checkpoint `{path}`: {message}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint file differs from the size and checksum recorded when it was written.
    #[error(
        "checkpoint file `{path}` is damaged: it has {actual}, the checkpoint recorded {expected}"
    )]
    Checksum {
        /// The damaged file.
        path: PathBuf,
        /// Size and checksum recorded at save.
        expected: crate::digest::FileDigest,
        /// Size and checksum found now.
        actual: crate::digest::FileDigest,
    },
    /// The optimiser file lacks moments of a parameter that had them when it was saved.
    #[error("checkpoint `{path}`: parameter `{parameter}` has no optimiser moment {moment}, so the file is damaged or was edited; it is not replaced by zero moments (`model.init_optimizer = \"fresh\"` starts new moments on purpose)")]
    MissingMoments {
        /// The optimiser file.
        path: PathBuf,
        /// The parameter (HuggingFace name).
        parameter: String,
        /// Which is missing: `` `exp_avg` ``, `` `exp_avg_sq` `` or both (`` `exp_avg` or `exp_avg_sq` ``).
        moment: &'static str,
    },
    /// `--resume` found checkpoints, but every one of them is damaged.
    #[error("no usable checkpoint in `{root}` to resume from; tried, newest first: {}", tried.join("; "))]
    NoUsableCheckpoint {
        /// The checkpoints folder.
        root: PathBuf,
        /// Each checkpoint tried and why it was skipped.
        tried: Vec<String>,
    },
    /// `model.init_from` holds weights trained on another vocabulary than the run's data.
    #[error("`model.init_from` `{init_from}` was trained with vocabulary {init_hash} (recorded in `{init_file}`), but the data `{data}` uses vocabulary {data_hash}: token ids would mean other words. Prepare the data with the same vocabulary, or start without `init_from`")]
    VocabMismatch {
        /// The `init_from` folder.
        init_from: PathBuf,
        /// The file the folder's hash comes from (`trainer_state.json`, `vocab.txt`, …).
        init_file: PathBuf,
        /// The folder's vocabulary hash.
        init_hash: String,
        /// The run's training data.
        data: PathBuf,
        /// The data's vocabulary hash.
        data_hash: String,
    },
    /// `--resume` with a config that changes what the run is.
    #[error("cannot resume from `{path}`: {message}")]
    ResumeMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// Which keys differ.
        message: String,
    },
    /// A data-parallel rank failed, or lost its peers.
    #[error("rank {rank} of {world_size}: {message}")]
    Distributed {
        /// The rank reporting it.
        rank: usize,
        /// Number of ranks.
        world_size: usize,
        /// What happened, naming the collective call.
        message: String,
    },
    /// The loss or gradients became NaN/infinite and the policy says stop.
    #[error("step {step}: {what} is not finite ({value}); stopped (policy `{policy}`). The last good checkpoint is kept{hint}")]
    NonFinite {
        /// The optimiser step.
        step: u64,
        /// "loss" or "gradient norm".
        what: &'static str,
        /// The value seen.
        value: f64,
        /// The configured policy.
        policy: &'static str,
        /// Where to look next.
        hint: String,
    },
}

impl From<bert_data::DataError> for TrainError {
    fn from(e: bert_data::DataError) -> Self {
        // Boxed: the data crate's error is large, and every `Result` of this crate carries it.
        TrainError::Data(Box::new(e))
    }
}

impl TrainError {
    /// An I/O error with its path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io {
            action,
            path,
            source,
        }
    }
}

impl TrainError {
    /// Whether this error means a checkpoint's own files are unusable (unreadable, truncated,
    /// failing their checksum), as opposed to a checkpoint that is fine but belongs to another
    /// run. `--resume` skips the former to an older checkpoint and stops on the latter.
    pub fn is_damaged_checkpoint(&self) -> bool {
        matches!(
            self,
            TrainError::Checkpoint { .. }
                | TrainError::Checksum { .. }
                | TrainError::MissingMoments { .. }
                | TrainError::Io { .. }
                | TrainError::Fs(_)
                | TrainError::Model(_)
        )
    }
}

/// Result alias of the training crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
