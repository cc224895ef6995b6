//! The loader: opens a split folder (memory-mapped, validated), shuffles all instances per
//! epoch from `Rng::keyed(&[seed, epoch])`, partitions each global batch by data-parallel rank,
//! draws dynamic masks from `Rng::keyed(&[seed, epoch, instance index])`, and assembles padded
//! [`HostBatch`]es ahead of time on a background thread.
//!
//! Resumption: a [`Cursor`] `{ epoch, position }` names the next global batch (position = index
//! into the epoch's shuffled order where it starts). Every batch is a pure function of
//! `(seed, epoch, position, rank)`, so a loader rebuilt from a saved cursor produces exactly the
//! batches an uninterrupted run would have.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bert_rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::batch::HostBatch;
use crate::error::{DataError, Result};
use crate::instances::Instance;
use crate::masking::{mask_sequence, MaskTable, MaskingParams};
use crate::objective::ObjectiveSpec;
use crate::prepare::PrepareConfig;
use crate::shard::{
    check_objective, DatasetHeader, DatasetIndex, MaskingMode, ShardEntry, ShardReader, INDEX_FILE,
};
use crate::tokenizer::{SpecialIds, Vocab};
use crate::verified::{now_ns, FileStamp, VerifiedRecord, Verify, VerifySummary};

/// Epoch key used for evaluation masks, so every evaluation sees the same masks.
pub const EVAL_EPOCH: u64 = u64::MAX;

/// An opened, validated split folder (`train/` or `validation/` of a prepare output).
#[derive(Debug)]
pub struct ShardSet {
    dir: PathBuf,
    index: DatasetIndex,
    shards: Vec<ShardReader>,
    /// `starts[k]` = global index of shard k's first instance; last entry = total.
    starts: Vec<usize>,
    vocab: Vocab,
    table: MaskTable,
    /// The masking the loader applies: the header's, or a dynamic set's override.
    masking: MaskingParams,
    summary: VerifySummary,
}

/// Refuses the top folder of a prepare output, naming the split folders to open instead.
fn refuse_prepare_output(dir: &Path) -> Result<()> {
    let top = dir.join("train").join(INDEX_FILE);
    if top.is_file() && !dir.join("shard-00000.safetensors").exists() {
        if let Ok(v) = std::fs::read(dir.join(INDEX_FILE)) {
            if String::from_utf8_lossy(&v).contains("\"splits\"") {
                return Err(DataError::Shard {
                    path: dir.to_path_buf(),
                    message: "this is a prepare output folder: open its train/ or \
                              validation/ subfolder"
                        .into(),
                });
            }
        }
    }
    Ok(())
}

/// The split's vocabulary (in the folder or its parent), checked against the index.
fn read_vocab(dir: &Path, header: &DatasetHeader) -> Result<Vocab> {
    let vocab_path = [dir.join("vocab.txt"), dir.join("..").join("vocab.txt")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::Shard {
            path: dir.join("vocab.txt"),
            message: "missing: the shard folder must carry its vocabulary".into(),
        })?;
    let vocab = Vocab::read_vocab_txt(&vocab_path)?;
    if vocab.hash() != header.vocab_hash {
        return Err(DataError::VocabMismatch {
            path: vocab_path,
            expected: header.vocab_hash.clone(),
            found: vocab.hash().to_string(),
        });
    }
    Ok(vocab)
}

