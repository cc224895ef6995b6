//! Writing a shard set: instances are encoded into a buffer in their on-disk form, each full
//! buffer is written as one safetensors file, and `index.json` is written last.
//!
//! The writer serialises safetensors itself (the crate's own serialiser writes metadata from a
//! `HashMap`, in a different order every run, which would break byte-identical shards).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::checksum::checksum_parts;
use super::format::{
    format_version_for, shard_file_name, DatasetHeader, MaskingMode, ShardEntry, INDEX_FILE,
};
use super::index::DatasetIndex;
use super::metadata::base_metadata;
use crate::error::{io_err, DataError, Result};
use crate::instances::Instance;
use crate::objective::ObjectiveSpec;
use bert_fsutil::{create_dir_all, write_atomic, write_atomic_parts};

/// One shard being filled, already in its on-disk encoding (little-endian tensor bytes), so
/// memory per instance is what the file will hold and flushing needs no second copy.
#[derive(Debug, Default)]
struct ShardBuffer {
    wide: bool,
    is_static: bool,
    instances: usize,
    tokens: usize,
    masked: usize,
    offsets: Vec<u8>,
    mask_offsets: Vec<u8>,
    input_ids: Vec<u8>,
    masked_labels: Vec<u8>,
    masked_positions: Vec<u8>,
    token_type_ids: Vec<u8>,
    nsp_labels: Vec<u8>,
}

impl ShardBuffer {
    fn new(header: &DatasetHeader, shard_size: usize) -> Self {
        let mut b = Self {
            wide: header.vocab_size > 65_536,
            is_static: header.masking == MaskingMode::Static,
            ..Self::default()
        };
        // Reserve the worst case once: untouched pages cost no memory, and a buffer that
        // never reallocates never holds two copies of itself.
        let width = if b.wide { 4 } else { 2 };
        let max_tokens = shard_size.saturating_mul(header.max_seq_length);
        b.input_ids.reserve(max_tokens * width);
        b.token_type_ids.reserve(max_tokens);
        b.offsets.reserve((shard_size + 1) * 8);
        b.nsp_labels.reserve(shard_size);
        if b.is_static {
            let max_masked = shard_size * header.masking_params.max_predictions_per_seq;
            b.masked_labels.reserve(max_masked * width);
            b.masked_positions.reserve(max_masked * 2);
            b.mask_offsets.reserve((shard_size + 1) * 8);
        }
        b.offsets.extend_from_slice(&0u64.to_le_bytes());
        if b.is_static {
            b.mask_offsets.extend_from_slice(&0u64.to_le_bytes());
        }
        b
    }

    fn push_ids(out: &mut Vec<u8>, ids: &[u32], wide: bool) {
        for &id in ids {
            if wide {
                out.extend_from_slice(&id.to_le_bytes());
            } else {
                // Narrow only when every id of the vocabulary fits 16 bits.
                out.extend_from_slice(&(id as u16).to_le_bytes());
            }
        }
    }

    fn push(&mut self, inst: &Instance) {
        Self::push_ids(&mut self.input_ids, &inst.input_ids, self.wide);
        self.token_type_ids.extend_from_slice(&inst.token_type_ids);
        self.tokens += inst.input_ids.len();
        self.offsets
            .extend_from_slice(&(self.tokens as u64).to_le_bytes());
        self.nsp_labels.push(inst.nsp_label);
        if self.is_static {
            Self::push_ids(&mut self.masked_labels, &inst.masked_labels, self.wide);
            for &p in &inst.masked_positions {
                self.masked_positions
                    .extend_from_slice(&(p as u16).to_le_bytes());
            }
            self.masked += inst.masked_positions.len();
            self.mask_offsets
                .extend_from_slice(&(self.masked as u64).to_le_bytes());
        }
        self.instances += 1;
    }

