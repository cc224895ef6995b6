//! Building `prepare`'s output out of sight and moving it into place when complete.
//!
//! A new output is built in a hidden sibling folder, `.<name>.tmp-<pid>`, renamed to `<name>`
//! at the end: one atomic step. An existing output folder is rebuilt in a hidden folder inside
//! it, `<out>/.prepare.tmp-<pid>` (same file system, so every move is a rename), and swapped in
//! at the end without ever deleting the earlier output before the new one is complete:
//!
//! 1. a backup folder `<out>/.prepare.old-<pid>` is made, with a list of the new entries;
//! 2. each earlier entry the new build replaces is moved into it, `index.json` first, so that
//!    from here on the output reads as unfinished;
//! 3. each new entry is moved into place, `index.json` last;
//! 4. the backup folder is removed.
//!
//! When a step of 2 or 3 fails, the moves made so far are undone, in reverse, and the earlier
//! output is as it was. When the process dies during them, the next `prepare` on the same
//! output finds the backup folder of a process that is gone and undoes the swap the same way
//! before it starts. Files of the output folder that the build does not make are kept. A
//! failed run removes its staging folder; staging folders left by killed runs are removed by
//! the next run on the same output.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_err, DataError, Result};
use crate::shard::INDEX_FILE;
use bert_fsutil::{create_dir_all, sync_dir, temp_sibling};

/// Staging folder name inside an existing output, before the `<pid>` suffix.
const INSIDE_PREFIX: &str = ".prepare.tmp-";

/// Backup folder name inside an existing output during a swap, before the `<pid>` suffix.
const BACKUP_PREFIX: &str = ".prepare.old-";

/// The list of the new build's entries, inside the backup folder.
const MANIFEST: &str = "entries.txt";

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

/// Locks the output folder `out` for this process (`<parent>/.<name>.lock`), failing at once
/// when another `prepare` writes it.
pub(crate) fn lock_output(out: &Path) -> Result<bert_fsutil::FolderLock> {
    let out = named(out)?;
    let lock = bert_fsutil::FolderLock::sibling_path(&out);
    bert_fsutil::FolderLock::acquire(&lock, &out).map_err(|e| match e {
        // Readers leave no note: say who they are.
        bert_fsutil::LockError::Busy {
            folder,
            lock_file,
            holder: None,
        } => bert_fsutil::LockError::Busy {
            folder,
            lock_file,
            holder: Some(
                "another process: a `bert train` reading these shards, or another \
                 `bert prepare`"
                    .into(),
            ),
        }
        .into(),
        other => other.into(),
    })
}

/// Takes the lock of the prepare output holding the split folder `split` (`OUT/train` →
/// `.OUT.lock` beside `OUT`) shared, for as long as a reader uses the shards, so that no
/// `prepare` replaces them meanwhile. `None` where the shards have no such lock (they were
/// copied from elsewhere, or sit on read-only storage).
pub fn lock_for_reading(split: &Path) -> Result<Option<bert_fsutil::FolderLock>> {
    let Some(out) = split.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(None);
    };
    let Ok(out) = named(out) else {
        return Ok(None);
    };
    Ok(bert_fsutil::FolderLock::acquire_shared(
        &bert_fsutil::FolderLock::sibling_path(&out),
        &out,
    )?)
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
            undo_interrupted_swaps(&out)?;
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
            let mut rename = |from: &Path, to: &Path| fs::rename(from, to);
            swap_in(
                &self.tmp,
                &self.out,
                std::process::id(),
                &mut rename,
                OnFailure::Undo,
            )?;
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

/// What [`swap_in`] does when a move fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    /// Undo the moves made so far (what a running `prepare` does).
    Undo,
    /// Stop where it is, as a process killed at that moment would (for tests of the recovery).
    #[cfg_attr(not(test), allow(dead_code))]
    Stop,
}

