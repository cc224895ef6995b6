//! The fused ops against their composition from Burn ops: forward values and gradients on the
//! CPU backend under autodiff, and forward values without it, on shapes and values like the
//! model's (masked attention rows, a 30k-class head, strided views).

use crate::support::{Cpu, CpuAd};
use bert_model::fused;
use bert_model::gelu_erf;
use bert_rng::Rng;
use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};

/// Deterministic values in `[-scale, scale)`.
pub(crate) fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
        .collect()
}

pub(crate) fn tensor<B: Backend, const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

pub(crate) fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().expect("f32 tensor")
}

/// Largest `|a − b| / (1 + |b|)`.
fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f32::max)
}

pub(crate) fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite values");
    let d = max_rel_diff(a, b);
    assert!(
        d <= tol,
        "{what}: fused and composed differ by {d:e} (tolerance {tol:e})"
    );
}

#[test]
fn softmax_matches_the_composition_forward_and_backward() {
    let shape = [2, 3, 16, 16];
    let n = shape.iter().product();
    let mut x = values(n, 1, 6.0);
    // Padding keys get BERT's large negative bias, as in the model's masked attention.
    for (i, v) in x.iter_mut().enumerate() {
        if i % 16 >= 13 {
            *v -= 10_000.0;
        }
    }
    let w = values(n, 2, 1.0);
    let run = |fused_op: bool| {
        let x = tensor::<CpuAd, 4>(x.clone(), shape).require_grad();
        let y = if fused_op {
            fused::softmax_last(x.clone())
        } else {
            softmax(x.clone(), 3)
        };
        let loss = (y.clone() * tensor::<CpuAd, 4>(w.clone(), shape)).sum();
        let grads = loss.backward();
        (host(y), host(x.grad(&grads).expect("gradient of x")))
    };
    let (fy, fdx) = run(true);
    let (cy, cdx) = run(false);
    assert_close("softmax", &fy, &cy, 1e-6);
    assert_close("softmax gradient", &fdx, &cdx, 1e-6);
    // Masked keys get no probability, and every row sums to one.
    for row in fy.chunks(16) {
        assert!(row[13..].iter().all(|&p| p == 0.0));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // A strided view (heads swapped with rows) and the inference backend give the same values.
    let view = tensor::<Cpu, 4>(x.clone(), shape).swap_dims(1, 2);
    let expect = host(softmax(view.clone(), 3));
    assert_close(
        "softmax of a view",
        &host(fused::softmax_last(view)),
        &expect,
        1e-6,
    );
}

#[test]
fn cross_entropy_matches_the_composition_on_a_vocabulary_sized_head() {
    let (n, classes) = (24, 30_522);
    let logits = values(n * classes, 3, 8.0);
    let mut rng = Rng::new(4);
    let labels: Vec<i64> = (0..n)
        .map(|_| (rng.next_u64() % classes as u64) as i64)
        .collect();
    let w = values(n, 5, 1.0);
    let run = |fused_op: bool| {
        let x = tensor::<CpuAd, 2>(logits.clone(), [n, classes]).require_grad();
        let l = Tensor::<CpuAd, 1, Int>::from_data(
            TensorData::new(labels.clone(), [n]),
            &Default::default(),
        );
        let (nll, hit) = if fused_op {
            fused::cross_entropy(x.clone(), l)
        } else {
            fused::cross_entropy_composed(x.clone(), l)
        };
        let loss = (nll.clone() * tensor::<CpuAd, 1>(w.clone(), [n])).sum();
        let grads = loss.backward();
        (
            host(nll),
            host(hit),
            host(x.grad(&grads).expect("gradient of the logits")),
        )
    };
    let (f_nll, f_hit, f_dx) = run(true);
    let (c_nll, c_hit, c_dx) = run(false);
    // Against an f64 reference the fused loss is the closer of the two (errors measured:
    // fused ≤ 2.4e-6, composed 2.3e-5–3.0e-5 on these rows, whose sum runs over 30,522 terms).
    let reference: Vec<f32> = logits
        .chunks(classes)
        .zip(&labels)
        .map(|(row, &label)| {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            (m + s.ln() - row[label as usize] as f64) as f32
        })
        .collect();
    let abs_err = |a: &[f32]| {
        a.iter()
            .zip(&reference)
            .map(|(a, r)| (a - r).abs())
            .fold(0.0f32, f32::max)
    };
    let (fused_err, composed_err) = (abs_err(&f_nll), abs_err(&c_nll));
    assert!(
        fused_err <= 5e-6,
        "fused nll off the f64 reference by {fused_err:e}"
    );
    assert!(
        fused_err <= composed_err,
        "fused {fused_err:e} vs composed {composed_err:e}"
    );
    assert_close("nll", &f_nll, &c_nll, 5e-6);
    assert_eq!(f_hit, c_hit, "arg-max hits");
    assert_close("logit gradient", &f_dx, &c_dx, 1e-6);
}

#[test]
fn cross_entropy_hits_count_first_arg_max_like_the_composition() {
    // Row 0: label is the maximum; row 1: a tie, first position wins; row 2: miss.
    let logits = vec![0.0f32, 5.0, 1.0, 2.0, 0.0, 2.0, 3.0, 1.0, 0.0];
    let labels = vec![1i64, 0, 2];
    let l = |v: Vec<i64>| {
        Tensor::<Cpu, 1, Int>::from_data(TensorData::new(v, [3]), &Default::default())
    };
    let (nll, hit) =
        fused::cross_entropy(tensor::<Cpu, 2>(logits.clone(), [3, 3]), l(labels.clone()));
    let (c_nll, c_hit) = fused::cross_entropy_composed(tensor::<Cpu, 2>(logits, [3, 3]), l(labels));
    assert_eq!(host(hit), vec![1.0, 1.0, 0.0]);
    assert_eq!(host(c_hit), vec![1.0, 1.0, 0.0]);
    assert_close("nll", &host(nll), &host(c_nll), 1e-6);
}

pub(crate) fn norm<B: Backend>(h: usize, seed: u64) -> LayerNorm<B> {
    let mut ln = LayerNormConfig::new(h)
        .with_epsilon(1e-12)
        .init::<B>(&Default::default());
    ln.gamma = Param::from_tensor(tensor(
        values(h, seed, 1.0).iter().map(|g| 1.0 + g).collect(),
        [h],
    ));
    ln.beta = Some(Param::from_tensor(tensor(values(h, seed + 1, 0.5), [h])));
    ln
}

#[test]
fn layer_norm_matches_the_composition_forward_and_backward() {
    let (rows, h) = (3 * 128, 64);
    // Rows with a common offset, as residual sums have. (With offsets far above the spread the
    // composition's f32 statistics lose digits that the fused op's f64 ones keep; the kernel's
    // own test holds it to an f64 reference there.)
    let x: Vec<f32> = values(rows * h, 6, 3.0)
        .iter()
        .enumerate()
        .map(|(i, v)| v + (i / h % 7) as f32 * 2.0)
        .collect();
    let w = values(rows * h, 7, 1.0);
    let run = |fused_op: bool| {
        let ln = norm::<CpuAd>(h, 8);
        let x = tensor::<CpuAd, 2>(x.clone(), [rows, h]).require_grad();
        let y = if fused_op {
            fused::layer_norm(&ln, 1e-12, x.clone())
        } else {
            ln.forward(x.clone())
        };
        let loss = (y.clone() * tensor::<CpuAd, 2>(w.clone(), [rows, h])).sum();
        let grads = loss.backward();
        let beta = ln.beta.as_ref().expect("beta");
        (
            host(y),
            host(x.grad(&grads).expect("dx")),
            host(ln.gamma.val().grad(&grads).expect("dgamma")),
            host(beta.val().grad(&grads).expect("dbeta")),
        )
    };
    let (fy, fdx, fg, fb) = run(true);
    let (cy, cdx, cg, cb) = run(false);
    assert_close("layer norm", &fy, &cy, 2e-5);
    assert_close("layer norm input gradient", &fdx, &cdx, 2e-4);
    assert_close("gamma gradient", &fg, &cg, 2e-5);
    assert_close("beta gradient", &fb, &cb, 2e-5);
}

#[test]
fn layer_norm_gradients_are_the_same_whatever_the_thread_count() {
    // Per-task partial sums of dgamma/dbeta are added in task order, not as threads finish.
    let (rows, h) = (4096, 256);
    let x = values(rows * h, 9, 2.0);
    let dy = values(rows * h, 10, 1.0);
    let gamma = values(h, 11, 1.0);
    let stats = fused::kernels::layer_norm_rows(&x, &gamma, None, 1e-12);
    let grads = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
            .install(|| {
                let mut dx = dy.clone();
                let g = fused::kernels::layer_norm_rows_backward(
                    &x,
                    &gamma,
                    &stats.mean,
                    &stats.rstd,
                    &mut dx,
                );
                (dx, g.dgamma, g.dbeta)
            })
    };
    let (one, three) = (grads(1), grads(3));
    assert_eq!(one, three);
}

