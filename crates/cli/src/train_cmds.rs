//! `bert train`, `bert eval`, `bert bench`: parsing and wiring to `bert-train`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use bert_data::{EvalLoader, LoaderConfig, ShardSet};
use bert_model::{BertConfig, Precision};
use bert_train::load_model_verified;
use bert_train::EvalRecord;
use bert_train::RunConfig;
use bert_train::ShardData;
use bert_train::{check_data_fits_model, evaluate, train, DataFacts, RunOptions, RunSummary};
use bert_train::{format_candidates, predict_masks};
use bert_train::{require_prepared, PipelineReport};
use bert_train::{run_bench, BenchConfig, BenchReport};
use bert_train::{train_replicas, ProcessGroup};
use burn::tensor::backend::Backend;
use clap::Args;

use crate::device::{
    dispatch, dispatch_devices, parse_device_list, BackendTask, DeviceSpec, DevicesTask,
};

/// `bert bench`: time full training steps on synthetic batches.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  bert bench --preset mini --seq 128 --batch 32 --steps 10\n  bert bench --preset base --seq 128 --batch 64 --steps 20 --device cuda --json"
)]
pub struct BenchArgs {
    /// Model size: tiny, mini, small, medium, base, large.
    #[arg(long, default_value = "mini")]
    pub preset: String,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Vocabulary size (default: the standard uncased BERT vocabulary, 30522).
    #[arg(long, default_value_t = 30522)]
    pub vocab_size: usize,
    /// Dropout probability (BERT's 0.1 by default).
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
    /// cpu, wgpu, wgpu-fusion, cuda[:N] or cuda-fusion[:N].
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Float type of the matrix products: fp32, bf16 or fp16 (weights stay f32).
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
    /// The device's peak TFLOP/s for MFU, where the built-in table does not know it
    /// (`$BERT_PEAK_TFLOPS` also sets it).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

struct BenchTask(BenchConfig);

impl BackendTask for BenchTask {
    type Output = BenchReport;
    fn run<B: Backend>(self, device: B::Device) -> Result<BenchReport> {
        self.0
            .precision
            .ensure_supported::<B>(&device)
            .map_err(|why| anyhow::anyhow!("--precision {why}"))?;
        Ok(run_bench::<burn::backend::Autodiff<B>>(&self.0, &device))
    }
}

/// Runs `bert bench`.
pub fn bench(args: &BenchArgs) -> Result<()> {
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1");
    anyhow::ensure!(
        args.peak_tflops.is_none_or(|t| t.is_finite() && t > 0.0),
        "--peak-tflops must be a positive number"
    );
    anyhow::ensure!(
        args.batch > 0 && args.seq > 1,
        "--batch must be at least 1 and --seq at least 2"
    );
    let mut model = BertConfig::preset(&args.preset)?;
    model.vocab_size = args.vocab_size;
    model.hidden_dropout_prob = args.dropout;
    model.attention_probs_dropout_prob = args.dropout;
    anyhow::ensure!(
        args.seq <= model.max_position_embeddings,
        "--seq {} is longer than the model's max_position_embeddings ({})",
        args.seq,
        model.max_position_embeddings
    );
    model.validate()?;
    let config = BenchConfig {
        model,
        batch_size: args.batch,
        seq_len: args.seq,
        steps: args.steps,
        warmup: args.warmup,
        precision: args.precision,
        peak: bert_train::device_peak(&args.device.to_string(), args.precision, args.peak_tflops),
    };
    let report = dispatch(args.device, BenchTask(config))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "preset {} on {} in {}: batch {} × seq {} ({} masked), {} timed steps",
            args.preset,
            args.device,
            args.precision,
            args.batch,
            args.seq,
            report.shape[2],
            report.steps
        );
        println!(
            "  first step    {:.2} s (kernel compilation and tuning on GPUs)",
            report.first_step_s
        );
        println!(
            "  median step   {:.3} s (min {:.3}, max {:.3})",
            report.median_step_s, report.min_step_s, report.max_step_s
        );
        println!("  sequences/s   {:.2}", report.seq_per_s);
        println!("  tokens/s      {:.0}", report.tokens_per_s);
        println!(
            "  model TFLOP/s {:.3} ({:.2} GFLOP per step)",
            report.flops_per_s / 1e12,
            report.flops_per_step / 1e9
        );
        match (report.mfu, &report.peak_source) {
            (Some(u), Some(source)) => println!("  MFU           {:.1}% of {source}", u * 100.0),
            _ => println!("  MFU           unknown: no peak for this device (--peak-tflops)"),
        }
        if let (Some(first), Some(last)) = (report.losses.first(), report.losses.last()) {
            println!("  loss          {first:.4} (first step) → {last:.4} (last)");
        }
        match report.peak_rss_mib {
            Some(m) => println!("  peak RSS      {m:.0} MiB"),
            None => println!("  peak RSS      unknown on this OS"),
        }
    }
    Ok(())
}

