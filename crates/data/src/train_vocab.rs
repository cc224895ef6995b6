//! Training a WordPiece vocabulary from a corpus, written as `vocab.txt` and a `tokenizer.json`
//! that both load back to the same ids. Text is normalised and split into words by
//! HuggingFace's BERT normaliser and pre-tokeniser; the merges are learnt by
//! [`crate::wordpiece_learn`], which (unlike HuggingFace's trainer) gives the same vocabulary on
//! every run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    Tokenizer,
};

use crate::corpus::{CorpusOptions, CorpusReader};
use crate::error::{DataError, Result};
use crate::tokenizer::{VocabTxtOptions, WordPieceTokenizer, SPECIAL_TOKENS};
use crate::wordpiece_learn::{learn, LearnOptions, CONTINUATION};
use bert_fsutil::{create_dir_all, write_atomic};

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainVocabOptions {
    /// The corpus (same readers as `prepare`).
    pub corpus: CorpusOptions,
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// Lowercase and strip accents (uncased vocabulary).
    pub lowercase: bool,
    /// Minimum pair frequency for a merge.
    pub min_frequency: u64,
    /// Keep at most this many initial characters (rare characters become `[UNK]`).
    pub limit_alphabet: usize,
    /// Output folder for `vocab.txt` and `tokenizer.json`.
    pub out: PathBuf,
}

impl Default for TrainVocabOptions {
    fn default() -> Self {
        Self {
            corpus: CorpusOptions::default(),
            vocab_size: 30_522,
            // Uncased unless asked, as a `vocab.txt` is read: one default for both.
            lowercase: VocabTxtOptions::default().lowercase,
            min_frequency: 2,
            limit_alphabet: 1_000,
            out: PathBuf::from("vocab"),
        }
    }
}

/// What training produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainVocabReport {
    /// The written `vocab.txt`.
    pub vocab_txt: PathBuf,
    /// The written `tokenizer.json`.
    pub tokenizer_json: PathBuf,
    /// Ids in the vocabulary (may be below the target on a small corpus).
    pub vocab_size: usize,
    /// Its hash, as recorded in shards.
    pub vocab_hash: String,
    /// Documents read.
    pub documents: u64,
}

/// Streams paragraphs from the corpus; the first read error is kept for the caller.
struct Paragraphs {
    reader: CorpusReader,
    pending: std::vec::IntoIter<String>,
    error: Arc<Mutex<Option<DataError>>>,
    documents: Arc<AtomicU64>,
}

impl Iterator for Paragraphs {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.pending.next() {
                return Some(p);
            }
            match self.reader.next_document() {
                Ok(Some(doc)) => {
                    self.documents.fetch_add(1, Ordering::Relaxed);
                    self.pending = doc.paragraphs.into_iter();
                }
                Ok(None) => return None,
                Err(e) => {
                    if let Ok(mut slot) = self.error.lock() {
                        *slot = Some(e);
                    }
                    return None;
                }
            }
        }
    }
}

/// Trains a BERT WordPiece vocabulary (special tokens `[PAD] [UNK] [CLS] [SEP] [MASK]` get ids
/// 0–4) and writes `vocab.txt` and `tokenizer.json` into `options.out`.
pub fn train_wordpiece(options: &TrainVocabOptions) -> Result<TrainVocabReport> {
    if options.vocab_size <= SPECIAL_TOKENS.len() {
        return Err(DataError::Config(format!(
            "vocab_size {} leaves no room beside the {} special tokens",
            options.vocab_size,
            SPECIAL_TOKENS.len()
        )));
    }
    let reader = CorpusReader::open(options.corpus.clone())?;
    let normalizer = BertNormalizer::new(true, true, Some(options.lowercase), options.lowercase);
    let error = Arc::new(Mutex::new(None));
    let documents = Arc::new(AtomicU64::new(0));
    let paragraphs = Paragraphs {
        reader,
        pending: Vec::new().into_iter(),
        error: error.clone(),
        documents: documents.clone(),
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for paragraph in paragraphs {
        let mut words = PreTokenizedString::from(paragraph.as_str());
        words
            .normalize(|n| normalizer.normalize(n))
            .and_then(|_| BertPreTokenizer.pre_tokenize(&mut words))
            .map_err(|e| DataError::Tokenizer(format!("splitting text into words: {e}")))?;
        for (word, _, _) in words.get_splits(OffsetReferential::Normalized, OffsetType::Char) {
            match counts.get_mut(word) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(word.to_string(), 1);
                }
            }
        }
    }
    if let Some(e) = error.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(e);
    }
    // A vocabulary of the special tokens and nothing else would be written without a word.
    if counts.is_empty() {
        return Err(DataError::Empty(format!(
            "no words to learn a vocabulary from in {}: the inputs hold no text ({} documents)",
            options
                .corpus
                .inputs
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
            documents.load(Ordering::Relaxed)
        )));
    }
    let tokens = learn(
        &counts,
        &SPECIAL_TOKENS,
        &LearnOptions {
            vocab_size: options.vocab_size,
            min_frequency: options.min_frequency,
            limit_alphabet: options.limit_alphabet,
        },
    );
    let ids: ahash::AHashMap<String, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let model = WordPiece::builder()
        .vocab(ids)
        .unk_token("[UNK]".into())
        .continuing_subword_prefix(CONTINUATION.into())
        .build()
        .map_err(|e| DataError::Tokenizer(format!("building the WordPiece model: {e}")))?;
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut tokenizer = Tokenizer::new(ModelWrapper::WordPiece(model));
    tokenizer
        .with_normalizer(Some(normalizer))
        .with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.add_special_tokens(&specials);
    let id = |t: &str| tokenizer.token_to_id(t).unwrap_or(0);
    let (cls, sep) = (id("[CLS]"), id("[SEP]"));
    tokenizer
        .with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), sep),
            ("[CLS]".into(), cls),
        )))
        .with_decoder(Some(WordPieceDecoder::default()));

    create_dir_all(&options.out)?;
    let vocab_txt = options.out.join("vocab.txt");
    let tokenizer_json = options.out.join("tokenizer.json");
    let mut text = tokens.join("\n");
    text.push('\n');
    write_atomic(&vocab_txt, text.as_bytes())?;
    let json = tokenizer
        .to_string(true)
        .map_err(|e| DataError::Tokenizer(format!("serialising tokenizer.json: {e}")))?;
    write_atomic(&tokenizer_json, json.as_bytes())?;
    // Read back what was written: both files must load and agree.
    let loaded = WordPieceTokenizer::from_tokenizer_json(&tokenizer_json)?;
    check_same(&vocab_txt, &loaded)?;
    Ok(TrainVocabReport {
        vocab_txt,
        tokenizer_json,
        vocab_size: loaded.vocab().len(),
        vocab_hash: loaded.vocab().hash().to_string(),
        documents: documents.load(Ordering::Relaxed),
    })
}

fn check_same(vocab_txt: &Path, loaded: &WordPieceTokenizer) -> Result<()> {
    let from_txt = crate::tokenizer::Vocab::read_vocab_txt(vocab_txt)?;
    if from_txt.hash() != loaded.vocab().hash() {
        return Err(DataError::Vocab {
            path: vocab_txt.to_path_buf(),
            message: "written vocab.txt and tokenizer.json disagree".into(),
        });
    }
    Ok(())
}
