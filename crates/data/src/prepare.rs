//! `prepare`: corpus → tokenized documents → instances → (static) masks → shards, for a
//! train and a validation split, with bounded memory and output independent of thread count.
//!
//! Documents are read in chunks; each chunk is segmented and tokenized in parallel (rayon,
//! results collected in input order), then its instances are built in parallel with a random
//! generator keyed by `(seed, split, document index, dupe pass)`, so neither chunking nor
//! scheduling can change a byte of the output. Memory holds one chunk, the bounded
//! random-document pool and one shard's worth of instances.
//!
//! Deviation from the original for streaming: the `dupe_factor` passes are made per document
//! (its copies are built one after the other) instead of re-reading the whole corpus
//! `dupe_factor` times; the loader's global shuffle makes the order irrelevant.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use bert_rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::corpus::{CorpusOptions, CorpusReader, CorpusStats, InputFormat, RawDocument};
use crate::error::{DataError, Result};
use crate::fsutil::write_atomic;
use crate::grouping::{Grouping, InputSpec};
use crate::instances::{
    create_instances_from_document, DocInstances, DocPool, InstanceParams, TokenizedDoc,
};
use crate::masking::{mask_sequence, MaskCount, MaskTable, MaskingParams};
use crate::segment::split_sentences;
use crate::shard::{DatasetHeader, MaskingMode, ShardWriter, FORMAT_NAME, FORMAT_VERSION};
use crate::staging::{check_output, Staging};
use crate::tokenizer::{TokenizerSource, VocabTxtOptions, WordPieceTokenizer};

/// Key words separating the random streams of different purposes.
const KEY_SPLIT: u64 = 0x5350_4c49_5400_0001;
const KEY_INSTANCES: u64 = 0x494e_5354_0000_0002;

/// Documents per processing chunk (fixed: chunking must not depend on the machine).
const CHUNK_DOCS: usize = 1024;
/// Bytes of text per processing chunk, whichever limit is reached first.
const CHUNK_BYTES: usize = 16 << 20;

/// Everything `prepare` needs; every field has a default, unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrepareConfig {
    /// Corpus files, folders (read recursively in sorted order) or glob patterns; an entry may
    /// be a table `{ path, document_id_field, records_per_document }` with its own grouping.
    pub inputs: Vec<InputSpec>,
    /// `auto` (by extension), `text`, `jsonl` or `parquet`.
    pub format: InputFormat,
    /// JSONL/Parquet field with the document text.
    pub text_field: String,
    /// Plain text: one document per file (blank lines separate paragraphs) instead of one
    /// document per blank-line-separated block.
    pub doc_per_file: bool,
    /// Records grouped into documents by this JSONL/Parquet field (a book id): consecutive
    /// records with equal values form one document. For inputs given as plain paths.
    pub document_id_field: Option<String>,
    /// Consecutive records per document (0: no count limit; alone, every N records of a file
    /// form a document: for one-sentence-per-record corpora without an id). For inputs given
    /// as plain paths.
    pub records_per_document: usize,
    /// WordPiece `vocab.txt`, or a HuggingFace `tokenizer.json`.
    pub vocab: PathBuf,
    /// Lowercase (and strip accents) before WordPiece; `vocab.txt` only (a `tokenizer.json`
    /// carries its own normaliser).
    pub lowercase: bool,
    /// Refuse a vocabulary larger than this model embedding size (0: no check).
    pub model_vocab_size: usize,
    /// Output folder; `train/` and `validation/` are created inside.
    pub out: PathBuf,
    /// `static` (masks drawn now, `dupe_factor` copies) or `dynamic` (masks drawn by the loader).
    pub masking: MaskingMode,
    /// Longest instance including `[CLS]` and two `[SEP]`.
    pub max_seq_length: usize,
    /// Probability that a document's instances target a random shorter length.
    pub short_seq_prob: f64,
    /// Fraction of tokens to predict.
    pub masked_lm_prob: f64,
    /// Cap on predictions per instance.
    pub max_predictions_per_seq: usize,
    /// Mask all pieces of a word together.
    pub whole_word_masking: bool,
    /// `fixed` (Google: round(len × masked_lm_prob) per sequence, capped) or `bernoulli`
    /// (HuggingFace/RoBERTa: each token with probability masked_lm_prob, no cap).
    pub mask_count: MaskCount,
    /// Passes over each document, each with its own segmentation and masks (static only;
    /// dynamic masking always makes one pass).
    pub dupe_factor: usize,
    /// Fraction of documents set aside for validation (chosen from the seed).
    pub validation_fraction: f64,
    /// Seed for every random choice.
    pub seed: u64,
    /// Skip and count malformed records instead of failing.
    pub skip_bad_records: bool,
    /// Instances per shard file.
    pub shard_size: usize,
    /// Recent documents kept for drawing random next sentences (bounded memory).
    pub random_document_pool: usize,
    /// Worker threads (0: all cores). Output does not depend on it.
    pub threads: usize,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        // Corpus, tokenizer and masking defaults are their own types' (one default per value).
        let corpus = CorpusOptions::default();
        let masking = MaskingParams::default();
        Self {
            inputs: Vec::new(),
            format: corpus.format,
            text_field: corpus.text_field,
            doc_per_file: corpus.doc_per_file,
            document_id_field: None,
            records_per_document: 0,
            vocab: PathBuf::new(),
            lowercase: VocabTxtOptions::default().lowercase,
            model_vocab_size: 0,
            out: PathBuf::from("data/shards"),
            masking: MaskingMode::Static,
            max_seq_length: 128,
            short_seq_prob: 0.1,
            masked_lm_prob: masking.masked_lm_prob,
            max_predictions_per_seq: masking.max_predictions_per_seq,
            whole_word_masking: masking.whole_word_masking,
            mask_count: masking.count,
            dupe_factor: 5,
            validation_fraction: 0.01,
            seed: 12345,
            skip_bad_records: corpus.skip_bad_records,
            shard_size: 65_536,
            random_document_pool: 2_000,
            threads: 0,
            progress: true,
        }
    }
}

