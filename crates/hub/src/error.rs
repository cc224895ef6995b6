//! Errors of the Hub client. Each message is one paragraph that says what failed and what to
//! do about it; the request's mistakes name the `bert download` flag concerned.

/// Why a download stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The request itself is unusable (repo id, subset, revision) or the environment is
    /// (`HF_ENDPOINT`, no home folder for the cache).
    #[error("{0}")]
    Request(String),
    /// The repo has no files of the kind asked for; names what it has.
    #[error("{0}")]
    Selection(String),
    /// The Hub could not be reached, refused, or answered unexpectedly.
    #[error("{0}")]
    Hub(String),
    /// A downloaded file is not what the listing said (size), or not a file.
    #[error("{0}")]
    Download(String),
    /// Placing a file into the output folder failed.
    #[error(transparent)]
    Files(#[from] bert_fsutil::FsError),
}

/// Result alias of the Hub client.
pub type Result<T, E = HubError> = std::result::Result<T, E>;
