//! The stages of a `prepare` run, in the order they happen: set up what every stage needs
//! ([`Job::new`]), open one shard writer per split ([`Job::open_splits`]), then per chunk of
//! documents tokenize ([`Job::tokenize_chunk`]), assign each document to a split
//! ([`Job::assign_splits`]), build (and, for static masking, mask) its instances
//! ([`Job::build_instances`] for `mlm_nsp` and `mlm_sop`, [`Job::pack_instances`] for `mlm`)
//! and write them ([`write_instances`]); at the end close the splits ([`Job::finish_splits`],
//! which first emits each `mlm` packer's last sequence) and write the set's top-level index
//! ([`Job::write_set_index`]).
//!
//! Pair objectives build each document's instances independently (in parallel, keyed by the
//! document). `mlm` packs sequentially instead: `full_sentences` carries the sequence being
//! filled from one document to the next, so each split (and, for static masking, each dupe
//! pass) has one packer fed in input order; only the masking of the packed sequences runs in
//! parallel, each keyed by the sequence's number within its pass. Chunk boundaries therefore
//! never show in the output either.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bert_rng::Rng;
use rayon::prelude::*;

use super::{tokenize_paragraph, write_tokenizer_files, PrepareConfig, PrepareReport};
use crate::corpus::{CorpusReader, CorpusStats, RawDocument};
use crate::error::{DataError, Result};
use crate::instances::{
    create_instances_from_document, create_sop_instances_from_document, DocInstances, DocPool,
    Instance, InstanceParams, TokenizedDoc,
};
use crate::masking::{mask_sequence, MaskTable, MaskingParams};
use crate::objective::{Objective, ObjectiveSpec};
use crate::packing::Packer;
use crate::shard::{format_version_for, DatasetHeader, MaskingMode, ShardWriter, FORMAT_NAME};
use crate::tokenizer::{SpecialIds, WordPieceTokenizer};
use bert_fsutil::write_atomic;

/// Key words separating the random streams of different purposes.
const KEY_SPLIT: u64 = 0x5350_4c49_5400_0001;
const KEY_INSTANCES: u64 = 0x494e_5354_0000_0002;
const KEY_PACKING: u64 = 0x5041_434b_0000_0003;
const KEY_PACKED_MASKS: u64 = 0x504d_534b_0000_0004;

/// The split names, by split id (the id keys each split's random streams).
const SPLITS: [(u64, &str); 2] = [(0, "train"), (1, "validation")];

/// One split's streaming state.
pub(super) struct SplitState {
    name: &'static str,
    id: u64,
    pool: DocPool,
    writer: ShardWriter,
    documents: u64,
    /// `mlm` only: one packer per dupe pass, holding the sequence being filled between chunks.
    packers: Vec<Packer>,
}

/// What every stage of one run needs, resolved once from the configuration.
pub(super) struct Job<'a> {
    config: &'a PrepareConfig,
    tokenizer: WordPieceTokenizer,
    threads: rayon::ThreadPool,
    special: SpecialIds,
    table: MaskTable,
    mparams: MaskingParams,
    iparams: InstanceParams,
    dupe: usize,
    spec: ObjectiveSpec,
    /// The configuration as recorded in every index, for provenance.
    prepare_json: serde_json::Value,
}

impl<'a> Job<'a> {
    /// Loads the tokenizer, opens the corpus and starts the worker threads: everything that
    /// can be refused, before the output folder is touched.
    pub(super) fn new(config: &'a PrepareConfig) -> Result<(Self, CorpusReader)> {
        let tokenizer = config.load_tokenizer()?;
        let reader = CorpusReader::open(config.corpus_options())?;
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .build()
            .map_err(|e| DataError::Config(format!("threads: {e}")))?;
        let vocab = tokenizer.vocab();
        let job = Self {
            special: vocab.special(),
            table: MaskTable::from_vocab(vocab),
            mparams: config.masking_params(),
            iparams: InstanceParams {
                max_seq_length: config.max_seq_length,
                short_seq_prob: config.effective_short_seq_prob(),
            },
            dupe: config.effective_dupe_factor(),
            spec: config.objective_spec(),
            prepare_json: recorded_config(config),
            config,
            tokenizer,
            threads,
        };
        Ok((job, reader))
    }

