//! Size and CRC32 of a file: what a checkpoint records of its weight files at save and
//! compares at load, so a damaged file is named instead of silently used.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Size and CRC32 of a file, recorded at save and compared at load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// CRC32 (IEEE, as zlib and `crc32fast` compute it) as 8 lowercase hex digits.
    pub crc32: String,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.len() as u64,
            crc32: format!("{:08x}", crc32fast::hash(bytes)),
        }
    }

    /// The digest of the file at `path`, read in pieces (weight files can be gigabytes).
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut file = fs::File::open(path)?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        Ok(Self {
            bytes,
            crc32: format!("{:08x}", hasher.finalize()),
        })
    }
}

impl fmt::Display for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CRC32 {} ({} bytes)", self.crc32, self.bytes)
    }
}
