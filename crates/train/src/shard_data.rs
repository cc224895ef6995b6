//! The prepared shards (`bert prepare` output) as the loop's data source, and the `[data]`
//! table that names them and says how they are batched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bert_data::{Cursor, EvalLoader, LoaderConfig, ShardSet, TrainLoader};
use bert_data::{HostBatch, MaskingParams, PrepareConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::provider::{DataFacts, DataProvider, TrainBatches};

/// The `[data]` table: the prepared shards and how they are batched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training shard directory (from `bert prepare`).
    pub train: PathBuf,
    /// Validation shard directory; evaluation is skipped without it.
    #[serde(default)]
    pub validation: Option<PathBuf>,
    /// Sequences per micro-batch on each device.
    pub batch_size: usize,
    /// Pad every batch to `max_seq_length` instead of to its longest row.
    #[serde(default)]
    pub pad_to_max_length: bool,
    /// Batches prepared ahead on background threads.
    #[serde(default = "DataSection::default_prefetch")]
    pub prefetch: usize,
    /// Masks the loader draws for dynamic shards, replacing the prepared settings key by key
    /// (another rate or rule without preparing again). Refused for static shards.
    #[serde(default)]
    pub masking: MaskingOverride,
}

impl DataSection {
    fn default_prefetch() -> usize {
        4
    }

    /// Checks the values no run can use, naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.train.as_os_str().is_empty() {
            return Err("`data.train` must name the prepared training shards".into());
        }
        if self.validation.as_ref() == Some(&self.train) {
            return Err(
                "`data.validation` is the training shards themselves: evaluation would measure \
                 memorisation; name the validation split (e.g. `…/validation`), or leave the key \
                 out"
                .into(),
            );
        }
        if self.batch_size == 0 {
            return Err("`data.batch_size` must be at least 1".into());
        }
        // The keys given, over valid defaults, through the masking's own range check.
        self.masking
            .apply(MaskingParams::default())
            .validate()
            .map_err(|m| format!("`[data.masking]`: {m}"))?;
        if self.prefetch == 0 {
            return Err("`data.prefetch` must be at least 1".into());
        }
        Ok(())
    }
}

/// `[data.masking]`: dynamic-masking settings that replace the ones the shards were prepared
/// with; a key left out keeps the prepared value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingOverride {
    /// Fraction of tokens to predict (MosaicBERT: 0.3).
    pub masked_lm_prob: Option<f64>,
    /// Cap on predictions per sequence (`fixed` only).
    pub max_predictions_per_seq: Option<usize>,
    /// Mask all pieces of a word together.
    pub whole_word_masking: Option<bool>,
    /// `fixed` (Google's count) or `bernoulli` (each token with probability masked_lm_prob).
    pub mask_count: Option<bert_data::MaskCount>,
}

impl MaskingOverride {
    /// True when no key is set (the prepared masking applies).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `prepared` with the keys given here replaced.
    pub fn apply(&self, prepared: MaskingParams) -> MaskingParams {
        MaskingParams {
            masked_lm_prob: self.masked_lm_prob.unwrap_or(prepared.masked_lm_prob),
            max_predictions_per_seq: self
                .max_predictions_per_seq
                .unwrap_or(prepared.max_predictions_per_seq),
            whole_word_masking: self
                .whole_word_masking
                .unwrap_or(prepared.whole_word_masking),
            count: self.mask_count.unwrap_or(prepared.count),
        }
    }
}

/// Train (and validation) shard sets opened and checked against each other.
#[derive(Clone)]
pub struct ShardData {
    train: Arc<ShardSet>,
    validation: Option<Arc<ShardSet>>,
    loader: LoaderConfig,
    facts: DataFacts,
    /// The shared locks of the prepare outputs the splits come from, held while the shards
    /// are in use, so no `bert prepare` replaces them under a run.
    _read_locks: Vec<bert_fsutil::FolderLock>,
}

fn data_err(e: bert_data::DataError) -> TrainError {
    TrainError::from(e)
}

/// The folder holding the tokenizer files of a split: the split folder or its parent.
fn tokenizer_dir(split: &Path) -> Option<PathBuf> {
    [Some(split), split.parent()]
        .into_iter()
        .flatten()
        .find(|d| d.join("vocab.txt").is_file() || d.join("tokenizer.json").is_file())
        .map(Path::to_path_buf)
}

/// `bert train` runs the config's `[prepare]` table only when `data.train` does not exist yet,
/// so a table edited after the shards were made would be ignored without a word: the masking
/// and the objective it states must be the shards'. Shards the table does not make (outside its `out`)
/// are not checked against it.
fn check_prepare_table(
    data: &DataSection,
    prepare: Option<&PrepareConfig>,
    train: &ShardSet,
) -> Result<()> {
    let Some(recipe) = prepare.filter(|p| p.makes(&data.train)) else {
        return Ok(());
    };
    train
        .check_recipe(recipe, "the run config's [prepare] table")
        // The data crate's advice (`bert prepare`) is not what a `bert train` user does: the
        // error says why the table was not applied and how to have it applied.
        .map_err(|e| TrainError::PrepareTableMismatch {
            source: Box::new(e),
            train: data.train.clone(),
            out: recipe.out.clone(),
        })
}