/// `bert train`: run (or resume) the training a config file describes.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  bert train --config configs/quickstart.toml\n  bert train --config configs/quickstart.toml --resume\n  bert train --config configs/bert-base-phase1.toml --device cuda --set optimizer.learning_rate=2e-4"
)]
pub struct TrainArgs {
    /// The run's TOML config.
    #[arg(long)]
    pub config: PathBuf,
    /// Continue from the newest complete checkpoint in the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Override `train.steps`.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Override `device`: cpu, wgpu, wgpu-fusion, cuda, cuda:N or cuda-fusion[:N].
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Data parallelism in this process, one replica per device: `cuda:0,cuda:1`
    /// (overrides `distributed.devices`; `cpu,cpu` runs two replicas on the CPU).
    #[arg(long, value_delimiter = ',', value_name = "DEVICE,DEVICE,...")]
    pub devices: Vec<String>,
    /// The processes of a multi-process run.
    #[command(flatten)]
    pub group: GroupArgs,
    /// Override `out_dir`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override any key: `--set optimizer.learning_rate=2e-4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Where this process stands in a multi-process run (torchrun-style): the flags `bert train`
/// and `bert finetune` share.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GroupArgs {
    /// Number of processes of a multi-process run (each runs the command with its own
    /// `--rank`); default `$WORLD_SIZE`, else 1.
    #[arg(long, env = "WORLD_SIZE")]
    pub world_size: Option<usize>,
    /// This process's rank, `0..world-size`; default `$RANK`.
    #[arg(long, env = "RANK")]
    pub rank: Option<usize>,
    /// `host:port` of the orchestrator, hosted by rank 0; default `$MASTER_ADDR:$MASTER_PORT`.
    #[arg(long)]
    pub coordinator: Option<String>,
    /// `host:port` the other processes reach this one at (default: this machine's address
    /// towards the coordinator, port = coordinator port + 1 + rank).
    #[arg(long)]
    pub node_address: Option<String>,
}

struct TrainTask<'a> {
    config: &'a RunConfig,
    data: &'a ShardData,
    options: RunOptions,
    group: Option<ProcessGroup>,
}

impl DevicesTask for TrainTask<'_> {
    type Output = RunSummary;
    fn run<B: Backend>(self, devices: Vec<B::Device>) -> Result<RunSummary> {
        if let ([device], None) = (devices.as_slice(), &self.group) {
            return Ok(train::<burn::backend::Autodiff<B>>(
                self.config,
                self.data,
                device,
                &self.options,
            )?);
        }
        Ok(train_replicas::<burn::backend::Autodiff<B>, _, _>(
            self.config,
            &devices,
            &self.options,
            self.group.as_ref(),
            |rank, world| Ok(self.data.for_rank(rank, world)),
        )?)
    }
}

/// Reads a run config with the command-line overrides applied.
pub fn load_run_config(args: &TrainArgs) -> Result<RunConfig> {
    let mut overrides = args.set.clone();
    if let Some(steps) = args.steps {
        overrides.push(format!("train.steps={steps}"));
    }
    if let Some(device) = args.device {
        overrides.push(format!("device=\"{device}\""));
    }
    if !args.devices.is_empty() {
        let quoted: Vec<String> = args.devices.iter().map(|d| format!("{d:?}")).collect();
        overrides.push(format!("distributed.devices=[{}]", quoted.join(",")));
    }
    let mut config = RunConfig::load(&args.config, &overrides)?;
    if let Some(out) = &args.out {
        if let Some(kept) = config.move_run_to(out.clone()) {
            tracing::warn!(
                "--out moves the run to {} but the config's export_dir {} is outside the run \
                 folder and stays; `--set export_dir=DIR` to export elsewhere",
                out.display(),
                kept.display()
            );
        }
    }
    Ok(config)
}