    /// The header bytes (length prefix + JSON) and the tensor byte slices in file order;
    /// `metadata` gets the counts and checksum.
    fn encode(&self, mut metadata: BTreeMap<String, String>) -> (Vec<u8>, Vec<&[u8]>, ShardEntry) {
        let id_dtype = if self.wide { "U32" } else { "U16" };
        // Widest element first, so every tensor starts aligned to its own size.
        let mut tensors: Vec<(&str, &str, usize, &[u8])> =
            vec![("offsets", "U64", self.instances + 1, &self.offsets)];
        if self.is_static {
            tensors.push((
                "mask_offsets",
                "U64",
                self.instances + 1,
                &self.mask_offsets,
            ));
        }
        tensors.push(("input_ids", id_dtype, self.tokens, &self.input_ids));
        if self.is_static {
            tensors.push(("masked_labels", id_dtype, self.masked, &self.masked_labels));
            tensors.push((
                "masked_positions",
                "U16",
                self.masked,
                &self.masked_positions,
            ));
        }
        tensors.push(("token_type_ids", "U8", self.tokens, &self.token_type_ids));
        tensors.push(("nsp_labels", "U8", self.instances, &self.nsp_labels));

        let mut infos = BTreeMap::new();
        let mut at = 0usize;
        for (name, dtype, len, bytes) in &tensors {
            infos.insert(
                *name,
                serde_json::json!({
                    "dtype": dtype,
                    "shape": [len],
                    "data_offsets": [at, at + bytes.len()],
                }),
            );
            at += bytes.len();
        }
        metadata.insert("instances".into(), self.instances.to_string());
        metadata.insert("tokens".into(), self.tokens.to_string());
        metadata.insert("masked_tokens".into(), self.masked.to_string());
        let parts: Vec<&[u8]> = tensors.iter().map(|t| t.3).collect();
        let checksum = checksum_parts(&parts, &metadata);
        metadata.insert("checksum".into(), checksum.clone());

        // serde_json's Map keeps keys sorted (no preserve_order feature): deterministic bytes.
        let mut root = serde_json::Map::new();
        root.insert(
            "__metadata__".into(),
            serde_json::to_value(&metadata).unwrap_or_default(),
        );
        for (k, v) in infos {
            root.insert(k.into(), v);
        }
        let mut json = serde_json::Value::Object(root).to_string().into_bytes();
        // Pad so the data starts 8-byte aligned (8-byte length prefix + header).
        let pad = (8 - json.len() % 8) % 8;
        json.extend(std::iter::repeat_n(b' ', pad));
        let mut head = Vec::with_capacity(8 + json.len());
        head.extend_from_slice(&(json.len() as u64).to_le_bytes());
        head.extend_from_slice(&json);
        let entry = ShardEntry {
            file: String::new(),
            instances: self.instances as u64,
            tokens: self.tokens as u64,
            checksum,
        };
        (head, parts, entry)
    }
}

/// Streams instances into shards of `shard_size` instances, then writes `index.json`.
pub struct ShardWriter {
    dir: PathBuf,
    header: DatasetHeader,
    objective: ObjectiveSpec,
    shard_size: usize,
    buffer: ShardBuffer,
    shards: Vec<ShardEntry>,
}

impl ShardWriter {
    /// Prepares `dir` (created if needed; an old `index.json`, `.verified.json` and old
    /// `shard-*.safetensors` files are removed first, so a crash never leaves an index over
    /// mixed shards). `header` gives everything but the counts. The set is an `mlm_nsp` set;
    /// [`create_for`](Self::create_for) writes another objective.
    pub fn create(dir: &Path, header: DatasetHeader, shard_size: usize) -> Result<Self> {
        Self::create_for(dir, header, ObjectiveSpec::MLM_NSP, shard_size)
    }

    /// Like [`create`](Self::create), for a set of instances built for `objective`, which
    /// every shard header and `index.json` record; the header's `format_version` is set to
    /// the objective's.
    pub fn create_for(
        dir: &Path,
        mut header: DatasetHeader,
        objective: ObjectiveSpec,
        shard_size: usize,
    ) -> Result<Self> {
        header.format_version = format_version_for(&objective);
        create_dir_all(dir)?;
        // The verified-shards record goes too: it vouches for files about to be replaced.
        for name in [INDEX_FILE, crate::verified::VERIFIED_FILE] {
            let path = dir.join(name);
            if path.exists() {
                std::fs::remove_file(&path).map_err(io_err("removing", &path))?;
            }
        }
        for entry in std::fs::read_dir(dir).map_err(io_err("listing", dir))? {
            let p = entry.map_err(io_err("listing", dir))?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with("shard-") && n.ends_with(".safetensors")) {
                std::fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            shard_size: shard_size.max(1),
            buffer: ShardBuffer::new(&header, shard_size.max(1)),
            header,
            objective,
            shards: Vec::new(),
        })
    }

    /// Queues an instance, writing a shard when `shard_size` are queued.
    pub fn push(&mut self, instance: &Instance) -> Result<()> {
        self.buffer.push(instance);
        if self.buffer.instances >= self.shard_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Instances written or queued so far.
    pub fn instances(&self) -> u64 {
        self.shards.iter().map(|s| s.instances).sum::<u64>() + self.buffer.instances as u64
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.instances == 0 {
            return Ok(());
        }
        let index = self.shards.len();
        let (head, mut parts, mut entry) =
            self.buffer
                .encode(base_metadata(&self.header, &self.objective, index));
        entry.file = shard_file_name(index);
        parts.insert(0, &head);
        write_atomic_parts(&self.dir.join(&entry.file), &parts)?;
        self.shards.push(entry);
        // Free the written buffer before reserving the next one.
        self.buffer = ShardBuffer::default();
        self.buffer = ShardBuffer::new(&self.header, self.shard_size);
        Ok(())
    }

    /// Writes the last shard and `index.json` (last, atomically: its presence means the set
    /// is complete).
    pub fn finish(mut self, prepare: serde_json::Value) -> Result<DatasetIndex> {
        self.flush()?;
        let mut header = self.header.clone();
        header.instances = self.shards.iter().map(|s| s.instances).sum();
        header.tokens = self.shards.iter().map(|s| s.tokens).sum();
        let index = DatasetIndex {
            header,
            objective: self.objective,
            shards: self.shards,
            prepare,
        };
        let json = serde_json::to_vec_pretty(&index).map_err(|e| DataError::Shard {
            path: self.dir.join(INDEX_FILE),
            message: e.to_string(),
        })?;
        write_atomic(&self.dir.join(INDEX_FILE), &json)?;
        Ok(index)
    }
}
