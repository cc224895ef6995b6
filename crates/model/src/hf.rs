//! HuggingFace folders: import (`config.json` + `model.safetensors`) and export.
//!
//! This project's own checkpoints store the model the same way (HuggingFace names and
//! layout), so every model folder, ours or theirs, loads through [`load_model_dir`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::config::BertConfig;
use crate::error::{ModelError, Result};
use crate::model::BertForPreTraining;
use crate::params::{HostTensor, ParamGroup, ParamKind};
use bert_fsutil::{create_dir_all, write_atomic};

/// Name of the weights file inside a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Name of the sharded-weights index some published folders use instead.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
/// Name of the config file inside a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Tokenizer files carried along with a model folder when present.
pub const TOKENIZER_FILES: [&str; 4] = [
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// How the names in an imported weight file were laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceLayout {
    /// `bert.…` and `cls.…` names (`BertForPreTraining`, `BertForMaskedLM`, …).
    PreTraining,
    /// Bare `BertModel` names (`embeddings.…`, `encoder.…`, `pooler.…`), no heads.
    BaseModel,
}

/// What an import found, for telling the user.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Name layout of the source file.
    pub layout: SourceLayout,
    /// Parts that were absent from the file and were freshly initialised from the seed.
    pub initialized: Vec<ParamGroup>,
    /// Tensors in the file that belong to no part of this model (other heads), ignored.
    pub ignored: Vec<String>,
}

/// An f32 tensor read from a weight file.
pub(crate) struct Loaded {
    /// Shape as stored (HuggingFace layout).
    pub(crate) shape: Vec<usize>,
    /// Row-major values.
    pub(crate) values: Vec<f32>,
}