/// Opens every shard of the index: header checks always, the full read unless the
/// verified-shards record vouches for the unchanged file. Records what it verified.
fn open_shards(
    dir: &Path,
    index: &DatasetIndex,
    special: &SpecialIds,
    verify: Verify,
) -> Result<(Vec<ShardReader>, VerifySummary)> {
    let header = &index.header;
    let record = match verify {
        Verify::Once => VerifiedRecord::load(dir),
        Verify::Always => VerifiedRecord::default(),
    };
    // Shards are checked in parallel (reading one overlaps checking another); results are
    // taken in index order, so the error reported is always the first shard's.
    let opened: Vec<Result<(ShardReader, FileStamp, i128, bool)>> = index
        .shards
        .par_iter()
        .enumerate()
        .map(|(k, entry)| {
            let path = dir.join(&entry.file);
            let shard = ShardReader::open_header(&path, header, &index.objective)?;
            check_against_entry(&shard, entry, k)?;
            let stamped_at = now_ns();
            let stamp = FileStamp::of(&path, shard.checksum())?;
            let trusted = record.trusts(&entry.file, &stamp);
            if !trusted {
                shard.verify(header, Some(special))?;
            }
            Ok((shard, stamp, stamped_at, trusted))
        })
        .collect();
    let mut fresh = VerifiedRecord::default();
    let mut summary = VerifySummary::default();
    let mut shards = Vec::with_capacity(index.shards.len());
    for (entry, result) in index.shards.iter().zip(opened) {
        let (shard, stamp, stamped_at, trusted) = result?;
        if trusted {
            summary.trusted += 1;
        } else {
            summary.verified += 1;
            summary.verified_bytes += stamp.size;
        }
        fresh.insert(&entry.file, stamp, stamped_at);
        shards.push(shard);
    }
    if summary.verified > 0 {
        // A read-only data folder only costs the full read at the next start, so warn.
        if let Err(e) = fresh.save(dir) {
            tracing::warn!(
                "cannot record the verified shards ({e}); the next start reads them all again"
            );
        }
    }
    Ok((shards, summary))
}

/// A shard's header against its `index.json` entry: position, checksum (a replaced or swapped
/// file, even a valid one, is caught here without reading it) and counts.
fn check_against_entry(shard: &ShardReader, entry: &ShardEntry, k: usize) -> Result<()> {
    let path = shard.path();
    let recorded = shard
        .metadata()
        .get("shard_index")
        .map_or("<missing>", String::as_str);
    let checks = [
        ("shard_index", recorded.to_string(), k.to_string()),
        (
            "checksum",
            shard.checksum().to_string(),
            entry.checksum.clone(),
        ),
        (
            "instances",
            shard.len().to_string(),
            entry.instances.to_string(),
        ),
        (
            "tokens",
            shard.tokens().to_string(),
            entry.tokens.to_string(),
        ),
    ];
    for (field, found, expected) in checks {
        if found != expected {
            return Err(DataError::ShardMismatch {
                path: path.to_path_buf(),
                field: field.into(),
                found,
                expected,
                expected_from: INDEX_FILE.into(),
            });
        }
    }
    Ok(())
}

fn log_verification(dir: &Path, s: &VerifySummary, seconds: f64) {
    if s.verified > 0 {
        tracing::info!(
            "{}: read and checked {} shards ({:.1} MB) in {seconds:.1}s; {} unchanged since an \
             earlier check",
            dir.display(),
            s.verified,
            s.verified_bytes as f64 / 1e6,
            s.trusted
        );
    } else {
        tracing::info!(
            "{}: {} shards unchanged since their full check (delete {} to read them again); \
             headers checked in {seconds:.2}s",
            dir.display(),
            s.trusted,
            crate::verified::VERIFIED_FILE
        );
    }
}

impl ShardSet {
    /// Opens `dir` with [`Verify::Once`]: every start checks the index, the vocabulary and
    /// every shard's header against the index; a shard is read in full (checksum, offsets,
    /// range of every value) the first time and again whenever its file changes. With
    /// `expected_vocab_hash`, a set made with another vocabulary is refused.
    pub fn open(dir: &Path, expected_vocab_hash: Option<&str>) -> Result<Self> {
        Self::open_with(dir, expected_vocab_hash, Verify::Once)
    }

