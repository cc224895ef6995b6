//! Exact (erf) GELU and its gradient, one unit per element, with the same erf as flex's kernel
//! ([`crate::fused::kernels::gelu`]): Abramowitz & Stegun 7.1.26, whose Gaussian factor the
//! gradient reuses.

use burn::tensor::TensorMetadata;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::launch::{as_u32, contiguous_f32, elementwise, empty_like, len};

/// `x · 1/√2`, the argument of erf in `Φ(x)`.
#[cube]
fn scaled(x: f32) -> f32 {
    // `std::f32::consts::FRAC_1_SQRT_2`, rounded to f32 as flex's kernel uses it.
    x * f32::new(0.707_106_77)
}

/// `e^(−z²)` of `z`.
#[cube]
fn gauss(z: f32) -> f32 {
    (f32::new(0.0) - z * z).exp()
}

/// `erf(z)` from `z` and its [`gauss`] factor (flex's `math::erf_and_gauss`).
#[cube]
fn erf(z: f32, gauss: f32) -> f32 {
    let t = f32::new(1.0) / (f32::new(1.0) + f32::new(0.327_591_1) * z.abs());
    let mut p = f32::new(1.061_405_4);
    p = p * t - f32::new(1.453_152);
    p = p * t + f32::new(1.421_413_7);
    p = p * t - f32::new(0.284_496_72);
    p = p * t + f32::new(0.254_829_6);
    let e = f32::new(1.0) - p * t * gauss;
    select(z < f32::new(0.0), f32::new(0.0) - e, e)
}

/// `y = x/2 · (1 + erf(x/√2))`.
#[cube(launch)]
fn gelu_elements(x: &Array<f32>, y: &mut Array<f32>, total: u32) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let v = x[pos];
    let z = scaled(v);
    y[pos] = f32::new(0.5) * v * (f32::new(1.0) + erf(z, gauss(z)));
}

/// `dx = dy · (Φ(x) + x · φ(x))`, `φ(x) = e^(−x²/2)/√(2π)`.
#[cube(launch)]
fn gelu_backward_elements(x: &Array<f32>, dy: &Array<f32>, dx: &mut Array<f32>, total: u32) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let v = x[pos];
    let z = scaled(v);
    let g = gauss(z);
    let cdf = f32::new(0.5) * (f32::new(1.0) + erf(z, g));
    // 1/√(2π), the standard normal density at 0.
    dx[pos] = dy[pos] * (cdf + v * f32::new(0.398_942_3) * g);
}

/// Exact GELU of `x`.
pub(super) fn gelu<R: CubeRuntime>(x: CubeTensor<R>) -> CubeTensor<R> {
    let x = contiguous_f32(x, "gelu input");
    let n = len(&x);
    let y = empty_like(&x, x.shape());
    if n == 0 {
        return y;
    }
    let (count, dim) = elementwise(&x, n);
    gelu_elements::launch::<R>(
        &x.client.clone(),
        count,
        dim,
        x.into_array_arg(),
        y.clone().into_array_arg(),
        as_u32(n, "gelu"),
    );
    y
}

/// Gradient of the GELU input from the output's gradient `dy`.
pub(super) fn gelu_backward<R: CubeRuntime>(x: CubeTensor<R>, dy: CubeTensor<R>) -> CubeTensor<R> {
    let x = contiguous_f32(x, "gelu input");
    let dy = contiguous_f32(dy, "gelu output gradient");
    assert_eq!(x.shape(), dy.shape(), "fused gelu backward: shapes differ");
    let n = len(&x);
    let dx = empty_like(&x, x.shape());
    if n == 0 {
        return dx;
    }
    let (count, dim) = elementwise(&x, n);
    gelu_backward_elements::launch::<R>(
        &x.client.clone(),
        count,
        dim,
        x.into_array_arg(),
        dy.into_array_arg(),
        dx.clone().into_array_arg(),
        as_u32(n, "gelu backward"),
    );
    dx
}