impl PrepareConfig {
    /// Makes the relative paths of a config read from a file relative to that file's folder
    /// (`inputs`, `vocab`, `out`), so the config works from any working directory.
    pub fn resolve_relative_to(&mut self, base: &Path) {
        use crate::fsutil::resolve_relative;
        self.inputs = self
            .inputs
            .iter()
            .map(|i| {
                i.with_path(
                    resolve_relative(base, Path::new(i.path()))
                        .display()
                        .to_string(),
                )
            })
            .collect();
        if !self.vocab.as_os_str().is_empty() {
            self.vocab = resolve_relative(base, &self.vocab);
        }
        self.out = resolve_relative(base, &self.out);
    }

    /// Checks ranges and consistency before any work.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(DataError::Config(m));
        if self.inputs.is_empty() {
            return err("inputs: give at least one corpus file, folder or glob".into());
        }
        self.grouping()
            .validate("[prepare]")
            .map_err(DataError::Config)?;
        for input in &self.inputs {
            input
                .grouping(&self.grouping())
                .validate(&format!("input {:?}", input.path()))
                .map_err(DataError::Config)?;
        }
        if self.vocab.as_os_str().is_empty() {
            return err("vocab: give a vocab.txt or tokenizer.json".into());
        }
        if !(5..=65_535).contains(&self.max_seq_length) {
            return err(format!(
                "max_seq_length {} must be between 5 and 65535",
                self.max_seq_length
            ));
        }
        for (name, p) in [
            ("short_seq_prob", self.short_seq_prob),
            ("masked_lm_prob", self.masked_lm_prob),
            ("validation_fraction", self.validation_fraction),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return err(format!("{name} {p} must be between 0 and 1"));
            }
        }
        if self.mask_count == MaskCount::Bernoulli && self.masked_lm_prob == 0.0 {
            return err("masked_lm_prob 0 with mask_count = \"bernoulli\" masks nothing".into());
        }
        if self.max_predictions_per_seq == 0 {
            return err("max_predictions_per_seq must be at least 1".into());
        }
        if self.dupe_factor == 0 {
            return err("dupe_factor must be at least 1".into());
        }
        if self.shard_size == 0 {
            return err("shard_size must be at least 1".into());
        }
        if self.out.as_os_str().is_empty() {
            return err("out: give an output folder".into());
        }
        Ok(())
    }

    /// The config-wide grouping, for inputs given as plain paths.
    pub fn grouping(&self) -> Grouping {
        Grouping {
            document_id_field: self.document_id_field.clone(),
            records_per_document: self.records_per_document,
        }
    }

    /// The input paths, for messages.
    pub fn input_paths(&self) -> Vec<&str> {
        self.inputs.iter().map(InputSpec::path).collect()
    }

    /// Corpus-reading options derived from this config.
    pub fn corpus_options(&self) -> CorpusOptions {
        let wide = self.grouping();
        CorpusOptions {
            inputs: self.inputs.iter().map(|i| i.path().to_owned()).collect(),
            format: self.format,
            text_field: self.text_field.clone(),
            doc_per_file: self.doc_per_file,
            skip_bad_records: self.skip_bad_records,
            groupings: self.inputs.iter().map(|i| i.grouping(&wide)).collect(),
        }
    }

    /// Masking parameters derived from this config.
    pub fn masking_params(&self) -> MaskingParams {
        MaskingParams {
            masked_lm_prob: self.masked_lm_prob,
            max_predictions_per_seq: self.max_predictions_per_seq,
            whole_word_masking: self.whole_word_masking,
            count: self.mask_count,
        }
    }

    /// Dupe passes actually made (1 for dynamic masking).
    pub fn effective_dupe_factor(&self) -> usize {
        match self.masking {
            MaskingMode::Static => self.dupe_factor,
            MaskingMode::Dynamic => 1,
        }
    }

    /// Loads the tokenizer this config names and checks it against `model_vocab_size`.
    pub fn load_tokenizer(&self) -> Result<WordPieceTokenizer> {
        let tok = WordPieceTokenizer::from_path(
            &self.vocab,
            VocabTxtOptions {
                lowercase: self.lowercase,
                strip_accents: None,
            },
        )?;
        if self.model_vocab_size > 0 {
            tok.vocab()
                .check_model_vocab_size(self.model_vocab_size, &self.vocab)?;
        }
        Ok(tok)
    }
}