    /// Like [`open`](Self::open), choosing how much of each shard is read.
    pub fn open_with(
        dir: &Path,
        expected_vocab_hash: Option<&str>,
        verify: Verify,
    ) -> Result<Self> {
        refuse_prepare_output(dir)?;
        let index = DatasetIndex::read(dir)?;
        let header = &index.header;
        if let Some(expected) = expected_vocab_hash {
            if expected != header.vocab_hash {
                return Err(DataError::VocabMismatch {
                    path: dir.to_path_buf(),
                    expected: expected.to_string(),
                    found: header.vocab_hash.clone(),
                });
            }
        }
        let vocab = read_vocab(dir, header)?;
        let started = Instant::now();
        let (shards, summary) = open_shards(dir, &index, &vocab.special(), verify)?;
        log_verification(dir, &summary, started.elapsed().as_secs_f64());
        let mut starts = vec![0usize];
        let mut total = 0usize;
        for shard in &shards {
            total += shard.len();
            starts.push(total);
        }
        if total as u64 != header.instances {
            return Err(DataError::Shard {
                path: dir.join(INDEX_FILE),
                message: format!(
                    "shards hold {total} instances but the header says {}",
                    header.instances
                ),
            });
        }
        if total > u32::MAX as usize {
            return Err(DataError::Shard {
                path: dir.to_path_buf(),
                message: "more than 2^32 instances in one split".into(),
            });
        }
        let table = MaskTable::from_vocab(&vocab);
        let masking = index.header.masking_params;
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            shards,
            starts,
            vocab,
            table,
            masking,
            summary,
        })
    }

    /// The masking batches are made with: the header's unless [`with_masking`] replaced it.
    ///
    /// [`with_masking`]: Self::with_masking
    pub fn masking(&self) -> &MaskingParams {
        &self.masking
    }

    /// Draws a dynamic set's masks with `params` instead of the parameters given at prepare
    /// time (another masking rate or rule without preparing again). Refused for a static set,
    /// whose masks are stored in its shards.
    pub fn with_masking(mut self, params: MaskingParams) -> Result<Self> {
        params
            .validate()
            .map_err(|m| DataError::Config(format!("masking: {m}")))?;
        if params != self.masking && self.header().masking == MaskingMode::Static {
            return Err(DataError::Config(format!(
                "{}: the masks of static shards were drawn by `bert prepare` \
                 (masked_lm_prob {}, mask_count {}); set masking in [prepare] and prepare \
                 again, or prepare with masking = \"dynamic\"",
                self.dir.display(),
                self.masking.masked_lm_prob,
                self.masking.count.as_str()
            )));
        }
        self.masking = params;
        Ok(self)
    }

    /// How much this open read: shards verified in full, shards trusted as unchanged.
    pub fn verification(&self) -> VerifySummary {
        self.summary
    }

    /// What the set is (vocabulary hash and size, sequence length, masking, counts).
    pub fn header(&self) -> &DatasetHeader {
        &self.index.header
    }

    /// The objective the instances were built for (and, for `mlm`, the packing format):
    /// decides the heads and losses. A set made before objectives existed is `mlm_nsp`.
    pub fn objective(&self) -> ObjectiveSpec {
        self.index.objective
    }

    /// Checks that this set is what `recipe` would make, as far as training sees it: the
    /// objective (and `mlm_format`), then masking mode and parameters, sequence length and
    /// dupe factor ([`DatasetHeader::check_recipe`]). The error names the set's `index.json`,
    /// the key, both values and `expected_from` (e.g. "the run config's `[prepare]` table").
    pub fn check_recipe(&self, recipe: &PrepareConfig, expected_from: &str) -> Result<()> {
        let path = self.dir.join(INDEX_FILE);
        check_objective(
            &path,
            &self.index.objective,
            &recipe.objective_spec(),
            expected_from,
        )?;
        self.header().check_recipe(&path, recipe, expected_from)
    }

    /// The whole `index.json` (header, shard list, prepare config).
    pub fn index(&self) -> &DatasetIndex {
        &self.index
    }

    /// The vocabulary the ids refer to.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    /// True when the set holds no instance.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Instance `i` as stored (static: masked; dynamic: unmasked). `i < len()`.
    pub fn instance(&self, i: usize) -> Instance {
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        self.shards[k].instance(i - self.starts[k])
    }

    /// Instance `i` as the loader serves it in `epoch` with `seed`: static instances as
    /// stored; dynamic ones masked with `Rng::keyed(&[seed, epoch, i])`, a pure function of
    /// those three numbers.
    pub fn masked_instance(&self, i: usize, seed: u64, epoch: u64) -> Instance {
        let mut inst = self.instance(i);
        if self.header().masking == MaskingMode::Dynamic {
            let mut rng = Rng::keyed(&[seed, epoch, i as u64]);
            let (p, l) = mask_sequence(&mut inst.input_ids, &self.masking, &self.table, &mut rng);
            inst.masked_positions = p;
            inst.masked_labels = l;
        }
        inst
    }

    /// Assembles a batch from instances (already masked), padded as configured.
    pub fn make_batch(&self, instances: &[Instance], pad_to_max: bool) -> HostBatch {
        let h = self.header();
        let seq_len = if pad_to_max {
            h.max_seq_length
        } else {
            instances
                .iter()
                .map(|i| i.input_ids.len())
                .max()
                .unwrap_or(0)
        };
        let max_predictions = self
            .masking
            .batch_slots(instances.iter().map(|i| i.masked_positions.len()));
        let b = instances.len();
        let mut batch = HostBatch {
            batch_size: b,
            seq_len,
            max_predictions,
            input_ids: vec![i64::from(self.vocab.special().pad); b * seq_len],
            token_type_ids: vec![0; b * seq_len],
            attention_mask: vec![0; b * seq_len],
            masked_positions: vec![0; b * max_predictions],
            masked_labels: vec![0; b * max_predictions],
            masked_weights: vec![0.0; b * max_predictions],
            nsp_labels: Vec::with_capacity(b),
        };
        for (r, inst) in instances.iter().enumerate() {
            let row = r * seq_len;
            for (j, (&id, &tt)) in inst.input_ids.iter().zip(&inst.token_type_ids).enumerate() {
                batch.input_ids[row + j] = i64::from(id);
                batch.token_type_ids[row + j] = i64::from(tt);
                batch.attention_mask[row + j] = 1;
            }
            let mrow = r * max_predictions;
            for (j, (&p, &l)) in inst
                .masked_positions
                .iter()
                .zip(&inst.masked_labels)
                .take(max_predictions)
                .enumerate()
            {
                batch.masked_positions[mrow + j] = i64::from(p);
                batch.masked_labels[mrow + j] = i64::from(l);
                batch.masked_weights[mrow + j] = 1.0;
            }
            batch.nsp_labels.push(i64::from(inst.nsp_label));
        }
        batch
    }
}