    /// The tokenizer the shards' ids come from.
    pub(super) fn tokenizer(&self) -> &WordPieceTokenizer {
        &self.tokenizer
    }

    /// A report with nothing counted yet.
    pub(super) fn empty_report(&self) -> PrepareReport {
        PrepareReport {
            out: self.config.out.clone(),
            vocab_hash: self.tokenizer.vocab().hash().to_string(),
            ..PrepareReport::default()
        }
    }

    /// Creates `build/train` and `build/validation`, each with its shard writer and the
    /// tokenizer files.
    pub(super) fn open_splits(&self, build: &Path) -> Result<Vec<SplitState>> {
        let vocab = self.tokenizer.vocab();
        let mut splits = Vec::new();
        for (id, name) in SPLITS {
            let dir = build.join(name);
            let header = DatasetHeader {
                format: FORMAT_NAME.into(),
                format_version: format_version_for(&self.spec),
                split: name.into(),
                vocab_hash: vocab.hash().to_string(),
                vocab_size: vocab.len(),
                max_seq_length: self.config.max_seq_length,
                masking: self.config.masking,
                masking_params: self.mparams,
                dupe_factor: self.dupe,
                instances: 0,
                tokens: 0,
            };
            let writer = ShardWriter::create_for(&dir, header, self.spec, self.config.shard_size)?;
            write_tokenizer_files(&dir, &self.tokenizer)?;
            let packers = match self.spec.mlm_format {
                Some(format) => (0..self.dupe)
                    .map(|k| {
                        let rng = Rng::keyed(&[self.config.seed, KEY_PACKING, id, k as u64]);
                        Packer::new(
                            format,
                            self.config.max_seq_length,
                            self.iparams.short_seq_prob,
                            self.special,
                            rng,
                        )
                    })
                    .collect(),
                None => Vec::new(),
            };
            // Only NSP draws from other documents; the pool would hold them for nothing.
            let pool_size = match self.spec.objective {
                Objective::MlmNsp => self.config.random_document_pool,
                _ => 1,
            };
            splits.push(SplitState {
                name,
                id,
                pool: DocPool::new(pool_size),
                writer,
                documents: 0,
                packers,
            });
        }
        Ok(splits)
    }

    /// Every stage of one chunk: tokenize, assign to splits, build and write instances.
    pub(super) fn process_chunk(
        &self,
        chunk: Vec<(u64, RawDocument)>,
        splits: &mut [SplitState],
        report: &mut PrepareReport,
    ) -> Result<()> {
        let docs = self.tokenize_chunk(chunk)?;
        let per_split = self.assign_splits(docs, report);
        for (state, docs) in splits.iter_mut().zip(per_split) {
            let built = match self.spec.objective {
                Objective::Mlm => self.pack_instances(state, &docs, false),
                Objective::MlmNsp | Objective::MlmSop => self.build_instances(state, docs),
            };
            write_instances(state, built, report)?;
        }
        Ok(())
    }

    /// Segments and tokenizes a chunk's documents, in input order.
    fn tokenize_chunk(&self, chunk: Vec<(u64, RawDocument)>) -> Result<Vec<TokenizedDoc>> {
        // Paragraphs, not documents, are the unit of parallel work: one book-sized document
        // would otherwise keep a single core busy while the others idle.
        let paragraphs: Vec<(usize, &str)> = chunk
            .iter()
            .enumerate()
            .flat_map(|(d, (_, raw))| raw.paragraphs.iter().map(move |p| (d, p.as_str())))
            .collect();
        let tokenized: Vec<Result<Vec<Vec<u32>>>> = self.threads.install(|| {
            paragraphs
                .par_iter()
                .map(|(_, p)| tokenize_paragraph(p, &self.tokenizer))
                .collect()
        });
        let mut docs: Vec<TokenizedDoc> = chunk
            .iter()
            .map(|(index, _)| TokenizedDoc {
                index: *index,
                sentences: Vec::new(),
            })
            .collect();
        for ((d, _), sentences) in paragraphs.iter().zip(tokenized) {
            docs[*d].sentences.extend(sentences?);
        }
        Ok(docs)
    }