/// Swaps every entry of `new` into `out` as the module documentation says, with a backup
/// folder named after `pid`, moving with `rename` (a parameter so that tests can fail any one
/// move).
fn swap_in(
    new: &Path,
    out: &Path,
    pid: u32,
    rename: &mut dyn FnMut(&Path, &Path) -> std::io::Result<()>,
    on_failure: OnFailure,
) -> Result<()> {
    let mut names: Vec<String> = fs::read_dir(new)
        .map_err(io_err("listing", new))?
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .map_err(io_err("listing", new))
        })
        .collect::<Result<_>>()?;
    names.sort();
    // index.json out first and in last: no moment between looks finished.
    if let Some(i) = names.iter().position(|n| n == INDEX_FILE) {
        let index = names.remove(i);
        names.insert(0, index);
    }
    let backup = out.join(format!("{BACKUP_PREFIX}{pid}"));
    remove_any(&backup)?;
    create_dir_all(&backup)?;
    let manifest = backup.join(MANIFEST);
    fs::write(&manifest, names.join("\n")).map_err(io_err("writing", &manifest))?;
    sync_dir(&backup);

    let mut moved_out: Vec<&str> = Vec::new();
    let mut moved_in: Vec<&str> = Vec::new();
    let forward = (|| {
        for name in &names {
            let dest = out.join(name);
            if fs::symlink_metadata(&dest).is_ok() {
                rename(&dest, &backup.join(name)).map_err(io_err("moving aside", &dest))?;
                moved_out.push(name);
            }
        }
        sync_dir(out);
        for name in names.iter().skip(1).chain(names.first()) {
            let dest = out.join(name);
            rename(&new.join(name), &dest).map_err(io_err("moving into place", &dest))?;
            moved_in.push(name);
        }
        sync_dir(out);
        Ok(())
    })();
    if let Err(e) = forward {
        if on_failure == OnFailure::Stop {
            return Err(e);
        }
        return Err(match undo(new, out, &backup, &moved_in, &moved_out) {
            Ok(()) => e,
            Err(undo_error) => DataError::Config(format!(
                "{e}; and putting the earlier output back failed: {undo_error}; its moved \
                 entries are in {}",
                backup.display()
            )),
        });
    }
    if let Err(e) = fs::remove_dir_all(&backup) {
        tracing::warn!(
            "the new output is in place, but the earlier one in {} could not be removed: {e}",
            backup.display()
        );
    }
    Ok(())
}

/// Reverses a swap that stopped part-way: the new entries back into `new`, the earlier ones
/// back into `out`.
fn undo(
    new: &Path,
    out: &Path,
    backup: &Path,
    moved_in: &[&str],
    moved_out: &[&str],
) -> Result<()> {
    for name in moved_in.iter().rev() {
        let from = out.join(name);
        fs::rename(&from, new.join(name)).map_err(io_err("moving back", &from))?;
    }
    for name in moved_out.iter().rev() {
        let to = out.join(name);
        fs::rename(backup.join(name), &to).map_err(io_err("restoring", &to))?;
    }
    sync_dir(out);
    fs::remove_dir_all(backup).map_err(io_err("removing", backup))
}

