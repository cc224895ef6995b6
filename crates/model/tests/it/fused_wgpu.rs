//! The CubeCL kernels of the softmax, cross-entropy, LayerNorm, GELU and AdamW on Burn's wgpu
//! backend against their composition from Burn ops on flex: forward values and gradients under
//! autodiff, forward values without it, on row widths that are and are not multiples of a
//! cube's units (1, 7, 128, 768, 30 522), and the AdamW update against the composed update.
//!
//! Runs on Mesa's lavapipe without a GPU; skips (visibly) or fails in CI without an adapter, as
//! `attention_wgpu` does, through its [`wgpu_ready`].

use std::cell::Cell;

use crate::attention_wgpu::{wgpu_ready, Wgpu, WgpuAd};
use crate::fused::{assert_close, host, norm, tensor, values};
use crate::support::{Cpu, CpuAd};
use bert_model::fused::{self, kernels::AdamwScalars, AdamwInputs};
use bert_model::gelu_erf;
use bert_rng::Rng;
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Int, Tensor, TensorData};

/// The row widths the row kernels are checked on: one element, fewer than a cube's units, a
/// power of two, BERT-base's hidden size, and BERT's vocabulary (not a multiple of 256).
const WIDTHS: [usize; 5] = [1, 7, 128, 768, 30_522];

fn labels<B: Backend>(labels: &[i64]) -> Tensor<B, 1, Int> {
    Tensor::from_data(
        TensorData::new(labels.to_vec(), [labels.len()]),
        &Default::default(),
    )
}

/// Softmax of `x` (`[rows, width]`) and the gradient of `Σ softmax(x) · w`, fused or composed.
fn softmax_run<B: AutodiffBackend>(
    x: &[f32],
    w: &[f32],
    shape: [usize; 2],
    fused_op: bool,
) -> (Vec<f32>, Vec<f32>) {
    let x = tensor::<B, 2>(x.to_vec(), shape).require_grad();
    let y = if fused_op {
        fused::softmax_last(x.clone())
    } else {
        softmax(x.clone(), 1)
    };
    let grads = (y.clone() * tensor::<B, 2>(w.to_vec(), shape))
        .sum()
        .backward();
    (host(y), host(x.grad(&grads).expect("gradient of x")))
}

#[test]
fn wgpu_softmax_matches_the_composition_forward_and_backward_at_every_width() {
    if !wgpu_ready("wgpu_softmax_matches_the_composition_forward_and_backward_at_every_width") {
        return;
    }
    for width in WIDTHS {
        let shape = [3, width];
        let mut x = values(3 * width, 1, 6.0);
        // Padding keys get BERT's large negative bias, as in the model's masked attention.
        for (i, v) in x.iter_mut().enumerate() {
            if width > 2 && i % width >= width - width / 4 {
                *v -= 10_000.0;
            }
        }
        let w = values(3 * width, 2, 1.0);
        let (y, dx) = softmax_run::<WgpuAd>(&x, &w, shape, true);
        let (want_y, want_dx) = softmax_run::<CpuAd>(&x, &w, shape, false);
        assert_close(&format!("softmax, width {width}"), &y, &want_y, 1e-5);
        assert_close(
            &format!("softmax gradient, width {width}"),
            &dx,
            &want_dx,
            1e-5,
        );
    }
}

/// `(nll, hit, logit gradient)` of `logits [rows, classes]` against `labels`, with the loss
/// weighted per row by `w`, fused or composed.
fn cross_entropy_run<B: AutodiffBackend>(
    logits: &[f32],
    label_values: &[i64],
    w: &[f32],
    classes: usize,
    fused_op: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = label_values.len();
    let x = tensor::<B, 2>(logits.to_vec(), [rows, classes]).require_grad();
    let l = labels::<B>(label_values);
    let (nll, hit) = if fused_op {
        fused::cross_entropy(x.clone(), l)
    } else {
        fused::cross_entropy_composed(x.clone(), l)
    };
    let grads = (nll.clone() * tensor::<B, 1>(w.to_vec(), [rows]))
        .sum()
        .backward();
    (
        host(nll),
        host(hit),
        host(x.grad(&grads).expect("gradient of the logits")),
    )
}

