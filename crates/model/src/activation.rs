//! The activations BERT configs name.

use burn::tensor::activation::{gelu, gelu_approximate, relu, silu};
use burn::tensor::{backend::Backend, Tensor};

use crate::config::Activation;

/// Applies the configured activation element-wise.
pub fn apply<B: Backend, const D: usize>(activation: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match activation {
        Activation::Gelu => {
            if has_exact_gelu_backward::<B>(&x.device()) {
                gelu(x)
            } else {
                gelu_erf(x)
            }
        }
        Activation::GeluNew => gelu_approximate(x),
        Activation::Relu => relu(x),
        Activation::Silu => silu(x),
    }
}

/// Whether backend `B`'s own `gelu` has the exact (erf) derivative. Burn's default
/// `gelu_backward`, which the GPU backends (CubeCL: CUDA, wgpu) use, is the derivative of the
/// tanh approximation, so their gradients would drift from PyTorch's by up to ~1e-3 relative;
/// the CPU backend (flex) implements the exact one and is faster with its fused kernel.
fn has_exact_gelu_backward<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    // `autodiff<flex>` under training, `flex` for inference.
    name == "flex" || name == "autodiff<flex>"
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
