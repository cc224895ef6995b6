//! The activations BERT configs name.

use burn::tensor::activation::{gelu, gelu_approximate, relu, silu};
use burn::tensor::{backend::Backend, Tensor};

use crate::backend::is_flex;
use crate::config::Activation;

/// Applies the configured activation element-wise.
pub fn activate<B: Backend, const D: usize>(
    activation: Activation,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    match activation {
        Activation::Gelu => {
            // Burn's default `gelu_backward`, which the GPU backends (CubeCL: CUDA, wgpu) use,
            // is the derivative of the tanh approximation: their gradients would drift from
            // PyTorch's by up to ~1e-3 relative. flex implements the exact one, and its fused
            // kernel is faster than the composition.
            if is_flex::<B>() {
                crate::fused::gelu(x, gelu)
            } else {
                gelu_erf(x)
            }
        }
        Activation::GeluNew => gelu_approximate(x),
        Activation::Relu => relu(x),
        Activation::Silu => silu(x),
    }
}

/// GELU written as `x · Φ(x) = x/2 · (1 + erf(x/√2))`: the autodiff graph then differentiates
/// erf exactly on every backend.
pub fn gelu_erf<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let cdf = x
        .clone()
        .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
        .erf()
        .add_scalar(1.0)
        .mul_scalar(0.5);
    x * cdf
}
