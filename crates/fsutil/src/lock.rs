//! One writer per folder: an exclusive advisory lock on a file beside or inside it.
//!
//! The lock is the OS's (`flock` on Unix, `LockFileEx` on Windows, through
//! [`File::try_lock`]), so the kernel releases it when the holder dies, even by SIGKILL: a
//! stale lock never blocks the next run. The lock file itself stays in place: removing it on
//! release would let a process that opened the old file and one that created a new file both
//! hold "the" lock. The holder writes its process id, start time and command line into it, so a
//! refused process can say who has the folder.
//!
//! Within one process the lock is re-entrant: nested steps of one job (a `bert train` that
//! prepares its own data and then trains into the run folder it has already locked) share it.
//!
//! Readers may take the lock shared ([`FolderLock::acquire_shared`]): any number of them hold it
//! together, and a writer asking for it exclusively is refused while one does (a `bert prepare`
//! over the shards a `bert train` reads). Only an exclusive holder writes its note into the file,
//! and empties it again when it lets go.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::FsError;

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{} is in use by {}; wait for it to finish, or use another folder \
         (the lock is {}, released when that process ends)",
        folder.display(),
        holder.as_deref().unwrap_or("another process"),
        lock_file.display()
    )]
    Busy {
        /// The folder the lock guards.
        folder: PathBuf,
        /// The lock file.
        lock_file: PathBuf,
        /// Who holds it, as the holder wrote it ("process 1234 (started …): bert train …");
        /// `None` when no live holder left a note (readers, who hold it shared, write none).
        holder: Option<String>,
    },
    /// The lock file could not be created, opened or locked.
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// An exclusive lock on a folder, held until dropped (or the process ends).
#[derive(Debug, Clone)]
pub struct FolderLock {
    _held: Arc<Held>,
}

/// The open, locked file; the OS lock goes with the last handle.
#[derive(Debug)]
struct Held {
    file: File,
    shared: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        // The note names a holder only while there is one (a killed holder's note stays, and a
        // refused process checks whether its process still runs).
        if !self.shared {
            let _ = self.file.set_len(0);
        }
    }
}

/// The locks this process holds, by canonical lock-file path, for re-entrancy.
fn held_here() -> &'static Mutex<HashMap<PathBuf, Weak<Held>>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, Weak<Held>>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// What a refused process says of the holder: its note, when the process it names still runs.
fn holder_of(note: &str) -> Option<String> {
    let note = note.trim();
    let pid = note
        .strip_prefix("process ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse::<u32>().ok())?;
    (crate::process_alive(pid) != Some(false)).then(|| note.to_string())
}

impl FolderLock {
    /// Takes the exclusive lock `lock_file` for `folder` (the folder is only named in
    /// messages), creating the lock file and its parent folders. Fails at once, never waits,
    /// when another process holds it, exclusively or shared.
    pub fn acquire(lock_file: &Path, folder: &Path) -> Result<Self, LockError> {
        if let Some(parent) = lock_file.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_file)
            .map_err(fs_error("opening the lock file", lock_file))?;
        Self::take(file, lock_file, folder, false)
    }

    /// Takes `lock_file` shared, as a reader of `folder`: other readers may hold it too, a
    /// writer ([`FolderLock::acquire`]) may not. `None` when there is no lock file (a folder no
    /// writer of ours made) or it cannot be opened (read-only storage): reading goes on unguarded
    /// rather than failing. Fails when a writer holds it.
    pub fn acquire_shared(lock_file: &Path, folder: &Path) -> Result<Option<Self>, LockError> {
        let Ok(file) = File::open(lock_file) else {
            return Ok(None);
        };
        Self::take(file, lock_file, folder, true).map(Some)
    }

    fn take(file: File, lock_file: &Path, folder: &Path, shared: bool) -> Result<Self, LockError> {
        let key = lock_file
            .canonicalize()
            .map_err(fs_error("resolving the lock file", lock_file))?;
        let mut held = held_here().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = held.get(&key).and_then(Weak::upgrade) {
            // An exclusive hold covers a shared request; a shared one cannot be upgraded.
            if shared || !existing.shared {
                return Ok(Self { _held: existing });
            }
        }
        let attempt = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut note = String::new();
                let _ = (&file).read_to_string(&mut note);
                return Err(LockError::Busy {
                    folder: folder.to_path_buf(),
                    lock_file: lock_file.to_path_buf(),
                    holder: holder_of(&note),
                });
            }
            Err(TryLockError::Error(e)) => return Err(fs_error("locking", lock_file)(e).into()),
        }
        if !shared {
            // Who holds it, for the message of a refused process; the lock is what counts, so
            // a failure to write this is not an error.
            let mut f = &file;
            let _ = f
                .set_len(0)
                .and_then(|()| f.seek(SeekFrom::Start(0)))
                .and_then(|_| f.write_all(holder_line().as_bytes()))
                .and_then(|()| f.sync_data());
        }
        let entry = Arc::new(Held { file, shared });
        held.retain(|_, weak| weak.strong_count() > 0);
        held.insert(key, Arc::downgrade(&entry));
        Ok(Self { _held: entry })
    }

    /// The conventional lock file of an output folder that may not exist yet:
    /// `<parent>/.<name>.lock`, beside it.
    pub fn sibling_path(folder: &Path) -> PathBuf {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        folder.with_file_name(format!(".{name}.lock"))
    }
}

