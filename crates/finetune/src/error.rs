//! What can go wrong while fine-tuning, with the file or setting it concerns.

/// A fine-tuning error.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    /// Reading or tokenizing the task's data failed.
    #[error(transparent)]
    Data(#[from] bert_data::DataError),
    /// Loading, running or saving the model failed.
    #[error(transparent)]
    Model(#[from] bert_model::ModelError),
    /// A setting is impossible; names it and what was expected.
    #[error("{0}")]
    Config(String),
    /// The examples do not fit the task (a score in a classification task, say).
    #[error("{0}")]
    Mismatch(String),
    /// Writing or reading a checkpoint's optimiser moments failed (boxed: the trainer's error
    /// is large, and every `Result` of this crate would carry its size).
    #[error(transparent)]
    Train(Box<bert_train::TrainError>),
    /// A file or folder of the output could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
    },
    /// `--resume` cannot continue what the output folder holds (the config or the data
    /// changed, or a checkpoint does not fit the run); says what differs.
    #[error("cannot resume: {0}")]
    Resume(String),
}

impl FinetuneError {
    /// An [`FinetuneError::Io`] on `path`: `what` failed (`"reading"`, `"renaming into
    /// place"`, …) with `error`.
    pub fn io(path: &std::path::Path, what: &str, error: impl std::fmt::Display) -> Self {
        FinetuneError::Io {
            path: path.to_path_buf(),
            message: format!("{what}: {error}"),
        }
    }
}

impl From<bert_train::TrainError> for FinetuneError {
    fn from(e: bert_train::TrainError) -> Self {
        FinetuneError::Train(Box::new(e))
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, FinetuneError>;
