//! The shard format: one safetensors file per shard, plus an `index.json` per split folder.
//!
//! Tensors (all 1-D, little-endian): `input_ids` (U16 when the vocabulary has at most 65,536
//! ids, else U32) and `token_type_ids` (U8) concatenated over instances, `offsets` (U64,
//! `instances + 1` entries) delimiting them, `nsp_labels` (U8). Static shards add
//! `masked_positions` (U16), `masked_labels` (like `input_ids`) and `mask_offsets` (U64).
//! The `__metadata__` header records format name and version, vocabulary hash and size,
//! sequence length, masking mode and parameters, counts and a CRC32 checksum. See
//! `docs/data-format.md`.
//!
//! The writer serialises safetensors itself (the crate's own serialiser writes metadata from a
//! `HashMap`, in a different order every run, which would break byte-identical shards); the
//! reader uses the safetensors crate to parse and validate, so files stay standard.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, DataError, Result};
use crate::fsutil::{create_dir_all, write_atomic, write_atomic_parts};
use crate::instances::Instance;
use crate::masking::MaskingParams;
use crate::prepare::PrepareConfig;
use crate::tokenizer::SpecialIds;

/// Format name recorded in every shard and index.
pub const FORMAT_NAME: &str = "bert-pretraining-shards";
/// Format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Name of the per-split index file.
pub const INDEX_FILE: &str = "index.json";

/// When masks are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskingMode {
    /// At prepare time; shards hold masked inputs, positions and labels (`dupe_factor` copies).
    #[default]
    Static,
    /// In the loader, from `(seed, epoch, instance index)`; shards hold unmasked instances.
    Dynamic,
}

impl MaskingMode {
    /// `"static"` or `"dynamic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dynamic => "dynamic",
        }
    }
}

impl std::str::FromStr for MaskingMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "static" => Ok(Self::Static),
            "dynamic" => Ok(Self::Dynamic),
            other => Err(format!(
                "unknown masking mode {other:?} (expected static or dynamic)"
            )),
        }
    }
}

/// What a shard set is: everything the trainer must check against its own config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetHeader {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Format version ([`FORMAT_VERSION`] for this build).
    pub format_version: u32,
    /// `train` or `validation`.
    pub split: String,
    /// Hash of the vocabulary the ids refer to (see `tokenizer::vocab_hash`).
    pub vocab_hash: String,
    /// Number of ids in that vocabulary.
    pub vocab_size: usize,
    /// Longest instance, `[CLS]` and `[SEP]`s included.
    pub max_seq_length: usize,
    /// Static or dynamic masking.
    pub masking: MaskingMode,
    /// Masking parameters (used at prepare time for static, by the loader for dynamic).
    pub masking_params: MaskingParams,
    /// Differently-masked copies per document pass (static; 1 for dynamic).
    pub dupe_factor: usize,
    /// Instances in the whole set.
    pub instances: u64,
    /// Tokens (special tokens included) in the whole set.
    pub tokens: u64,
}

/// One shard as listed in an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the split folder.
    pub file: String,
    /// Instances in the shard.
    pub instances: u64,
    /// Tokens in the shard.
    pub tokens: u64,
    /// `crc32:xxxxxxxx`, as in the shard header.
    pub checksum: String,
}

/// Content of a split folder's `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetIndex {
    /// What the set is.
    #[serde(flatten)]
    pub header: DatasetHeader,
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

impl DatasetHeader {
    /// Checks that this set is what `recipe` would make, as far as training sees it: masking
    /// mode and parameters, sequence length and dupe factor. `path` names the set in the
    /// error, `expected_from` where the recipe comes from (e.g. a run config's `[prepare]`).
    pub fn check_recipe(
        &self,
        path: &Path,
        recipe: &PrepareConfig,
        expected_from: &str,
    ) -> Result<()> {
        let expected = DatasetHeader {
            max_seq_length: recipe.max_seq_length,
            masking: recipe.masking,
            masking_params: recipe.masking_params(),
            dupe_factor: recipe.effective_dupe_factor(),
            ..self.clone()
        };
        check_recorded_facts(path, &base_metadata(self, 0), &expected, expected_from)
    }
}

