//! Errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong when configuring, loading or saving a BERT model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is impossible; names the field and what was expected.
    #[error("invalid model config: `{field}` {message}")]
    InvalidConfig {
        /// The HuggingFace `config.json` field name.
        field: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// An unknown preset name was requested.
    #[error("unknown model preset `{0}`: expected one of tiny, mini, small, medium, base, large")]
    UnknownPreset(String),
    /// Reading or writing a file failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What we were doing ("reading", "writing", ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file did not parse or did not have the expected shape.
    #[error("`{path}` is not a valid {what}: {message}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// What the file should have been ("HuggingFace config.json", ...).
        what: &'static str,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A safetensors file did not parse.
    #[error("`{path}` is not a valid safetensors file: {message}")]
    Safetensors {
        /// The file concerned.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A tensor's values could not be read back from the device.
    #[error("cannot read {what} back from the device: {message}")]
    Readback {
        /// Which tensor.
        what: String,
        /// The backend's message.
        message: String,
    },
    /// A weight file lacks a tensor the model needs.
    #[error("`{path}` has no tensor `{name}` (nor any accepted alias); is it a BERT checkpoint of this architecture?")]
    MissingTensor {
        /// The weight file.
        path: PathBuf,
        /// The HuggingFace name that was looked for.
        name: String,
    },
    /// A tensor has the wrong shape for the configured model.
    #[error("tensor `{name}` in `{path}` has shape {found:?}, but the config needs {expected:?}")]
    ShapeMismatch {
        /// The weight file.
        path: PathBuf,
        /// The HuggingFace name.
        name: String,
        /// Shape expected from the config.
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored with a dtype we cannot convert to f32.
    #[error(
        "tensor `{name}` in `{path}` has unsupported dtype {dtype}; expected F32, F16, BF16 or F64"
    )]
    UnsupportedDtype {
        /// The weight file.
        path: PathBuf,
        /// The HuggingFace name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A weight file holds tensors that are not part of BERT and would be silently lost.
    #[error("`{path}` has tensors this BERT model does not use: {names}")]
    UnexpectedTensors {
        /// The weight file.
        path: PathBuf,
        /// The unused names, comma-separated.
        names: String,
    },
    /// A folder lacks the files of a HuggingFace model or checkpoint.
    #[error("`{path}` is not a model folder: {message}")]
    NotAModelDir {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// A folder class that this writer does not produce.
    #[error(
        "a {architecture} folder is written by `{use_instead}`, not from a pre-training model"
    )]
    WrongExport {
        /// The class asked for.
        architecture: &'static str,
        /// The function that writes it.
        use_instead: &'static str,
    },
    /// A forward input is malformed (ragged rows, wrong lengths, out-of-range ids).
    #[error("invalid model input: {0}")]
    InvalidInput(String),
}

/// Result alias of the model crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl From<bert_fsutil::FsError> for ModelError {
    fn from(e: bert_fsutil::FsError) -> Self {
        ModelError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}
