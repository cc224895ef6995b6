//! Data subcommands: `prepare` (corpus → shards), `inspect` (what shards hold) and
//! `tokenizer train` (a WordPiece vocabulary from a corpus). Parsing and wiring only; the work
//! is in `bert-data`.

use std::path::PathBuf;

use anyhow::Result;
use bert_data::CorpusOptions;
use bert_data::{train_wordpiece, TrainVocabOptions};
use bert_data::{InputFormat, MaskingMode, PrepareConfig};
use clap::{Args, Subcommand};

/// `bert prepare`: turn raw corpora into masked pre-training shards.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
bert prepare --config configs/prepare.toml\n  \
bert prepare --input corpus/wiki.jsonl.gz corpus/books/ --vocab vocab.txt --out data/shards \\\n      \
--masking dynamic --max-seq-length 128 --validation-fraction 0.01 --seed 42\n  \
bert prepare --input corpus/ --vocab vocab.txt --out data/mlm-512 --objective mlm \\\n      \
--max-seq-length 512 --masking dynamic --mask-count bernoulli\n\n\
The config file holds a [prepare] table (or only prepare keys) with the fields of\n\
bert_data::PrepareConfig; flags override it. Output: OUT/train/ and OUT/validation/.")]
pub struct PrepareArgs {
    /// TOML file with a `[prepare]` table (or only prepare keys).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Corpus files, folders (recursive) or globs; .gz/.zst/.bz2 are decompressed.
    #[arg(long = "input", num_args = 1..)]
    pub input: Vec<String>,
    /// auto (by extension), text, jsonl, parquet or arrow.
    #[arg(long)]
    pub format: Option<InputFormat>,
    /// JSONL/Parquet/Arrow field holding the document text (default `text`).
    #[arg(long)]
    pub text_field: Option<String>,
    /// Plain text: one document per file instead of one per blank-line-separated block.
    #[arg(long)]
    pub doc_per_file: bool,
    /// JSONL/Parquet/Arrow field naming each record's document (a book id): consecutive records
    /// with one value form a document.
    #[arg(long)]
    pub document_id_field: Option<String>,
    /// Consecutive records per document, for one-sentence-per-record corpora (0: no limit).
    #[arg(long)]
    pub records_per_document: Option<usize>,
    /// WordPiece vocab.txt or HuggingFace tokenizer.json.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// mlm_nsp (BERT: sentence pairs, next-sentence labels), mlm (RoBERTa: one packed
    /// segment, no pair label) or mlm_sop (ALBERT: consecutive segments, swapped half the time).
    #[arg(long)]
    pub objective: Option<bert_data::Objective>,
    /// With `--objective mlm`: full_sentences (packed across documents, a [SEP] between
    /// them; the default) or doc_sentences (never across a document).
    #[arg(long)]
    pub mlm_format: Option<bert_data::MlmFormat>,
    /// Probability of a shorter target length per document (default 0.1 for mlm_nsp and
    /// mlm_sop, 0 for mlm).
    #[arg(long)]
    pub short_seq_prob: Option<f64>,
    /// static (masks drawn now, dupe-factor copies) or dynamic (drawn by the loader).
    #[arg(long)]
    pub masking: Option<MaskingMode>,
    /// Longest instance, [CLS] and [SEP]s included (default 128).
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Fraction of tokens to predict (default 0.15; MosaicBERT 0.3).
    #[arg(long)]
    pub masked_lm_prob: Option<f64>,
    /// fixed (Google: round(len × rate) per sequence, capped) or bernoulli (each token with
    /// probability rate, as HuggingFace/RoBERTa).
    #[arg(long)]
    pub mask_count: Option<bert_data::MaskCount>,
    /// Differently-masked copies per document (static masking; default 5).
    #[arg(long)]
    pub dupe_factor: Option<usize>,
    /// Fraction of documents held out for validation (default 0.01).
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Seed for every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Skip and count malformed records instead of failing.
    #[arg(long)]
    pub skip_bad_records: bool,
    /// Input files that are not text (images, archives, binaries): skip (default; a warning
    /// names each) or error.
    #[arg(long)]
    pub non_text: Option<bert_data::NonText>,
    /// Refuse a vocabulary larger than the model's embedding table.
    #[arg(long)]
    pub model_vocab_size: Option<usize>,
    /// Worker threads (0: all cores); the output does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl PrepareArgs {
    /// The effective config: file (if any), then flags.
    pub fn to_config(&self) -> Result<PrepareConfig> {
        let mut c = match &self.config {
            Some(p) => bert_train::load_prepare_config(p)?,
            None => PrepareConfig::default(),
        };
        if !self.input.is_empty() {
            c.inputs = self.input.iter().map(|i| i.as_str().into()).collect();
        }
        if let Some(v) = self.format {
            c.format = v;
        }
        if let Some(v) = &self.text_field {
            c.text_field = v.clone();
        }
        if self.doc_per_file {
            c.doc_per_file = true;
        }
        if let Some(v) = &self.document_id_field {
            c.document_id_field = Some(v.clone());
        }
        if let Some(v) = self.records_per_document {
            c.records_per_document = v;
        }
        if let Some(v) = &self.vocab {
            c.vocab = v.clone();
        }
        if let Some(v) = &self.out {
            c.out = v.clone();
        }
        if let Some(v) = self.objective {
            c.objective = v;
        }
        if let Some(v) = self.mlm_format {
            c.mlm_format = Some(v);
        }
        if let Some(v) = self.short_seq_prob {
            c.short_seq_prob = Some(v);
        }
        if let Some(v) = self.masking {
            c.masking = v;
        }
        if let Some(v) = self.max_seq_length {
            c.max_seq_length = v;
        }
        if let Some(v) = self.masked_lm_prob {
            c.masked_lm_prob = v;
        }
        if let Some(v) = self.mask_count {
            c.mask_count = v;
        }
        if let Some(v) = self.dupe_factor {
            c.dupe_factor = v;
        }
        if let Some(v) = self.validation_fraction {
            c.validation_fraction = v;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if self.skip_bad_records {
            c.skip_bad_records = true;
        }
        if let Some(v) = self.non_text {
            c.non_text = v;
        }
        if let Some(v) = self.model_vocab_size {
            c.model_vocab_size = v;
        }
        if let Some(v) = self.threads {
            c.threads = v;
        }
        Ok(c)
    }
}

/// Runs `bert prepare`.
pub fn prepare(args: &PrepareArgs) -> Result<()> {
    let config = args.to_config()?;
    let report = bert_data::prepare(&config)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} train + {} validation instances from {} documents, {} sentences, {} tokens \
             ({} files; {} left out as not text; {} bad records skipped; {} lines with invalid \
             UTF-8) in {:.1}s, {:.0} tokens/s",
            report.out.display(),
            report.train_instances,
            report.validation_instances,
            report.documents,
            report.sentences,
            report.tokens,
            report.files,
            report.skipped_files,
            report.bad_records,
            report.invalid_utf8,
            report.elapsed_s,
            report.tokens_per_s
        );
    }
    Ok(())
}

