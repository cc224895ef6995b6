//! Reading a shard: the memory map, the checks that read only its header, and decoding of
//! instances. The checks that read the whole payload are in `verify`.
//!
//! The reader uses the safetensors crate to parse and validate, so files stay standard.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::format::{DatasetHeader, MaskingMode, INDEX_FILE};
use super::metadata::{check_format, check_recorded_facts};
use crate::error::{io_err, DataError, Result};
use crate::instances::Instance;
use crate::objective::ObjectiveSpec;

/// Location of one tensor inside a mapped shard.
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) width: usize,
}

/// A memory-mapped, validated shard.
#[derive(Debug)]
pub struct ShardReader {
    pub(super) path: PathBuf,
    pub(super) map: Mmap,
    pub(super) instances: usize,
    pub(super) tokens: usize,
    pub(super) input_ids: Span,
    pub(super) token_type_ids: Span,
    pub(super) offsets: Span,
    pub(super) nsp_labels: Span,
    pub(super) masked: Option<(Span, Span, Span)>,
    pub(super) header_len: usize,
    pub(super) metadata: BTreeMap<String, String>,
    /// The set's objective, checked against the shard's header: `mlm` shards must hold one
    /// segment and no pair label.
    pub(super) objective: crate::objective::Objective,
}

impl ShardReader {
    /// Maps a shard and runs the checks that read only its header: safetensors structure
    /// (catches truncation), format name and version, vocabulary hash, the recorded facts
    /// against the set's `header` (split, sequence length, vocabulary size, masking mode and
    /// parameters, dupe factor) and the set's objective `spec`, and tensor dtypes and shapes.
    /// Reading the payload is left to [`verify`](Self::verify), so opening a large set stays
    /// cheap.
    pub fn open_header(path: &Path, header: &DatasetHeader, spec: &ObjectiveSpec) -> Result<Self> {
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
        check_recorded_facts(path, &md, header, spec, INDEX_FILE)?;
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
            objective: spec.objective,
        };
        reader.check_lengths()?;
        Ok(reader)
    }

    /// The checksum recorded in the header (`crc32:xxxxxxxx`).
    pub fn checksum(&self) -> &str {
        self.metadata.get("checksum").map_or("", String::as_str)
    }

    /// The header's `__metadata__` entries.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    pub(super) fn bad(&self, message: String) -> DataError {
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

    /// The little-endian `u64` values of a span.
    pub(super) fn u64s(&self, s: Span) -> impl Iterator<Item = u64> + '_ {
        self.map[s.start..s.start + s.len * 8]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
    }

    /// Lengths of the slices an offsets tensor delimits (checked ascending).
    pub(super) fn lengths(&self, offsets: Span) -> impl Iterator<Item = u64> + '_ {
        self.u64s(offsets)
            .zip(self.u64s(offsets).skip(1))
            .map(|(a, b)| b.saturating_sub(a))
    }

    pub(super) fn record(&self, record: usize, message: String) -> DataError {
        DataError::ShardRecord {
            path: self.path.clone(),
            record,
            message,
        }
    }

    pub(super) fn u64_at(&self, s: Span, i: usize) -> u64 {
        let at = s.start + i * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.map[at..at + 8]);
        u64::from_le_bytes(b)
    }

    pub(super) fn uint_at(&self, s: Span, i: usize) -> u32 {
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

    /// Tokens in this shard.
    pub fn tokens(&self) -> usize {
        self.tokens
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