/// What `prepare` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrepareReport {
    /// Output folder.
    pub out: PathBuf,
    /// Hash of the vocabulary recorded in the shards.
    pub vocab_hash: String,
    /// Input files read.
    pub files: u64,
    /// Documents with at least one sentence.
    pub documents: u64,
    /// Of which in the validation split.
    pub validation_documents: u64,
    /// Sentences (non-empty after tokenization).
    pub sentences: u64,
    /// WordPiece tokens of the text.
    pub tokens: u64,
    /// Training instances written.
    pub train_instances: u64,
    /// Validation instances written.
    pub validation_instances: u64,
    /// Tokens in all instances (special tokens included).
    pub instance_tokens: u64,
    /// Negative NSP pairs forced because a chunk held one sentence (no coin was flipped for
    /// them; every other instance's label is a fair coin).
    pub forced_random_next: u64,
    /// Corpus records read (more than `documents` when records are grouped).
    pub records: u64,
    /// Malformed records skipped.
    pub bad_records: u64,
    /// Lines/records with invalid UTF-8 replaced.
    pub invalid_utf8: u64,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Text tokens per second.
    pub tokens_per_s: f64,
}

/// One split's streaming state.
struct SplitState {
    name: &'static str,
    id: u64,
    pool: DocPool,
    writer: ShardWriter,
    documents: u64,
}