#[test]
fn wgpu_cross_entropy_matches_the_composition_forward_and_backward_at_every_width() {
    if !wgpu_ready("wgpu_cross_entropy_matches_the_composition_forward_and_backward_at_every_width")
    {
        return;
    }
    let rows = 5;
    for classes in [2].into_iter().chain(WIDTHS) {
        let mut logits = values(rows * classes, 3, 8.0);
        let mut rng = Rng::new(4);
        let mut l: Vec<i64> = (0..rows)
            .map(|_| (rng.next_u64() % classes as u64) as i64)
            .collect();
        if classes >= 3 {
            // Row 0: a tie for the maximum; the first position is the arg-max, the label the
            // second (no hit). Row 1: the label is the only maximum (a hit).
            logits[1] = 50.0;
            logits[2] = 50.0;
            l[0] = 2;
            logits[classes + classes - 1] = 50.0;
            l[1] = classes as i64 - 1;
        }
        let w = values(rows, 5, 1.0);
        let (nll, hit, dx) = cross_entropy_run::<WgpuAd>(&logits, &l, &w, classes, true);
        let (want_nll, want_hit, want_dx) =
            cross_entropy_run::<CpuAd>(&logits, &l, &w, classes, false);
        assert_close(&format!("nll, {classes} classes"), &nll, &want_nll, 1e-5);
        assert_eq!(hit, want_hit, "arg-max hits, {classes} classes");
        assert_close(
            &format!("logit gradient, {classes} classes"),
            &dx,
            &want_dx,
            1e-5,
        );
        if classes >= 3 {
            assert_eq!(&hit[..2], [0.0, 1.0], "the first arg-max counts");
        }
    }
}

/// LayerNorm (BERT's ε) of `x [rows, width]` and the gradients of `Σ y · w` for the input,
/// `gamma` and `beta`, fused or composed (Burn's module).
fn layer_norm_run<B: AutodiffBackend>(
    x: &[f32],
    w: &[f32],
    shape: [usize; 2],
    fused_op: bool,
) -> [Vec<f32>; 4] {
    let ln = norm::<B>(shape[1], 8);
    let x = tensor::<B, 2>(x.to_vec(), shape).require_grad();
    let y = if fused_op {
        fused::layer_norm(&ln, 1e-12, x.clone())
    } else {
        ln.forward(x.clone())
    };
    let grads = (y.clone() * tensor::<B, 2>(w.to_vec(), shape))
        .sum()
        .backward();
    let beta = ln.beta.as_ref().expect("beta");
    [
        host(y),
        host(x.grad(&grads).expect("dx")),
        host(ln.gamma.val().grad(&grads).expect("dgamma")),
        host(beta.val().grad(&grads).expect("dbeta")),
    ]
}

#[test]
fn wgpu_layer_norm_matches_the_composition_forward_and_backward_at_every_width() {
    if !wgpu_ready("wgpu_layer_norm_matches_the_composition_forward_and_backward_at_every_width") {
        return;
    }
    // 130 rows: the parameter gradients' row runs (64 rows) end with a partial one.
    for (rows, width) in [(130, 1), (130, 7), (130, 128), (70, 768), (3, 30_522)] {
        let shape = [rows, width];
        // Rows with a common offset, as residual sums have.
        let x: Vec<f32> = values(rows * width, 6, 3.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v + (i / width % 7) as f32 * 0.5)
            .collect();
        let w = values(rows * width, 7, 1.0);
        let got = layer_norm_run::<WgpuAd>(&x, &w, shape, true);
        let want = layer_norm_run::<CpuAd>(&x, &w, shape, false);
        for (name, (a, b)) in ["y", "dx", "dgamma", "dbeta"]
            .iter()
            .zip(got.iter().zip(&want))
        {
            assert_close(&format!("layer norm {name}, {shape:?}"), a, b, 1e-5);
        }
    }
}

/// GELU of `x` and the gradient of `Σ gelu(x) · w`, fused or composed (erf from Burn).
fn gelu_run<B: AutodiffBackend>(
    x: &[f32],
    w: &[f32],
    shape: [usize; 2],
    fused_op: bool,
) -> (Vec<f32>, Vec<f32>) {
    let x = tensor::<B, 2>(x.to_vec(), shape).require_grad();
    let y = if fused_op {
        fused::gelu(x.clone(), |_| {
            unreachable!("f32 on wgpu takes the fused op")
        })
    } else {
        gelu_erf(x.clone())
    };
    let grads = (y.clone() * tensor::<B, 2>(w.to_vec(), shape))
        .sum()
        .backward();
    (host(y), host(x.grad(&grads).expect("dx")))
}

