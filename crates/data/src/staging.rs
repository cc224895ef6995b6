//! Building `prepare`'s output out of sight and moving it into place when complete.
//!
//! A new output is built in a hidden sibling folder, `.<name>.tmp-<pid>`, renamed to `<name>`
//! at the end: one atomic step. An existing output folder is rebuilt in a hidden folder inside
//! it, `<out>/.prepare.tmp-<pid>` (same file system, so every move is a rename), and at the end
//! its old `index.json` is removed first, each entry is swapped for the new one, and the new
//! `index.json` comes last; other files in the folder are kept, as before. Until that last step
//! the previous output is untouched; if the process dies during it, the output has no
//! `index.json` and reads as unfinished. A failed run removes its staging folder; staging
//! folders left by killed runs are removed by the next run on the same output.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_err, DataError, Result};
use crate::shard::INDEX_FILE;
use bert_fsutil::{create_dir_all, sync_dir, temp_sibling};

/// Staging folder name inside an existing output, before the `-<pid>` suffix.
const INSIDE_PREFIX: &str = ".prepare.tmp-";

/// Refuses an output path that is not a folder, before any work.
pub(crate) fn check_output(out: &Path) -> Result<()> {
    match fs::metadata(out) {
        Ok(m) if !m.is_dir() => Err(DataError::Config(format!(
            "out: {} exists and is not a folder",
            out.display()
        ))),
        _ => Ok(()),
    }
}

/// The staging folder of one `prepare` run; removed when dropped uncommitted.
pub(crate) struct Staging {
    out: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates the staging folder for `out` (see the module documentation for where).
    pub(crate) fn create(out: &Path) -> Result<Self> {
        let out = named(out)?;
        let tmp = if out.is_dir() {
            remove_stale(&out, INSIDE_PREFIX);
            out.join(format!("{INSIDE_PREFIX}{}", std::process::id()))
        } else {
            let parent = parent_of(&out);
            create_dir_all(&parent)?;
            let name = out.file_name().map(|n| n.to_string_lossy().into_owned());
            remove_stale(&parent, &format!(".{}.tmp-", name.unwrap_or_default()));
            temp_sibling(&out)
        };
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("removing", &tmp))?;
        }
        create_dir_all(&tmp)?;
        Ok(Self {
            out,
            tmp,
            committed: false,
        })
    }

    /// Where to build.
    pub(crate) fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the finished build into place.
    pub(crate) fn commit(mut self) -> Result<()> {
        if self.out.is_dir() {
            replace_entries(&self.tmp, &self.out)?;
            fs::remove_dir(&self.tmp).map_err(io_err("removing", &self.tmp))?;
        } else {
            fs::rename(&self.tmp, &self.out).map_err(io_err("renaming into place", &self.out))?;
            sync_dir(&parent_of(&self.out));
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed && self.tmp.exists() {
            if let Err(e) = fs::remove_dir_all(&self.tmp) {
                tracing::warn!("cannot remove {}: {e}", self.tmp.display());
            }
        }
    }
}

/// `out` with a final name component (`.` and `..` resolved), so it has a sibling.
fn named(out: &Path) -> Result<PathBuf> {
    if out.file_name().is_some() {
        return Ok(out.to_path_buf());
    }
    fs::canonicalize(out).map_err(io_err("resolving", out))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Swaps every entry of `new` into `out`, the old `index.json` out first and the new one in
/// last, so that no moment looks finished with mixed content.
fn replace_entries(new: &Path, out: &Path) -> Result<()> {
    let old_index = out.join(INDEX_FILE);
    if old_index.exists() {
        fs::remove_file(&old_index).map_err(io_err("removing", &old_index))?;
    }
    let mut names: Vec<_> = fs::read_dir(new)
        .map_err(io_err("listing", new))?
        .map(|e| e.map(|e| e.file_name()).map_err(io_err("listing", new)))
        .collect::<Result<_>>()?;
    names.sort();
    names.retain(|n| n != INDEX_FILE);
    for name in &names {
        let dest = out.join(name);
        remove_any(&dest)?;
        fs::rename(new.join(name), &dest).map_err(io_err("moving into place", &dest))?;
    }
    fs::rename(new.join(INDEX_FILE), &old_index)
        .map_err(io_err("moving into place", &old_index))?;
    sync_dir(out);
    Ok(())
}

/// Removes a file or folder if present.
fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("removing", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("removing", path)),
        Err(_) => Ok(()),
    }
}

/// Removes the staging folders in `dir` named `<prefix><pid>` whose process is gone (a killed
/// run), so they do not pile up. Only where `/proc` says which processes run.
fn remove_stale(dir: &Path, prefix: &str) {
    let proc = Path::new("/proc");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    if !proc.join("self").exists() {
        return;
    }
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !proc.join(pid.to_string()).exists() {
            tracing::info!(
                "removing {}, left by an interrupted prepare",
                entry.path().display()
            );
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