fn check_format(path: &Path, format: Option<&str>, version: Option<&str>) -> Result<()> {
    if format != Some(FORMAT_NAME) {
        return Err(DataError::Shard {
            path: path.to_path_buf(),
            message: format!(
                "format is {:?}, expected {FORMAT_NAME:?}",
                format.unwrap_or("<missing>")
            ),
        });
    }
    if version != Some(FORMAT_VERSION.to_string().as_str()) {
        return Err(DataError::Shard {
            path: path.to_path_buf(),
            message: format!(
                "unknown format version {} (this build reads version {FORMAT_VERSION}); \
                 re-run `bert prepare` or use a matching build",
                version.unwrap_or("<missing>")
            ),
        });
    }
    Ok(())
}

/// The facts a shard header records about its set, each against the index's header: a shard
/// from another prepare run (other masking, sequence length, split…) is refused by name.
fn check_recorded_facts(
    path: &Path,
    md: &BTreeMap<String, String>,
    header: &DatasetHeader,
    expected_from: &str,
) -> Result<()> {
    let p = &header.masking_params;
    let expected = [
        ("split", header.split.clone()),
        ("max_seq_length", header.max_seq_length.to_string()),
        ("vocab_size", header.vocab_size.to_string()),
        ("masking", header.masking.as_str().to_string()),
        ("masked_lm_prob", p.masked_lm_prob.to_string()),
        (
            "max_predictions_per_seq",
            p.max_predictions_per_seq.to_string(),
        ),
        ("whole_word_masking", p.whole_word_masking.to_string()),
        ("mask_count", p.count.as_str().to_string()),
        ("dupe_factor", header.dupe_factor.to_string()),
    ];
    for (key, want) in expected {
        // Shards record `mask_count` only when it is not Google's fixed count.
        let absent = if key == "mask_count" {
            "fixed"
        } else {
            "<missing>"
        };
        let got = md.get(key).map_or(absent, String::as_str);
        let same = match key {
            // A float that went through JSON may differ in its last digit; not a mismatch.
            "masked_lm_prob" => got
                .parse::<f64>()
                .is_ok_and(|g| (g - p.masked_lm_prob).abs() <= 1e-12),
            _ => got == want,
        };
        if !same {
            return Err(DataError::ShardMismatch {
                path: path.to_path_buf(),
                field: key.into(),
                found: got.to_string(),
                expected: want,
                expected_from: expected_from.into(),
            });
        }
    }
    Ok(())
}

/// File name of shard `index`.
pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:05}.safetensors")
}

/// CRC32 of the tensor data followed by each metadata entry except `checksum`, in key order,
/// as `key \0 value \0`. Covers the payload and every recorded fact.
pub fn shard_checksum(data: &[u8], metadata: &BTreeMap<String, String>) -> String {
    checksum_parts(&[data], metadata)
}

fn checksum_parts(parts: &[&[u8]], metadata: &BTreeMap<String, String>) -> String {
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

/// Metadata every shard of a set carries.
fn base_metadata(h: &DatasetHeader, shard_index: usize) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".into(), FORMAT_NAME.to_string());
    m.insert("format_version".into(), FORMAT_VERSION.to_string());
    m.insert("split".into(), h.split.clone());
    m.insert("shard_index".into(), shard_index.to_string());
    m.insert("vocab_hash".into(), h.vocab_hash.clone());
    m.insert("vocab_size".into(), h.vocab_size.to_string());
    m.insert("max_seq_length".into(), h.max_seq_length.to_string());
    m.insert("masking".into(), h.masking.as_str().into());
    m.insert(
        "masked_lm_prob".into(),
        h.masking_params.masked_lm_prob.to_string(),
    );
    m.insert(
        "max_predictions_per_seq".into(),
        h.masking_params.max_predictions_per_seq.to_string(),
    );
    m.insert(
        "whole_word_masking".into(),
        h.masking_params.whole_word_masking.to_string(),
    );
    // Only when it differs from the original rule, so shards made before it existed keep
    // their metadata (and checksums) byte for byte.
    if h.masking_params.count != crate::masking::MaskCount::Fixed {
        m.insert("mask_count".into(), h.masking_params.count.as_str().into());
    }
    m.insert("dupe_factor".into(), h.dupe_factor.to_string());
    m
}