/// Reads, tokenizes, builds and writes; see the module documentation.
pub fn prepare(config: &PrepareConfig) -> Result<PrepareReport> {
    config.validate()?;
    check_output(&config.out)?;
    let start = Instant::now();
    // Everything that can be refused is checked before the output folder is touched.
    let tokenizer = config.load_tokenizer()?;
    let reader = CorpusReader::open(config.corpus_options())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads)
        .build()
        .map_err(|e| DataError::Config(format!("threads: {e}")))?;

    let vocab = tokenizer.vocab();
    let special = vocab.special();
    let table = MaskTable::from_vocab(vocab);
    let mparams = config.masking_params();
    let iparams = InstanceParams {
        max_seq_length: config.max_seq_length,
        short_seq_prob: config.short_seq_prob,
    };
    let dupe = config.effective_dupe_factor();
    let prepare_json = serde_json::to_value(config).unwrap_or_default();

    // Everything is built in a staging folder and moved into place at the end: a failed run
    // leaves nothing under the output name, and a previous output stays whole until then.
    let staging = Staging::create(&config.out)?;
    let build = staging.path().to_path_buf();
    write_tokenizer_files(&build, &tokenizer)?;
    let mut splits = Vec::new();
    for (id, name) in [(0u64, "train"), (1u64, "validation")] {
        let dir = build.join(name);
        let header = DatasetHeader {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            split: name.into(),
            vocab_hash: vocab.hash().to_string(),
            vocab_size: vocab.len(),
            max_seq_length: config.max_seq_length,
            masking: config.masking,
            masking_params: mparams,
            dupe_factor: dupe,
            instances: 0,
            tokens: 0,
        };
        let writer = ShardWriter::create(&dir, header, config.shard_size)?;
        write_tokenizer_files(&dir, &tokenizer)?;
        splits.push(SplitState {
            name,
            id,
            pool: DocPool::new(config.random_document_pool),
            writer,
            documents: 0,
        });
    }

    let bar = progress_bar(config.progress, reader.total_bytes());
    let bytes_read = reader.progress_counter();
    let mut report = PrepareReport {
        out: config.out.clone(),
        vocab_hash: vocab.hash().to_string(),
        ..PrepareReport::default()
    };
    // Reading (decompression, JSON parsing) runs on its own thread, one chunk ahead of the
    // workers; chunk boundaries depend only on the input, never on timing.
    let (chunk_tx, chunk_rx) = sync_channel::<Result<Vec<(u64, RawDocument)>>>(1);
    let reader_thread = std::thread::Builder::new()
        .name("bert-data-reader".into())
        .spawn(move || read_chunks(reader, chunk_tx))
        .map_err(|e| DataError::Config(format!("cannot start the reader thread: {e}")))?;
    for chunk in chunk_rx {
        let chunk = chunk?;
        // Paragraphs, not documents, are the unit of parallel work: one book-sized document
        // would otherwise keep a single core busy while the others idle.
        let paragraphs: Vec<(usize, &str)> = chunk
            .iter()
            .enumerate()
            .flat_map(|(d, (_, raw))| raw.paragraphs.iter().map(move |p| (d, p.as_str())))
            .collect();
        let tokenized: Vec<Result<Vec<Vec<u32>>>> = pool.install(|| {
            paragraphs
                .par_iter()
                .map(|(_, p)| tokenize_paragraph(p, &tokenizer))
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
        drop(paragraphs);
        drop(chunk);
        let mut per_split: [Vec<Arc<TokenizedDoc>>; 2] = [Vec::new(), Vec::new()];
        for doc in docs {
            if doc.sentences.is_empty() {
                continue;
            }
            report.documents += 1;
            report.sentences += doc.sentences.len() as u64;
            report.tokens += doc.sentences.iter().map(|s| s.len() as u64).sum::<u64>();
            let is_validation = Rng::keyed(&[config.seed, KEY_SPLIT, doc.index])
                .bernoulli(config.validation_fraction);
            per_split[usize::from(is_validation)].push(Arc::new(doc));
        }
        for (state, docs) in splits.iter_mut().zip(per_split) {
            state.documents += docs.len() as u64;
            for d in &docs {
                state.pool.push(d.clone());
            }
            let jobs: Vec<(&Arc<TokenizedDoc>, usize)> = docs
                .iter()
                .flat_map(|d| (0..dupe).map(move |k| (d, k)))
                .collect();
            let doc_pool = &state.pool;
            let split_id = state.id;
            let built: Vec<DocInstances> = pool.install(|| {
                jobs.par_iter()
                    .map(|(doc, k)| {
                        let mut rng = Rng::keyed(&[
                            config.seed,
                            KEY_INSTANCES,
                            split_id,
                            doc.index,
                            *k as u64,
                        ]);
                        let mut out = create_instances_from_document(
                            doc, doc_pool, &iparams, &special, &mut rng,
                        );
                        if config.masking == MaskingMode::Static {
                            for inst in &mut out.instances {
                                let (p, l) =
                                    mask_sequence(&mut inst.input_ids, &mparams, &table, &mut rng);
                                inst.masked_positions = p;
                                inst.masked_labels = l;
                            }
                        }
                        out
                    })
                    .collect()
            });
            for doc_out in built {
                report.forced_random_next += doc_out.forced_random as u64;
                for inst in &doc_out.instances {
                    report.instance_tokens += inst.input_ids.len() as u64;
                    state.writer.push(inst)?;
                }
            }
        }
        if let Some(bar) = &bar {
            bar.set_position(bytes_read.load(std::sync::atomic::Ordering::Relaxed));
            bar.set_message(format!(
                "{} docs, {} tokens, {} instances",
                report.documents,
                report.tokens,
                splits[0].writer.instances() + splits[1].writer.instances()
            ));
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let stats = reader_thread
        .join()
        .map_err(|_| DataError::Config("the reader thread panicked".into()))?;
    report.files = stats.files;
    report.records = stats.records;
    report.bad_records = stats.bad_records;
    report.invalid_utf8 = stats.invalid_utf8;
    report.validation_documents = splits[1].documents;
    for state in splits {
        let name = state.name;
        let index = state.writer.finish(prepare_json.clone())?;
        match name {
            "train" => report.train_instances = index.header.instances,
            _ => report.validation_instances = index.header.instances,
        }
    }
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.tokens_per_s = report.tokens as f64 / report.elapsed_s.max(1e-9);
    let top = serde_json::json!({
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "splits": ["train", "validation"],
        "prepare": prepare_json,
        "report": report,
    });
    write_atomic(
        &build.join(crate::shard::INDEX_FILE),
        serde_json::to_string_pretty(&top)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    staging.commit()?;
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
        config.out.display()
    );
    Ok(report)
}

/// Reads documents in chunks of at most [`CHUNK_DOCS`] documents or [`CHUNK_BYTES`] of text
/// and sends them on, then the first error if any; returns the reader's counters.
fn read_chunks(
    mut reader: CorpusReader,
    tx: SyncSender<Result<Vec<(u64, RawDocument)>>>,
) -> CorpusStats {
    let mut next_doc_index = 0u64;
    loop {
        let mut chunk = Vec::new();
        let mut bytes = 0usize;
        let mut failure = None;
        while chunk.len() < CHUNK_DOCS && bytes < CHUNK_BYTES {
            match reader.next_document() {
                Ok(Some(doc)) => {
                    bytes += doc.paragraphs.iter().map(String::len).sum::<usize>();
                    chunk.push((next_doc_index, doc));
                    next_doc_index += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let end = chunk.is_empty();
        // A send fails only when the consumer stopped (it hit an error): stop too.
        if !end && tx.send(Ok(chunk)).is_err() {
            break;
        }
        if let Some(e) = failure {
            let _ = tx.send(Err(e));
            break;
        }
        if end {
            break;
        }
    }
    reader.stats().clone()
}

/// Segments a paragraph into sentences and tokenizes them; empty sentences are dropped.
pub fn tokenize_paragraph(
    paragraph: &str,
    tokenizer: &WordPieceTokenizer,
) -> Result<Vec<Vec<u32>>> {
    let mut sentences = Vec::new();
    for s in split_sentences(paragraph) {
        let ids = tokenizer.encode(&s)?;
        if !ids.is_empty() {
            sentences.push(ids);
        }
    }
    Ok(sentences)
}

/// Segments each paragraph into sentences and tokenizes them; empty sentences are dropped.
pub fn tokenize_document(
    index: u64,
    raw: &RawDocument,
    tokenizer: &WordPieceTokenizer,
) -> Result<TokenizedDoc> {
    let mut sentences = Vec::new();
    for para in &raw.paragraphs {
        sentences.extend(tokenize_paragraph(para, tokenizer)?);
    }
    Ok(TokenizedDoc { index, sentences })
}

/// Writes the tokenizer as HuggingFace expects it beside a model into `dir`: `vocab.txt`,
/// `tokenizer.json` (padding and truncation off), `tokenizer_config.json` and
/// `special_tokens_map.json`. Checkpoints and exports copy these files, so an exported folder
/// loads with `AutoTokenizer.from_pretrained`.
fn write_tokenizer_files(dir: &Path, tokenizer: &WordPieceTokenizer) -> Result<()> {
    write_atomic(
        &dir.join("vocab.txt"),
        tokenizer.vocab().to_vocab_txt().as_bytes(),
    )?;
    let json = tokenizer
        .inner()
        .to_string(true)
        .map_err(|e| DataError::Tokenizer(format!("serialising tokenizer.json: {e}")))?;
    write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
    let specials = serde_json::json!({
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    });
    let mut config = specials.clone();
    config["tokenizer_class"] = "BertTokenizer".into();
    config["clean_up_tokenization_spaces"] = true.into();
    config["tokenize_chinese_chars"] = true.into();
    if let TokenizerSource::VocabTxt { lowercase, .. } = tokenizer.source() {
        config["do_lower_case"] = (*lowercase).into();
    }
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    write_atomic(
        &dir.join("tokenizer_config.json"),
        pretty(&config).as_bytes(),
    )?;
    write_atomic(
        &dir.join("special_tokens_map.json"),
        pretty(&specials).as_bytes(),
    )?;
    Ok(())
}

fn progress_bar(enabled: bool, total: u64) -> Option<indicatif::ProgressBar> {
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
