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
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, FinetuneError>;
