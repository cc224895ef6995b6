//! Fill-mask: the most probable tokens for each `[MASK]` of a sentence.
//!
//! It lives in the training crate, not in `bert-model::inference` next to
//! [`bert_model::fill_mask`], because it needs all three of the other crates' parts: the
//! tokenizer saved beside the model (`bert-data`), the model (`bert-model`) and the checksum
//! check of this project's checkpoints ([`crate::checkpoint::load_model_verified`]); the model
//! crate depends on neither of the other two. `bert fill-mask`, and `bert train` with
//! `eval.fill_mask` (at every evaluation and after exporting), both use it.

use std::path::Path;

use bert_data::{VocabTxtOptions, WordPieceTokenizer};
use bert_model::{BertConfig, BertForPreTraining};
use burn::tensor::backend::Backend;

use crate::checkpoint::load_model_verified;
use crate::error::{Result, TrainError};

/// The candidates for one `[MASK]`, most probable first: `(token, probability)`.
pub type Candidates = Vec<(String, f32)>;

/// The tokenizer saved beside a model: `tokenizer.json` (which carries its own normaliser),
/// else `vocab.txt`, uncased unless `cased`.
fn model_tokenizer(model_dir: &Path, cased: bool) -> Result<WordPieceTokenizer> {
    let json = model_dir.join("tokenizer.json");
    let txt = model_dir.join("vocab.txt");
    if json.is_file() {
        Ok(WordPieceTokenizer::from_tokenizer_json(&json)?)
    } else if txt.is_file() {
        Ok(WordPieceTokenizer::from_vocab_txt(
            &txt,
            VocabTxtOptions {
                lowercase: !cased,
                strip_accents: None,
            },
        )?)
    } else {
        Err(TrainError::FillMask(format!(
            "`{}` has no tokenizer.json or vocab.txt; fill-mask needs the tokenizer the model was trained with \
             (`bert export` copies it into the exported folder)",
            model_dir.display()
        )))
    }
}

/// Sentences with `[MASK]`, encoded once with a model's tokenizer, whose masks can be filled by
/// any model with that vocabulary: `bert fill-mask` loads a model and fills them, and the step
/// loop fills `eval.fill_mask` with the model being trained at every evaluation.
pub struct MaskProbes {
    tokenizer: WordPieceTokenizer,
    /// Each sentence with its ids (`[CLS] … [SEP]`) and the positions of its masks.
    sentences: Vec<(String, Vec<i64>, Vec<usize>)>,
}

impl MaskProbes {
    /// Encodes `texts` with the tokenizer in `tokenizer_dir` (`tokenizer.json`, else
    /// `vocab.txt`, uncased unless `cased`). A text without `[MASK]` is an error naming it.
    pub fn new(tokenizer_dir: &Path, texts: &[String], cased: bool) -> Result<Self> {
        let tokenizer = model_tokenizer(tokenizer_dir, cased)?;
        let special = tokenizer.vocab().special();
        let mut sentences = Vec::with_capacity(texts.len());
        for text in texts {
            let pieces: Vec<&str> = text.split("[MASK]").collect();
            if pieces.len() < 2 {
                return Err(TrainError::FillMask(format!(
                    "\"{text}\" has no `[MASK]`: write e.g. \"the cat [MASK] on the mat\""
                )));
            }
            let mut ids: Vec<i64> = vec![i64::from(special.cls)];
            let mut positions = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    positions.push(ids.len());
                    ids.push(i64::from(special.mask));
                }
                ids.extend(tokenizer.encode(piece)?.into_iter().map(i64::from));
            }
            ids.push(i64::from(special.sep));
            sentences.push((text.clone(), ids, positions));
        }
        Ok(Self {
            tokenizer,
            sentences,
        })
    }

    /// The top `top_k` candidates for each mask of each sentence, in order, from `model`
    /// (whose vocabulary must be the tokenizer's): `(sentence, candidates per mask)`.
    pub fn fill<B: Backend>(
        &self,
        model: &BertForPreTraining<B>,
        config: &BertConfig,
        top_k: usize,
        device: &B::Device,
    ) -> Result<Vec<(&str, Vec<Candidates>)>> {
        let vocab = self.tokenizer.vocab();
        self.sentences
            .iter()
            .map(|(text, ids, positions)| {
                let predictions =
                    bert_model::fill_mask(model, config, ids, positions, top_k, device)?;
                let named = predictions
                    .iter()
                    .map(|cands| {
                        cands
                            .iter()
                            .map(|p| (vocab.token(p.id).to_string(), p.probability))
                            .collect()
                    })
                    .collect();
                Ok((text.as_str(), named))
            })
            .collect()
    }
}

