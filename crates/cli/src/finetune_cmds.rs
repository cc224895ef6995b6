//! `bert finetune`: the grid of fine-tuning runs a config describes (`bert_finetune`).

use std::path::PathBuf;

use anyhow::Result;
use bert_finetune::{run_sweep, FinetuneConfig, SweepReport};
use burn::tensor::backend::Backend;

use crate::device::{dispatch, BackendTask, DeviceSpec};

/// Arguments of `bert finetune`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  bert finetune --config configs/finetune-sst2.toml\n  \
    bert finetune --config task.toml --set finetune.learning_rates=[3e-5] --set finetune.seeds=[1,2,3]"
)]
pub struct FinetuneArgs {
    /// The fine-tuning TOML config (`[finetune]` and `[finetune.task]`).
    #[arg(long)]
    pub config: PathBuf,
    /// Override any key: `--set finetune.epochs=2` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

struct SweepTask(FinetuneConfig);

impl BackendTask for SweepTask {
    type Output = SweepReport;
    fn run<B: Backend>(self, device: B::Device) -> Result<SweepReport> {
        Ok(run_sweep::<burn::backend::Autodiff<B>>(
            &self.0,
            &device,
            |run, runs, settings, epoch| {
                let scores = &epoch.eval;
                let metrics: Vec<String> = [
                    ("accuracy", scores.accuracy),
                    ("f1", scores.f1),
                    ("matthews", scores.matthews),
                    ("pearson", scores.pearson),
                    ("spearman", scores.spearman),
                ]
                .iter()
                .filter_map(|(name, v)| v.map(|v| format!("{name}={v:.4}")))
                .collect();
                tracing::info!(
                    "run {run}/{runs} (lr {:.1e}, batch {}, seed {}) epoch {}/{}: train loss {:.4}, eval loss {:.4} {}",
                    settings.learning_rate,
                    settings.batch_size,
                    settings.seed,
                    epoch.epoch,
                    settings.epochs,
                    epoch.train_loss,
                    scores.loss,
                    metrics.join(" ")
                );
            },
        )?)
    }
}

/// Runs `bert finetune`.
pub fn finetune_command(args: &FinetuneArgs) -> Result<()> {
    let config = FinetuneConfig::load(&args.config, &args.set)?;
    let report = dispatch(args.device, SweepTask(config))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
