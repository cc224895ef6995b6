//! A split folder's `index.json`: the set's header, its shards in order and the prepare
//! configuration that made it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::format::{DatasetHeader, ShardEntry, INDEX_FILE};
use super::metadata::check_format;
use crate::error::{io_err, DataError, Result};
use crate::objective::ObjectiveSpec;

/// Content of a split folder's `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetIndex {
    /// What the set is.
    #[serde(flatten)]
    pub header: DatasetHeader,
    /// The objective its instances are built for (`objective`, `mlm_format` keys; absent in
    /// sets made before objectives existed, which read as `mlm_nsp`).
    #[serde(flatten)]
    pub objective: ObjectiveSpec,
    /// Shards in global-index order.
    pub shards: Vec<ShardEntry>,
    /// The prepare configuration that made the set (for provenance).
    #[serde(default)]
    pub prepare: serde_json::Value,
}

impl DatasetIndex {
    /// Reads and checks `dir/index.json` (format name and version).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(INDEX_FILE);
        if !path.is_file() {
            return Err(DataError::Shard {
                path,
                message: "missing: not a shard folder, or `prepare` did not finish".into(),
            });
        }
        let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| DataError::Shard {
                path: path.clone(),
                message: format!("not valid JSON: {e}"),
            })?;
        check_format(
            &path,
            value.get("format").and_then(|v| v.as_str()),
            value
                .get("format_version")
                .and_then(|v| v.as_u64())
                .map(|v| v.to_string())
                .as_deref(),
        )?;
        serde_json::from_value(value).map_err(|e| DataError::Shard {
            path,
            message: format!("unexpected index content: {e}"),
        })
    }
}
