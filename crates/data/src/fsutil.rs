//! Crash-safe file writing (from `bert-fsutil`), with errors as [`DataError`](crate::DataError).

use std::path::Path;

use crate::error::Result;

pub use bert_fsutil::{resolve_relative, sync_dir, temp_sibling};

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(bert_fsutil::write_atomic(path, bytes)?)
}

/// Like [`write_atomic`], for content already split in pieces (header + data).
pub fn write_atomic_parts(path: &Path, parts: &[&[u8]]) -> Result<()> {
    Ok(bert_fsutil::write_atomic_parts(path, parts)?)
}

/// Creates a directory and its parents, naming it on failure.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    Ok(bert_fsutil::create_dir_all(dir)?)
}
