//! Backward flows through every part, including the tied decoder into the word embeddings, and
//! a few optimiser steps on a fixed batch lower the loss.

use crate::support::*;
use bert_model::{BertConfig, BertForPreTraining, PretrainingBatch};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

fn tiny() -> BertConfig {
    bert_testutil::small_bert_config(80, 16)
}

/// [`small_batch`] on the CPU under autodiff.
fn batch(device: &burn::tensor::Device<CpuAd>) -> PretrainingBatch<CpuAd> {
    small_batch::<CpuAd>(device)
}

/// A small pre-training batch on `B` with padding in both sequences. Input ids only use rows
/// 1..=20; rows above 20 are reachable only through the decoder.
pub(crate) fn small_batch<B: Backend>(device: &B::Device) -> PretrainingBatch<B> {
    let ids = vec![
        vec![2i64, 5, 6, 4, 7, 8, 9, 3, 10, 11, 3, 0],
        vec![2, 12, 4, 13, 14, 3, 15, 16, 17, 3, 0, 0],
    ];
    let types = vec![
        vec![0i64, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0],
        vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0],
    ];
    let mask: Vec<Vec<i64>> = ids
        .iter()
        .map(|r| r.iter().map(|&t| i64::from(t != 0)).collect())
        .collect();
    PretrainingBatch {
        input_ids: int2(&ids, device),
        token_type_ids: int2(&types, device),
        attention_mask: int2(&mask, device),
        masked_positions: int2(&[vec![3, 5, 0], vec![2, 7, 0]], device),
        masked_labels: int2(&[vec![40, 41, 0], vec![42, 43, 0]], device),
        masked_weights: Tensor::from_data(
            TensorData::new(vec![1.0f32, 1.0, 0.0, 1.0, 1.0, 0.0], [2, 3]),
            device,
        ),
        nsp_labels: Some(Tensor::from_data(
            TensorData::new(vec![0i64, 1], [2]),
            device,
        )),
    }
}

#[test]
fn tied_decoder_gradient_reaches_the_word_embeddings() {
    let device = Default::default();
    let model = BertForPreTraining::<CpuAd>::new(&tiny(), 3, &device);
    let out = model.forward_pretraining(batch(&device));
    let grads = out.loss.backward();
    let word_grad = model
        .bert
        .embeddings
        .word
        .weight
        .grad(&grads)
        .expect("word embeddings get a gradient");
    let (_, g) = host(word_grad);
    let hidden = 32;
    let row_norm = |r: usize| {
        g[r * hidden..(r + 1) * hidden]
            .iter()
            .map(|v| v.abs())
            .sum::<f32>()
    };
    // Rows 40..44 are only labels, rows 50..80 appear nowhere: both get gradient only via the decoder.
    for r in [40, 41, 42, 43, 50, 79] {
        assert!(
            row_norm(r) > 0.0,
            "row {r} has no gradient: decoder is not tied to the embeddings"
        );
    }
    // The labels get a larger pull than unrelated rows.
    assert!(row_norm(40) > row_norm(60));
    // The separate output bias and the NSP head get gradients too.
    assert!(model.mlm.bias.grad(&grads).is_some());
    assert!(model.nsp.weight.grad(&grads).is_some());
}

#[test]
fn without_sentence_labels_only_mlm_trains_and_pooler_and_nsp_get_no_gradient() {
    let device = Default::default();
    let model = BertForPreTraining::<CpuAd>::new(&tiny(), 3, &device);
    let with_nsp = model.forward_pretraining(batch(&device)).metrics();
    let mut mlm_only = batch(&device);
    mlm_only.nsp_labels = None;
    let out = model.forward_pretraining(mlm_only);
    let m = out.metrics();
    // The MLM part is the same pass; the total is the MLM loss alone.
    assert_eq!(m.mlm_loss.to_bits(), with_nsp.mlm_loss.to_bits());
    assert_eq!(m.loss.to_bits(), m.mlm_loss.to_bits());
    assert!(with_nsp.loss > with_nsp.mlm_loss);
    assert_eq!((m.nsp_loss, m.nsp_correct, m.nsp_total), (0.0, 0.0, 0.0));
    assert_eq!(m.sequences, 2.0);
    assert_eq!(with_nsp.sequences, 2.0);
    let grads = out.loss.backward();
    assert!(model.nsp.weight.grad(&grads).is_none(), "NSP head trained");
    assert!(
        model.bert.pooler.weight.grad(&grads).is_none(),
        "pooler trained"
    );
    assert!(model.mlm.bias.grad(&grads).is_some());
    assert!(model.bert.embeddings.word.weight.grad(&grads).is_some());
}

#[test]
fn loss_decreases_over_a_few_steps() {
    let device = Default::default();
    let mut model = BertForPreTraining::<CpuAd>::new(&tiny(), 3, &device);
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let out = model.forward_pretraining(batch(&device));
        losses.push(out.metrics().loss);
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "loss did not fall at every step: {losses:?}"
    );
    assert!(
        losses[7] < losses[0] * 0.8,
        "loss did not fall enough: {losses:?}"
    );
}