#[test]
fn wgpu_gelu_matches_the_erf_composition_forward_and_backward() {
    if !wgpu_ready("wgpu_gelu_matches_the_erf_composition_forward_and_backward") {
        return;
    }
    // Element counts on both sides of a launch's cube size, and values into both tails.
    for shape in [[1, 1], [3, 7], [257, 96], [5, 30_522]] {
        let n = shape[0] * shape[1];
        let x = values(n, 12, 6.0);
        let w = values(n, 13, 1.0);
        let (y, dx) = gelu_run::<WgpuAd>(&x, &w, shape, true);
        let (want_y, want_dx) = gelu_run::<CpuAd>(&x, &w, shape, false);
        assert_close(&format!("gelu {shape:?}"), &y, &want_y, 1e-5);
        assert_close(&format!("gelu gradient {shape:?}"), &dx, &want_dx, 1e-5);
        // The same erf approximation as flex's kernel: closer to it than to Burn's erf.
        let (flex_y, flex_dx) = gelu_run::<CpuAd>(&x, &w, shape, true);
        assert_close(&format!("gelu {shape:?} against flex"), &y, &flex_y, 1e-6);
        assert_close(
            &format!("gelu gradient {shape:?} against flex"),
            &dx,
            &flex_dx,
            1e-6,
        );
    }
}

#[test]
fn wgpu_fused_ops_without_autodiff_match_the_composition_and_take_strided_views() {
    if !wgpu_ready("wgpu_fused_ops_without_autodiff_match_the_composition_and_take_strided_views") {
        return;
    }
    // Softmax of a view with heads and rows swapped: not contiguous.
    let shape = [2, 3, 9, 13];
    let x = values(shape.iter().product(), 20, 5.0);
    let got = fused::softmax_last(tensor::<Wgpu, 4>(x.clone(), shape).swap_dims(1, 2));
    let want = softmax(tensor::<Cpu, 4>(x, shape).swap_dims(1, 2), 3);
    let (got, want) = (host(got), host(want));
    assert_close("softmax of a view", &got, &want, 1e-5);

    let (rows, classes) = (4, 1000);
    let logits = values(rows * classes, 21, 4.0);
    let l = [3, 999, 0, 500];
    let (nll, hit) = fused::cross_entropy(
        tensor::<Wgpu, 2>(logits.clone(), [rows, classes]),
        labels::<Wgpu>(&l),
    );
    let (want_nll, want_hit) =
        fused::cross_entropy_composed(tensor::<Cpu, 2>(logits, [rows, classes]), labels(&l));
    assert_close("nll without autodiff", &host(nll), &host(want_nll), 1e-5);
    assert_eq!(host(hit), host(want_hit));

    // LayerNorm of the transposed view of `[width, rows]`.
    let (rows, width) = (10, 48);
    let x = values(rows * width, 22, 2.0);
    let ln = norm::<Wgpu>(width, 23);
    let got = fused::layer_norm(
        &ln,
        1e-12,
        tensor::<Wgpu, 2>(x.clone(), [width, rows]).transpose(),
    );
    let want =
        norm::<Cpu>(width, 23).forward(tensor::<Cpu, 2>(x.clone(), [width, rows]).transpose());
    assert_close("layer norm of a view", &host(got), &host(want), 1e-5);

    let got = fused::gelu(tensor::<Wgpu, 2>(x.clone(), [rows, width]), |_| {
        unreachable!("f32 on wgpu takes the fused op")
    });
    let want = gelu_erf(tensor::<Cpu, 2>(x, [rows, width]));
    assert_close("gelu without autodiff", &host(got), &host(want), 1e-5);
}

#[test]
fn wgpu_dropout_takes_the_composition_and_f32_gelu_the_kernel() {
    if !wgpu_ready("wgpu_dropout_takes_the_composition_and_f32_gelu_the_kernel") {
        return;
    }
    // Dropout's mask is flex's host stream: on wgpu the caller's composition runs.
    let composed = Cell::new(false);
    let x = tensor::<WgpuAd, 2>(values(64, 24, 1.0), [8, 8]);
    let y = fused::dropout(x.clone(), 5, 0.1, |x| {
        composed.set(true);
        x
    });
    assert!(composed.get(), "dropout on wgpu is composed");
    assert_eq!(host(y), host(x));
    let used = Cell::new(false);
    let _ = fused::gelu(tensor::<Wgpu, 2>(values(8, 25, 1.0), [2, 4]), |x| {
        used.set(true);
        x
    });
    assert!(!used.get(), "f32 GELU on wgpu is fused");
    assert!(fused::attention_is_fused::<Wgpu>(DType::F32));
}

