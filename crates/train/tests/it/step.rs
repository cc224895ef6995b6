//! Accumulation, clipping and the NaN guard of one optimiser step.

use bert_data::HostBatch;
use bert_model::{BertConfig, BertForPreTraining};
use bert_rng::Rng;
use bert_train::TrainState;
use bert_train::{Optimizer, OptimizerConfig};

use crate::support::SERIAL;

type B = burn::backend::Autodiff<burn::backend::Flex>;

fn config() -> BertConfig {
    bert_testutil::small_bert_config(60, 32)
}

/// ids, token types, masked positions, labels, weights, NSP label.
type Row = (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<f32>, i64);

/// Random well-formed rows with various lengths, padded to `seq` (0 = pad).
fn rows(rng: &mut Rng, n: usize, seq: usize, preds: usize) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let len = rng.range_inclusive(8, seq);
            let ids: Vec<i64> = (0..seq)
                .map(|i| if i < len { 1 + rng.below(59) as i64 } else { 0 })
                .collect();
            let types: Vec<i64> = (0..seq)
                .map(|i| i64::from(i >= len / 2 && i < len))
                .collect();
            let real = rng.range_inclusive(1, preds);
            let pos: Vec<i64> = (0..preds)
                .map(|k| if k < real { 1 + k as i64 * 2 } else { 0 })
                .collect();
            let lab: Vec<i64> = (0..preds)
                .map(|k| {
                    if k < real {
                        1 + rng.below(59) as i64
                    } else {
                        0
                    }
                })
                .collect();
            let w: Vec<f32> = (0..preds)
                .map(|k| if k < real { 1.0 } else { 0.0 })
                .collect();
            (ids, types, pos, lab, w, rng.below(2) as i64)
        })
        .collect()
}

fn batch(rows: &[Row], seq: usize, preds: usize) -> HostBatch {
    HostBatch {
        batch_size: rows.len(),
        seq_len: seq,
        max_predictions: preds,
        input_ids: rows.iter().flat_map(|r| r.0.clone()).collect(),
        token_type_ids: rows.iter().flat_map(|r| r.1.clone()).collect(),
        attention_mask: rows
            .iter()
            .flat_map(|r| r.0.iter().map(|&t| i64::from(t != 0)))
            .collect(),
        masked_positions: rows.iter().flat_map(|r| r.2.clone()).collect(),
        masked_labels: rows.iter().flat_map(|r| r.3.clone()).collect(),
        masked_weights: rows.iter().flat_map(|r| r.4.clone()).collect(),
        nsp_labels: rows.iter().map(|r| r.5).collect(),
    }
}

fn state(seed: u64) -> TrainState<B> {
    let model = BertForPreTraining::<B>::new(&config(), seed, &Default::default());
    TrainState::new(model, Optimizer::new(OptimizerConfig::default()))
}

fn params(s: &TrainState<B>) -> Vec<Vec<f32>> {
    s.model
        .to_host_tensors()
        .unwrap()
        .into_iter()
        .map(|t| t.values)
        .collect()
}

#[test]
fn accumulating_micro_batches_equals_one_big_batch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(11);
    let all = rows(&mut rng, 8, 24, 5);
    let device = Default::default();
    let mut big = state(1);
    let mut small = state(1);
    let one = big.step(&[batch(&all, 24, 5)], 1e-3, 0.0, 9, &device);
    let micro: Vec<HostBatch> = all.chunks(2).map(|c| batch(c, 24, 5)).collect();
    let four = small.step(&micro, 1e-3, 0.0, 9, &device);
    assert!(
        (one.metrics.loss - four.metrics.loss).abs() < 1e-5,
        "{one:?} vs {four:?}"
    );
    assert!(
        (one.grad_norm - four.grad_norm).abs() < 1e-4 * one.grad_norm,
        "{one:?} vs {four:?}"
    );
    assert_eq!(one.metrics.mlm_total, four.metrics.mlm_total);
    for (a, b) in params(&big).iter().zip(params(&small).iter()) {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "parameters differ by {worst}");
    }
    // And the step changed the weights.
    assert_ne!(params(&big), params(&state(1)));
}

