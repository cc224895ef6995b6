//! The verified-shards record (`.verified.json` in a split folder): which shards were read in
//! full and passed every check, and the file identity they had then, so that a restart reads
//! only the headers of shards that have not changed since.
//!
//! A shard is trusted only when its size, modification time, status-change time and inode are
//! the recorded ones and its header checksum is the recorded one (which [`ShardSet`] also
//! compares with `index.json`). Any write through the file system changes the status-change
//! time (`touch` cannot set it back), and a copied or restored file gets a new inode, so a
//! replaced, edited or copied shard is read in full again. A check made less than two seconds
//! after the file's last change is not trusted (time stamps are coarse, so a change in the same
//! tick would keep them): such a shard is read again at the next open. What this gives up is the
//! check of bytes that rot on the disk under an unchanged file; delete `.verified.json` (or open
//! with [`Verify::Always`]) to read everything again.
//!
//! [`ShardSet`]: crate::loader::ShardSet

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result};
use bert_fsutil::write_atomic;

/// Name of the record inside a split folder.
pub const VERIFIED_FILE: &str = ".verified.json";

/// Version of the checks a record vouches for: bump it when a check is added, so that shards
/// verified by an older build are verified again.
const CHECKS_VERSION: u32 = 1;

/// How much of each shard [`ShardSet::open`](crate::loader::ShardSet) reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Read a shard in full the first time, then trust it while it is unchanged (default).
    #[default]
    Once,
    /// Read every shard in full at every open (what `bert inspect` does).
    Always,
}

/// What one open read: shards verified in full now, and shards trusted from the record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifySummary {
    /// Shards read in full and checked during this open.
    pub verified: usize,
    /// Shards unchanged since a recorded full check, of which only the header was read.
    pub trusted: usize,
    /// Bytes read in full (the verified shards' sizes).
    pub verified_bytes: u64,
}

/// Identity of a shard file at the time it was checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time, nanoseconds since the epoch (0 where the platform has none).
    pub ctime_ns: i128,
    /// Inode number (0 where the platform has none).
    pub inode: u64,
    /// The checksum the header records.
    pub checksum: String,
}

impl FileStamp {
    /// The stamp of `path` now, with the header's `checksum`.
    pub fn of(path: &Path, checksum: &str) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(io_err("reading the metadata of", path))?;
        let (ctime_ns, inode) = ctime_and_inode(&meta);
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        Ok(Self {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            inode,
            checksum: checksum.to_string(),
        })
    }
}

#[cfg(unix)]
fn ctime_and_inode(meta: &std::fs::Metadata) -> (i128, u64) {
    use std::os::unix::fs::MetadataExt;
    (
        i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        meta.ino(),
    )
}

#[cfg(not(unix))]
fn ctime_and_inode(_meta: &std::fs::Metadata) -> (i128, u64) {
    (0, 0)
}

/// A file changed less than this before its stamp was taken may change again within the same
/// timestamp tick without its stamp changing (time stamps are coarse: a few milliseconds, one
/// or two seconds on some file systems), so it is not trusted yet: it is read in full again at
/// the next open (the "racily clean" rule of git's index).
const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// One verified shard: its stamp, and when the stamp was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// The file's identity when it passed every check.
    pub stamp: FileStamp,
    /// When that identity was read, nanoseconds since the epoch.
    pub stamped_at_ns: i128,
}

impl Checked {
    /// True when the file changed so shortly before its stamp was taken that a later change
    /// could have kept the same time stamps.
    fn racy(&self) -> bool {
        self.stamped_at_ns - self.stamp.mtime_ns.max(self.stamp.ctime_ns) < RACY_WINDOW_NS
    }
}

/// Now, in nanoseconds since the epoch (0 if the clock is before it).
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Content of `.verified.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifiedRecord {
    /// Version of the checks of the build that wrote it (a record of other checks is ignored).
    pub checks: u32,
    /// Each verified shard, by file name.
    pub shards: BTreeMap<String, Checked>,
}

impl VerifiedRecord {
    /// The record of `dir`; empty when there is none, it is unreadable, or it was written for
    /// other checks (never an error: the cost of a bad record is one full verification).
    pub fn load(dir: &Path) -> Self {
        std::fs::read(dir.join(VERIFIED_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Self>(&b).ok())
            .filter(|r| r.checks == CHECKS_VERSION)
            .unwrap_or_default()
    }

    /// True when shard `file` passed every check with exactly this stamp, taken long enough
    /// after the file's last change.
    pub fn trusts(&self, file: &str, stamp: &FileStamp) -> bool {
        self.shards
            .get(file)
            .is_some_and(|c| c.stamp == *stamp && !c.racy())
    }

    /// Records that `file` passed every check with `stamp`, read at `stamped_at_ns`.
    pub fn insert(&mut self, file: &str, stamp: FileStamp, stamped_at_ns: i128) {
        self.checks = CHECKS_VERSION;
        self.shards.insert(
            file.to_string(),
            Checked {
                stamp,
                stamped_at_ns,
            },
        );
    }

    /// Writes the record into `dir` (atomically; concurrent writers each write a whole,
    /// equivalent record).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        write_atomic(&dir.join(VERIFIED_FILE), &json)?;
        Ok(())
    }
}
