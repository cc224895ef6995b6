//! WordPiece tokenization with HuggingFace's `tokenizers`, from a `vocab.txt` or a
//! `tokenizer.json`, so ids are exactly those the published tooling gives.
//!
//! Also holds what the rest of the pipeline needs about a vocabulary: the special ids, which
//! ids are `##` continuations (for whole-word masking), and a hash that names the vocabulary
//! in shards so a shard set can never be fed to a model with another vocabulary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::ascii_wordpiece::AsciiWordPiece;
use crate::error::{io_err, DataError, Result};

/// The longest word WordPiece splits (longer ones are `[UNK]`): HuggingFace's and Google's value.
const MAX_CHARS_PER_WORD: usize = 100;

/// The five tokens every BERT vocabulary must have.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Ids of the special tokens in a vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialIds {
    /// `[PAD]`.
    pub pad: u32,
    /// `[UNK]`.
    pub unk: u32,
    /// `[CLS]`.
    pub cls: u32,
    /// `[SEP]`.
    pub sep: u32,
    /// `[MASK]`.
    pub mask: u32,
}

/// An ordered token list (id = position) and what is derived from it.
#[derive(Clone, Debug)]
pub struct Vocab {
    tokens: Vec<String>,
    special: SpecialIds,
    continuation: Vec<bool>,
    hash: String,
}

impl Vocab {
    /// Builds from the ordered token list; `origin` names the file in errors. Fails if a
    /// special token is missing.
    pub fn from_tokens(tokens: Vec<String>, origin: &Path) -> Result<Self> {
        let index: HashMap<&str, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let missing: Vec<&str> = SPECIAL_TOKENS
            .iter()
            .copied()
            .filter(|t| !index.contains_key(t))
            .collect();
        if !missing.is_empty() {
            return Err(DataError::Vocab {
                path: origin.to_path_buf(),
                message: format!(
                    "missing special token(s) {} (a BERT vocabulary needs all of {})",
                    missing.join(" "),
                    SPECIAL_TOKENS.join(" ")
                ),
            });
        }
        let special = SpecialIds {
            pad: index["[PAD]"],
            unk: index["[UNK]"],
            cls: index["[CLS]"],
            sep: index["[SEP]"],
            mask: index["[MASK]"],
        };
        let continuation = tokens.iter().map(|t| t.starts_with("##")).collect();
        let hash = vocab_hash(&tokens);
        Ok(Self {
            tokens,
            special,
            continuation,
            hash,
        })
    }

    /// Reads a `vocab.txt` (one token per line, id = line number) as HuggingFace does
    /// (trailing whitespace trimmed); duplicate tokens are refused.
    pub fn read_vocab_txt(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(io_err("reading", path))?;
        let text = String::from_utf8(text).map_err(|e| DataError::Vocab {
            path: path.to_path_buf(),
            message: format!("not UTF-8: {e}"),
        })?;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let token = line.trim_end();
            if let Some(first) = seen.insert(token, i + 1) {
                return Err(DataError::Vocab {
                    path: path.to_path_buf(),
                    message: format!(
                        "line {}: token {token:?} already appears on line {first}",
                        i + 1
                    ),
                });
            }
            tokens.push(token.to_string());
        }
        if tokens.is_empty() {
            return Err(DataError::Vocab {
                path: path.to_path_buf(),
                message: "empty vocabulary".into(),
            });
        }
        Self::from_tokens(tokens, path)
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True for an empty vocabulary (never the case for one that loaded).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token with this id (`[UNK]`-like placeholder for an out-of-range id).
    pub fn token(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or("<?>", |s| s.as_str())
    }

    /// Ordered tokens.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Special ids.
    pub fn special(&self) -> SpecialIds {
        self.special
    }

    /// `continuation()[id]` is true when the token starts with `##` (continues a word).
    pub fn continuation(&self) -> &[bool] {
        &self.continuation
    }