/// The process group of `--world-size`/`--rank`/`--coordinator` (or `WORLD_SIZE`, `RANK`,
/// `MASTER_ADDR`, `MASTER_PORT`); `None` for a one-process run.
/// The process group `args` describe (`None` for a single process).
pub fn process_group(args: &GroupArgs) -> Result<Option<ProcessGroup>> {
    let processes = args.world_size.unwrap_or(1);
    if processes <= 1 {
        return Ok(None);
    }
    let rank = args.rank.ok_or_else(|| {
        anyhow::anyhow!("--world-size {processes} needs --rank (or $RANK): which process is this?")
    })?;
    anyhow::ensure!(
        rank < processes,
        "--rank {rank} must be below --world-size {processes}"
    );
    let coordinator = match &args.coordinator {
        Some(c) => c.clone(),
        None => match (std::env::var("MASTER_ADDR"), std::env::var("MASTER_PORT")) {
            (Ok(addr), Ok(port)) => format!("{addr}:{port}"),
            _ => anyhow::bail!(
                "--world-size {processes} needs --coordinator host:port (or $MASTER_ADDR and \
                 $MASTER_PORT): where rank 0 hosts the orchestrator"
            ),
        },
    };
    Ok(Some(ProcessGroup {
        processes,
        process_rank: rank,
        coordinator,
        node_address: args.node_address.clone(),
    }))
}

/// Runs `bert train`.
pub fn train_command(args: &TrainArgs) -> Result<()> {
    let config = load_run_config(args)?;
    // A value the command line set is blamed on the command line, not on the file.
    let source = |key: &str| {
        if config.overridden.iter().any(|k| k == key) {
            format!("the command line's `{key}` (`--set {key}=…` or its flag)")
        } else {
            format!("config `{}`: `{key}`", args.config.display())
        }
    };
    let devices: Vec<DeviceSpec> = if config.distributed.devices.is_empty() {
        vec![config
            .device
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{}: {e}", source("device")))?]
    } else {
        parse_device_list(&config.distributed.devices)
            .map_err(|e| anyhow::anyhow!("{}: {e}", source("distributed.devices")))?
    };
    let group = process_group(&args.group)?;
    // Rank 0 owns the run directory, from before it prepares the data until the run ends: a
    // second `bert train` on it (a second terminal, a requeued job) stops here.
    let _run_lock = match &group {
        Some(g) if g.process_rank > 0 => None,
        _ => Some(bert_train::lock_run_dir(&config.out_dir)?),
    };
    if group.as_ref().is_some_and(|g| g.process_rank > 0) {
        // Rank 0 prepares; the others find the shards ready or say where they are missing.
        require_prepared(&config.data.train)?;
    } else {
        report_pipeline(&config.ensure_prepared(std::io::stderr().is_terminal())?);
    }
    let data = config.open_shards()?;
    let options = RunOptions {
        resume: args.resume,
        progress: std::io::stderr().is_terminal(),
    };
    if devices.len() > 1 {
        tracing::info!(
            "data parallel: {} replicas in this process ({}), global batch {} = {} x {} x {}",
            devices.len(),
            devices
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            config.data.batch_size * devices.len() * config.train.accumulation,
            config.data.batch_size,
            devices.len(),
            config.train.accumulation
        );
    }
    let process_rank = group.as_ref().map_or(0, |g| g.process_rank);
    let summary = dispatch_devices(
        &devices,
        TrainTask {
            config: &config,
            data: &data,
            options,
            group,
        },
    )?;
    if process_rank > 0 {
        println!(
            "rank {process_rank}: trained {} steps ({} in this run) in {:.1} s; rank 0 wrote \
             the checkpoints and metrics to {}",
            summary.steps,
            summary.steps_this_run,
            summary.wall_s,
            config.out_dir.display()
        );
        return Ok(());
    }
    println!(
        "trained {} steps ({} in this run) in {:.1} s: {:.2} sequences/s",
        summary.steps, summary.steps_this_run, summary.wall_s, summary.seq_per_s
    );
    if let Some(e) = &summary.final_eval {
        println!("validation: {}", e.summary());
    }
    println!("checkpoint: {}", summary.checkpoint.display());
    println!(
        "metrics:    {}",
        config.out_dir.join("metrics.jsonl").display()
    );
    if let Some(dir) = &summary.export {
        println!("exported:   {}", dir.display());
        if !config.eval.fill_mask.is_empty() {
            let predictions = predict_masks::<burn::backend::Flex>(
                dir,
                &config.eval.fill_mask,
                3,
                false,
                &Default::default(),
            )?;
            for (text, masks) in config.eval.fill_mask.iter().zip(&predictions) {
                println!("fill-mask \"{text}\": {}", format_candidates(masks));
            }
        }
    }
    Ok(())
}

/// `bert eval`: MLM (and NSP or SOP, by the shards' objective) loss and accuracy of a checkpoint
/// on a shard folder.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  bert eval --checkpoint runs/quickstart/checkpoints/step-00020000 --data runs/quickstart/data/validation"
)]
pub struct EvalArgs {
    /// A checkpoint directory or HuggingFace folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A shard folder (`train/` or `validation/` of a `bert prepare` output).
    #[arg(long)]
    pub data: PathBuf,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Evaluate at most this many batches.
    #[arg(long)]
    pub max_batches: Option<usize>,
    /// cpu, wgpu, wgpu-fusion, cuda[:N] or cuda-fusion[:N].
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

struct EvalTask<'a>(
    &'a EvalArgs,
    Vec<bert_data::HostBatch>,
    bert_data::Objective,
);

