//! `inspect`: what a shard set holds, measured, so a person can check a prepare run.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::batch::fill_rate;
use crate::error::Result;
use crate::loader::{epoch_order, LoaderConfig, ShardSet};
use crate::objective::{Objective, ObjectiveSpec};
use crate::shard::{DatasetHeader, MaskingMode, INDEX_FILE};

/// Measured statistics of one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitReport {
    /// The split folder.
    pub dir: String,
    /// Its header.
    pub header: DatasetHeader,
    /// The objective its instances were built for (`mlm_nsp` for sets made before
    /// objectives existed).
    #[serde(default)]
    pub objective: ObjectiveSpec,
    /// Shard files.
    pub shards: usize,
    /// Instances.
    pub instances: u64,
    /// Tokens (special tokens included).
    pub tokens: u64,
    /// Mean instance length.
    pub mean_length: f64,
    /// Masked positions / tokens (for dynamic masking: the loader's epoch-0 masks).
    pub masked_fraction: f64,
    /// Mean masked positions per instance.
    pub masked_per_instance: f64,
    /// Of masked positions: share replaced by `[MASK]`.
    pub mask_token_share: f64,
    /// Of masked positions: share replaced by another id.
    pub random_token_share: f64,
    /// Of masked positions: share left unchanged (a random draw of the same id counts here).
    pub unchanged_share: f64,
    /// Share of instances with pair label 0: for `mlm_nsp` B is the true continuation, for
    /// `mlm_sop` the segments are in order; 1 for `mlm` (no label).
    pub nsp_is_next_ratio: f64,
    /// Share of instances shorter than `max_seq_length`.
    pub short_ratio: f64,
    /// Packing efficiency with every batch padded to `max_seq_length`: tokens ÷ (instances ×
    /// `max_seq_length`).
    #[serde(default)]
    pub fill_rate: f64,
    /// Packing efficiency of the loader's epoch-0 batches of `batch_size`, each padded to its
    /// longest row (the loader's default): real tokens ÷ padded slots over all batches.
    #[serde(default)]
    pub batch_fill_rate: f64,
    /// The batch size `batch_fill_rate` was measured with.
    #[serde(default)]
    pub batch_size: usize,
    /// The first `show` instances decoded, `[MASK]` visible.
    pub samples: Vec<String>,
}

/// Reports on every split found: `dir` itself if it is a split folder, else its `train/` and
/// `validation/` subfolders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InspectReport {
    /// One entry per split.
    pub splits: Vec<SplitReport>,
}

/// Inspects `dir` (a prepare output folder or one split folder), decoding `show` instances
/// per split. Dynamic masks are drawn as the training loader's epoch 0 with `seed`; the
/// per-batch fill rate is measured with the loader's default batch size
/// ([`inspect_with`] chooses it).
pub fn inspect(dir: &Path, show: usize, seed: u64) -> Result<InspectReport> {
    inspect_with(dir, show, seed, LoaderConfig::default().batch_size)
}

/// [`inspect`], measuring the per-batch fill rate over batches of `batch_size` (at least 1;
/// e.g. the run config's `data.batch_size`).
pub fn inspect_with(
    dir: &Path,
    show: usize,
    seed: u64,
    batch_size: usize,
) -> Result<InspectReport> {
    let batch_size = batch_size.max(1);
    let mut splits = Vec::new();
    let sub: Vec<_> = ["train", "validation"]
        .iter()
        .map(|s| dir.join(s))
        .filter(|d| d.join(INDEX_FILE).is_file())
        .collect();
    if sub.is_empty() {
        splits.push(inspect_split(dir, show, seed, batch_size)?);
    } else {
        for d in sub {
            splits.push(inspect_split(&d, show, seed, batch_size)?);
        }
    }
    Ok(InspectReport { splits })
}

