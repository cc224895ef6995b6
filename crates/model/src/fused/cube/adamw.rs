//! The AdamW update of one flattened parameter, one unit per element, as flex's
//! [`crate::fused::kernels::adamw`]: the value, gradient and both moments read once, the new
//! value and moments written once.

use burn::tensor::TensorMetadata;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::launch::{as_u32, contiguous_f32, elementwise, empty_like, len, zeros_like};
use crate::fused::kernels::AdamwScalars;

/// `m' = β₁m + (1−β₁)g`, `v' = β₂v + (1−β₂)g²` with `g` the scaled gradient, and
/// `w' = w − lr · ((m'/bias₁) / (√(v'/bias₂) + ε) + wd · w)`, in flex's order of operations.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn adamw_elements(
    w: &Array<f32>,
    g: &Array<f32>,
    m: &Array<f32>,
    v: &Array<f32>,
    w_out: &mut Array<f32>,
    m_out: &mut Array<f32>,
    v_out: &mut Array<f32>,
    total: u32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    epsilon: f32,
    weight_decay: f32,
    lr: f32,
    bias1: f32,
    bias2: f32,
    grad_scale: f32,
) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let grad = g[pos] * grad_scale;
    let m1 = m[pos] * beta1 + grad * one_minus_beta1;
    let v1 = v[pos] * beta2 + grad * grad * one_minus_beta2;
    let mut direction = (m1 / bias1) / ((v1 / bias2).sqrt() + epsilon);
    let value = w[pos];
    // Skipped, not multiplied by zero, as flex does: an infinite value stays out of it.
    if weight_decay != f32::new(0.0) {
        direction += value * weight_decay;
    }
    w_out[pos] = value - direction * lr;
    m_out[pos] = m1;
    v_out[pos] = v1;
}

/// One AdamW step of the flattened parameter `value` with gradient `grad` and its moments
/// (`None` before the first step, read as zeros): `(value, m, v)` after the step.
pub fn adamw<R: CubeRuntime>(
    value: CubeTensor<R>,
    grad: CubeTensor<R>,
    moments: Option<(CubeTensor<R>, CubeTensor<R>)>,
    s: AdamwScalars,
) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
    let w = contiguous_f32(value, "adamw value");
    let g = contiguous_f32(grad, "adamw gradient");
    let shape = w.shape();
    let n = len(&w);
    let (m, v) = match moments {
        Some((m, v)) => (
            contiguous_f32(m, "adamw first moment"),
            contiguous_f32(v, "adamw second moment"),
        ),
        None => (zeros_like(&w, shape.clone()), zeros_like(&w, shape.clone())),
    };
    assert_eq!(
        (len(&g), len(&m), len(&v)),
        (n, n, n),
        "fused adamw: value, gradient and moments differ in size"
    );
    let out = || empty_like(&w, shape.clone());
    let (w_out, m_out, v_out) = (out(), out(), out());
    if n == 0 {
        return (w_out, m_out, v_out);
    }
    let (count, dim) = elementwise(&w, n);
    adamw_elements::launch::<R>(
        &w.client.clone(),
        count,
        dim,
        w.into_array_arg(),
        g.into_array_arg(),
        m.into_array_arg(),
        v.into_array_arg(),
        w_out.clone().into_array_arg(),
        m_out.clone().into_array_arg(),
        v_out.clone().into_array_arg(),
        as_u32(n, "adamw"),
        s.beta1,
        s.beta2,
        s.one_minus_beta1,
        s.one_minus_beta2,
        s.epsilon,
        s.weight_decay,
        s.lr,
        s.bias1,
        s.bias2,
        s.grad_scale,
    );
    (w_out, m_out, v_out)
}