/// One line for the candidates of a sentence's masks: `tok (0.41), tok (0.20) | …`.
pub fn format_candidates(masks: &[Candidates]) -> String {
    masks
        .iter()
        .map(|c| {
            c.iter()
                .map(|(t, p)| format!("{t} ({p:.2})"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The top `top_k` candidates for each `[MASK]` of each of `texts`, with the model and
/// tokenizer of `model_dir` (an export or a checkpoint), loaded once, on `device` (the CLI uses
/// the CPU: a few sentences need no accelerator). `cased` keeps case for a cased `vocab.txt`.
pub fn predict_masks<B: Backend>(
    model_dir: &Path,
    texts: &[String],
    top_k: usize,
    cased: bool,
    device: &B::Device,
) -> Result<Vec<Vec<Candidates>>> {
    let probes = MaskProbes::new(model_dir, texts, cased)?;
    let (config, model, _) = load_model_verified::<B>(model_dir, 0, device)?;
    Ok(probes
        .fill(&model, &config, top_k, device)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::Flex;

    /// A folder with an 11-entry `vocab.txt`, and a matching model of 8 positions.
    fn setup() -> (tempfile::TempDir, BertConfig, BertForPreTraining<B>) {
        let dir = tempfile::tempdir().unwrap();
        let words = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\n.\n";
        std::fs::write(dir.path().join("vocab.txt"), words).unwrap();
        let config = bert_testutil::small_bert_config(11, 8);
        let model = BertForPreTraining::<B>::new(&config, 3, &Default::default());
        (dir, config, model)
    }

    #[test]
    fn probes_are_encoded_once_and_filled_by_any_model_of_the_vocabulary() {
        let (dir, config, model) = setup();
        let texts = vec![
            "the [MASK] sat .".to_string(),
            "[MASK] on the [MASK]".to_string(),
        ];
        let probes = MaskProbes::new(dir.path(), &texts, false).unwrap();
        let filled = probes
            .fill(&model, &config, 3, &Default::default())
            .unwrap();
        assert_eq!(filled.len(), 2);
        assert_eq!(filled[0].0, "the [MASK] sat .");
        let masks: Vec<usize> = filled.iter().map(|(_, m)| m.len()).collect();
        assert_eq!(masks, [1, 2]);
        for (_, m) in &filled {
            for cands in m {
                assert_eq!(cands.len(), 3);
                assert!(cands.windows(2).all(|w| w[0].1 >= w[1].1), "{cands:?}");
            }
        }
        let line = format_candidates(&filled[1].1);
        assert_eq!(line.matches(" | ").count(), 1, "{line}");
    }

    #[test]
    fn a_text_without_a_mask_or_longer_than_the_model_is_an_error() {
        let (dir, config, model) = setup();
        let err = MaskProbes::new(dir.path(), &["the cat sat".to_string()], false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("\"the cat sat\" has no `[MASK]`"), "{err}");
        // 10 tokens with [CLS] and [SEP], against 8 positions.
        let long = vec!["the cat sat on the mat the [MASK]".to_string()];
        let probes = MaskProbes::new(dir.path(), &long, false).unwrap();
        assert!(probes
            .fill(&model, &config, 3, &Default::default())
            .is_err());
    }
}
