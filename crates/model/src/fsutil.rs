//! Crash-safe file writing (from `bert-fsutil`), with errors as [`ModelError`](crate::ModelError).

use std::path::Path;

use crate::error::Result;

pub use bert_fsutil::{sync_dir, temp_sibling};

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(bert_fsutil::write_atomic(path, bytes)?)
}

/// Creates a directory and its parents, naming it on failure.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    Ok(bert_fsutil::create_dir_all(dir)?)
}
