//! Checkpoint and resume continue the run bit for bit (in-process; the CLI test kills a child).

use std::path::PathBuf;

use bert_train::metrics::read_metrics;
use bert_train::run::{train, RunOptions};
use bert_train::source::{DataFacts, DataProvider, TrainBatches};
use bert_train::synthetic::SyntheticData;
use bert_train::{RunConfig, TrainError};

type B = burn::backend::Autodiff<burn::backend::Flex>;

/// Dropout draws from the backend's process-wide generator, seeded per step: tests that train
/// must not interleave, or they would draw from each other's stream.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config(out: &std::path::Path, steps: u64) -> RunConfig {
    config_with(out, steps, &[])
}

fn config_with(out: &std::path::Path, steps: u64, overrides: &[String]) -> RunConfig {
    let text = format!(
        r#"
        seed = 5
        out_dir = "{}"
        [model]
        preset = "tiny"
        hidden_size = 32
        num_attention_heads = 2
        intermediate_size = 64
        max_position_embeddings = 32
        [data]
        train = "unused"
        batch_size = 4
        [optimizer]
        learning_rate = 1e-3
        [schedule]
        warmup_steps = 2
        [train]
        steps = {steps}
        accumulation = 2
        [eval]
        every = 3
        max_batches = 1
        [checkpoint]
        every = 4
        keep = 2
        "#,
        out.display()
    );
    RunConfig::parse(&text, std::path::Path::new("run.toml"), overrides).unwrap()
}

/// `--resume` of `config`'s run on the default CPU device.
fn resume(config: &RunConfig, data: &dyn DataProvider) -> bert_train::run::RunSummary {
    let options = RunOptions {
        resume: true,
        progress: false,
    };
    train::<B>(config, data, &Default::default(), &options).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bert-train-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Real data with a crash: fails when asked for batch number `fail_at` (like a killed run).
struct CrashingData {
    inner: SyntheticData,
    fail_at: u64,
}

struct CrashingStream<'a> {
    inner: Box<dyn TrainBatches + 'a>,
    served: u64,
    fail_at: u64,
}

impl TrainBatches for CrashingStream<'_> {
    fn next_batch(&mut self) -> bert_train::Result<bert_data::HostBatch> {
        if self.served == self.fail_at {
            return Err(TrainError::Data("simulated crash".into()));
        }
        self.served += 1;
        self.inner.next_batch()
    }
    fn cursor(&self) -> serde_json::Value {
        self.inner.cursor()
    }
}

impl DataProvider for CrashingData {
    fn facts(&self) -> &DataFacts {
        self.inner.facts()
    }
    fn train(
        &self,
        cursor: Option<&serde_json::Value>,
    ) -> bert_train::Result<Box<dyn TrainBatches + '_>> {
        Ok(Box::new(CrashingStream {
            inner: self.inner.train(cursor)?,
            served: 0,
            fail_at: self.fail_at,
        }))
    }
    fn validation(
        &self,
        b: usize,
        m: Option<usize>,
    ) -> bert_train::Result<Option<Vec<bert_data::HostBatch>>> {
        self.inner.validation(b, m)
    }
}

#[test]
fn crashing_and_resuming_gives_identical_losses() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let device = Default::default();
    let full_dir = scratch("full");
    let full = train::<B>(
        &config(&full_dir, 10),
        &data,
        &device,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(full.steps, 10);

    // Crash while fetching the batches of step 7 (2 micro-batches a step); newest checkpoint: 4.
    let part_dir = scratch("part");
    let crashing = CrashingData {
        inner: data.clone(),
        fail_at: 12,
    };
    let err = train::<B>(
        &config(&part_dir, 10),
        &crashing,
        &device,
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");
    // Without --resume the directory is refused rather than overwritten.
    let err = train::<B>(
        &config(&part_dir, 10),
        &data,
        &device,
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Config { .. }), "{err}");
    let resumed = resume(&config(&part_dir, 10), &data);
    assert_eq!(resumed.steps_this_run, 6);

    let (a, ae) = read_metrics(&full_dir.join("metrics.jsonl")).unwrap();
    let (b, be) = read_metrics(&part_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(
        b.len(),
        10,
        "steps 5-6 of the crashed run are replaced, not duplicated"
    );
    for (x, y) in a.iter().zip(&b) {
        let key = |r: &bert_train::metrics::StepRecord| {
            (
                r.step,
                r.loss.to_bits(),
                r.grad_norm.to_bits(),
                r.lr.to_bits(),
                r.mlm_accuracy.to_bits(),
            )
        };
        assert_eq!(key(x), key(y), "step {}", x.step);
    }
    assert_eq!(ae.len(), be.len());
    for (x, y) in ae.iter().zip(&be) {
        assert_eq!(
            (x.step, x.mlm_loss.to_bits(), x.nsp_loss.to_bits()),
            (y.step, y.mlm_loss.to_bits(), y.nsp_loss.to_bits())
        );
    }
    // The final weights and optimiser moments are identical, byte for byte.
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let x = std::fs::read(full_dir.join("checkpoints/step-00000010").join(file)).unwrap();
        let y = std::fs::read(part_dir.join("checkpoints/step-00000010").join(file)).unwrap();
        assert!(x == y, "{file} differs");
    }
    // keep = 2: only the two newest checkpoints remain.
    let ckpts = bert_train::checkpoint::list_checkpoints(&part_dir.join("checkpoints"));
    assert_eq!(ckpts.iter().map(|c| c.0).collect::<Vec<_>>(), vec![8, 10]);
    std::fs::remove_dir_all(&full_dir).unwrap();
    std::fs::remove_dir_all(&part_dir).unwrap();
}

