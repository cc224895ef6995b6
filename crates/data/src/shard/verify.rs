//! Verifying a shard's payload: its checksum, its offsets, and the range of every value, so
//! that nothing the loader hands to the model can index past an embedding table.

use super::checksum::shard_checksum;
use super::format::DatasetHeader;
use super::reader::{ShardReader, Span};
use crate::error::{DataError, Result};
use crate::objective::Objective;
use crate::tokenizer::SpecialIds;

impl ShardReader {
    /// Reads the whole shard: its checksum against its header (catches flipped bytes), the
    /// offsets, and the range of every value: ids and labels below `vocab_size`, token types
    /// and NSP labels 0 or 1 (both 0 in an `mlm` set), instances no longer than
    /// `max_seq_length`, at most
    /// `max_predictions_per_seq` predictions at ascending positions inside the instance
    /// ([`DataError::ShardRecord`] names the instance). With `special`, masked positions on
    /// `[CLS]`, `[SEP]`, `[PAD]` or `[MASK]` are refused too.
    pub fn verify(&self, header: &DatasetHeader, special: Option<&SpecialIds>) -> Result<()> {
        self.check_checksum()?;
        self.check_offsets()?;
        self.check_records(header, special)
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
        // `mlm` is one segment: a model with one token type (RoBERTa's configs) trains on it,
        // and a type 1 would index past that table.
        if self.objective == Objective::Mlm {
            if let Some(t) = self.first_at_or_above(self.token_type_ids, 1) {
                let (i, p) = self.locate(self.offsets, t);
                let v = self.uint_at(self.token_type_ids, t);
                return Err(self.record(
                    i,
                    format!("token {p} has token type {v}, expected 0 in an `mlm` set"),
                ));
            }
            if let Some(i) = self.first_at_or_above(self.nsp_labels, 1) {
                let v = self.uint_at(self.nsp_labels, i);
                return Err(self.record(
                    i,
                    format!("pair label {v}, expected 0 in an `mlm` set (it has no pairs)"),
                ));
            }
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
}