    /// Counts the documents that have sentences and draws each one's split from
    /// `(seed, document index)`: `[train, validation]`.
    fn assign_splits(
        &self,
        docs: Vec<TokenizedDoc>,
        report: &mut PrepareReport,
    ) -> [Vec<Arc<TokenizedDoc>>; 2] {
        let mut per_split: [Vec<Arc<TokenizedDoc>>; 2] = [Vec::new(), Vec::new()];
        for doc in docs {
            if doc.sentences.is_empty() {
                continue;
            }
            report.documents += 1;
            report.sentences += doc.sentences.len() as u64;
            report.tokens += doc.sentences.iter().map(|s| s.len() as u64).sum::<u64>();
            let is_validation = Rng::keyed(&[self.config.seed, KEY_SPLIT, doc.index])
                .bernoulli(self.config.validation_fraction);
            per_split[usize::from(is_validation)].push(Arc::new(doc));
        }
        per_split
    }

    /// Adds `docs` to the split's random-document pool (NSP), then builds their NSP or SOP
    /// instances (`dupe_factor` copies each) in parallel, masked when masking is static. Each
    /// copy draws from its own stream keyed by `(seed, split, document index, copy)`.
    fn build_instances(
        &self,
        state: &mut SplitState,
        docs: Vec<Arc<TokenizedDoc>>,
    ) -> Vec<DocInstances> {
        state.documents += docs.len() as u64;
        if self.spec.objective == Objective::MlmNsp {
            for d in &docs {
                state.pool.push(d.clone());
            }
        }
        let jobs: Vec<(&Arc<TokenizedDoc>, usize)> = docs
            .iter()
            .flat_map(|d| (0..self.dupe).map(move |k| (d, k)))
            .collect();
        let doc_pool = &state.pool;
        let split_id = state.id;
        self.threads.install(|| {
            jobs.par_iter()
                .map(|(doc, k)| {
                    let mut rng = Rng::keyed(&[
                        self.config.seed,
                        KEY_INSTANCES,
                        split_id,
                        doc.index,
                        *k as u64,
                    ]);
                    let mut out = match self.spec.objective {
                        Objective::MlmSop => create_sop_instances_from_document(
                            doc,
                            &self.iparams,
                            &self.special,
                            &mut rng,
                        ),
                        _ => create_instances_from_document(
                            doc,
                            doc_pool,
                            &self.iparams,
                            &self.special,
                            &mut rng,
                        ),
                    };
                    if self.config.masking == MaskingMode::Static {
                        for inst in &mut out.instances {
                            self.mask(inst, &mut rng);
                        }
                    }
                    out
                })
                .collect()
        })
    }

    /// Draws static masks for `inst` from `rng`.
    fn mask(&self, inst: &mut Instance, rng: &mut Rng) {
        let (p, l) = mask_sequence(&mut inst.input_ids, &self.mparams, &self.table, rng);
        inst.masked_positions = p;
        inst.masked_labels = l;
    }

    /// `mlm`: feeds `docs` (in input order) to each dupe pass's packer and returns the
    /// sequences that filled, one [`DocInstances`] per pass; with `last`, also each packer's
    /// partial last sequence (the end of the split). Static masks are drawn in parallel, each
    /// from a stream keyed by `(seed, split, pass, sequence number in the pass)`.
    fn pack_instances(
        &self,
        state: &mut SplitState,
        docs: &[Arc<TokenizedDoc>],
        last: bool,
    ) -> Vec<DocInstances> {
        state.documents += docs.len() as u64;
        let split_id = state.id;
        let mut built = Vec::with_capacity(state.packers.len());
        for (k, packer) in state.packers.iter_mut().enumerate() {
            let (first, splits_before) = (packer.emitted(), packer.split_sentences());
            let mut instances = Vec::new();
            for d in docs {
                packer.push_document(d, &mut instances);
            }
            if last {
                packer.finish(&mut instances);
            }
            if self.config.masking == MaskingMode::Static {
                self.threads.install(|| {
                    instances.par_iter_mut().enumerate().for_each(|(j, inst)| {
                        let mut rng = Rng::keyed(&[
                            self.config.seed,
                            KEY_PACKED_MASKS,
                            split_id,
                            k as u64,
                            first + j as u64,
                        ]);
                        self.mask(inst, &mut rng);
                    })
                });
            }
            built.push(DocInstances {
                instances,
                forced_random: 0,
                // Each pass packs the same text: count its splits once.
                split_sentences: if k == 0 {
                    (packer.split_sentences() - splits_before) as usize
                } else {
                    0
                },
            });
        }
        built
    }

