//! Subcommands: argument parsing and wiring to the library crates.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bert_model::{load_model_dir, save_model_dir, ForwardInputs};
use burn::tensor::backend::Backend;
use clap::Args;

use crate::device::{dispatch, BackendTask, DeviceSpec};

/// `bert forward`: run the model on a JSON batch and write its outputs as JSON.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  bert forward --model runs/quickstart/export --inputs batch.json --out outputs.json\n\n\
inputs.json: {\"input_ids\": [[101, 7592, 102]], \"token_type_ids\": [[0, 0, 0]], \"attention_mask\": [[1, 1, 1]]}\n\
outputs.json: {\"prediction_logits\", \"seq_relationship_logits\", \"last_hidden_state\", \"pooler_output\"}"
)]
pub struct ForwardArgs {
    /// A HuggingFace folder (config.json + model.safetensors) or one of this project's checkpoints.
    #[arg(long)]
    pub model: PathBuf,
    /// JSON batch: input_ids, and optionally token_type_ids (default 0) and attention_mask (default 1).
    #[arg(long)]
    pub inputs: PathBuf,
    /// Where to write the outputs (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
}

impl BackendTask for &ForwardArgs {
    type Output = ();
    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let text = std::fs::read_to_string(&self.inputs)
            .with_context(|| format!("reading inputs `{}`", self.inputs.display()))?;
        let inputs: ForwardInputs = serde_json::from_str(&text).with_context(|| {
            format!(
                "`{}` is not a valid input batch; expected {{\"input_ids\": [[…]], \"token_type_ids\": [[…]], \"attention_mask\": [[…]]}}",
                self.inputs.display()
            )
        })?;
        let (config, model, _) = load_checked::<B>(&self.model, 0, &device)?;
        let outputs = inputs
            .run(&model, &config, &device)
            .with_context(|| format!("in `{}`", self.inputs.display()))?;
        let json = serde_json::to_vec(&outputs).context("serialising outputs")?;
        bert_model::fsutil::write_atomic(&self.out, &json)?;
        tracing::info!("wrote {}", self.out.display());
        Ok(())
    }
}

/// Runs `bert forward`.
pub fn forward(args: &ForwardArgs) -> Result<()> {
    dispatch(args.device, args)
}

/// `bert export`: write a HuggingFace folder from a checkpoint.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  bert export --checkpoint runs/quickstart/checkpoints/step-000200 --out my-bert\n\n\
Then in Python: transformers.BertForPreTraining.from_pretrained(\"my-bert\")"
)]
pub struct ExportArgs {
    /// A checkpoint directory (or any model folder).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The HuggingFace folder to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `bert import`: turn a HuggingFace folder into a checkpoint to continue pre-training from.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  bert import --hf ./bert-base-uncased --out runs/continued/init"
)]
pub struct ImportArgs {
    /// A HuggingFace folder: config.json + model.safetensors (BertForPreTraining or BertModel names).
    #[arg(long)]
    pub hf: PathBuf,
    /// The checkpoint directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed for heads that the folder lacks (a plain BertModel has no MLM/NSP heads).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Loads a model folder; one of this project's checkpoints has its recorded checksums checked
/// first, so a damaged file is reported as such rather than loaded (a HuggingFace folder
/// records none).
pub fn load_checked<B: Backend>(
    dir: &Path,
    seed: u64,
    device: &B::Device,
) -> Result<(
    bert_model::BertConfig,
    bert_model::BertForPreTraining<B>,
    bert_model::hf::LoadReport,
)> {
    if dir.join(bert_train::checkpoint::STATE_FILE).is_file() {
        bert_train::checkpoint::read_verified_state(dir)?;
    }
    Ok(load_model_dir::<B>(dir, seed, device)?)
}

fn convert(from: &Path, to: &Path, seed: u64) -> Result<()> {
    let device = Default::default();
    let (config, model, report) = load_checked::<burn::backend::Flex>(from, seed, &device)?;
    for group in &report.initialized {
        tracing::warn!(
            "{} not in `{}`: freshly initialised (seed {seed})",
            group.describe(),
            from.display()
        );
    }
    save_model_dir(&model, &config, to, Some(from))?;
    tracing::info!(
        "wrote `{}` ({} layers, hidden {}, vocab {})",
        to.display(),
        config.num_hidden_layers,
        config.hidden_size,
        config.vocab_size
    );
    Ok(())
}

/// Runs `bert export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    convert(&args.checkpoint, &args.out, 0)
}

/// Runs `bert import`.
pub fn import(args: &ImportArgs) -> Result<()> {
    convert(&args.hf, &args.out, args.seed)
}

/// `bert fill-mask`: the most probable tokens for each `[MASK]` of a sentence.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  bert fill-mask --model runs/quickstart/export \"the cat [MASK] on the mat\" --top-k 5"
)]
pub struct FillMaskArgs {
    /// A model folder with its tokenizer (`tokenizer.json` or `vocab.txt`): an export or a checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// The text, with one or more `[MASK]`.
    pub text: String,
    /// Candidates per mask.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep case for a cased `vocab.txt` (ignored with `tokenizer.json`, which says itself).
    #[arg(long)]
    pub cased: bool,
}

/// The top `top_k` candidates `(token, probability)` for each `[MASK]` of `text`, with the model
/// and tokenizer of `model_dir`.
pub fn predict_masks(
    model_dir: &Path,
    text: &str,
    top_k: usize,
    cased: bool,
) -> Result<Vec<Vec<(String, f32)>>> {
    use bert_data::tokenizer::{VocabTxtOptions, WordPieceTokenizer};
    let json = model_dir.join("tokenizer.json");
    let txt = model_dir.join("vocab.txt");
    let tokenizer = if json.is_file() {
        WordPieceTokenizer::from_tokenizer_json(&json)?
    } else if txt.is_file() {
        WordPieceTokenizer::from_vocab_txt(
            &txt,
            VocabTxtOptions {
                lowercase: !cased,
                strip_accents: None,
            },
        )?
    } else {
        anyhow::bail!(
            "`{}` has no tokenizer.json or vocab.txt; fill-mask needs the tokenizer the model was trained with \
             (`bert export` copies it into the exported folder)",
            model_dir.display()
        );
    };
    let special = tokenizer.vocab().special();
    let pieces: Vec<&str> = text.split("[MASK]").collect();
    anyhow::ensure!(
        pieces.len() > 1,
        "the text has no `[MASK]`: write e.g. \"the cat [MASK] on the mat\""
    );
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
    let device = Default::default();
    let (config, model, _) = load_checked::<burn::backend::Flex>(model_dir, 0, &device)?;
    let predictions = bert_model::fill_mask(&model, &config, &ids, &positions, top_k, &device)?;
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

/// Runs `bert fill-mask` (on the CPU: one sentence needs no accelerator).
pub fn fill_mask(args: &FillMaskArgs) -> Result<()> {
    let predictions = predict_masks(&args.model, &args.text, args.top_k, args.cased)?;
    if args.json {
        let out: Vec<Vec<serde_json::Value>> = predictions
            .iter()
            .map(|cands| {
                cands
                    .iter()
                    .map(|(t, p)| serde_json::json!({"token": t, "probability": p}))
                    .collect()
            })
            .collect();
        println!("{}", serde_json::to_string(&out)?);
    } else {
        for (n, cands) in predictions.iter().enumerate() {
            println!("[MASK] #{}:", n + 1);
            for (t, p) in cands {
                println!("  {t:<16} {p:.4}");
            }
        }
    }
    Ok(())
}
