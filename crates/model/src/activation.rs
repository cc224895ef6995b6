//! The activations BERT configs name.

use burn::tensor::activation::{gelu, gelu_approximate, relu, silu};
use burn::tensor::{backend::Backend, Tensor};

use crate::config::Activation;

/// Applies the configured activation element-wise.
pub fn apply<B: Backend, const D: usize>(activation: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match activation {
        Activation::Gelu => gelu(x),
        Activation::GeluNew => gelu_approximate(x),
        Activation::Relu => relu(x),
        Activation::Silu => silu(x),
    }
}