impl BackendTask for EvalTask<'_> {
    type Output = EvalRecord;
    fn run<B: Backend>(self, device: B::Device) -> Result<EvalRecord> {
        let (_, model, _) =
            load_model_verified::<burn::backend::Autodiff<B>>(&self.0.checkpoint, 0, &device)?;
        Ok(evaluate(&model, &self.1, self.2, 0, &device)?)
    }
}

/// Runs `bert eval`.
pub fn eval_command(args: &EvalArgs) -> Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let config = BertConfig::load(&args.checkpoint.join(bert_model::CONFIG_FILE))?;
    let set = Arc::new(ShardSet::open(&args.data, None)?);
    let header = set.header();
    let objective = set.objective().objective;
    check_data_fits_model(
        &args.data,
        &DataFacts {
            vocab_size: header.vocab_size,
            vocab_hash: header.vocab_hash.clone(),
            max_seq_length: header.max_seq_length,
            train_instances: header.instances,
            tokenizer_dir: None,
            objective,
        },
        &config,
    )?;
    let loader = LoaderConfig {
        batch_size: args.batch_size,
        ..LoaderConfig::default()
    };
    let batches: Vec<_> = EvalLoader::new(set, loader)?
        .take(args.max_batches.unwrap_or(usize::MAX))
        .collect();
    let e = dispatch(args.device, EvalTask(args, batches, objective))?;
    if args.json {
        println!("{}", serde_json::to_string(&e)?);
    } else {
        println!("{}", e.summary());
    }
    Ok(())
}

/// `bert plot`: a PNG of a run's loss and accuracy curves (train and validation).
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  bert plot runs/quickstart            # writes runs/quickstart/curves.png"
)]
pub struct PlotArgs {
    /// The run directory (holding metrics.jsonl).
    pub run_dir: PathBuf,
    /// Where to write the PNG (default: RUN_DIR/curves.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Image width in pixels.
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 800)]
    pub height: u32,
}

/// Runs `bert plot`.
pub fn plot_command(args: &PlotArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run_dir.join("curves.png"));
    let options = bert_train::PlotOptions {
        width: args.width,
        height: args.height,
        ..Default::default()
    };
    let summary = bert_train::plot_run(&args.run_dir, &out, &options)?;
    println!(
        "wrote {} ({} training steps, {} evaluations)",
        out.display(),
        summary.train_points,
        summary.eval_points
    );
    Ok(())
}

/// Prints what the `[tokenizer]` and `[prepare]` steps of `bert train` did.
fn report_pipeline(report: &PipelineReport) {
    if let Some(v) = &report.vocabulary {
        println!(
            "tokenizer: {} ({} tokens from {} documents)",
            v.vocab_txt.display(),
            v.vocab_size,
            v.documents
        );
    }
    if let Some(p) = &report.prepared {
        println!(
            "prepared: {} train + {} validation instances from {} documents ({} tokens) in {:.1} s",
            p.train_instances, p.validation_instances, p.documents, p.tokens, p.elapsed_s
        );
    }
}