/// Streams instances into shards of `shard_size` instances, then writes `index.json`.
pub struct ShardWriter {
    dir: PathBuf,
    header: DatasetHeader,
    shard_size: usize,
    buffer: ShardBuffer,
    shards: Vec<ShardEntry>,
}

impl ShardWriter {
    /// Prepares `dir` (created if needed; an old `index.json`, `.verified.json` and old
    /// `shard-*.safetensors` files are removed first, so a crash never leaves an index over
    /// mixed shards). `header` gives everything but the counts.
    pub fn create(dir: &Path, header: DatasetHeader, shard_size: usize) -> Result<Self> {
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
        let (head, mut parts, mut entry) = self.buffer.encode(base_metadata(&self.header, index));
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

/// Location of one tensor inside a mapped shard.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    len: usize,
    width: usize,
}

/// A memory-mapped, validated shard.
#[derive(Debug)]
pub struct ShardReader {
    path: PathBuf,
    map: Mmap,
    instances: usize,
    tokens: usize,
    input_ids: Span,
    token_type_ids: Span,
    offsets: Span,
    nsp_labels: Span,
    masked: Option<(Span, Span, Span)>,
    header_len: usize,
    metadata: BTreeMap<String, String>,
}

impl ShardReader {
    /// Maps a shard and runs every check: [`open_header`](Self::open_header)'s, then
    /// [`verify`](Self::verify)'s (which reads the whole file).
    pub fn open(path: &Path, header: &DatasetHeader) -> Result<Self> {
        let reader = Self::open_header(path, header)?;
        reader.verify(header, None)?;
        Ok(reader)
    }

    /// Maps a shard and runs the checks that read only its header: safetensors structure
    /// (catches truncation), format name and version, vocabulary hash, the recorded facts
    /// against the set's `header` (split, sequence length, vocabulary size, masking mode and
    /// parameters, dupe factor), and tensor dtypes and shapes. Reading the payload is left to
    /// [`verify`](Self::verify), so opening a large set stays cheap.
    pub fn open_header(path: &Path, header: &DatasetHeader) -> Result<Self> {
        let file = File::open(path).map_err(io_err("opening", path))?;
        // SAFETY: the mapping is read-only and shard files are never modified in place (the
        // writer replaces them by rename), so the mapped bytes cannot change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err("mapping", path))?;
        let bad = |message: String| DataError::Shard {
            path: path.to_path_buf(),
            message,
        };
        let (header_len, meta) = SafeTensors::read_metadata(&map).map_err(|e| {
            bad(format!(
                "not a readable safetensors file, truncated or corrupt ({e:?})"
            ))
        })?;
        let md: BTreeMap<String, String> = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        check_format(
            path,
            md.get("format").map(String::as_str),
            md.get("format_version").map(String::as_str),
        )?;
        let vocab_hash = md.get("vocab_hash").cloned().unwrap_or_default();
        if vocab_hash != header.vocab_hash {
            return Err(DataError::VocabMismatch {
                path: path.to_path_buf(),
                expected: header.vocab_hash.clone(),
                found: vocab_hash,
            });
        }
        check_recorded_facts(path, &md, header, INDEX_FILE)?;
        let tensors = meta.tensors();
        let span = |name: &str, dtypes: &[Dtype]| -> Result<Span> {
            let info = tensors
                .get(name)
                .ok_or_else(|| bad(format!("missing tensor {name:?}")))?;
            if !dtypes.contains(&info.dtype) || info.shape.len() != 1 {
                return Err(bad(format!(
                    "tensor {name:?} has dtype {:?} shape {:?}, expected 1-D {dtypes:?}",
                    info.dtype, info.shape
                )));
            }
            Ok(Span {
                // Absolute file offset: the data follows the 8-byte length and the header.
                start: 8 + header_len + info.data_offsets.0,
                len: info.shape[0],
                width: info.dtype.size(),
            })
        };
        let id_dtype = if header.vocab_size > 65_536 {
            Dtype::U32
        } else {
            Dtype::U16
        };
        let input_ids = span("input_ids", &[id_dtype])?;
        let token_type_ids = span("token_type_ids", &[Dtype::U8])?;
        let offsets = span("offsets", &[Dtype::U64])?;
        let nsp_labels = span("nsp_labels", &[Dtype::U8])?;
        let masked = if header.masking == MaskingMode::Static {
            Some((
                span("masked_positions", &[Dtype::U16])?,
                span("masked_labels", &[id_dtype])?,
                span("mask_offsets", &[Dtype::U64])?,
            ))
        } else {
            None
        };
        let reader = Self {
            path: path.to_path_buf(),
            map,
            instances: nsp_labels.len,
            tokens: input_ids.len,
            input_ids,
            token_type_ids,
            offsets,
            nsp_labels,
            masked,
            header_len,
            metadata: md,
        };
        reader.check_lengths()?;
        Ok(reader)
    }

