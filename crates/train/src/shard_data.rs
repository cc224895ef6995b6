//! The prepared shards (`bert prepare` output) as the loop's data source.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bert_data::loader::{Cursor, EvalLoader, LoaderConfig, ShardSet, TrainLoader};
use bert_data::shard::INDEX_FILE;
use bert_data::{DatasetHeader, HostBatch};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::provider::{DataFacts, DataProvider, TrainBatches};

/// Train (and validation) shard sets opened and checked against each other.
#[derive(Clone)]
pub struct ShardData {
    train: Arc<ShardSet>,
    validation: Option<Arc<ShardSet>>,
    loader: LoaderConfig,
    facts: DataFacts,
}

fn data_err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Data(e.to_string())
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
/// it states must be the shards' masking.
fn check_prepare_table(config: &RunConfig, header: &DatasetHeader) -> Result<()> {
    let Some(recipe) = &config.prepare else {
        return Ok(());
    };
    header
        .check_recipe(
            &config.data.train.join(INDEX_FILE),
            recipe,
            "the run config's [prepare] table",
        )
        .map_err(|e| {
            // The data crate's advice (`bert prepare`) is not what a `bert train` user does:
            // say why the table was not applied and how to have it applied.
            TrainError::Data(format!(
                "{e}; `bert train` runs the [prepare] table only when `{}` does not exist: \
                 delete `{}` and it prepares the data again with this table",
                config.data.train.display(),
                recipe.out.display()
            ))
        })
}

impl ShardData {
    /// Opens `data.train` and `data.validation` of a run config (see
    /// [`ShardSet::open`] for what is checked, and how much is read), and checks the training
    /// set against the masking of the config's `[prepare]` table, if it has one.
    pub fn open(config: &RunConfig) -> Result<Self> {
        let masking = |set: ShardSet| -> Result<ShardSet> {
            if config.data.masking.is_empty() {
                return Ok(set);
            }
            let params = config.data.masking.apply(*set.masking());
            set.with_masking(params).map_err(data_err)
        };
        let train = Arc::new(masking(
            ShardSet::open(&config.data.train, None).map_err(data_err)?,
        )?);
        let header = train.header().clone();
        check_prepare_table(config, &header)?;
        let validation = match &config.data.validation {
            Some(dir) => Some(Arc::new(masking(
                ShardSet::open(dir, Some(&header.vocab_hash)).map_err(data_err)?,
            )?)),
            None => None,
        };
        let loader = LoaderConfig {
            batch_size: config.data.batch_size,
            seed: config.seed,
            rank: 0,
            world_size: 1,
            accumulation: config.train.accumulation,
            prefetch: config.data.prefetch,
            pad_to_max_seq_length: config.data.pad_to_max_length,
            ..LoaderConfig::default()
        };
        if train.is_empty() {
            return Err(TrainError::Data(format!(
                "`{}` holds no instances",
                config.data.train.display()
            )));
        }
        let facts = DataFacts {
            vocab_size: header.vocab_size,
            vocab_hash: header.vocab_hash.clone(),
            max_seq_length: header.max_seq_length,
            train_instances: header.instances,
            tokenizer_dir: tokenizer_dir(&config.data.train),
        };
        Ok(Self {
            train,
            validation,
            loader,
            facts,
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
            Some(c) => serde_json::from_value(c.clone()).map_err(|e| {
                TrainError::Data(format!(
                    "checkpoint data cursor {c} is not a shard cursor: {e}"
                ))
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
