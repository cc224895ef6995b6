//! Data parallelism in one process over Burn's collective: two replicas step exactly like one
//! rank with the same global batch (dropout included), a run resumes on another number of
//! ranks with the same global batch, a changed global batch is refused, and a failing or
//! missing rank stops the others with an error instead of a hang.

use crate::support;
use crate::support::SERIAL;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bert_data::HostBatch;
use bert_train::read_metrics;
use bert_train::ShardData;
use bert_train::{train, RunOptions, RunSummary};
use bert_train::{train_replicas, AbortFlag, Replica};
use bert_train::{DataFacts, DataProvider, TrainBatches};
use bert_train::{RunConfig, TrainError};

type B = burn::backend::Autodiff<burn::backend::Flex>;
type Inner = burn::backend::Flex;

/// Shards shared by the tests of this file (prepared once).
fn shards() -> &'static (tempfile::TempDir, PathBuf) {
    static SHARDS: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    SHARDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let shards = support::prepare_shards(dir.path());
        (dir, shards)
    })
}

/// A small model on the shared shards: `batch_size` rows per micro-batch, `accumulation`
/// micro-batches per step.
fn config(run: &Path, steps: u64, batch_size: usize, accumulation: usize) -> RunConfig {
    let shards = &shards().1;
    let text = format!(
        r#"
        seed = 11
        out_dir = "{run}"
        [model]
        preset = "tiny"
        hidden_size = 32
        num_attention_heads = 2
        intermediate_size = 64
        [data]
        train = "{shards}/train"
        validation = "{shards}/validation"
        batch_size = {batch_size}
        [optimizer]
        learning_rate = 1e-3
        [schedule]
        warmup_steps = 2
        [train]
        steps = {steps}
        accumulation = {accumulation}
        [eval]
        every = 3
        max_batches = 3
        batch_size = 8
        [checkpoint]
        every = 3
        keep = 5
        "#,
        run = run.display(),
        shards = shards.display()
    );
    RunConfig::parse(&text, Path::new("distributed.toml"), &[]).unwrap()
}

fn options(resume: bool) -> RunOptions {
    RunOptions {
        resume,
        progress: false,
    }
}

fn one_rank(config: &RunConfig, resume: bool) -> RunSummary {
    let data = config.open_shards().unwrap();
    train::<B>(config, &data, &Default::default(), &options(resume)).unwrap()
}

fn two_ranks(config: &RunConfig, resume: bool) -> bert_train::Result<RunSummary> {
    let data = config.open_shards().unwrap();
    let devices = vec![Default::default(); 2];
    train_replicas::<B, _, _>(config, &devices, &options(resume), None, |rank, world| {
        Ok(data.for_rank(rank, world))
    })
}

/// (step, loss, mlm loss, nsp loss, grad norm) of every train record, and the eval losses.
fn curve(run: &Path) -> (Vec<[f64; 5]>, Vec<[f64; 4]>) {
    let (train, eval) = read_metrics(&run.join("metrics.jsonl")).unwrap();
    (
        train
            .iter()
            .map(|r| {
                [
                    r.step as f64,
                    r.loss,
                    r.mlm_loss,
                    r.nsp_loss.unwrap(),
                    r.grad_norm,
                ]
            })
            .collect(),
        eval.iter()
            .map(|e| {
                [
                    e.step as f64,
                    e.mlm_loss,
                    e.nsp_loss.unwrap(),
                    e.mlm_accuracy,
                ]
            })
            .collect(),
    )
}

fn assert_close(what: &str, a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        let tol = 1e-5 * x.abs().max(y.abs()).max(1e-3);
        assert!((x - y).abs() <= tol, "{what}: {x} vs {y} ({a:?} vs {b:?})");
    }
}

fn assert_curves_match(a: &Path, b: &Path) {
    let (ta, ea) = curve(a);
    let (tb, eb) = curve(b);
    assert_eq!(ta.len(), tb.len(), "train records");
    assert_eq!(ea.len(), eb.len(), "eval records");
    for (x, y) in ta.iter().zip(&tb) {
        assert_close(&format!("train step {}", x[0]), x, y);
    }
    for (x, y) in ea.iter().zip(&eb) {
        assert_close(&format!("eval step {}", x[0]), x, y);
    }
}

/// The f32 weights of a checkpoint, by tensor name.
fn weights(checkpoint: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(checkpoint.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let t = st.tensor(&n).unwrap();
            let v = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, v)
        })
        .collect()
}

fn assert_weights_match(a: &Path, b: &Path) {
    let (wa, wb) = (weights(a), weights(b));
    assert_eq!(wa.len(), wb.len());
    for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        let worst = va
            .iter()
            .zip(vb)
            .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-3))
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{na}: relative difference {worst}");
    }
}

