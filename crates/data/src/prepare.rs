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
//!
//! [`prepare()`] runs the stages of `prepare/job.rs` in order; `prepare/chunks.rs` reads the
//! corpus on its own thread and `prepare/tokenizer_files.rs` writes the tokenizer beside the
//! shards. This file holds the configuration, the report and the entry point.

mod chunks;
mod job;
mod tokenizer_files;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::corpus::{CorpusOptions, InputFormat, NonText};
use crate::error::{DataError, Result};
use crate::grouping::{Grouping, InputSpec};
use crate::masking::{MaskCount, MaskingParams};
use crate::objective::{MlmFormat, Objective, ObjectiveSpec};
use crate::segment::split_sentences;
use crate::shard::MaskingMode;
use crate::staging::{check_output, lock_output, Staging};
use crate::tokenizer::{VocabTxtOptions, WordPieceTokenizer};
use chunks::spawn_reader;
use job::{log_summary, progress_bar, show_progress, Job};
use tokenizer_files::write_tokenizer_files;

/// Everything `prepare` needs; every field has a default, unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrepareConfig {
    /// Corpus files, folders (read recursively in sorted order) or glob patterns; an entry may
    /// be a table `{ path, document_id_field, records_per_document }` with its own grouping.
    pub inputs: Vec<InputSpec>,
    /// `auto` (by extension), `text`, `jsonl`, `parquet` or `arrow`.
    pub format: InputFormat,
    /// JSONL/Parquet/Arrow field with the document text.
    pub text_field: String,
    /// Plain text: one document per file (blank lines separate paragraphs) instead of one
    /// document per blank-line-separated block.
    pub doc_per_file: bool,
    /// Records grouped into documents by this JSONL/Parquet/Arrow field (a book id): consecutive
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
    /// The pre-training objective the instances are built for: `mlm_nsp` (BERT, the
    /// default), `mlm` (RoBERTa: packed single-segment sequences) or `mlm_sop` (ALBERT:
    /// sentence-order pairs). Recorded in the shards.
    pub objective: Objective,
    /// `mlm` only: `full_sentences` (packed across documents, the default) or
    /// `doc_sentences` (never crossing one). Refused with another objective.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlm_format: Option<MlmFormat>,
    /// `static` (masks drawn now, `dupe_factor` copies) or `dynamic` (masks drawn by the loader).
    pub masking: MaskingMode,
    /// Longest instance including `[CLS]` and the `[SEP]`s.
    pub max_seq_length: usize,
    /// Probability that an instance targets a random shorter length (per document for
    /// `mlm_nsp` and `mlm_sop`, per sequence for `mlm`). Unset: the objective's default
    /// ([`Objective::default_short_seq_prob`]: 0.1, or 0 for `mlm`); read it through
    /// [`effective_short_seq_prob`](Self::effective_short_seq_prob).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_seq_prob: Option<f64>,
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
    /// Input files that are not text (images, archives, binaries): `skip` them with a
    /// warning naming each, or stop with an `error`.
    pub non_text: NonText,
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
            objective: Objective::default(),
            mlm_format: None,
            masking: MaskingMode::Static,
            max_seq_length: 128,
            // The objective decides (`effective_short_seq_prob`).
            short_seq_prob: None,
            masked_lm_prob: masking.masked_lm_prob,
            max_predictions_per_seq: masking.max_predictions_per_seq,
            whole_word_masking: masking.whole_word_masking,
            mask_count: masking.count,
            dupe_factor: 5,
            validation_fraction: 0.01,
            seed: 12345,
            skip_bad_records: corpus.skip_bad_records,
            non_text: corpus.non_text,
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
        use bert_fsutil::resolve_relative;
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
        if let Some(p) = self.short_seq_prob {
            if !(0.0..=1.0).contains(&p) {
                return err(format!("short_seq_prob {p} must be between 0 and 1"));
            }
        }
        if let (Some(format), false) = (self.mlm_format, self.objective == Objective::Mlm) {
            return err(format!(
                "mlm_format = \"{format}\" applies to objective = \"mlm\" only, and the \
                 objective is \"{}\": remove mlm_format or set objective = \"mlm\"",
                self.objective
            ));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return err(format!(
                "validation_fraction {} must be at least 0 and below 1 (1 would leave no \
                 document to train on; 0 makes no validation split)",
                self.validation_fraction
            ));
        }
        // The one range check of the masking keys, shared with the run config's
        // `[data.masking]` and the loader.
        self.masking_params()
            .validate()
            .map_err(DataError::Config)?;
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

    /// Whether this config makes the shard folder `split`: it lies inside `out` (as written,
    /// or once symbolic links are resolved). A run config's `[prepare]` table is run, and
    /// shards are checked against it, only for the shards it makes.
    pub fn makes(&self, split: &Path) -> bool {
        if split.starts_with(&self.out) {
            return true;
        }
        match (split.canonicalize(), self.out.canonicalize()) {
            (Ok(split), Ok(out)) => split.starts_with(out),
            _ => false,
        }
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
            non_text: self.non_text,
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

    /// `short_seq_prob` as set, or the objective's default when unset (0.1 for `mlm_nsp` and
    /// `mlm_sop`; 0 for `mlm`, which draws no short sequences unless asked).
    pub fn effective_short_seq_prob(&self) -> f64 {
        self.short_seq_prob
            .unwrap_or_else(|| self.objective.default_short_seq_prob())
    }

    /// The objective and (for `mlm`) its packing format, as the shards record them.
    pub fn objective_spec(&self) -> ObjectiveSpec {
        ObjectiveSpec::new(self.objective, self.mlm_format)
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
    /// Input files left out because they are not text (`non_text = "skip"`).
    #[serde(default)]
    pub skipped_files: u64,
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
    /// Sentences split inside: for `mlm`, sentences longer than a sequence cut into
    /// full-length pieces; for `mlm_sop`, chunks of a single sentence cut into A and B.
    #[serde(default)]
    pub split_sentences: u64,
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

/// Reads, tokenizes, builds and writes; see the module documentation.
pub fn prepare(config: &PrepareConfig) -> Result<PrepareReport> {
    config.validate()?;
    check_output(&config.out)?;
    // One prepare per output at a time: two would build over each other's swap.
    let _lock = lock_output(&config.out)?;
    let start = Instant::now();
    // Everything that can be refused is checked before the output folder is touched.
    let (job, reader) = Job::new(config)?;

    // Everything is built in a staging folder and moved into place at the end: a failed run
    // leaves nothing under the output name, and a previous output stays whole until then.
    let staging = Staging::create(&config.out)?;
    let build = staging.path().to_path_buf();
    write_tokenizer_files(&build, job.tokenizer())?;
    let mut splits = job.open_splits(&build)?;

    let bar = progress_bar(config.progress, reader.total_bytes());
    let bytes_read = reader.progress_counter();
    let mut report = job.empty_report();
    let (chunks, reader_thread) = spawn_reader(reader)?;
    for chunk in chunks {
        job.process_chunk(chunk?, &mut splits, &mut report)?;
        show_progress(bar.as_ref(), &bytes_read, &report, &splits);
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let stats = reader_thread
        .join()
        .map_err(|_| DataError::Config("the reader thread panicked".into()))?;
    job.finish_splits(splits, stats, &mut report)?;
    // Refused before the swap, so an earlier output stays in place.
    check_not_empty(config, &report)?;
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.tokens_per_s = report.tokens as f64 / report.elapsed_s.max(1e-9);
    job.write_set_index(&build, &report)?;
    staging.commit()?;
    log_summary(&report, &config.out);
    Ok(report)
}

/// Refuses a result with nothing to train on, or an empty validation split that was asked
/// for, naming the inputs and what was read from them.
fn check_not_empty(config: &PrepareConfig, report: &PrepareReport) -> Result<()> {
    let inputs = config
        .input_paths()
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let read = format!(
        "{} files read ({} left out as not text), {} records, {} documents with text, {} \
         sentences",
        report.files, report.skipped_files, report.records, report.documents, report.sentences
    );
    if report.train_instances == 0 {
        let why = if report.documents == 0 {
            "the inputs hold no text"
        } else {
            "every document went to validation"
        };
        return Err(DataError::Empty(format!(
            "no train instances from {inputs}: {why} ({read})"
        )));
    }
    if config.validation_fraction > 0.0 && report.validation_instances == 0 {
        return Err(DataError::Empty(format!(
            "validation_fraction {} put none of the {} documents from {inputs} into validation: \
             raise it, or set validation_fraction = 0 to train without a validation split",
            config.validation_fraction, report.documents
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range check names its key; the masking keys go through the same check as the
    /// run config's `[data.masking]` and the loader (`MaskingParams::validate`).
    #[test]
    fn out_of_range_values_are_refused_naming_the_key() {
        let good = PrepareConfig {
            inputs: vec!["corpus".into()],
            vocab: PathBuf::from("vocab.txt"),
            ..PrepareConfig::default()
        };
        assert!(good.validate().is_ok());
        type Spoil = fn(&mut PrepareConfig);
        let cases: [(&str, Spoil); 6] = [
            ("masked_lm_prob 1.5", |c| c.masked_lm_prob = 1.5),
            ("masked_lm_prob 0", |c| c.masked_lm_prob = 0.0),
            ("max_predictions_per_seq", |c| c.max_predictions_per_seq = 0),
            ("short_seq_prob", |c| c.short_seq_prob = Some(1.5)),
            ("dupe_factor", |c| c.dupe_factor = 0),
            ("max_seq_length", |c| c.max_seq_length = 4),
        ];
        for (key, spoil) in cases {
            let mut bad = good.clone();
            spoil(&mut bad);
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