    /// Hash naming this exact ordered token list (see [`vocab_hash`]).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Fails unless the vocabulary fits a model whose embedding table has `vocab_size` rows.
    pub fn check_model_vocab_size(&self, vocab_size: usize, origin: &Path) -> Result<()> {
        if self.len() > vocab_size {
            return Err(DataError::Vocab {
                path: origin.to_path_buf(),
                message: format!(
                    "{} tokens, more than the model's vocab_size {vocab_size}",
                    self.len()
                ),
            });
        }
        Ok(())
    }

    /// `vocab.txt` content (one token per line) that reads back to this vocabulary.
    pub fn to_vocab_txt(&self) -> String {
        let mut s = String::with_capacity(self.tokens.len() * 8);
        for t in &self.tokens {
            s.push_str(t);
            s.push('\n');
        }
        s
    }

    /// Turns ids back into text: `##` pieces are glued to the previous token.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for &id in ids {
            let t = self.token(id);
            if let Some(rest) = t.strip_prefix("##") {
                out.push_str(rest);
            } else {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(t);
            }
        }
        out
    }
}

/// `sha256:<hex>` of the ordered token list, each token followed by `\n` (i.e. of the
/// canonical `vocab.txt`). Two vocabularies with the same tokens in the same order hash alike
/// whether they came from `vocab.txt` or `tokenizer.json`.
pub fn vocab_hash(tokens: &[String]) -> String {
    let mut h = Sha256::new();
    for t in tokens {
        h.update(t.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let mut s = String::from("sha256:");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Where a tokenizer came from, so it can be copied next to the shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerSource {
    /// A `vocab.txt` with these normalisation options.
    VocabTxt {
        /// The file.
        path: PathBuf,
        /// Lowercase before WordPiece.
        lowercase: bool,
    },
    /// A HuggingFace `tokenizer.json` (its own normaliser options apply).
    TokenizerJson {
        /// The file.
        path: PathBuf,
    },
}

/// Options for loading a `vocab.txt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VocabTxtOptions {
    /// Lowercase text first (uncased models).
    pub lowercase: bool,
    /// Strip accents; `None` follows `lowercase`, as HuggingFace's `BertTokenizer` does.
    pub strip_accents: Option<bool>,
}

impl Default for VocabTxtOptions {
    fn default() -> Self {
        Self {
            lowercase: true,
            strip_accents: None,
        }
    }
}

/// The ASCII encoder for a `tokenizer.json` whose pipeline is BERT's: a `BertNormalizer` that
/// cleans text, the `BertPreTokenizer`, WordPiece with `##` continuations, and added tokens that
/// all contain `[` and no whitespace (so a chunk of text that could hold one is left whole to
/// HuggingFace). Any other pipeline gets none and is encoded by HuggingFace alone.
fn bert_pipeline_ascii_encoder(inner: &Tokenizer, vocab: &Vocab) -> Option<AsciiWordPiece> {
    use tokenizers::{ModelWrapper, NormalizerWrapper, PreTokenizerWrapper};
    let Some(NormalizerWrapper::BertNormalizer(normalizer)) = inner.get_normalizer() else {
        return None;
    };
    let Some(PreTokenizerWrapper::BertPreTokenizer(_)) = inner.get_pre_tokenizer() else {
        return None;
    };
    let ModelWrapper::WordPiece(model) = inner.get_model() else {
        return None;
    };
    let added_have_brackets = inner
        .get_added_tokens_decoder()
        .values()
        .all(|t| t.content.contains('[') && !t.content.contains([' ', '\t', '\n', '\r']));
    let unk = vocab.tokens().iter().position(|t| *t == model.unk_token)?;
    (normalizer.clean_text && model.continuing_subword_prefix == "##" && added_have_brackets).then(
        || {
            AsciiWordPiece::new(
                vocab.tokens(),
                unk as u32,
                normalizer.lowercase,
                model.max_input_chars_per_word,
            )
        },
    )
}

/// A WordPiece tokenizer with its vocabulary.
#[derive(Clone)]
pub struct WordPieceTokenizer {
    inner: Tokenizer,
    vocab: Vocab,
    source: TokenizerSource,
    /// Special ids that must never come out of text (they would break the instance layout).
    reserved: [u32; 4],
    /// The same encoding without Unicode tables for ASCII text; only for tokenizers whose
    /// pipeline is known to be BERT's (built from a `vocab.txt`, or a `tokenizer.json` that
    /// [`bert_pipeline_ascii_encoder`] accepts).
    ascii: Option<AsciiWordPiece>,
}

impl std::fmt::Debug for WordPieceTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordPieceTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab.len())
            .field("vocab_hash", &self.vocab.hash())
            .finish()
    }
}