#[test]
fn gelu_matches_the_erf_composition_forward_and_backward() {
    let shape = [256, 96];
    let x = values(shape[0] * shape[1], 12, 6.0);
    let w = values(shape[0] * shape[1], 13, 1.0);
    let run = |fused_op: bool| {
        let x = tensor::<CpuAd, 2>(x.clone(), shape).require_grad();
        let y = if fused_op {
            fused::gelu(x.clone(), |_| {
                unreachable!("f32 on flex takes the fused op")
            })
        } else {
            gelu_erf(x.clone())
        };
        let loss = (y.clone() * tensor::<CpuAd, 2>(w.clone(), shape)).sum();
        let grads = loss.backward();
        (host(y), host(x.grad(&grads).expect("dx")))
    };
    let (fy, fdx) = run(true);
    let (cy, cdx) = run(false);
    assert_close("gelu", &fy, &cy, 1e-6);
    assert_close("gelu gradient", &fdx, &cdx, 1e-6);
}

#[test]
fn other_dtypes_take_the_composition() {
    let x = Tensor::<Cpu, 2>::random([8, 32], Distribution::Normal(0.0, 1.0), &Default::default())
        .cast(burn::tensor::FloatDType::BF16);
    let y = fused::softmax_last(x.clone());
    assert_eq!(y.dtype(), x.dtype(), "a bf16 softmax stays bf16");
    let g = fused::gelu(x.clone(), |x| x.mul_scalar(2.0));
    assert_eq!(
        host(g.cast(burn::tensor::FloatDType::F32)),
        host(x.mul_scalar(2.0).cast(burn::tensor::FloatDType::F32))
    );
}

