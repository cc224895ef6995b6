//! `bert finetune`: the grid of fine-tuning runs a config describes (`bert_finetune`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use bert_finetune::{run_sweep, FinetuneConfig, SweepEvent, SweepOptions, SweepReport};
use burn::tensor::backend::Backend;

use crate::device::{dispatch_devices, parse_device_list, DeviceSpec, DevicesTask};
use crate::train_cmds::{process_group, GroupArgs};

/// Arguments of `bert finetune`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  bert finetune --config configs/finetune-sst2.toml\n  \
    bert finetune --config task.toml --set finetune.learning_rates=[3e-5] --set finetune.seeds=[1,2,3]\n  \
    bert finetune --config configs/finetune-sst2.toml --resume\n  \
    bert finetune --config configs/finetune-sst2.toml --devices cuda:0,cuda:1"
)]
pub struct FinetuneArgs {
    /// The fine-tuning TOML config (`[finetune]` and `[finetune.task]`).
    #[arg(long)]
    pub config: PathBuf,
    /// Override any key: `--set finetune.epochs=2` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// cpu, wgpu, wgpu-fusion, cuda[:N] or cuda-fusion[:N].
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Data parallelism, one replica per device: `cuda:0,cuda:1` (overrides
    /// `finetune.devices`; `cpu,cpu` runs two replicas on the CPU). Each grid batch size is
    /// the global batch, split between the devices.
    #[arg(long, value_delimiter = ',', value_name = "DEVICE,DEVICE,...")]
    pub devices: Vec<String>,
    /// The processes of a multi-process sweep (every process runs the same config, and all
    /// must see `finetune.out_dir`; process 0 writes there).
    #[command(flatten)]
    pub group: GroupArgs,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Continue the sweep in `finetune.out_dir`: keep its finished runs, continue the run in
    /// progress from its newest checkpoint, then run the rest.
    #[arg(long)]
    pub resume: bool,
}

struct SweepTask(FinetuneConfig, SweepOptions);

impl DevicesTask for SweepTask {
    type Output = SweepReport;
    fn run<B: Backend>(self, devices: Vec<B::Device>) -> Result<SweepReport> {
        let mut pace = Pace::new();
        Ok(run_sweep::<burn::backend::Autodiff<B>>(
            &self.0,
            &devices,
            self.1,
            |event| match event {
                SweepEvent::Run {
                    run,
                    runs,
                    settings,
                    resumed_at,
                } => {
                    pace = Pace::new();
                    tracing::info!(
                        "run {run}/{runs} (lr {:.1e}, batch {}, seed {}){}",
                        settings.learning_rate,
                        settings.batch_size,
                        settings.seed,
                        resumed_at
                            .map(|s| format!(": continues from step {s}"))
                            .unwrap_or_default()
                    )
                }
                SweepEvent::Step {
                    step,
                    total_steps,
                    loss,
                } => {
                    tracing::debug!("step {step}/{total_steps}: train loss {loss:.4}");
                    pace.step(step, total_steps, loss);
                }
                SweepEvent::Checkpoint(dir) => {
                    tracing::debug!("checkpoint {}", dir.display())
                }
                SweepEvent::Epoch {
                    run,
                    runs,
                    settings,
                    report,
                } => {
                    let scores = &report.eval;
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
                        report.epoch,
                        settings.epochs,
                        report.train_loss,
                        scores.loss,
                        metrics.join(" ")
                    );
                }
            },
        )?)
    }
}

/// Progress within a run, logged at most every [`Pace::EVERY`]: a GLUE run of a large task
/// (MNLI, QQP) takes hours, and its epochs are the only other sign of life.
struct Pace {
    started: Instant,
    last: Instant,
    steps: u64,
    loss_sum: f64,
    first_step: Option<u64>,
}

impl Pace {
    const EVERY: Duration = Duration::from_secs(30);

    fn new() -> Self {
        let now = Instant::now();
        Pace {
            started: now,
            last: now,
            steps: 0,
            loss_sum: 0.0,
            first_step: None,
        }
    }

    fn step(&mut self, step: u64, total: u64, loss: f64) {
        let first = *self.first_step.get_or_insert(step.saturating_sub(1));
        self.steps += 1;
        self.loss_sum += loss;
        if self.last.elapsed() < Self::EVERY || step >= total {
            return;
        }
        let per_s = (step - first) as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let left = (total - step) as f64 / per_s.max(1e-9);
        tracing::info!(
            "  step {step}/{total}: train loss {:.4} (mean of the last {}), {per_s:.2} steps/s, \
             about {:.0} s left in this run",
            self.loss_sum / self.steps as f64,
            self.steps,
            left
        );
        self.last = Instant::now();
        self.steps = 0;
        self.loss_sum = 0.0;
    }
}

/// Runs `bert finetune`.
pub fn finetune_command(args: &FinetuneArgs) -> Result<()> {
    let config = FinetuneConfig::load(&args.config, &args.set)?;
    let (names, source) = if !args.devices.is_empty() {
        (&args.devices, "--devices".to_string())
    } else {
        (
            &config.finetune.devices,
            format!("config `{}`: `finetune.devices`", args.config.display()),
        )
    };
    let devices: Vec<DeviceSpec> = if names.is_empty() {
        vec![args.device]
    } else {
        parse_device_list(names).map_err(|e| anyhow::anyhow!("{source}: {e}"))?
    };
    let group = process_group(&args.group)?;
    let processes = group.as_ref().map_or(1, |g| g.processes);
    if devices.len() * processes > 1 {
        tracing::info!(
            "data parallel: {} replicas ({} in each of {processes} process(es): {}), each grid \
             batch size split between them",
            devices.len() * processes,
            devices.len(),
            devices
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let report = dispatch_devices(
        &devices,
        SweepTask(
            config,
            SweepOptions {
                resume: args.resume,
                group,
            },
        ),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