/// Where the training stream stands; save it with a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Epoch of the next batch.
    pub epoch: u64,
    /// Index into the epoch's shuffled order where the next global batch starts.
    pub position: u64,
}

/// Loader knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderConfig {
    /// Sequences per batch on this rank.
    pub batch_size: usize,
    /// Seed of the shuffle and of dynamic masks.
    pub seed: u64,
    /// This process's data-parallel rank.
    pub rank: usize,
    /// Number of data-parallel ranks.
    pub world_size: usize,
    /// Micro-batches per optimiser step: an epoch ends only between steps, so the ranks ×
    /// micro-batches of one step never straddle two epochs, and runs that split the same global
    /// step differently (2 ranks × 1 micro-batch, 1 rank × 2) read the same data.
    pub accumulation: usize,
    /// Batches prepared ahead on the background thread.
    pub prefetch: usize,
    /// Pad every batch to `max_seq_length` instead of its longest row.
    pub pad_to_max_seq_length: bool,
    /// Seed of evaluation masks (dynamic masking), fixed so evaluations are comparable.
    pub eval_seed: u64,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            seed: 12345,
            rank: 0,
            world_size: 1,
            accumulation: 1,
            prefetch: 4,
            pad_to_max_seq_length: false,
            eval_seed: 0x5eed_e7a1,
        }
    }
}

