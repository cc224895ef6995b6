//! [`FusedKernels`] and, without autodiff, [`FusedOps`] for `CubeBackend<R, f32, _, _>`: the
//! trait methods hand their tensors to the kernels of each op family.

use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, IntElement};

use super::{cross_entropy, gelu, layer_norm, softmax};
use crate::fused::{CrossEntropyParts, FusedKernels, FusedOps, LayerNormGradients, LayerNormParts};

impl<R: CubeRuntime, I: IntElement, BT: BoolElement> FusedKernels for CubeBackend<R, f32, I, BT> {
    fn kernel_softmax(x: CubeTensor<R>) -> CubeTensor<R> {
        softmax::softmax(x)
    }

    fn kernel_softmax_backward(y: CubeTensor<R>, dy: CubeTensor<R>) -> CubeTensor<R> {
        softmax::softmax_backward(y, dy)
    }

    fn kernel_cross_entropy(
        logits: CubeTensor<R>,
        labels: CubeTensor<R>,
    ) -> CrossEntropyParts<Self> {
        let (nll, hit, log_sum_exp) = cross_entropy::cross_entropy(logits, labels);
        CrossEntropyParts {
            nll,
            hit,
            log_sum_exp,
        }
    }

    fn kernel_cross_entropy_backward(
        logits: CubeTensor<R>,
        labels: CubeTensor<R>,
        log_sum_exp: CubeTensor<R>,
        dnll: CubeTensor<R>,
    ) -> CubeTensor<R> {
        cross_entropy::cross_entropy_backward(logits, labels, log_sum_exp, dnll)
    }

    fn kernel_layer_norm(
        x: CubeTensor<R>,
        gamma: CubeTensor<R>,
        beta: CubeTensor<R>,
        eps: f64,
    ) -> LayerNormParts<Self> {
        let (y, mean, rstd) = layer_norm::layer_norm(x, gamma, beta, eps);
        LayerNormParts { y, mean, rstd }
    }

    fn kernel_layer_norm_backward(
        x: CubeTensor<R>,
        gamma: CubeTensor<R>,
        mean: CubeTensor<R>,
        rstd: CubeTensor<R>,
        dy: CubeTensor<R>,
    ) -> LayerNormGradients<Self> {
        let (x, gamma, beta) = layer_norm::layer_norm_backward(x, gamma, mean, rstd, dy);
        LayerNormGradients { x, gamma, beta }
    }

    fn kernel_gelu(x: CubeTensor<R>) -> CubeTensor<R> {
        gelu::gelu(x)
    }

    fn kernel_gelu_backward(x: CubeTensor<R>, dy: CubeTensor<R>) -> CubeTensor<R> {
        gelu::gelu_backward(x, dy)
    }
}

/// Without autodiff (evaluation, inference) the fused ops are the kernels' forward passes.
impl<R: CubeRuntime, I: IntElement, BT: BoolElement> FusedOps for CubeBackend<R, f32, I, BT> {
    fn fused_softmax_last(x: CubeTensor<R>) -> CubeTensor<R> {
        softmax::softmax(x)
    }

    fn fused_cross_entropy(
        logits: CubeTensor<R>,
        labels: CubeTensor<R>,
    ) -> (CubeTensor<R>, CubeTensor<R>) {
        let (nll, hit, _) = cross_entropy::cross_entropy(logits, labels);
        (nll, hit)
    }

    fn fused_layer_norm(
        x: CubeTensor<R>,
        gamma: CubeTensor<R>,
        beta: CubeTensor<R>,
        eps: f64,
    ) -> CubeTensor<R> {
        layer_norm::layer_norm(x, gamma, beta, eps).0
    }

    fn fused_gelu(x: CubeTensor<R>) -> CubeTensor<R> {
        gelu::gelu(x)
    }
}
