//! Subcommands: argument parsing and wiring to the library crates.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bert_model::{save_model_dir_as, Architecture, ForwardInputs};
use bert_train::predict_masks;
use bert_train::{checkpoint_objective, export_architecture, load_model_verified};
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
    /// cpu, wgpu, wgpu-fusion, cuda[:N] or cuda-fusion[:N].
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
        let (config, model, _) = load_model_verified::<B>(&self.model, 0, &device)?;
        let outputs = inputs
            .run(&model, &config, &device)
            .with_context(|| format!("in `{}`", self.inputs.display()))?;
        let json = serde_json::to_vec(&outputs).context("serialising outputs")?;
        bert_fsutil::write_atomic(&self.out, &json)?;
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
    after_help = "Example:\n  bert export --checkpoint runs/quickstart/checkpoints/step-00020000 --out my-bert\n\n\
Then in Python: transformers.AutoModelForMaskedLM.from_pretrained(\"my-bert\") (or\n\
BertForPreTraining for an `mlm_nsp`/`mlm_sop` run; an `mlm` run is exported as BertForMaskedLM)"
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

fn convert(from: &Path, to: &Path, seed: u64, architecture: Architecture) -> Result<()> {
    let device = Default::default();
    let (config, model, report) = load_model_verified::<burn::backend::Flex>(from, seed, &device)?;
    for group in &report.initialized {
        tracing::warn!(
            "{} not in `{}`: freshly initialised (seed {seed})",
            group.describe(),
            from.display()
        );
    }
    save_model_dir_as(&model, &config, to, Some(from), architecture)?;
    tracing::info!(
        "wrote `{}` ({}: {} layers, hidden {}, vocab {})",
        to.display(),
        architecture.hf_name(),
        config.num_hidden_layers,
        config.hidden_size,
        config.vocab_size
    );
    Ok(())
}

/// Runs `bert export`: a checkpoint of an `mlm` run is written as `BertForMaskedLM` (no
/// pooler, no NSP head: that run never trained them), every other folder as
/// `BertForPreTraining`.
pub fn export(args: &ExportArgs) -> Result<()> {
    let architecture = checkpoint_objective(&args.checkpoint)?
        .map_or(Architecture::ForPreTraining, export_architecture);
    convert(&args.checkpoint, &args.out, 0, architecture)
}

/// Runs `bert import`: a checkpoint to continue from holds every tensor.
pub fn import(args: &ImportArgs) -> Result<()> {
    convert(&args.hf, &args.out, args.seed, Architecture::ForPreTraining)
}

/// `bert fill-mask`: the most probable tokens for each `[MASK]` of one or more sentences.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  bert fill-mask --model runs/quickstart/export \"the cat [MASK] on the mat\" --top-k 5\n  \
                  bert fill-mask --model runs/quickstart/checkpoints/step-00018000 \"a long [MASK] .\" \"he [MASK] .\""
)]
pub struct FillMaskArgs {
    /// A model folder with its tokenizer (`tokenizer.json` or `vocab.txt`): an export or a checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// One or more sentences, each with one or more `[MASK]` (the model is loaded once).
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
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

/// Runs `bert fill-mask` (on the CPU: a few sentences need no accelerator). With `--json`, one
/// line per sentence: a list per mask of `{token, probability}`.
pub fn fill_mask(args: &FillMaskArgs) -> Result<()> {
    anyhow::ensure!(args.top_k > 0, "--top-k must be at least 1");
    let predictions = predict_masks::<burn::backend::Flex>(
        &args.model,
        &args.text,
        args.top_k,
        args.cased,
        &Default::default(),
    )?;
    for (text, masks) in args.text.iter().zip(&predictions) {
        if args.json {
            let out: Vec<Vec<serde_json::Value>> = masks
                .iter()
                .map(|cands| {
                    cands
                        .iter()
                        .map(|(t, p)| serde_json::json!({"token": t, "probability": p}))
                        .collect()
                })
                .collect();
            println!("{}", serde_json::to_string(&out)?);
            continue;
        }
        if args.text.len() > 1 {
            println!("{text}");
        }
        for (n, cands) in masks.iter().enumerate() {
            println!("[MASK] #{}:", n + 1);
            for (t, p) in cands {
                println!("  {t:<16} {p:.4}");
            }
        }
    }
    Ok(())
}