impl WordPieceTokenizer {
    /// Loads `tokenizer.json` if the file name ends in `.json`, otherwise a `vocab.txt` with
    /// `options`.
    pub fn from_path(path: &Path, options: VocabTxtOptions) -> Result<Self> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::from_tokenizer_json(path)
        } else {
            Self::from_vocab_txt(path, options)
        }
    }

    /// The BERT tokenizer HuggingFace's `BertTokenizerFast` builds from a `vocab.txt`: BERT
    /// normaliser (clean text, CJK spacing, lowercase/strip accents as given), BERT
    /// pre-tokeniser, WordPiece with `##` continuations, `[UNK]`, 100 chars per word at most.
    pub fn from_vocab_txt(path: &Path, options: VocabTxtOptions) -> Result<Self> {
        let vocab = Vocab::read_vocab_txt(path)?;
        // Duplicates were refused above, so HuggingFace's own reader gives the same mapping.
        let map = WordPiece::read_bytes(vocab.to_vocab_txt().as_bytes()).map_err(|e| {
            DataError::Vocab {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        let model = WordPiece::builder()
            .vocab(map)
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(MAX_CHARS_PER_WORD)
            .build()
            .map_err(|e| DataError::Vocab {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(
                true,
                true,
                options.strip_accents,
                options.lowercase,
            )))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            // Only used when special tokens are requested (HuggingFace's `AutoTokenizer` on an
            // exported folder); our own encoding never adds them.
            .with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), vocab.special().sep),
                ("[CLS]".into(), vocab.special().cls),
            )))
            .with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
        let specials: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .map(|t| AddedToken::from(*t, true))
            .collect();
        inner.add_special_tokens(&specials);
        let ascii = AsciiWordPiece::new(
            vocab.tokens(),
            vocab.special().unk,
            options.lowercase,
            MAX_CHARS_PER_WORD,
        );
        Ok(Self::assemble(
            inner,
            vocab,
            TokenizerSource::VocabTxt {
                path: path.to_path_buf(),
                lowercase: options.lowercase,
            },
            Some(ascii),
        ))
    }

    /// Loads a HuggingFace `tokenizer.json`, switching off any padding and truncation it
    /// carries (published files often pad/truncate to 128, which would corrupt instances).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(DataError::Vocab {
                path: path.to_path_buf(),
                message: "no such file".into(),
            });
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| DataError::Vocab {
            path: path.to_path_buf(),
            message: format!("cannot load tokenizer.json: {e}"),
        })?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| DataError::Vocab {
            path: path.to_path_buf(),
            message: format!("cannot switch off truncation: {e}"),
        })?;
        let size = inner.get_vocab_size(true);
        let mut tokens = Vec::with_capacity(size);
        for id in 0..size as u32 {
            match inner.id_to_token(id) {
                Some(t) => tokens.push(t),
                None => {
                    return Err(DataError::Vocab {
                        path: path.to_path_buf(),
                        message: format!(
                            "ids are not contiguous: no token has id {id} (vocabulary size {size})"
                        ),
                    })
                }
            }
        }
        let vocab = Vocab::from_tokens(tokens, path)?;
        let ascii = bert_pipeline_ascii_encoder(&inner, &vocab);
        Ok(Self::assemble(
            inner,
            vocab,
            TokenizerSource::TokenizerJson {
                path: path.to_path_buf(),
            },
            ascii,
        ))
    }

    fn assemble(
        inner: Tokenizer,
        vocab: Vocab,
        source: TokenizerSource,
        ascii: Option<AsciiWordPiece>,
    ) -> Self {
        let s = vocab.special();
        Self {
            inner,
            reserved: [s.pad, s.cls, s.sep, s.mask],
            vocab,
            source,
            ascii,
        }
    }

    /// Ids of `text` without special tokens. Structural specials (`[CLS]`, `[SEP]`, `[PAD]`,
    /// `[MASK]`) that appear literally in the text are dropped: they would break the
    /// `[CLS] A [SEP] B [SEP]` layout and the masking statistics.
    ///
    /// With BERT's pipeline ([`WordPieceTokenizer::uses_ascii_encoder`]) ASCII text is encoded
    /// without HuggingFace's Unicode tables ([`AsciiWordPiece`]), with the same ids as
    /// [`WordPieceTokenizer::encode_hf`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let Some(ascii) = &self.ascii else {
            return self.encode_hf(text);
        };
        let mut ids = Vec::with_capacity(text.len() / 4 + 1);
        ascii.encode(text, &mut ids, |chunk, ids| {
            let enc = self
                .inner
                .encode_fast(chunk, false)
                .map_err(|e| DataError::Tokenizer(e.to_string()))?;
            ids.extend_from_slice(enc.get_ids());
            Ok::<(), DataError>(())
        })?;
        ids.retain(|id| !self.reserved.contains(id));
        Ok(ids)
    }

    /// [`WordPieceTokenizer::encode`] through HuggingFace's tokenizer alone, whatever the text:
    /// the reference the ASCII encoder is checked against.
    pub fn encode_hf(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Ok(enc
            .get_ids()
            .iter()
            .copied()
            .filter(|id| !self.reserved.contains(id))
            .collect())
    }

    /// Ids exactly as HuggingFace gives them for `text` (no special tokens added, nothing
    /// filtered): for parity checks.
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// True when ASCII text is encoded by [`AsciiWordPiece`] (a `vocab.txt`, or a
    /// `tokenizer.json` with BERT's pipeline), false when HuggingFace encodes everything.
    pub fn uses_ascii_encoder(&self) -> bool {
        self.ascii.is_some()
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Where this tokenizer was loaded from.
    pub fn source(&self) -> &TokenizerSource {
        &self.source
    }

    /// The underlying HuggingFace tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_vocab(dir: &Path, tokens: &[&str]) -> PathBuf {
        let p = dir.join("vocab.txt");
        std::fs::write(&p, tokens.join("\n") + "\n").unwrap();
        p
    }

    #[test]
    fn refuses_vocab_without_specials() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_vocab(dir.path(), &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]);
        let err = Vocab::read_vocab_txt(&p).unwrap_err().to_string();
        assert!(err.contains("[MASK]") && err.contains("vocab.txt"), "{err}");
    }

    #[test]
    fn refuses_duplicates_and_oversize() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_vocab(
            dir.path(),
            &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "a"],
        );
        let err = Vocab::read_vocab_txt(&p).unwrap_err().to_string();
        assert!(err.contains("line 7"), "{err}");
        let p = write_vocab(
            dir.path(),
            &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"],
        );
        let v = Vocab::read_vocab_txt(&p).unwrap();
        assert!(v.check_model_vocab_size(6, &p).is_ok());
        let err = v.check_model_vocab_size(5, &p).unwrap_err().to_string();
        assert!(err.contains("more than the model's vocab_size 5"), "{err}");
    }

    #[test]
    fn encodes_with_wordpiece_and_drops_structural_specials() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_vocab(
            dir.path(),
            &[
                "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "play", "##ing",
                ".",
            ],
        );
        let tok = WordPieceTokenizer::from_vocab_txt(&p, VocabTxtOptions::default()).unwrap();
        assert_eq!(
            tok.encode("Hello playing world.").unwrap(),
            vec![5, 7, 8, 6, 9]
        );
        assert_eq!(tok.encode("hello [SEP] xyz").unwrap(), vec![5, 1]);
        assert_eq!(tok.vocab().decode(&[5, 7, 8]), "hello playing");
        assert!(tok.vocab().continuation()[8]);
        assert_eq!(tok.vocab().hash(), vocab_hash(tok.vocab().tokens()));
    }

    /// Every BERT normalisation and pre-tokenisation case of ASCII text, and text the ASCII
    /// encoder hands to HuggingFace, against HuggingFace alone; cased and uncased.
    #[test]
    fn ascii_encoder_gives_huggingface_ids() {
        let vocab = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-vocab.txt");
        let long = "a".repeat(100);
        let longer = "b".repeat(101);
        let texts = [
            "",
            "   \t\n ",
            "Hello, World! The clock-maker's ledger (1887) cost $5+3=8.",
            "tabs\tand\nnewlines\r\nand  double  spaces",
            "control\u{1}chars\u{7f}vanish\u{0b}here\u{0c}too\u{0}",
            "punctuation!!!...???;:'\"`~@#%^&*_={}|\\/<>",
            "UPPER lower MiXeD qwxzjq zzzzzzzz unknownable-words",
            long.as_str(),
            longer.as_str(),
            "[MASK] masked [SEP] x[CLS]y [unused] [ bracket",
            "caf\u{e9} na\u{ef}ve \u{2014} \u{201c}quoted\u{201d} it\u{2019}s \u{4e2d}\u{6587} ok",
            "non\u{a0}breaking space and \u{fffd} replacement",
        ];
        for lowercase in [true, false] {
            let options = VocabTxtOptions {
                lowercase,
                strip_accents: None,
            };
            let tok = WordPieceTokenizer::from_vocab_txt(&vocab, options).unwrap();
            for text in texts {
                assert_eq!(
                    tok.encode(text).unwrap(),
                    tok.encode_hf(text).unwrap(),
                    "lowercase {lowercase}: {text:?}"
                );
            }
        }
    }

    /// A `tokenizer.json` with BERT's pipeline gets the ASCII encoder, with the same ids; one
    /// with another normaliser does not.
    #[test]
    fn tokenizer_json_with_the_bert_pipeline_uses_the_ascii_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let vocab = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-vocab.txt");
        let text = "The clock-maker's LEDGER, 1887: caf\u{e9} [MASK] ok\u{1}.";
        for lowercase in [true, false] {
            let options = VocabTxtOptions {
                lowercase,
                strip_accents: None,
            };
            let from_txt = WordPieceTokenizer::from_vocab_txt(&vocab, options).unwrap();
            let json = dir.path().join(format!("tokenizer-{lowercase}.json"));
            from_txt.inner().save(&json, false).unwrap();
            let tok = WordPieceTokenizer::from_tokenizer_json(&json).unwrap();
            assert!(tok.ascii.is_some(), "lowercase {lowercase}");
            assert_eq!(tok.encode(text).unwrap(), tok.encode_hf(text).unwrap());
            assert_eq!(tok.encode(text).unwrap(), from_txt.encode(text).unwrap());
        }
        let mut other = WordPieceTokenizer::from_vocab_txt(&vocab, VocabTxtOptions::default())
            .unwrap()
            .inner
            .clone();
        other.with_normalizer(Some(tokenizers::normalizers::Lowercase));
        let json = dir.path().join("other.json");
        other.save(&json, false).unwrap();
        let tok = WordPieceTokenizer::from_tokenizer_json(&json).unwrap();
        assert!(tok.ascii.is_none());
    }
}