fn fs_error<'a>(action: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> FsError + 'a {
    move |source| FsError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// "process 1234 (started 2026-12-03 18:08:54 UTC): bert train --config x.toml".
fn holder_line() -> String {
    let command: Vec<String> = std::env::args().collect();
    format!(
        "process {} (started {}): {}\n",
        std::process::id(),
        utc_now(),
        command.join(" ")
    )
}

/// The current time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_790), (2026, 12, 3));
    }

    #[test]
    fn a_lock_is_reentrant_in_one_process_and_released_when_dropped() {
        let dir = std::env::temp_dir().join(format!("bert-lock-test-{}", std::process::id()));
        let file = dir.join(".x.lock");
        let first = FolderLock::acquire(&file, &dir).unwrap();
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(
            written.starts_with(&format!("process {} (started ", std::process::id())),
            "{written}"
        );
        let nested = FolderLock::acquire(&file, &dir).unwrap();
        let reading = FolderLock::acquire_shared(&file, &dir).unwrap().unwrap();
        drop(reading);
        drop(first);
        drop(nested);
        // Released: the note is emptied with the lock.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
        // Released: a separate open file description can take it now.
        let other = File::open(&file).unwrap();
        other.try_lock().unwrap();
        drop(other);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_held_elsewhere_is_refused_with_its_holder() {
        let dir = std::env::temp_dir().join(format!("bert-lock-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(".y.lock");
        std::fs::write(&file, "process 1 (started then): bert prepare\n").unwrap();
        // Another open file description stands in for another process.
        let other = File::open(&file).unwrap();
        other.try_lock().unwrap();
        let err = FolderLock::acquire(&file, Path::new("out/y")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("out/y is in use by process 1 (started then): bert prepare;"),
            "{text}"
        );
        drop(other);
        FolderLock::acquire(&file, Path::new("out/y")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn readers_share_the_lock_and_keep_a_writer_out() {
        let dir = std::env::temp_dir().join(format!("bert-lock-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(".z.lock");
        assert!(
            FolderLock::acquire_shared(&file, &dir).unwrap().is_none(),
            "no lock file yet"
        );
        // A note left by a holder that is gone is not repeated as if it held the lock.
        std::fs::write(&file, "process 4000000000 (started then): bert prepare\n").unwrap();
        // Another reader (another open file description) holds it shared.
        let other = File::open(&file).unwrap();
        other.try_lock_shared().unwrap();
        let mine = FolderLock::acquire_shared(&file, &dir).unwrap();
        assert!(mine.is_some());
        drop(mine);
        let err = FolderLock::acquire(&file, &dir).unwrap_err().to_string();
        assert!(err.contains("is in use by another process;"), "{err}");
        drop(other);
        FolderLock::acquire(&file, &dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
