//! Crash-safe file writing: nothing half-written is ever left under a final name.
//!
//! One copy for the data crate (no Burn), the model crate (Burn) and the Hub client alike; each
//! converts [`FsError`] into its own error type.

#![warn(missing_docs)]

mod lock;

pub use lock::{FolderLock, LockError};

use std::fs::{self, File};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// A file-system operation that failed, with what was being done and to which path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FsError {
    /// What was being done, e.g. "creating".
    pub action: &'static str,
    /// The file or folder concerned.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FsError + 'a {
    move |source| FsError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary sibling name for `path`, unique to this process.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Whether the process `pid` still runs, where the OS says (`/proc`); `None` where it cannot
/// tell, so callers leave the file alone.
pub fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(pid == std::process::id() || proc.join(pid.to_string()).exists())
}

/// Removes the temporary siblings of `path` (see [`temp_sibling`]) that a killed process left:
/// those whose process is gone. A live writer's file is never touched.
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    remove_stale_matching(dir, |entry| {
        entry
            .strip_prefix(prefix.as_str())
            .and_then(|pid| pid.parse().ok())
    });
}

/// Removes every temporary file of [`temp_sibling`]'s form in `dir` whose process is gone,
/// e.g. in a run folder before a resumed run writes there again. Returns how many went.
pub fn remove_stale_temps_in(dir: &Path) -> usize {
    remove_stale_matching(dir, |entry| {
        let rest = entry.strip_prefix('.')?;
        let (_, pid) = rest.rsplit_once(".tmp-")?;
        pid.parse().ok()
    })
}

/// The entries of `dir` whose name `pid_of` reads a process id from, where that process is
/// gone: what killed writers left (temporary files, staging folders), each with its pid. Empty
/// where the OS cannot say which processes run.
pub fn entries_of_dead_processes(
    dir: &Path,
    pid_of: impl Fn(&str) -> Option<u32>,
) -> Vec<(fs::DirEntry, u32)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = pid_of(&entry.file_name().to_string_lossy())?;
            (process_alive(pid) == Some(false)).then_some((entry, pid))
        })
        .collect()
}

/// Removes the plain files of `dir` for which `pid_of` names a process that is gone.
fn remove_stale_matching(dir: &Path, pid_of: impl Fn(&str) -> Option<u32>) -> usize {
    entries_of_dead_processes(dir, pid_of)
        .into_iter()
        .filter(|(entry, _)| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter(|(entry, _)| fs::remove_file(entry.path()).is_ok())
        .count()
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the folder.
/// Temporary files that killed writers left beside `path` are removed first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    remove_stale_temps(path);
    write_atomic_parts(path, &[bytes])
}

/// Like [`write_atomic`], for content that is already split in pieces (header + data), so
/// that callers need not concatenate large buffers. It does not look for other writers'
/// leftovers: its caller, the shard writer, writes thousands of files into a staging folder
/// of its own, where a listing of the folder per file would cost more than the write.
pub fn write_atomic_parts(path: &Path, parts: &[&[u8]]) -> Result<(), FsError> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
        for part in parts {
            file.write_all(part).map_err(io("writing", &tmp))?;
        }
        file.sync_all().map_err(io("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(io("renaming into place", path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")));
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// How [`place_file_atomic`] put a file in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A hard link to the source: no second copy of a large file.
    Linked,
    /// A copy (the source is on another file system, or links are refused).
    Copied,
}

/// Puts the contents of the file `src` at `path` as [`write_atomic`] writes bytes, without
/// reading them into memory: a hard link to `src` where the file system allows, else a
/// streamed copy, made under `tmp` (a name in `path`'s folder), fsynced, renamed over `path`,
/// and the folder fsynced. A file an interrupted run left at `tmp` is replaced; on failure
/// `tmp` is removed. The caller names `tmp` so that a rerun finds and replaces its own
/// leftovers (a [`temp_sibling`] name changes with the process).
pub fn place_file_atomic(src: &Path, tmp: &Path, path: &Path) -> Result<Placement, FsError> {
    if fs::symlink_metadata(tmp).is_ok() {
        fs::remove_file(tmp).map_err(io("removing", tmp))?;
    }
    let result = (|| {
        let placement = match fs::hard_link(src, tmp) {
            Ok(()) => Placement::Linked,
            Err(_) => {
                fs::copy(src, tmp).map_err(io("copying into", tmp))?;
                Placement::Copied
            }
        };
        // A linked blob may never have been synced by whoever wrote it.
        File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(io("syncing", tmp))?;
        fs::rename(tmp, path).map_err(io("renaming into place", path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")));
        Ok(placement)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Fsyncs a directory so that a rename inside it survives a crash.
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // Directories cannot be opened for syncing on every platform; where they can't, the
    // rename is still atomic, only its durability is up to the OS.
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Creates a directory and its parents, naming it on failure.
pub fn create_dir_all(dir: &Path) -> Result<(), FsError> {
    fs::create_dir_all(dir).map_err(io("creating directory", dir))
}

/// `path` if absolute, else `base/path`, with `.` and `dir/..` pairs removed lexically (so
/// messages show `runs/x`, not `configs/../runs/x`).
pub fn resolve_relative(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_relative() {
        base.join(path)
    } else {
        path.to_path_buf()
    };
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    let p: PathBuf = out.iter().collect();
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p
    }
}