fn to_f32(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let chunks = |n: usize| bytes.chunks_exact(n);
    Ok(match dtype {
        Dtype::F32 => chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => chunks(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => chunks(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        other => {
            return Err(ModelError::UnsupportedDtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ModelError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every floating-point tensor of one safetensors file; integer buffers are skipped.
fn read_safetensors(path: &Path, out: &mut HashMap<String, Loaded>) -> Result<()> {
    let bytes = read_file(path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    for (name, view) in st.tensors() {
        if matches!(
            view.dtype(),
            Dtype::I64 | Dtype::I32 | Dtype::U8 | Dtype::BOOL
        ) {
            continue; // buffers such as `embeddings.position_ids`
        }
        let values = to_f32(path, &name, view.dtype(), view.data())?;
        out.insert(
            name,
            Loaded {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(())
}

/// Reads `model.safetensors`, or the shards listed by `model.safetensors.index.json`.
pub(crate) fn read_weights(dir: &Path) -> Result<(PathBuf, HashMap<String, Loaded>)> {
    let mut tensors = HashMap::new();
    let single = dir.join(WEIGHTS_FILE);
    if single.is_file() {
        read_safetensors(&single, &mut tensors)?;
        return Ok((single, tensors));
    }
    let index = dir.join(WEIGHTS_INDEX_FILE);
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|source| ModelError::Io {
            action: "reading",
            path: index.clone(),
            source,
        })?;
        let parsed: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::Json {
                path: index.clone(),
                what: "safetensors index",
                message: e.to_string(),
            })?;
        let shards: BTreeSet<String> = parsed
            .get("weight_map")
            .and_then(|m| m.as_object())
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if shards.is_empty() {
            return Err(ModelError::Json {
                path: index,
                what: "safetensors index",
                message: "no `weight_map` entries".into(),
            });
        }
        for shard in shards {
            read_safetensors(&dir.join(shard), &mut tensors)?;
        }
        return Ok((index, tensors));
    }
    let hint = if dir.join("pytorch_model.bin").is_file() {
        "it has only `pytorch_model.bin`; convert it to safetensors first (e.g. load it in transformers and `save_pretrained(dir, safe_serialization=True)`)"
    } else {
        "expected `model.safetensors` (or a sharded `model.safetensors.index.json`)"
    };
    Err(ModelError::NotAModelDir {
        path: dir.to_path_buf(),
        message: hint.into(),
    })
}

/// Names under which a file may store the parameter HuggingFace calls `hf_name`.
fn candidate_names(hf_name: &str, layout: SourceLayout) -> Vec<String> {
    let base = match layout {
        SourceLayout::PreTraining => hf_name.to_string(),
        SourceLayout::BaseModel => hf_name.strip_prefix("bert.").unwrap_or(hf_name).to_string(),
    };
    let mut names = vec![base.clone()];
    // Checkpoints converted from the original TensorFlow code name LayerNorm gamma/beta.
    if base.contains("LayerNorm.") {
        names.push(
            base.replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta"),
        );
    }
    if base == "cls.predictions.bias" {
        names.push("cls.predictions.decoder.bias".into());
    }
    names
}

/// True for names a file may carry that we knowingly do not load.
fn is_known_extra(name: &str) -> bool {
    name.ends_with("position_ids")
        || name == "cls.predictions.decoder.weight"
        || name == "cls.predictions.decoder.bias"
}

/// True for names that belong to the BERT encoder itself: if we don't know one, the file is a
/// different architecture and loading it would silently drop weights.
fn is_encoder_name(name: &str, layout: SourceLayout) -> bool {
    match layout {
        SourceLayout::PreTraining => name.starts_with("bert."),
        SourceLayout::BaseModel => ["embeddings.", "encoder.", "pooler."]
            .iter()
            .any(|p| name.starts_with(p)),
    }
}

pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Loads a model folder (HuggingFace or one of this project's checkpoints) onto `device`.
/// Heads missing from the file are initialised from `seed` and listed in the report.
pub fn load_model_dir<B: Backend>(
    dir: &Path,
    seed: u64,
    device: &B::Device,
) -> Result<(BertConfig, BertForPreTraining<B>, LoadReport)> {
    let (config, _) = read_model_config(dir)?;
    let (weights_path, tensors) = read_weights(dir)?;
    let (model, report) = model_from_tensors::<B>(
        &config,
        &weights_path,
        tensors,
        seed,
        device,
        Architecture::ForPreTraining,
    )?;
    Ok((config, model, report))
}

/// The `config.json` of model folder `dir`, parsed and as raw JSON (for the keys a head reads
/// beyond the encoder's).
pub(crate) fn read_model_config(dir: &Path) -> Result<(BertConfig, serde_json::Value)> {
    if !dir.is_dir() {
        return Err(ModelError::NotAModelDir {
            path: dir.to_path_buf(),
            message: "no such directory".into(),
        });
    }
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(ModelError::NotAModelDir {
            path: dir.to_path_buf(),
            message: format!("no `{CONFIG_FILE}`"),
        });
    }
    let config = BertConfig::load(&config_path)?;
    let text = std::fs::read_to_string(&config_path).map_err(|source| ModelError::Io {
        action: "reading",
        path: config_path.clone(),
        source,
    })?;
    let raw = serde_json::from_str(&text).map_err(|e| ModelError::Json {
        path: config_path,
        what: "model config",
        message: e.to_string(),
    })?;
    Ok((config, raw))
}

/// The pre-training model from the tensors of a weight file (`path` names it in messages).
/// Parts `target` holds that the file lacks are initialised from `seed` and reported; the others
/// (the pre-training heads, when the target is a classifier) are initialised silently.
pub(crate) fn model_from_tensors<B: Backend>(
    config: &BertConfig,
    path: &Path,
    mut tensors: HashMap<String, Loaded>,
    seed: u64,
    device: &B::Device,
    target: Architecture,
) -> Result<(BertForPreTraining<B>, LoadReport)> {
    let layout = if tensors.keys().any(|k| k.starts_with("bert.")) {
        SourceLayout::PreTraining
    } else {
        SourceLayout::BaseModel
    };
    let mut model = BertForPreTraining::<B>::new(config, seed, device);
    let mut initialized = BTreeSet::new();
    let mut used = BTreeSet::new();
    for row in model.named_params_mut() {
        let found = candidate_names(&row.hf_name, layout)
            .into_iter()
            .find(|n| tensors.contains_key(n));
        let Some(name) = found else {
            if row.group == ParamGroup::Encoder {
                return Err(ModelError::MissingTensor {
                    path: path.to_path_buf(),
                    name: row.hf_name,
                });
            }
            if target.holds(row.group) {
                initialized.insert(row.group);
            }
            continue;
        };
        let loaded = tensors.remove(&name).expect("name was found just above");
        used.insert(name.clone());
        let mut param = row.param;
        let dims = param.dims();
        let values = if row.kind == ParamKind::LinearWeight {
            // File is [out, in]; Burn wants [in, out].
            let (rows, cols) = (dims[0], dims[1]);
            check_shape(path, &name, &[cols, rows], &loaded.shape)?;
            transpose(&loaded.values, cols, rows)
        } else {
            check_shape(path, &name, &dims, &loaded.shape)?;
            loaded.values
        };
        let n = values.len();
        param.set_flat(Tensor::<B, 1>::from_data(
            TensorData::new(values, [n]),
            device,
        ));
    }
    if let Some(decoder) = tensors.get("cls.predictions.decoder.weight") {
        let word: Vec<f32> =
            crate::host::host_values(model.word_embeddings(), "the word embeddings")?;
        let max_diff = decoder
            .values
            .iter()
            .zip(&word)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        if decoder.values.len() != word.len() || max_diff > 1e-6 {
            tracing::warn!(
                "`{}`: cls.predictions.decoder.weight differs from the word embeddings (max |diff| {max_diff}); \
                 this model ties them, so the word embeddings are used for both",
                path.display()
            );
        }
    }
    let unknown: Vec<String> = tensors
        .keys()
        .filter(|k| !is_known_extra(k))
        .cloned()
        .collect();
    let (foreign_encoder, ignored): (Vec<String>, Vec<String>) = unknown
        .into_iter()
        .partition(|k| is_encoder_name(k, layout));
    if !foreign_encoder.is_empty() {
        let mut names = foreign_encoder;
        names.sort();
        return Err(ModelError::UnexpectedTensors {
            path: path.to_path_buf(),
            names: names.join(", "),
        });
    }
    let mut ignored = ignored;
    ignored.sort();
    let initialized: Vec<ParamGroup> = initialized.into_iter().collect();
    if !initialized.is_empty() {
        tracing::warn!(
            "`{}` has no weights for {:?}: freshly initialised from the seed (normal for a plain BertModel, and for the pooler and NSP head of a BertForMaskedLM)",
            path.display(),
            initialized
        );
    }
    if !ignored.is_empty() {
        tracing::warn!(
            "`{}`: ignoring tensors that are not part of {}: {}",
            path.display(),
            target.hf_name(),
            ignored.join(", ")
        );
    }
    Ok((
        model,
        LoadReport {
            layout,
            initialized,
            ignored,
        },
    ))
}

pub(crate) fn check_shape(
    path: &Path,
    name: &str,
    expected: &[usize],
    found: &[usize],
) -> Result<()> {
    if expected != found {
        return Err(ModelError::ShapeMismatch {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        });
    }
    Ok(())
}

/// The HuggingFace class an exported folder is written for: it decides which heads the weight
/// file holds and the `architectures` entry of `config.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Architecture {
    /// `BertForPreTraining`: encoder, pooler, MLM head and the sentence-level head (NSP, or
    /// ALBERT's SOP in the same shape).
    #[default]
    ForPreTraining,
    /// `BertForMaskedLM`: encoder and MLM head only, as MLM-only (RoBERTa-style) training
    /// leaves the model: no pooler and no NSP head, which that training never updates.
    ForMaskedLm,
    /// `BertForSequenceClassification`: encoder, pooler and the fine-tuned `classifier` head
    /// (written by [`crate::save_classifier_dir`], not by [`save_model_dir_as`]).
    ForSequenceClassification,
}

impl Architecture {
    /// The class name `transformers` reads from `config.json`'s `architectures`.
    pub fn hf_name(self) -> &'static str {
        match self {
            Architecture::ForPreTraining => "BertForPreTraining",
            Architecture::ForMaskedLm => "BertForMaskedLM",
            Architecture::ForSequenceClassification => "BertForSequenceClassification",
        }
    }

    /// Whether the weight file of this class holds the parameters of `group`.
    pub fn holds(self, group: ParamGroup) -> bool {
        match self {
            Architecture::ForPreTraining => group != ParamGroup::Classifier,
            Architecture::ForMaskedLm => matches!(group, ParamGroup::Encoder | ParamGroup::MlmHead),
            Architecture::ForSequenceClassification => matches!(
                group,
                ParamGroup::Encoder | ParamGroup::Pooler | ParamGroup::Classifier
            ),
        }
    }
}

/// Serialises the weights `architecture` holds (HuggingFace names and layout) to safetensors
/// bytes.
pub fn weights_to_safetensors_as<B: Backend>(
    model: &BertForPreTraining<B>,
    architecture: Architecture,
) -> Result<Vec<u8>> {
    host_tensors_to_safetensors(model.to_host_tensors_where(|group| architecture.holds(group))?)
}

/// Serialises host tensors (HuggingFace names and layout) to safetensors bytes with the
/// metadata `transformers` requires.
pub(crate) fn host_tensors_to_safetensors(host: Vec<HostTensor>) -> Result<Vec<u8>> {
    let mut views: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for t in host {
        let bytes: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        views.insert(t.name, (t.shape, bytes));
    }
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = views
        .iter()
        .map(|(name, (shape, bytes))| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .expect("shape and byte length agree by construction");
            (name.clone(), view)
        })
        .collect();
    // transformers refuses safetensors files without `format: pt` metadata.
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize(tensors, &Some(metadata)).map_err(|e| ModelError::Safetensors {
        path: PathBuf::from(WEIGHTS_FILE),
        message: e.to_string(),
    })
}

/// Writes a folder that `transformers.BertForPreTraining.from_pretrained` loads:
/// `config.json` and `model.safetensors`, each written atomically. Tokenizer files found in
/// `tokenizer_dir` (if given) are copied alongside.
pub fn save_model_dir<B: Backend>(
    model: &BertForPreTraining<B>,
    config: &BertConfig,
    dir: &Path,
    tokenizer_dir: Option<&Path>,
) -> Result<()> {
    save_model_dir_as(
        model,
        config,
        dir,
        tokenizer_dir,
        Architecture::ForPreTraining,
    )
}

/// [`save_model_dir`] for the class `architecture`: its heads only, and its name in
/// `config.json`, so `AutoModelForMaskedLM` and `pipeline("fill-mask")` load an MLM-only export
/// without unused weights.
pub fn save_model_dir_as<B: Backend>(
    model: &BertForPreTraining<B>,
    config: &BertConfig,
    dir: &Path,
    tokenizer_dir: Option<&Path>,
    architecture: Architecture,
) -> Result<()> {
    if architecture == Architecture::ForSequenceClassification {
        return Err(ModelError::WrongExport {
            architecture: architecture.hf_name(),
            use_instead: "save_classifier_dir",
        });
    }
    create_dir_all(dir)?;
    write_atomic(
        &dir.join(WEIGHTS_FILE),
        &weights_to_safetensors_as(model, architecture)?,
    )?;
    let mut config_json = config.to_hf_json();
    config_json["architectures"] = serde_json::json!([architecture.hf_name()]);
    let text = serde_json::to_string_pretty(&config_json).expect("JSON values always serialise");
    write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())?;
    if let Some(src) = tokenizer_dir {
        copy_tokenizer_files(src, dir)?;
    }
    Ok(())
}

/// Copies the tokenizer files present in `from` into `to` (atomically each).
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<usize> {
    let mut copied = 0;
    for name in TOKENIZER_FILES {
        let src = from.join(name);
        if src.is_file() && from != to {
            let bytes = read_file(&src)?;
            write_atomic(&to.join(name), &bytes)?;
            copied += 1;
        }
    }
    Ok(copied)
}