    /// Writes each split's last shard and `index.json`, and puts the reader's counters and
    /// the instance counts into `report`.
    pub(super) fn finish_splits(
        &self,
        splits: Vec<SplitState>,
        stats: CorpusStats,
        report: &mut PrepareReport,
    ) -> Result<()> {
        report.files = stats.files;
        report.skipped_files = stats.skipped_files;
        report.records = stats.records;
        report.bad_records = stats.bad_records;
        report.invalid_utf8 = stats.invalid_utf8;
        report.validation_documents = splits[1].documents;
        for mut state in splits {
            // `mlm`: the split's last sequence of each pass is still in its packer.
            let rest = self.pack_instances(&mut state, &[], true);
            write_instances(&mut state, rest, report)?;
            let name = state.name;
            let index = state.writer.finish(self.prepare_json.clone())?;
            match name {
                "train" => report.train_instances = index.header.instances,
                _ => report.validation_instances = index.header.instances,
            }
        }
        Ok(())
    }

    /// Writes the set's top-level `index.json`: format, splits, configuration and report.
    pub(super) fn write_set_index(&self, build: &Path, report: &PrepareReport) -> Result<()> {
        let top = serde_json::json!({
            "format": FORMAT_NAME,
            "format_version": format_version_for(&self.spec),
            "splits": ["train", "validation"],
            "prepare": self.prepare_json,
            "report": report,
        });
        write_atomic(
            &build.join(crate::shard::INDEX_FILE),
            serde_json::to_string_pretty(&top)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        Ok(())
    }
}

/// Hands a split's built instances to its shard writer, in document order.
fn write_instances(
    state: &mut SplitState,
    built: Vec<DocInstances>,
    report: &mut PrepareReport,
) -> Result<()> {
    for doc_out in built {
        report.forced_random_next += doc_out.forced_random as u64;
        report.split_sentences += doc_out.split_sentences as u64;
        for inst in &doc_out.instances {
            report.instance_tokens += inst.input_ids.len() as u64;
            state.writer.push(inst)?;
        }
    }
    Ok(())
}

/// The configuration as recorded in the indexes: with the values the objective decided
/// (`short_seq_prob`, `mlm_format`) written out, so the record says what was done.
fn recorded_config(config: &PrepareConfig) -> serde_json::Value {
    let mut recorded = config.clone();
    recorded.short_seq_prob = Some(config.effective_short_seq_prob());
    recorded.mlm_format = config.objective_spec().mlm_format;
    serde_json::to_value(&recorded).unwrap_or_default()
}

/// A progress bar over the corpus's on-disk bytes, when `enabled`.
pub(super) fn progress_bar(enabled: bool, total: u64) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} ({eta}) {msg}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Moves the bar to the bytes read so far and shows the counts.
pub(super) fn show_progress(
    bar: Option<&indicatif::ProgressBar>,
    bytes_read: &AtomicU64,
    report: &PrepareReport,
    splits: &[SplitState],
) {
    if let Some(bar) = bar {
        bar.set_position(bytes_read.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{} docs, {} tokens, {} instances",
            report.documents,
            report.tokens,
            splits[0].writer.instances() + splits[1].writer.instances()
        ));
    }
}

/// Logs what a finished run did (and warns about skipped or repaired records).
pub(super) fn log_summary(report: &PrepareReport, out: &Path) {
    if report.bad_records > 0 {
        tracing::warn!("skipped {} malformed records", report.bad_records);
    }
    if report.invalid_utf8 > 0 {
        tracing::warn!(
            "replaced invalid UTF-8 in {} lines/records",
            report.invalid_utf8
        );
    }
    tracing::info!(
        "prepared {} train + {} validation instances from {} documents ({} tokens) in {:.1}s \
         ({:.0} tokens/s) into {}",
        report.train_instances,
        report.validation_instances,
        report.documents,
        report.tokens,
        report.elapsed_s,
        report.tokens_per_s,
        out.display()
    );
}