impl LoaderConfig {
    fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(DataError::Config("batch_size must be at least 1".into()));
        }
        if self.accumulation == 0 {
            return Err(DataError::Config("accumulation must be at least 1".into()));
        }
        if self.world_size == 0 || self.rank >= self.world_size {
            return Err(DataError::Config(format!(
                "rank {} must be below world_size {}",
                self.rank, self.world_size
            )));
        }
        Ok(())
    }
}

/// The shuffled order of `n` instances in `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    Rng::keyed(&[seed, epoch]).shuffle(&mut order);
    order
}

/// Instance indices of `rank`'s batch starting at global `position` of `order`.
fn rank_slice<'a>(order: &'a [u32], position: u64, config: &LoaderConfig) -> &'a [u32] {
    let start = position as usize + config.rank * config.batch_size;
    &order[start..start + config.batch_size]
}

type Item = Result<(HostBatch, Cursor)>;

/// The infinite training stream (epochs roll over; an incomplete last global batch of an
/// epoch is dropped), assembled ahead on a background thread.
pub struct TrainLoader {
    rx: Option<Receiver<Item>>,
    worker: Option<JoinHandle<()>>,
    cursor: Cursor,
    header: DatasetHeader,
}

impl TrainLoader {
    /// Starts streaming at `cursor` (use `Cursor::default()` for a fresh run).
    pub fn new(set: Arc<ShardSet>, config: LoaderConfig, cursor: Cursor) -> Result<Self> {
        config.validate()?;
        let n = set.len();
        let global = config.batch_size * config.world_size;
        let per_step = global * config.accumulation;
        if n < per_step {
            return Err(DataError::Config(format!(
                "{} holds {n} instances, fewer than one optimiser step's global batch ({} per \
                 rank x {} ranks x {} micro-batches)",
                set.dir().display(),
                config.batch_size,
                config.world_size,
                config.accumulation
            )));
        }
        if cursor.position > n as u64 {
            return Err(DataError::Config(format!(
                "cursor position {} is past the {n} instances of {}: was it saved for \
                 another data set?",
                cursor.position,
                set.dir().display()
            )));
        }
        let header = set.header().clone();
        let (tx, rx) = sync_channel::<Item>(config.prefetch.max(1));
        let worker = std::thread::Builder::new()
            .name("bert-data-loader".into())
            .spawn(move || {
                let mut c = cursor;
                let mut order: Option<(u64, Vec<u32>)> = None;
                loop {
                    let step_start = (c.position as usize).is_multiple_of(per_step);
                    let room = if step_start { per_step } else { global };
                    if c.position as usize + room > n {
                        c = Cursor {
                            epoch: c.epoch + 1,
                            position: 0,
                        };
                    }
                    if order.as_ref().map(|o| o.0) != Some(c.epoch) {
                        order = Some((c.epoch, epoch_order(n, config.seed, c.epoch)));
                    }
                    let Some((_, ord)) = order.as_ref() else {
                        return;
                    };
                    let instances: Vec<Instance> = rank_slice(ord, c.position, &config)
                        .iter()
                        .map(|&i| set.masked_instance(i as usize, config.seed, c.epoch))
                        .collect();
                    let batch = set.make_batch(&instances, config.pad_to_max_seq_length);
                    c.position += global as u64;
                    if tx.send(Ok((batch, c))).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| DataError::Loader(format!("cannot start loader thread: {e}")))?;
        Ok(Self {
            rx: Some(rx),
            worker: Some(worker),
            cursor,
            header,
        })
    }

    /// The next batch; afterwards [`cursor`](Self::cursor) points past it.
    pub fn next_batch(&mut self) -> Result<HostBatch> {
        let rx = self
            .rx
            .as_ref()
            .ok_or_else(|| DataError::Loader("loader already shut down".into()))?;
        match rx.recv() {
            Ok(Ok((batch, cursor))) => {
                self.cursor = cursor;
                Ok(batch)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DataError::Loader(
                "background thread stopped unexpectedly".into(),
            )),
        }
    }

    /// Cursor to save: a loader built from it continues with the batch after the last one
    /// returned.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The data set's header.
    pub fn header(&self) -> &DatasetHeader {
        &self.header
    }
}

impl Iterator for TrainLoader {
    type Item = Result<HostBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_batch())
    }
}

