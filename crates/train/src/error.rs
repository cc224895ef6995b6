//! Errors of the training crate.

use std::path::PathBuf;

/// Everything that stops a run, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run config is invalid; names the key.
    #[error("config `{path}`: {message}")]
    Config {
        /// The config file (or `--set` for overrides).
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The model crate failed (loading, saving, bad weights).
    #[error(transparent)]
    Model(#[from] bert_model::ModelError),
    /// The data crate failed (shards, loader).
    #[error("data: {0}")]
    Data(String),
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

/// Result alias of the training crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