/// `bert inspect`: counts, the objective, measured masking and pair-label statistics, the fill
/// rate (packing efficiency), decoded samples.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
bert inspect data/shards\n  \
bert inspect data/shards/train --show 3\n  \
bert inspect data/shards --json\n  \
bert inspect data/mlm-512 --batch-size 64      # the fill rate of 64-sequence batches")]
pub struct InspectArgs {
    /// A prepare output folder (both splits) or one split folder.
    pub dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Decode this many instances per split, [MASK] visible.
    #[arg(long, default_value_t = 0)]
    pub show: usize,
    /// Loader seed used to draw dynamic masks for the statistics (epoch 0).
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    /// Sequences per batch for the batch fill rate (real tokens ÷ the slots of batches padded
    /// to their longest row, as `bert train` pads them): the run's `data.batch_size`.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

/// Runs `bert inspect`.
pub fn inspect(args: &InspectArgs) -> Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let report = bert_data::inspect_with(&args.dir, args.show, args.seed, args.batch_size)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `bert tokenizer …`: vocabulary tools.
#[derive(Subcommand, Debug)]
pub enum TokenizerCommand {
    /// Train a WordPiece vocabulary (vocab.txt + tokenizer.json) from a corpus.
    Train(TokenizerTrainArgs),
}

/// `bert tokenizer train`.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  \
bert tokenizer train --input corpus/wiki.jsonl corpus/books/ --vocab-size 30522 --lowercase --out vocab/")]
pub struct TokenizerTrainArgs {
    /// Corpus files, folders or globs (same readers as `prepare`).
    #[arg(long = "input", num_args = 1.., required = true)]
    pub input: Vec<String>,
    /// Target vocabulary size, special tokens included.
    #[arg(long, default_value_t = TrainVocabOptions::default().vocab_size)]
    pub vocab_size: usize,
    /// Lowercase and strip accents (an uncased vocabulary, the default as in the `[tokenizer]`
    /// table); `--lowercase false` for a cased one.
    #[arg(
        long,
        num_args = 0..=1,
        default_value_t = TrainVocabOptions::default().lowercase,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub lowercase: bool,
    /// Minimum pair frequency for a merge.
    #[arg(long, default_value_t = TrainVocabOptions::default().min_frequency)]
    pub min_frequency: u64,
    /// auto (by extension), text, jsonl, parquet or arrow.
    #[arg(long, default_value = "auto")]
    pub format: InputFormat,
    /// JSONL/Parquet/Arrow field holding the text.
    #[arg(long, default_value_t = CorpusOptions::default().text_field)]
    pub text_field: String,
    /// Skip and count malformed records instead of failing.
    #[arg(long)]
    pub skip_bad_records: bool,
    /// Output folder for vocab.txt and tokenizer.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `bert tokenizer …`.
pub fn tokenizer(command: &TokenizerCommand) -> Result<()> {
    match command {
        TokenizerCommand::Train(args) => {
            let report = train_wordpiece(&TrainVocabOptions {
                corpus: CorpusOptions {
                    inputs: args.input.clone(),
                    format: args.format,
                    text_field: args.text_field.clone(),
                    skip_bad_records: args.skip_bad_records,
                    ..CorpusOptions::default()
                },
                vocab_size: args.vocab_size,
                lowercase: args.lowercase,
                min_frequency: args.min_frequency,
                out: args.out.clone(),
                ..TrainVocabOptions::default()
            })?;
            println!(
                "wrote {} and {} ({} tokens from {} documents, {})",
                report.vocab_txt.display(),
                report.tokenizer_json.display(),
                report.vocab_size,
                report.documents,
                report.vocab_hash
            );
            Ok(())
        }
    }
}