#[test]
fn two_replicas_step_like_one_rank_with_the_same_global_batch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // Global batch 8 both ways: 1 rank × 4 rows × 2 micro-batches, 2 ranks × 4 rows × 1.
    let single = config(&dir.path().join("single"), 6, 4, 2);
    let double = config(&dir.path().join("double"), 6, 4, 1);
    let a = one_rank(&single, false);
    let b = two_ranks(&double, false).unwrap();
    assert_eq!(a.steps, 6);
    assert_eq!(b.steps, 6);
    // Rank 0 alone writes: one record per step, not one per rank.
    assert_curves_match(&single.out_dir, &double.out_dir);
    assert_weights_match(&a.checkpoint, &b.checkpoint);
    let e = b.final_eval.expect("evaluation ran");
    // Three evaluation batches of 8 split over two ranks, reduced: the whole set's count.
    assert_eq!(e.sequences, a.final_eval.unwrap().sequences);
}

#[test]
fn a_run_resumes_on_another_number_of_ranks_with_the_same_global_batch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // The reference stops after three steps and resumes to six on one rank (`train.steps`
    // shapes the learning-rate decay, so every leg below changes it at the same point).
    let reference = dir.path().join("reference");
    one_rank(&config(&reference, 3, 4, 2), false);
    one_rank(&config(&reference, 6, 4, 2), true);

    // Two ranks for three steps, then one rank (twice the micro-batches) to the end.
    let run = dir.path().join("elastic");
    two_ranks(&config(&run, 3, 4, 1), false).unwrap();
    let resumed = one_rank(&config(&run, 6, 4, 2), true);
    assert_eq!(resumed.steps_this_run, 3);
    assert_curves_match(&reference, &run);

    // And back: one rank for three steps, two ranks to the end.
    let back = dir.path().join("back");
    one_rank(&config(&back, 3, 4, 2), false);
    two_ranks(&config(&back, 6, 4, 1), true).unwrap();
    assert_curves_match(&reference, &back);
}

#[test]
fn a_changed_global_batch_is_refused_on_resume_with_the_reason() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    two_ranks(&config(&run, 3, 4, 1), false).unwrap();
    // One rank with one micro-batch of 4: global batch 4 instead of 8.
    let config = config(&run, 6, 4, 1);
    let data = config.open_shards().unwrap();
    let err = train::<B>(&config, &data, &Default::default(), &options(true)).unwrap_err();
    assert!(matches!(err, TrainError::ResumeMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("global batch")
            && text.contains("8 (4 × 2 × 1)")
            && text.contains("4 (4 × 1 × 1)"),
        "{text}"
    );
}

/// This rank's shard view, failing when asked for its `fail_at`-th batch.
struct Failing {
    inner: ShardData,
    fail_at: u64,
}

struct FailingStream<'a> {
    inner: Box<dyn TrainBatches + 'a>,
    served: u64,
    fail_at: u64,
}

impl TrainBatches for FailingStream<'_> {
    fn next_batch(&mut self) -> bert_train::Result<HostBatch> {
        if self.served == self.fail_at {
            return Err(TrainError::Provider("disk went away (injected)".into()));
        }
        self.served += 1;
        self.inner.next_batch()
    }
    fn cursor(&self) -> serde_json::Value {
        self.inner.cursor()
    }
}

impl DataProvider for Failing {
    fn facts(&self) -> &DataFacts {
        self.inner.facts()
    }
    fn train(
        &self,
        cursor: Option<&serde_json::Value>,
    ) -> bert_train::Result<Box<dyn TrainBatches + '_>> {
        Ok(Box::new(FailingStream {
            inner: self.inner.train(cursor)?,
            served: 0,
            fail_at: self.fail_at,
        }))
    }
    fn validation(
        &self,
        batch_size: usize,
        max_batches: Option<usize>,
    ) -> bert_train::Result<Option<Vec<HostBatch>>> {
        self.inner.validation(batch_size, max_batches)
    }
}

#[test]
fn a_failing_rank_stops_the_others_at_once_with_its_own_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir.path().join("run"), 6, 4, 1);
    config.distributed.timeout_s = 600.0;
    let data = config.open_shards().unwrap();
    let devices = vec![Default::default(); 2];
    let started = Instant::now();
    let err = train_replicas::<B, _, _>(&config, &devices, &options(false), None, |rank, world| {
        Ok(Failing {
            inner: data.for_rank(rank, world),
            fail_at: if rank == 1 { 4 } else { u64::MAX },
        })
    })
    .unwrap_err();
    // Rank 1's own error, not rank 0's "stopped because rank 1 failed", and long before the
    // timeout.
    assert!(err.to_string().contains("disk went away"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(120));
    // The checkpoint written before the failure is intact and the run resumes from it.
    let resumed = two_ranks(&config, true).unwrap();
    assert_eq!(resumed.steps_this_run, 3);
}

#[test]
fn a_rank_that_never_joins_gives_an_error_within_the_timeout() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    burn_collective::reset_collective::<Inner>();
    let started = Instant::now();
    let err = Replica::<Inner>::join_local(
        0,
        2,
        Default::default(),
        Duration::from_millis(500),
        Arc::new(AbortFlag::default()),
    )
    .err()
    .expect("rank 1 never joins");
    let waited = started.elapsed();
    burn_collective::reset_collective::<Inner>();
    let text = err.to_string();
    assert!(
        text.contains("rank 0 of 2")
            && text.contains("joining")
            && text.contains("distributed.timeout_s"),
        "{text}"
    );
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}
