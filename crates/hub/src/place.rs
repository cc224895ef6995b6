//! Placing fetched files into the output folder: hf-hub's cache entry (usually a symlink to a
//! blob) is hard-linked or copied into place through the shared crash-safe writer
//! ([`bert_fsutil::place_file_atomic`]: temporary name, fsync, rename), so a partial file never
//! sits under its final name and a completed one survives a crash.

use std::path::{Path, PathBuf};

use bert_fsutil::{FsError, Placement};

use crate::error::Result;

/// The size of `path` when it is a regular file (following links).
pub(crate) fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Whether `dest` already holds the file: same size as listed. Unknown sizes are fetched again.
pub(crate) fn already_present(dest: &Path, size: Option<u64>) -> bool {
    matches!((size, file_size(dest)), (Some(want), Some(have)) if want == have)
}

/// The hidden temporary name `dest` is written under before the rename (`bert prepare` skips
/// hidden files, so a leftover never passes for a corpus file).
pub(crate) fn temp_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial"))
}

/// Puts `src` (a file of hf-hub's cache, usually a symlink to a blob) at `dest`: a hard link to
/// the blob where the filesystem allows (no second copy), a copy otherwise; through a temporary
/// name, fsync and a rename either way.
pub(crate) fn place_file(src: &Path, dest: &Path) -> Result<Placement> {
    let blob = std::fs::canonicalize(src).map_err(|source| FsError {
        action: "resolving (in hf-hub's cache)",
        path: src.to_path_buf(),
        source,
    })?;
    if let Some(parent) = dest.parent() {
        bert_fsutil::create_dir_all(parent)?;
    }
    Ok(bert_fsutil::place_file_atomic(
        &blob,
        &temp_name(dest),
        dest,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_files_are_recognised_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.parquet");
        assert!(!already_present(&p, Some(3)));
        std::fs::write(&p, b"abc").unwrap();
        assert!(already_present(&p, Some(3)));
        assert!(!already_present(&p, Some(4)));
        assert!(!already_present(&p, None));
        assert!(!already_present(dir.path(), Some(0)));
        assert_eq!(temp_name(&p), dir.path().join(".a.parquet.partial"));
    }

    #[cfg(unix)]
    #[test]
    fn placing_resolves_cache_symlinks_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        let snap = dir.path().join("snapshots/abc/sub");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(blobs.join("etag1"), b"parquet bytes").unwrap();
        // hf-hub's snapshot entries are relative symlinks to the blobs.
        std::os::unix::fs::symlink("../../../blobs/etag1", snap.join("f.parquet")).unwrap();
        let out = dir.path().join("out/deeper");
        let dest = out.join("f.parquet");
        place_file(&snap.join("f.parquet"), &dest).unwrap();
        let meta = std::fs::symlink_metadata(&dest).unwrap();
        assert!(meta.is_file(), "a real file, not a (broken) link");
        assert_eq!(std::fs::read(&dest).unwrap(), b"parquet bytes");
        assert!(!temp_name(&dest).exists());
        // A stale partial file and a wrong-sized old copy are both replaced.
        std::fs::remove_file(&dest).unwrap();
        std::fs::write(&dest, b"old").unwrap();
        std::fs::write(temp_name(&dest), b"stale").unwrap();
        place_file(&snap.join("f.parquet"), &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"parquet bytes");
        assert!(!temp_name(&dest).exists());
        assert!(place_file(&snap.join("missing"), &out.join("x")).is_err());
    }
}