impl ShardData {
    /// Opens `data.train` and `data.validation` (see [`ShardSet::open`] for what is checked,
    /// and how much is read), and checks the training set against the masking of the run
    /// config's `[prepare]` table, if it has one. `seed` orders the data; `accumulation` is
    /// the micro-batches per optimiser step (`train.accumulation`).
    pub fn open(
        data: &DataSection,
        prepare: Option<&PrepareConfig>,
        seed: u64,
        accumulation: usize,
    ) -> Result<Self> {
        let mut read_locks = Vec::new();
        for split in std::iter::once(&data.train).chain(data.validation.as_ref()) {
            read_locks.extend(bert_data::lock_for_reading(split).map_err(data_err)?);
        }
        let masking = |set: ShardSet| -> Result<ShardSet> {
            if data.masking.is_empty() {
                return Ok(set);
            }
            let params = data.masking.apply(*set.masking());
            set.with_masking(params).map_err(data_err)
        };
        let train = Arc::new(masking(
            ShardSet::open(&data.train, None).map_err(data_err)?,
        )?);
        let header = train.header().clone();
        check_prepare_table(data, prepare, &train)?;
        let validation = match &data.validation {
            Some(dir) => {
                let set =
                    masking(ShardSet::open(dir, Some(&header.vocab_hash)).map_err(data_err)?)?;
                // Validation figures of another objective would be meaningless (or, between
                // `mlm` and a pair objective, would feed labels no head was trained for).
                if set.objective() != train.objective() {
                    return Err(TrainError::Config {
                        path: dir.clone(),
                        message: format!(
                            "`data.validation` holds `{}` instances but `data.train` ({}) holds \
                             `{}`: prepare both with one objective",
                            set.objective().describe(),
                            data.train.display(),
                            train.objective().describe()
                        ),
                    });
                }
                // Found now rather than as a meaningless evaluation at the end of the run.
                if set.is_empty() {
                    return Err(TrainError::NoInstances {
                        path: dir.clone(),
                        key: "data.validation",
                    });
                }
                Some(Arc::new(set))
            }
            None => None,
        };
        let loader = LoaderConfig {
            batch_size: data.batch_size,
            seed,
            rank: 0,
            world_size: 1,
            accumulation,
            prefetch: data.prefetch,
            pad_to_max_seq_length: data.pad_to_max_length,
            ..LoaderConfig::default()
        };
        if train.is_empty() {
            return Err(TrainError::NoInstances {
                path: data.train.clone(),
                key: "data.train",
            });
        }
        let facts = DataFacts {
            vocab_size: header.vocab_size,
            vocab_hash: header.vocab_hash.clone(),
            max_seq_length: header.max_seq_length,
            train_instances: header.instances,
            tokenizer_dir: tokenizer_dir(&data.train),
            objective: train.objective().objective,
        };
        Ok(Self {
            train,
            validation,
            loader,
            facts,
            _read_locks: read_locks,
        })
    }
}

impl ShardData {
    /// The same data as seen by `rank` of `world_size` data-parallel ranks: its part of every
    /// global batch, and its share of the evaluation batches.
    pub fn for_rank(&self, rank: usize, world_size: usize) -> Self {
        let mut view = self.clone();
        view.loader.rank = rank;
        view.loader.world_size = world_size;
        view
    }
}

struct Stream(TrainLoader);

impl TrainBatches for Stream {
    fn next_batch(&mut self) -> Result<HostBatch> {
        self.0.next_batch().map_err(data_err)
    }
    fn cursor(&self) -> serde_json::Value {
        serde_json::to_value(self.0.cursor()).expect("cursor serialises")
    }
}

impl DataProvider for ShardData {
    fn facts(&self) -> &DataFacts {
        &self.facts
    }

    fn train(&self, cursor: Option<&serde_json::Value>) -> Result<Box<dyn TrainBatches + '_>> {
        let cursor: Cursor = match cursor {
            Some(c) => serde_json::from_value(c.clone()).map_err(|e| TrainError::Cursor {
                cursor: c.to_string(),
                kind: "shard",
                why: format!(": {e}"),
            })?,
            None => Cursor::default(),
        };
        let loader =
            TrainLoader::new(self.train.clone(), self.loader.clone(), cursor).map_err(data_err)?;
        Ok(Box::new(Stream(loader)))
    }

    fn validation(
        &self,
        batch_size: usize,
        max_batches: Option<usize>,
    ) -> Result<Option<Vec<HostBatch>>> {
        let Some(set) = &self.validation else {
            return Ok(None);
        };
        let config = LoaderConfig {
            batch_size,
            ..self.loader.clone()
        };
        // Rank r reads evaluation batches r, r + N, …: of the first `max_batches` batches of the
        // pass, those are the ones below the limit.
        let (rank, world) = (config.rank, config.world_size);
        let mine = max_batches.map_or(usize::MAX, |m| m.saturating_sub(rank).div_ceil(world));
        // A fixed sample from the whole validation set rather than its first batches: the
        // first batches are the first documents, each repeated dupe_factor times.
        let pass = match max_batches {
            Some(m) => EvalLoader::sampled(set.clone(), config, m.saturating_mul(batch_size)),
            None => EvalLoader::new(set.clone(), config),
        }
        .map_err(data_err)?;
        Ok(Some(pass.take(mine).collect()))
    }
}