    /// Reads the whole shard: its checksum against its header (catches flipped bytes), the
    /// offsets, and the range of every value: ids and labels below `vocab_size`, token types
    /// and NSP labels 0 or 1, instances no longer than `max_seq_length`, at most
    /// `max_predictions_per_seq` predictions at ascending positions inside the instance
    /// ([`DataError::ShardRecord`] names the instance). With `special`, masked positions on
    /// `[CLS]`, `[SEP]`, `[PAD]` or `[MASK]` are refused too.
    pub fn verify(&self, header: &DatasetHeader, special: Option<&SpecialIds>) -> Result<()> {
        self.check_checksum()?;
        self.check_offsets()?;
        self.check_records(header, special)
    }

    /// The checksum recorded in the header (`crc32:xxxxxxxx`).
    pub fn checksum(&self) -> &str {
        self.metadata.get("checksum").map_or("", String::as_str)
    }

    /// The header's `__metadata__` entries.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    fn check_checksum(&self) -> Result<()> {
        let actual = shard_checksum(&self.map[8 + self.header_len..], &self.metadata);
        if self.checksum() != actual {
            return Err(DataError::ShardChecksum {
                path: self.path.clone(),
                recorded: self.checksum().to_string(),
                actual,
            });
        }
        Ok(())
    }

    fn bad(&self, message: String) -> DataError {
        DataError::Shard {
            path: self.path.clone(),
            message,
        }
    }

    /// Tensor lengths that must agree, from the header alone.
    fn check_lengths(&self) -> Result<()> {
        if self.offsets.len != self.instances + 1 || self.token_type_ids.len != self.tokens {
            return Err(self.bad("tensor lengths disagree with each other".into()));
        }
        if let Some((pos, lab, moff)) = self.masked {
            if moff.len != self.instances + 1 || pos.len != lab.len {
                return Err(self.bad("masked tensors disagree with each other".into()));
            }
        }
        Ok(())
    }

    /// Offsets start at 0, never decrease and end at the token (prediction) count: every
    /// instance's slice lies inside its tensor.
    fn check_offsets(&self) -> Result<()> {
        self.check_ascending(self.offsets, self.tokens, "offsets")?;
        if let Some((pos, _, moff)) = self.masked {
            self.check_ascending(moff, pos.len, "mask_offsets")?;
        }
        Ok(())
    }

    fn check_ascending(&self, s: Span, end: usize, name: &str) -> Result<()> {
        let mut prev = 0u64;
        for (i, o) in self.u64s(s).enumerate() {
            if o < prev || o as usize > end || (i == 0 && o != 0) {
                return Err(self.bad(format!("{name} are not increasing at instance {i}")));
            }
            prev = o;
        }
        if prev as usize != end {
            return Err(self.bad(format!("{name} do not end at the element count {end}")));
        }
        Ok(())
    }