#[test]
fn dropout_backward_regenerates_the_forward_mask() {
    let shape = [300, 257];
    let n = shape[0] * shape[1];
    let x: Vec<f32> = values(n, 14, 2.0).iter().map(|v| v + 3.0).collect();
    let w = values(n, 15, 1.0);
    let p = 0.1;
    let xt = tensor::<CpuAd, 2>(x.clone(), shape).require_grad();
    let y = fused::dropout(xt.clone(), 99, p, |_| unreachable!("f32 on flex is fused"));
    let loss = (y.clone() * tensor::<CpuAd, 2>(w.clone(), shape)).sum();
    let dx = host(xt.grad(&loss.backward()).expect("dx"));
    let y = host(y);
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut dropped = 0;
    for i in 0..n {
        if y[i] == 0.0 {
            dropped += 1;
            assert_eq!(dx[i], 0.0, "a dropped element passes no gradient");
        } else {
            assert_eq!(y[i], x[i] * scale);
            assert_eq!(dx[i], w[i] * scale, "the backward mask is the forward mask");
        }
    }
    // Binomial sd at n = 77,100 and p = 0.1 is 0.0011: 5 sd.
    let rate = dropped as f64 / n as f64;
    assert!((rate - p).abs() < 0.0055, "dropped {rate}");
    // The mask depends on the seed only: not on autodiff, not on the thread count.
    let plain = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
            .install(|| {
                host(fused::dropout(
                    tensor::<Cpu, 2>(x.clone(), shape),
                    99,
                    p,
                    |x| x,
                ))
            })
    };
    assert_eq!(plain(1), y);
    assert_eq!(plain(3), y);
    assert_ne!(
        host(fused::dropout(tensor::<Cpu, 2>(x, shape), 100, p, |x| x)),
        y
    );
}
