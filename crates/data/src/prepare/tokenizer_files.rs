//! The tokenizer files written beside the shards (and copied into checkpoints and exports).

use std::path::Path;

use crate::error::{DataError, Result};
use crate::tokenizer::{TokenizerSource, WordPieceTokenizer};
use bert_fsutil::write_atomic;

/// Writes the tokenizer as HuggingFace expects it beside a model into `dir`: `vocab.txt`,
/// `tokenizer.json` (padding and truncation off), `tokenizer_config.json` and
/// `special_tokens_map.json`. Checkpoints and exports copy these files, so an exported folder
/// loads with `AutoTokenizer.from_pretrained`.
pub(super) fn write_tokenizer_files(dir: &Path, tokenizer: &WordPieceTokenizer) -> Result<()> {
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