    /// Every value in range, so that nothing the loader hands to the model can index past an
    /// embedding table: ids and labels below `vocab_size`, token types and NSP labels 0 or
    /// 1, instances no longer than `max_seq_length`, at most `max_predictions_per_seq`
    /// predictions per instance at ascending positions inside the instance, and (with
    /// `special`) never on `[CLS]`, `[SEP]`, `[PAD]` or `[MASK]`. Call after
    /// [`check_offsets`](Self::check_offsets).
    fn check_records(&self, header: &DatasetHeader, special: Option<&SpecialIds>) -> Result<()> {
        let vocab = header.vocab_size as u64;
        if let Some(t) = self.first_at_or_above(self.input_ids, vocab) {
            let (i, p) = self.locate(self.offsets, t);
            let id = self.uint_at(self.input_ids, t);
            return Err(self.record(
                i,
                format!("token {p} has id {id}, expected below vocab_size {vocab}"),
            ));
        }
        if let Some(t) = self.first_at_or_above(self.token_type_ids, 2) {
            let (i, p) = self.locate(self.offsets, t);
            let v = self.uint_at(self.token_type_ids, t);
            return Err(self.record(i, format!("token {p} has token type {v}, expected 0 or 1")));
        }
        if let Some(i) = self.first_at_or_above(self.nsp_labels, 2) {
            let v = self.uint_at(self.nsp_labels, i);
            return Err(self.record(i, format!("NSP label {v}, expected 0 or 1")));
        }
        let max = header.max_seq_length as u64;
        if let Some((i, len)) = self
            .lengths(self.offsets)
            .enumerate()
            .find(|&(_, l)| l > max)
        {
            return Err(self.record(
                i,
                format!("{len} tokens, expected at most max_seq_length {max}"),
            ));
        }
        if let Some((pos, lab, moff)) = self.masked {
            if let Some(t) = self.first_at_or_above(lab, vocab) {
                let (i, _) = self.locate(moff, t);
                let id = self.uint_at(lab, t);
                return Err(self.record(
                    i,
                    format!("masked label {id}, expected below vocab_size {vocab}"),
                ));
            }
            self.check_positions(header, pos, moff)?;
            if let Some(s) = special {
                self.check_special_labels(s, pos, lab, moff)?;
            }
        }
        Ok(())
    }

    /// Each instance's predictions: at most `max_predictions_per_seq` (a fixed count only:
    /// Bernoulli draws have no cap), at ascending positions inside the instance.
    fn check_positions(&self, header: &DatasetHeader, pos: Span, moff: Span) -> Result<()> {
        let cap = match header.masking_params.count {
            crate::masking::MaskCount::Fixed => header.masking_params.max_predictions_per_seq,
            crate::masking::MaskCount::Bernoulli => usize::MAX,
        };
        let positions = &self.map[pos.start..pos.start + pos.len * pos.width];
        let bounds = self.u64s(moff).zip(self.u64s(moff).skip(1));
        for (i, ((a, b), len)) in bounds.zip(self.lengths(self.offsets)).enumerate() {
            let (a, b) = (a as usize, b as usize);
            if b - a > cap {
                return Err(self.record(
                    i,
                    format!(
                        "{} predictions, expected at most max_predictions_per_seq {cap}",
                        b - a
                    ),
                ));
            }
            let mut prev: Option<u64> = None;
            for c in positions[a * 2..b * 2].chunks_exact(2) {
                let p = u64::from(u16::from_le_bytes([c[0], c[1]]));
                if p >= len {
                    return Err(self.record(
                        i,
                        format!("masked position {p} is outside the instance's {len} tokens"),
                    ));
                }
                if prev.is_some_and(|q| q >= p) {
                    return Err(
                        self.record(i, format!("masked positions not ascending at position {p}"))
                    );
                }
                prev = Some(p);
            }
        }
        Ok(())
    }

    /// No masked label (the original token) is a special token: those are never masked.
    fn check_special_labels(&self, s: &SpecialIds, pos: Span, lab: Span, moff: Span) -> Result<()> {
        let specials = [s.cls, s.sep, s.pad, s.mask];
        let bytes = &self.map[lab.start..lab.start + lab.len * lab.width];
        let found = match lab.width {
            2 => bytes
                .chunks_exact(2)
                .position(|c| specials.contains(&u32::from(u16::from_le_bytes([c[0], c[1]])))),
            _ => bytes
                .chunks_exact(4)
                .position(|c| specials.contains(&u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        };
        let Some(t) = found else {
            return Ok(());
        };
        let (i, _) = self.locate(moff, t);
        let (p, label) = (self.uint_at(pos, t), self.uint_at(lab, t));
        Err(self.record(
            i,
            format!(
                "masked position {p} holds special token id {label}; special tokens are never \
                 masked"
            ),
        ))
    }

    /// The little-endian `u64` values of a span.
    fn u64s(&self, s: Span) -> impl Iterator<Item = u64> + '_ {
        self.map[s.start..s.start + s.len * 8]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
    }

    /// Lengths of the slices an offsets tensor delimits (checked ascending).
    fn lengths(&self, offsets: Span) -> impl Iterator<Item = u64> + '_ {
        self.u64s(offsets)
            .zip(self.u64s(offsets).skip(1))
            .map(|(a, b)| b.saturating_sub(a))
    }

