//! Fill-mask: the most probable tokens for each `[MASK]` of a sentence.
//!
//! It lives in the training crate, not in `bert-model::inference` next to
//! [`bert_model::fill_mask`], because it needs all three of the other crates' parts: the
//! tokenizer saved beside the model (`bert-data`), the model (`bert-model`) and the checksum
//! check of this project's checkpoints ([`crate::checkpoint::load_model_verified`]); the model
//! crate depends on neither of the other two. `bert fill-mask` and the sentences `bert train`
//! fills after exporting (`eval.fill_mask`) both call it.

use std::path::Path;

use bert_data::tokenizer::{VocabTxtOptions, WordPieceTokenizer};
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

/// The top `top_k` candidates for each `[MASK]` of `text`, in order, with the model and
/// tokenizer of `model_dir` (an export or a checkpoint), on `device` (the CLI uses the CPU: one
/// sentence needs no accelerator). `cased` keeps case for a cased `vocab.txt`.
pub fn predict_masks<B: Backend>(
    model_dir: &Path,
    text: &str,
    top_k: usize,
    cased: bool,
    device: &B::Device,
) -> Result<Vec<Candidates>> {
    let tokenizer = model_tokenizer(model_dir, cased)?;
    let special = tokenizer.vocab().special();
    let pieces: Vec<&str> = text.split("[MASK]").collect();
    if pieces.len() < 2 {
        return Err(TrainError::FillMask(
            "the text has no `[MASK]`: write e.g. \"the cat [MASK] on the mat\"".into(),
        ));
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
    let (config, model, _) = load_model_verified::<B>(model_dir, 0, device)?;
    let predictions = bert_model::fill_mask(&model, &config, &ids, &positions, top_k, device)?;
    let vocab = tokenizer.vocab();
    Ok(predictions
        .iter()
        .map(|cands| {
            cands
                .iter()
                .map(|p| (vocab.token(p.id).to_string(), p.probability))
                .collect()
        })
        .collect())
}