/// Undoes the swaps of killed `prepare` runs on `out` (backup folders whose process is gone).
/// A swap whose new entries had all left the staging folder had finished, and only its backup
/// goes; otherwise each new entry already moved in is removed and each earlier entry put back.
fn undo_interrupted_swaps(out: &Path) -> Result<()> {
    for (entry, pid) in bert_fsutil::entries_of_dead_processes(out, pid_after(BACKUP_PREFIX)) {
        let backup = entry.path();
        let staged = out.join(format!("{INSIDE_PREFIX}{pid}"));
        let listed = fs::read_to_string(backup.join(MANIFEST)).unwrap_or_default();
        let listed: Vec<&str> = listed.lines().filter(|n| !n.is_empty()).collect();
        let present = |p: PathBuf| fs::symlink_metadata(p).is_ok();
        let finished = listed.iter().all(|n| !present(staged.join(n)));
        if !finished {
            tracing::warn!(
                "{}: a prepare run was killed while swapping its output in; putting the \
                 earlier output back",
                out.display()
            );
            for name in &listed {
                // Entries are moved aside (all of them) before any new one is moved in, so
                // an entry that has left the staging folder is the new one.
                if !present(staged.join(name)) {
                    remove_any(&out.join(name))?;
                }
                let old = backup.join(name);
                if present(old.clone()) {
                    let to = out.join(name);
                    fs::rename(&old, &to).map_err(io_err("restoring", &to))?;
                }
            }
            sync_dir(out);
        }
        fs::remove_dir_all(&backup).map_err(io_err("removing", &backup))?;
    }
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
/// run), so they do not pile up. Only where the OS says which processes run.
fn remove_stale(dir: &Path, prefix: &str) {
    for (entry, _) in bert_fsutil::entries_of_dead_processes(dir, pid_after(prefix)) {
        tracing::info!(
            "removing {}, left by an interrupted prepare",
            entry.path().display()
        );
        let _ = fs::remove_dir_all(entry.path());
    }
}

/// Reads the pid of a name `<prefix><pid>`.
fn pid_after(prefix: &str) -> impl Fn(&str) -> Option<u32> + '_ {
    move |name| name.strip_prefix(prefix)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A pid no process has (Linux pids stay below 2^22).
    const DEAD_PID: u32 = 4_000_000_000;

    /// Every file and folder under `dir`, hidden ones included, with the bytes of each file.
    fn tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
            for entry in fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                if path.is_dir() {
                    out.insert(rel, None);
                    walk(base, &path, out);
                } else {
                    out.insert(rel, Some(fs::read(&path).unwrap()));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// An earlier output (with a file of the user's that prepare does not make) and a new build
    /// in `out/<staging>`; the new build also has a split the old one lacks.
    fn setup(root: &Path, staging: &str) -> (PathBuf, PathBuf) {
        let out = root.join("out");
        write(&out.join(INDEX_FILE), "old index");
        write(&out.join("train/index.json"), "old train index");
        write(&out.join("train/shard-0.bin"), "old shard");
        write(&out.join("vocab.txt"), "old vocab");
        write(&out.join("notes.md"), "the user's own file");
        let new = out.join(staging);
        write(&new.join(INDEX_FILE), "new index");
        write(&new.join("train/index.json"), "new train index");
        write(&new.join("train/shard-0.bin"), "new shard");
        write(&new.join("validation/shard-0.bin"), "new validation");
        write(&new.join("vocab.txt"), "new vocab");
        (out, new)
    }

    /// Moves a complete swap makes.
    fn moves_of_a_swap(root: &Path) -> usize {
        let (out, new) = setup(root, ".prepare.tmp-1");
        let mut moves = 0;
        let mut rename = |a: &Path, b: &Path| {
            moves += 1;
            fs::rename(a, b)
        };
        swap_in(&new, &out, DEAD_PID, &mut rename, OnFailure::Undo).unwrap();
        assert_eq!(
            fs::read_to_string(out.join(INDEX_FILE)).unwrap(),
            "new index"
        );
        assert_eq!(
            fs::read_to_string(out.join("notes.md")).unwrap(),
            "the user's own file"
        );
        assert!(out.join("validation/shard-0.bin").exists());
        assert!(!out.join(format!("{BACKUP_PREFIX}{DEAD_PID}")).exists());
        moves
    }

    #[test]
    fn a_swap_that_fails_at_any_move_leaves_the_earlier_output_as_it_was() {
        let scratch = tempfile::tempdir().unwrap();
        let moves = moves_of_a_swap(&scratch.path().join("complete"));
        assert_eq!(moves, 3 + 4, "3 entries moved aside, 4 moved in");
        for fail_at in 0..moves {
            let root = scratch.path().join(format!("fail-{fail_at}"));
            let (out, new) = setup(&root, ".prepare.tmp-1");
            let staging = new.file_name().unwrap().to_string_lossy().into_owned();
            let before = tree(&out);
            let mut calls = 0;
            let mut rename = |a: &Path, b: &Path| {
                calls += 1;
                if calls == fail_at + 1 {
                    return Err(std::io::Error::other("injected failure"));
                }
                fs::rename(a, b)
            };
            let err = swap_in(&new, &out, DEAD_PID, &mut rename, OnFailure::Undo).unwrap_err();
            assert!(err.to_string().contains("injected failure"), "{err}");
            assert_eq!(
                tree(&out),
                before,
                "failure at move {fail_at}, staging {staging}"
            );
        }
    }

    #[test]
    fn the_next_run_undoes_a_swap_killed_at_any_move() {
        let scratch = tempfile::tempdir().unwrap();
        let moves = moves_of_a_swap(&scratch.path().join("complete"));
        for kill_at in 0..=moves {
            let root = scratch.path().join(format!("kill-{kill_at}"));
            let staging = format!("{INSIDE_PREFIX}{DEAD_PID}");
            let (out, new) = setup(&root, &staging);
            let mut expected = tree(&out);
            let mut calls = 0;
            let mut rename = |a: &Path, b: &Path| {
                calls += 1;
                if calls == kill_at + 1 {
                    return Err(std::io::Error::other("killed"));
                }
                fs::rename(a, b)
            };
            let killed = swap_in(&new, &out, DEAD_PID, &mut rename, OnFailure::Stop).is_err();
            assert_eq!(killed, kill_at < moves);
            if !killed {
                // The swap completed: the new output stays.
                expected = tree(&out);
                // As if killed before the backup was removed: rebuild it from nothing.
                fs::create_dir_all(out.join(format!("{BACKUP_PREFIX}{DEAD_PID}"))).unwrap();
            }
            undo_interrupted_swaps(&out).unwrap();
            remove_stale(&out, INSIDE_PREFIX);
            let mut after = tree(&out);
            after.retain(|k, _| !k.starts_with(&staging));
            expected.retain(|k, _| !k.starts_with(&staging));
            assert_eq!(after, expected, "killed at move {kill_at}");
        }
    }
}
