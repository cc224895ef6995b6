//! The shard checksum: CRC32 over the tensor data and the recorded facts, so a flipped byte
//! in either is caught.

use std::collections::BTreeMap;

/// CRC32 of the tensor data followed by each metadata entry except `checksum`, in key order,
/// as `key \0 value \0`. Covers the payload and every recorded fact.
pub fn shard_checksum(data: &[u8], metadata: &BTreeMap<String, String>) -> String {
    checksum_parts(&[data], metadata)
}

/// [`shard_checksum`] over data given in parts (the writer holds one buffer per tensor).
pub(super) fn checksum_parts(parts: &[&[u8]], metadata: &BTreeMap<String, String>) -> String {
    let mut h = crc32fast::Hasher::new();
    for part in parts {
        h.update(part);
    }
    for (k, v) in metadata {
        if k == "checksum" {
            continue;
        }
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(v.as_bytes());
        h.update(&[0]);
    }
    format!("crc32:{:08x}", h.finalize())
}