#[test]
fn mlm_loss_ignores_padding_slots_and_eval_has_no_dropout() {
    let device = Default::default();
    let mut config = tiny();
    config.hidden_dropout_prob = 0.1;
    config.attention_probs_dropout_prob = 0.1;
    // On the inner (non-autodiff) backend dropout is off: two runs agree exactly.
    let model = BertForPreTraining::<Cpu>::new(&config, 5, &device);
    let to_inner = |b: PretrainingBatch<CpuAd>| PretrainingBatch::<Cpu> {
        input_ids: b.input_ids.inner(),
        token_type_ids: b.token_type_ids.inner(),
        attention_mask: b.attention_mask.inner(),
        masked_positions: b.masked_positions.inner(),
        masked_labels: b.masked_labels.inner(),
        masked_weights: b.masked_weights.inner(),
        nsp_labels: b.nsp_labels.map(|t| t.inner()),
    };
    let a = model
        .forward_pretraining(to_inner(batch(&Default::default())))
        .metrics();
    let b = model
        .forward_pretraining(to_inner(batch(&Default::default())))
        .metrics();
    assert_eq!(a, b);
    assert_eq!(a.mlm_total, 4.0);
    // Changing the label in a weight-0 slot changes nothing.
    let mut padded = to_inner(batch(&Default::default()));
    padded.masked_labels = int2(&[vec![40, 41, 77], vec![42, 43, 66]], &device);
    let c = model.forward_pretraining(padded).metrics();
    assert_eq!(a.mlm_loss, c.mlm_loss);
}

/// The GELU the GPU backends get (`gelu_erf`, differentiated by autodiff) has the exact erf
/// derivative Φ(x) + x·φ(x), the same as the CPU backend's own kernel: Burn's default
/// `gelu_backward` (the tanh approximation's) is off by up to ~1e-3.
#[test]
fn gelu_erf_has_the_exact_derivative_on_every_backend() {
    let device = Default::default();
    let xs: Vec<f32> = (0..81).map(|i| (i as f32 - 40.0) / 8.0).collect();
    let exact = |x: f64| {
        let cdf = 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (x * cdf, cdf + x * pdf)
    };
    let run = |native: bool| {
        let x = Tensor::<CpuAd, 1>::from_floats(xs.as_slice(), &device).require_grad();
        let y = if native {
            burn::tensor::activation::gelu(x.clone())
        } else {
            bert_model::gelu_erf(x.clone())
        };
        let grads = y.clone().sum().backward();
        let dy = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        (y.into_data().to_vec::<f32>().unwrap(), dy)
    };
    for native in [false, true] {
        let (y, dy) = run(native);
        for (i, &x) in xs.iter().enumerate() {
            let (ey, edy) = exact(x as f64);
            assert!((y[i] as f64 - ey).abs() < 2e-6, "gelu({x}) native={native}");
            assert!(
                (dy[i] as f64 - edy).abs() < 2e-6,
                "gelu'({x}) = {} vs {edy} (native={native})",
                dy[i]
            );
        }
    }
}

/// erf to ~1e-12 (Abramowitz–Stegun 7.1.26 is too coarse for a 2e-6 check): series for small
/// |x|, continued fraction of erfc for large.
fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (a + f);
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
    };
    r.copysign(x)
}

#[test]
fn mixed_precision_forward_and_gradients_stay_close_to_f32() {
    use bert_model::Precision;
    use burn::tensor::DType;
    let device = Default::default();
    let reference = BertForPreTraining::<CpuAd>::new(&tiny(), 3, &device);
    let want = reference.forward_pretraining(batch(&device));
    let want_loss = want.loss.clone().into_scalar() as f64;
    let want_grads = want.loss.backward();
    let want_q = host(
        reference.bert.layers[0]
            .attention
            .query
            .weight
            .grad(&want_grads)
            .unwrap(),
    )
    .1;
    for precision in [Precision::Bf16, Precision::Fp16] {
        let model = BertForPreTraining::<CpuAd>::new(&tiny(), 3, &device).with_precision(precision);
        assert_eq!(model.precision(), precision);
        let out = model.forward_pretraining(batch(&device));
        assert_eq!(out.loss.dtype(), DType::F32, "losses are f32");
        let loss = out.loss.clone().into_scalar() as f64;
        assert!(
            (loss - want_loss).abs() < 0.01 * want_loss,
            "{precision}: loss {loss} against f32 {want_loss}"
        );
        let grads = out.loss.backward();
        let q = model.bert.layers[0]
            .attention
            .query
            .weight
            .grad(&grads)
            .expect("the query weight gets a gradient");
        assert_eq!(
            q.dtype(),
            DType::F32,
            "{precision}: master weights get f32 gradients"
        );
        let q = host(q).1;
        // Gradients of a half-precision network: the same direction, a few per cent apart.
        let dot: f64 = q.iter().zip(&want_q).map(|(a, b)| (a * b) as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|a| (a * a) as f64).sum::<f64>().sqrt();
        let cosine = dot / (norm(&q) * norm(&want_q));
        assert!(cosine > 0.99, "{precision}: gradient cosine {cosine}");
        // Weights themselves are untouched f32.
        assert_eq!(
            model.bert.layers[0].attention.query.weight.val().dtype(),
            DType::F32
        );
    }
}