impl Drop for TrainLoader {
    fn drop(&mut self) {
        // Dropping the receiver makes the worker's next send fail, and it returns.
        self.rx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// One ordered pass over all instances for evaluation: batches in index order, rank `r`
/// takes batches `r, r + world_size, …`, the last partial batch is kept, dynamic masks come
/// from `eval_seed` (same masks at every evaluation).
pub struct EvalLoader {
    set: Arc<ShardSet>,
    config: LoaderConfig,
    next_batch: usize,
    /// The instances evaluated, in set order, when only a sample is.
    sample: Option<Vec<u32>>,
}

/// Key word of the evaluation sample's random stream.
const KEY_EVAL_SAMPLE: u64 = 0x4556_414c_5341_4d50;

impl EvalLoader {
    /// Starts a pass over the whole set.
    pub fn new(set: Arc<ShardSet>, config: LoaderConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            next_batch: config.rank,
            set,
            config,
            sample: None,
        })
    }

    /// Starts a pass over a sample of `instances` instances drawn uniformly from the whole set
    /// (the whole set when it holds no more). The sample comes from `eval_seed` alone, so
    /// every evaluation, every rank and every run over the same set sees the same instances;
    /// they are visited in set order.
    pub fn sampled(set: Arc<ShardSet>, config: LoaderConfig, instances: usize) -> Result<Self> {
        let mut pass = Self::new(set, config)?;
        let n = pass.set.len();
        if instances < n {
            pass.sample = Some(sample_indices(n, instances, pass.config.eval_seed));
        }
        Ok(pass)
    }

    /// Instances in the pass (all ranks together).
    fn instances(&self) -> usize {
        self.sample.as_ref().map_or(self.set.len(), Vec::len)
    }

    /// Batches this rank will yield in a full pass.
    pub fn num_batches(&self) -> usize {
        let total = self.instances().div_ceil(self.config.batch_size);
        total
            .saturating_sub(self.config.rank)
            .div_ceil(self.config.world_size)
    }
}

impl Iterator for EvalLoader {
    type Item = HostBatch;
    fn next(&mut self) -> Option<HostBatch> {
        let n = self.instances();
        let start = self.next_batch * self.config.batch_size;
        if start >= n {
            return None;
        }
        let end = (start + self.config.batch_size).min(n);
        let instances: Vec<Instance> = (start..end)
            .map(|k| {
                let i = self.sample.as_ref().map_or(k, |s| s[k] as usize);
                self.set
                    .masked_instance(i, self.config.eval_seed, EVAL_EPOCH)
            })
            .collect();
        self.next_batch += self.config.world_size;
        Some(
            self.set
                .make_batch(&instances, self.config.pad_to_max_seq_length),
        )
    }
}

/// `k` distinct indices below `n`, uniformly drawn (Floyd's algorithm: k draws, memory for k
/// only, whatever n), sorted.
fn sample_indices(n: usize, k: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::keyed(&[seed, KEY_EVAL_SAMPLE, n as u64]);
    let mut chosen = std::collections::HashSet::with_capacity(k);
    for j in (n - k)..n {
        let t = rng.below(j as u64 + 1) as usize;
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    let mut out: Vec<u32> = chosen.into_iter().map(|i| i as u32).collect();
    out.sort_unstable();
    out
}