#[test]
fn resume_refuses_a_different_model_and_names_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let device = Default::default();
    let dir = scratch("mismatch");
    train::<B>(&config(&dir, 4), &data, &device, &RunOptions::default()).unwrap();
    let mut changed = config(&dir, 8);
    changed.model.num_hidden_layers = Some(3);
    let err = train::<B>(
        &changed,
        &data,
        &device,
        &RunOptions {
            resume: true,
            progress: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`model`"), "{err}");
    let mut changed = config(&dir, 8);
    changed.seed = 6;
    let err = train::<B>(
        &changed,
        &data,
        &device,
        &RunOptions {
            resume: true,
            progress: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`seed` was 5 and is now 6"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mixed_precision_runs_resume_exactly_with_their_loss_scale() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let device = Default::default();
    for precision in ["bf16", "fp16"] {
        let set = vec![format!("train.precision=\"{precision}\"")];
        let full_dir = scratch(&format!("{precision}-full"));
        train::<B>(
            &config_with(&full_dir, 8, &set),
            &data,
            &device,
            &RunOptions::default(),
        )
        .unwrap();
        // Crash while fetching step 7's batches (2 micro-batches a step), newest checkpoint 4.
        let part_dir = scratch(&format!("{precision}-part"));
        let crashing = CrashingData {
            inner: data.clone(),
            fail_at: 12,
        };
        let crashed = train::<B>(
            &config_with(&part_dir, 8, &set),
            &crashing,
            &device,
            &RunOptions::default(),
        );
        assert!(crashed.is_err());
        let resumed = resume(&config_with(&part_dir, 8, &set), &data);
        assert_eq!(resumed.steps_this_run, 4);
        let (a, _) = read_metrics(&full_dir.join("metrics.jsonl")).unwrap();
        let (b, _) = read_metrics(&part_dir.join("metrics.jsonl")).unwrap();
        assert_eq!(a.len(), 8);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (
                    x.step,
                    x.loss.to_bits(),
                    x.grad_norm.to_bits(),
                    x.loss_scale
                ),
                (
                    y.step,
                    y.loss.to_bits(),
                    y.grad_norm.to_bits(),
                    y.loss_scale
                ),
                "{precision}, step {}",
                x.step
            );
            assert_eq!(x.loss_scale.is_some(), precision == "fp16");
        }
        for file in [
            "model.safetensors",
            "optimizer.safetensors",
            "trainer_state.json",
        ] {
            let read = |d: &PathBuf| std::fs::read(d.join("checkpoints/step-00000008").join(file));
            let (x, y) = (read(&full_dir).unwrap(), read(&part_dir).unwrap());
            if file == "trainer_state.json" {
                // Wall time differs; the loss scaler must not.
                let scaler = |bytes: &[u8]| {
                    serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["loss_scaler"]
                        .clone()
                };
                assert_eq!(scaler(&x), scaler(&y), "{precision}");
                assert_eq!(scaler(&x).is_null(), precision != "fp16");
            } else {
                assert!(x == y, "{precision}: {file} differs");
            }
        }
        std::fs::remove_dir_all(&full_dir).unwrap();
        std::fs::remove_dir_all(&part_dir).unwrap();
    }
}