/// Inspects one split folder, measuring the per-batch fill rate over batches of `batch_size`.
fn inspect_split(dir: &Path, show: usize, seed: u64, batch_size: usize) -> Result<SplitReport> {
    // Inspecting is checking: read every shard in full, whatever was verified before.
    let set = Arc::new(ShardSet::open_with(dir, None, crate::Verify::Always)?);
    let h = set.header().clone();
    let objective = set.objective();
    let mut lengths: Vec<usize> = Vec::with_capacity(set.len());
    let mask_id = set.vocab().special().mask;
    let (mut tokens, mut masked, mut as_mask, mut as_same) = (0u64, 0u64, 0u64, 0u64);
    let (mut is_next, mut short) = (0u64, 0u64);
    let mut samples = Vec::new();
    for i in 0..set.len() {
        let inst = set.masked_instance(i, seed, 0);
        tokens += inst.input_ids.len() as u64;
        lengths.push(inst.input_ids.len());
        masked += inst.masked_positions.len() as u64;
        for (&p, &label) in inst.masked_positions.iter().zip(&inst.masked_labels) {
            let now = inst.input_ids.get(p as usize).copied().unwrap_or(u32::MAX);
            if now == mask_id {
                as_mask += 1;
            } else if now == label {
                as_same += 1;
            }
        }
        is_next += u64::from(inst.nsp_label == 0);
        short += u64::from(inst.input_ids.len() < h.max_seq_length);
        if samples.len() < show {
            let (label, text) = match objective.objective {
                Objective::MlmNsp => (
                    format!(
                        " nsp={} ({})",
                        inst.nsp_label,
                        if inst.nsp_label == 0 {
                            "IsNext"
                        } else {
                            "Random"
                        }
                    ),
                    "A+B",
                ),
                Objective::MlmSop => (
                    format!(
                        " sop={} ({})",
                        inst.nsp_label,
                        if inst.nsp_label == 0 {
                            "InOrder"
                        } else {
                            "Swapped"
                        }
                    ),
                    "A+B",
                ),
                Objective::Mlm => (String::new(), "text"),
            };
            samples.push(format!(
                "#{i}{label} len={} masked={:?}\n  {text}: {}\n  labels: {}",
                inst.input_ids.len(),
                inst.masked_positions,
                set.vocab().decode(&inst.input_ids),
                inst.masked_labels
                    .iter()
                    .map(|&l| set.vocab().token(l))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    let n = set.len() as f64;
    let slots_at_max = lengths.len() * h.max_seq_length;
    let (mut batch_real, mut batch_slots) = (0usize, 0usize);
    // The loader's epoch-0 order with `seed`, cut into batches each padded to its longest row.
    for batch in epoch_order(set.len(), seed, 0).chunks(batch_size) {
        let rows = batch.iter().map(|&i| lengths[i as usize]);
        batch_real += rows.clone().sum::<usize>();
        batch_slots += batch.len() * rows.max().unwrap_or(0);
    }
    let share = |x: u64| {
        if masked == 0 {
            0.0
        } else {
            x as f64 / masked as f64
        }
    };
    Ok(SplitReport {
        dir: dir.display().to_string(),
        shards: set.index().shards.len(),
        instances: set.len() as u64,
        tokens,
        mean_length: if n > 0.0 { tokens as f64 / n } else { 0.0 },
        masked_fraction: if tokens == 0 {
            0.0
        } else {
            masked as f64 / tokens as f64
        },
        masked_per_instance: if n > 0.0 { masked as f64 / n } else { 0.0 },
        mask_token_share: share(as_mask),
        random_token_share: share(masked - as_mask - as_same),
        unchanged_share: share(as_same),
        nsp_is_next_ratio: if n > 0.0 { is_next as f64 / n } else { 0.0 },
        short_ratio: if n > 0.0 { short as f64 / n } else { 0.0 },
        fill_rate: fill_rate(tokens as usize, slots_at_max),
        batch_fill_rate: fill_rate(batch_real, batch_slots),
        batch_size,
        samples,
        header: h,
        objective,
    })
}

impl std::fmt::Display for InspectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.splits {
            let h = &s.header;
            writeln!(
                f,
                "{} ({} split), objective {}",
                s.dir,
                h.split,
                s.objective.describe()
            )?;
            writeln!(
                f,
                "  format v{}, vocab {} ({} ids), max_seq_length {}, masking {}{}",
                h.format_version,
                h.vocab_hash,
                h.vocab_size,
                h.max_seq_length,
                h.masking.as_str(),
                if h.masking == MaskingMode::Static {
                    format!(" (dupe_factor {})", h.dupe_factor)
                } else {
                    " (drawn by the loader; shown: epoch 0)".into()
                }
            )?;
            writeln!(
                f,
                "  masked_lm_prob {}, max_predictions_per_seq {}, whole_word_masking {}, mask_count {}",
                h.masking_params.masked_lm_prob,
                h.masking_params.max_predictions_per_seq,
                h.masking_params.whole_word_masking,
                h.masking_params.count.as_str()
            )?;
            writeln!(
                f,
                "  {} shards, {} instances, {} tokens, mean length {:.1}, short {:.1}%",
                s.shards,
                s.instances,
                s.tokens,
                s.mean_length,
                100.0 * s.short_ratio
            )?;
            writeln!(
                f,
                "  masked {:.2}% of tokens ({:.2} per instance): [MASK] {:.1}%, random {:.1}%, \
                 unchanged {:.1}%",
                100.0 * s.masked_fraction,
                s.masked_per_instance,
                100.0 * s.mask_token_share,
                100.0 * s.random_token_share,
                100.0 * s.unchanged_share
            )?;
            writeln!(
                f,
                "  fill rate {:.1}% padded to max_seq_length, {:.1}% in batches of {} padded to \
                 their longest row",
                100.0 * s.fill_rate,
                100.0 * s.batch_fill_rate,
                s.batch_size
            )?;
            match s.objective.objective {
                Objective::MlmNsp => {
                    writeln!(f, "  NSP IsNext {:.1}%", 100.0 * s.nsp_is_next_ratio)?;
                }
                Objective::MlmSop => writeln!(
                    f,
                    "  SOP swapped {:.1}%",
                    100.0 * (1.0 - s.nsp_is_next_ratio)
                )?,
                Objective::Mlm => {}
            }
            for sample in &s.samples {
                writeln!(f, "  {sample}")?;
            }
        }
        Ok(())
    }
}