#[test]
fn clipping_scales_gradients_to_the_global_norm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(12);
    let rows = rows(&mut rng, 4, 16, 4);
    let device = Default::default();
    let mut free = state(2);
    let mut clipped = state(2);
    let a = free.step(&[batch(&rows, 16, 4)], 1e-3, 0.0, 1, &device);
    let b = clipped.step(&[batch(&rows, 16, 4)], 1e-3, 0.1, 1, &device);
    assert!(
        a.grad_norm > 0.1,
        "test needs a gradient larger than the clip: {}",
        a.grad_norm
    );
    assert_eq!(
        a.grad_norm, b.grad_norm,
        "the reported norm is the one before clipping"
    );
    // First moments after one step are (1-β1)·g: their ratio is exactly the clip factor.
    let expected = 0.1 / (a.grad_norm + 1e-6);
    let host = |s: &TrainState<B>| -> Vec<f32> {
        s.moments
            .iter()
            .flatten()
            .flat_map(|m| m.m.clone().into_data().to_vec::<f32>().unwrap())
            .collect()
    };
    let (ma, mb) = (host(&free), host(&clipped));
    let norm_a: f64 = ma.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let norm_b: f64 = mb.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    assert!(
        (norm_b / norm_a - expected).abs() < 1e-4 * expected,
        "{} vs {expected}",
        norm_b / norm_a
    );
    // The global norm of the clipped moments is (1-β1)·max_norm.
    assert!((norm_b - 0.1 * 0.1).abs() < 1e-5, "{norm_b}");
}

#[test]
fn non_finite_loss_skips_the_update() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(13);
    let rows = rows(&mut rng, 2, 12, 3);
    let device = Default::default();
    let mut s = state(3);
    let before = params(&s);
    // An infinite learning rate would poison the weights; a NaN in a masked weight poisons the loss.
    let mut bad = batch(&rows, 12, 3);
    bad.masked_weights[0] = f32::NAN;
    let out = s.step(&[bad], 1e-3, 1.0, 0, &device);
    assert!(!out.applied);
    assert!(!out.metrics.loss.is_finite());
    assert_eq!(params(&s), before, "weights must be untouched");
    assert_eq!(s.optimizer.step, 0);
}

#[test]
fn loss_scaler_halves_on_overflow_and_doubles_after_good_steps() {
    use bert_train::LossScaler;
    let mut s = LossScaler {
        growth_interval: 3,
        ..LossScaler::new()
    };
    s.update(false);
    assert_eq!((s.scale, s.overflows, s.good_steps), (32_768.0, 1, 0));
    s.update(true);
    s.update(true);
    assert_eq!(s.scale, 32_768.0);
    s.update(true);
    assert_eq!((s.scale, s.good_steps), (65_536.0, 0));
    for _ in 0..40 {
        s.update(false);
    }
    assert_eq!(s.scale, LossScaler::MIN_SCALE, "never below the floor");
}

#[test]
fn fp16_steps_scale_the_loss_and_skip_overflowed_updates() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use bert_model::Precision;
    let mut rng = Rng::new(14);
    let rows = rows(&mut rng, 4, 16, 4);
    let device = Default::default();
    let model = BertForPreTraining::<B>::new(&config(), 4, &device).with_precision(Precision::Fp16);
    let mut s = TrainState::new(model, Optimizer::new(OptimizerConfig::default()));
    let scaler = s.loss_scaler.clone().expect("fp16 gets a loss scaler");
    assert_eq!(scaler.scale, 65_536.0);

    // A normal step: the reported gradient norm is the unscaled one, close to fp32's.
    let mut reference = state(4);
    let want = reference.step(&[batch(&rows, 16, 4)], 1e-3, 1.0, 2, &device);
    let got = s.step(&[batch(&rows, 16, 4)], 1e-3, 1.0, 2, &device);
    assert!(got.applied && !got.overflow, "{got:?}");
    assert_eq!(got.loss_scale, Some(65_536.0));
    assert!(
        (got.grad_norm - want.grad_norm).abs() < 0.05 * want.grad_norm,
        "fp16 norm {} against fp32 {}",
        got.grad_norm,
        want.grad_norm
    );
    assert_eq!(s.optimizer.step, 1);

    // A scale that overflows fp16 (65504 is its largest value): skipped, counted, halved.
    s.loss_scaler.as_mut().unwrap().scale = 1e12;
    let before = params(&s);
    let out = s.step(&[batch(&rows, 16, 4)], 1e-3, 1.0, 3, &device);
    assert!(!out.applied && out.overflow, "{out:?}");
    assert_eq!(
        params(&s),
        before,
        "an overflowed step leaves the weights alone"
    );
    assert_eq!(s.optimizer.step, 1);
    let after = s.loss_scaler.as_ref().unwrap();
    assert_eq!((after.scale, after.overflows), (5e11, 1));
}