    fn record(&self, record: usize, message: String) -> DataError {
        DataError::ShardRecord {
            path: self.path.clone(),
            record,
            message,
        }
    }

    /// Index of the first element of `s` that is `>= limit`. Runs over every token of a data
    /// set, so it takes the maximum of each block (a loop the compiler vectorises) and looks
    /// for the position only in a block that fails.
    fn first_at_or_above(&self, s: Span, limit: u64) -> Option<usize> {
        const BLOCK: usize = 1 << 16;
        let bytes = &self.map[s.start..s.start + s.len * s.width];
        let value = |c: &[u8]| -> u64 {
            match c.len() {
                1 => u64::from(c[0]),
                2 => u64::from(u16::from_le_bytes([c[0], c[1]])),
                _ => u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            }
        };
        for (k, block) in bytes.chunks(BLOCK * s.width).enumerate() {
            let max = match s.width {
                1 => u64::from(block.iter().fold(0u8, |m, &v| m.max(v))),
                2 => u64::from(
                    block
                        .chunks_exact(2)
                        .fold(0u16, |m, c| m.max(u16::from_le_bytes([c[0], c[1]]))),
                ),
                _ => u64::from(block.chunks_exact(4).fold(0u32, |m, c| {
                    m.max(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                })),
            };
            if max >= limit {
                let at = block
                    .chunks_exact(s.width)
                    .position(|c| value(c) >= limit)?;
                return Some(k * BLOCK + at);
            }
        }
        None
    }

    /// `(instance, position inside it)` of element `t` of a tensor delimited by `offsets`.
    fn locate(&self, offsets: Span, t: usize) -> (usize, usize) {
        // Largest i with offsets[i] <= t (offsets checked ascending).
        let (mut lo, mut hi) = (0usize, self.instances);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.u64_at(offsets, mid) as usize <= t {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        (lo, t - self.u64_at(offsets, lo) as usize)
    }

    fn u64_at(&self, s: Span, i: usize) -> u64 {
        let at = s.start + i * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.map[at..at + 8]);
        u64::from_le_bytes(b)
    }

    fn uint_at(&self, s: Span, i: usize) -> u32 {
        let at = s.start + i * s.width;
        match s.width {
            1 => u32::from(self.map[at]),
            2 => u32::from(u16::from_le_bytes([self.map[at], self.map[at + 1]])),
            _ => u32::from_le_bytes([
                self.map[at],
                self.map[at + 1],
                self.map[at + 2],
                self.map[at + 3],
            ]),
        }
    }

    /// Instances in this shard.
    pub fn len(&self) -> usize {
        self.instances
    }

    /// True for a shard without instances.
    pub fn is_empty(&self) -> bool {
        self.instances == 0
    }

    /// Tokens in this shard.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Length of instance `i` (panics-free: callers index within `len()`).
    pub fn instance_len(&self, i: usize) -> usize {
        (self.u64_at(self.offsets, i + 1) - self.u64_at(self.offsets, i)) as usize
    }

    /// Decodes instance `i` (`i < len()`).
    pub fn instance(&self, i: usize) -> Instance {
        let a = self.u64_at(self.offsets, i) as usize;
        let b = self.u64_at(self.offsets, i + 1) as usize;
        let mut inst = Instance {
            input_ids: (a..b).map(|t| self.uint_at(self.input_ids, t)).collect(),
            token_type_ids: (a..b)
                .map(|t| self.uint_at(self.token_type_ids, t) as u8)
                .collect(),
            nsp_label: self.uint_at(self.nsp_labels, i) as u8,
            masked_positions: Vec::new(),
            masked_labels: Vec::new(),
        };
        if let Some((pos, lab, moff)) = self.masked {
            let a = self.u64_at(moff, i) as usize;
            let b = self.u64_at(moff, i + 1) as usize;
            inst.masked_positions = (a..b).map(|t| self.uint_at(pos, t)).collect();
            inst.masked_labels = (a..b).map(|t| self.uint_at(lab, t)).collect();
        }
        inst
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