/// The AdamW update composed from Burn ops, as the trainer's `Optimizer::update_composed`
/// (`crates/train/src/optim.rs`) computes it, with BERT's hyper-parameters: `(value, m, v)`.
fn adamw_composed<B: Backend>(
    inputs: AdamwInputs<B>,
    lr: f64,
    decay: f64,
    step: i32,
    grad_scale: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (beta1, beta2, epsilon) = (0.9f64, 0.999f64, 1e-6);
    let g = inputs.grad.mul_scalar(grad_scale);
    let (m, v) = match inputs.moments {
        Some((m, v)) => (
            m.mul_scalar(beta1) + g.clone().mul_scalar(1.0 - beta1),
            v.mul_scalar(beta2) + g.clone().powi_scalar(2).mul_scalar(1.0 - beta2),
        ),
        None => (
            g.clone().mul_scalar(1.0 - beta1),
            g.powi_scalar(2).mul_scalar(1.0 - beta2),
        ),
    };
    let (bias1, bias2) = (1.0 - beta1.powi(step), 1.0 - beta2.powi(step));
    let m_hat = m.clone().div_scalar(bias1);
    let v_hat = v.clone().div_scalar(bias2);
    let mut direction = m_hat / v_hat.sqrt().add_scalar(epsilon);
    if decay != 0.0 {
        direction = direction + inputs.value.clone().mul_scalar(decay);
    }
    let w = inputs.value - direction.mul_scalar(lr);
    (host(w), host(m), host(v))
}

/// The scalars the trainer hands the fused update for the same step.
fn adamw_scalars(lr: f64, decay: f64, step: i32, grad_scale: f64) -> AdamwScalars {
    let (beta1, beta2) = (0.9f64, 0.999f64);
    AdamwScalars {
        beta1: beta1 as f32,
        beta2: beta2 as f32,
        one_minus_beta1: (1.0 - beta1) as f32,
        one_minus_beta2: (1.0 - beta2) as f32,
        epsilon: 1e-6,
        weight_decay: decay as f32,
        lr: lr as f32,
        bias1: (1.0 - beta1.powi(step)) as f32,
        bias2: (1.0 - beta2.powi(step)) as f32,
        grad_scale: grad_scale as f32,
    }
}

/// `|a − b|` within `tol` of `|b|`, or of a thousandth of the tensor's largest element for
/// elements near zero (where the update's cancellation leaves no relative digits to compare).
fn assert_relative(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let floor = 1e-3 * b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * y.abs().max(floor),
            "{what}: element {i} is {x:e} fused, {y:e} composed (tolerance {tol:e} relative)"
        );
    }
}

#[test]
fn wgpu_adamw_matches_the_composed_update_over_two_steps() {
    if !wgpu_ready("wgpu_adamw_matches_the_composed_update_over_two_steps") {
        return;
    }
    for (n, decay, grad_scale) in [
        (1, 0.01, 1.0),
        (7, 0.0, 0.5),
        (1000, 0.01, 1.0),
        (100_003, 0.01, 0.25),
    ] {
        let w0 = values(n, 30, 1.0);
        let lr = 1e-3;
        let mut fused_state: Option<(Tensor<Wgpu, 1>, Tensor<Wgpu, 1>, Tensor<Wgpu, 1>)> = None;
        let mut composed_state: Option<(Vec<f32>, Vec<f32>, Vec<f32>)> = None;
        for step in 1..=2 {
            let g = values(n, 30 + step as u64, 0.1);
            let (w, moments) = match fused_state.take() {
                Some((w, m, v)) => (w, Some((m, v))),
                None => (tensor::<Wgpu, 1>(w0.clone(), [n]), None),
            };
            let inputs = AdamwInputs {
                value: w,
                grad: tensor::<Wgpu, 1>(g.clone(), [n]),
                moments,
            };
            let Ok((w, m, v)) = fused::adamw(inputs, adamw_scalars(lr, decay, step, grad_scale))
            else {
                panic!("f32 AdamW on wgpu is fused");
            };
            let cpu = |v: &[f32]| tensor::<Cpu, 1>(v.to_vec(), [n]);
            let composed_inputs = match composed_state.take() {
                Some((cw, cm, cv)) => AdamwInputs {
                    value: cpu(&cw),
                    grad: cpu(&g),
                    moments: Some((cpu(&cm), cpu(&cv))),
                },
                None => AdamwInputs {
                    value: cpu(&w0),
                    grad: cpu(&g),
                    moments: None,
                },
            };
            let (cw, cm, cv) = adamw_composed(composed_inputs, lr, decay, step, grad_scale);
            let what = |t: &str| format!("adamw {t}, n {n}, step {step}");
            assert_relative(&what("value"), &host(w.clone()), &cw, 1e-6);
            assert_relative(&what("first moment"), &host(m.clone()), &cm, 1e-6);
            assert_relative(&what("second moment"), &host(v.clone()), &cv, 1e-6);
            fused_state = Some((w, m, v));
            composed_state = Some((cw, cm, cv));
        }
    }
}
