//! Mixed precision: the float type the matrix products take, as `torch.autocast` does it.
//!
//! Weights, gradients and optimiser state stay f32 (master weights). Under `bf16` or `fp16`
//! every matrix product casts its two inputs to the half type; the kernels accumulate in f32 and
//! round the result to the half type. What follows a product and feeds the next one (the bias
//! add, the GELU, dropout) stays in the half type, so it moves half the bytes; LayerNorm,
//! softmax, the losses and the gradient norm run in f32, exactly where autocast puts them.
//!
//! Burn has no autocast, so the model calls [`linear`], [`matmul`], [`to_compute`] and
//! [`to_f32`] at the places a product begins and ends. Casting is differentiable: the gradient
//! of a cast is cast back, so f32 parameters receive f32 gradients.

use std::fmt;
use std::str::FromStr;

use burn::nn::Linear;
use burn::tensor::{backend::Backend, DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The float type of the matrix products (`[train] precision` in a run config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32 (the reference; the CPU default).
    #[default]
    Fp32,
    /// bfloat16 inputs to the matrix products, f32 accumulation, f32 master weights.
    Bf16,
    /// float16 inputs to the matrix products; needs loss scaling, which the trainer adds.
    Fp16,
}

impl Precision {
    /// Every value, in the order the documentation lists them.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Fp16];

    /// The float type of matrix-product inputs and outputs.
    pub fn compute_dtype(self) -> FloatDType {
        match self {
            Precision::Fp32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::Fp16 => FloatDType::F16,
        }
    }

    /// Whether products run in a half type (the model then casts around them).
    pub fn is_mixed(self) -> bool {
        self != Precision::Fp32
    }

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// Whether backend `B` on `device` stores and computes this precision's compute type; the
    /// trainer refuses a precision the backend cannot run before any work starts (wgpu has no
    /// bf16, for example).
    pub fn supported_by<B: Backend>(self, device: &B::Device) -> bool {
        let dtype = match self {
            Precision::Fp32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::Fp16 => DType::F16,
        };
        B::supports_dtype(device, dtype)
    }

    /// `Ok` when backend `B` can run this precision on `device`, else what to do instead (the
    /// trainer and `bert bench` both refuse with it before any work).
    pub fn ensure_supported<B: Backend>(self, device: &B::Device) -> Result<(), String> {
        if self.supported_by::<B>(device) {
            return Ok(());
        }
        Err(format!(
            "{self} is not supported by the {} backend; use fp32{}",
            B::name(device),
            if self == Precision::Bf16 {
                " (wgpu has no bf16; CUDA and the CPU backend have it)"
            } else {
                ""
            }
        ))
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown precision `{s}`: expected fp32, bf16 or fp16"))
    }
}

/// `x` in the compute type of `p` (a no-op in f32, or when `x` already has it).
pub fn to_compute<B: Backend, const D: usize>(x: Tensor<B, D>, p: Precision) -> Tensor<B, D> {
    if p.is_mixed() {
        x.cast(p.compute_dtype())
    } else {
        x
    }
}

/// `x` back in f32, for LayerNorm, softmax, residual sums and losses.
pub fn to_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.cast(FloatDType::F32)
}

/// `a · b` with both inputs in the compute type of `p`; the result has that type.
pub fn matmul<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    p: Precision,
) -> Tensor<B, D> {
    to_compute(a, p).matmul(to_compute(b, p))
}

/// `layer` applied to `x` (`[rows, in]`) with the product in the compute type of `p`; the
/// result (`[rows, out]`, bias added) has that type. In f32 this is `layer.forward(x)`.
pub fn linear<B: Backend>(layer: &Linear<B>, x: Tensor<B, 2>, p: Precision) -> Tensor<B, 2> {
    if !p.is_mixed() {
        return layer.forward(x);
    }
    burn::tensor::module::linear(
        to_compute(x, p),
        to_compute(layer.weight.val(), p),
        layer.bias.as_ref().map(|bias| to_compute(bias.val(), p)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
        }
        let err = "bfloat16".parse::<Precision>().unwrap_err();
        assert!(err.contains("bf16"), "{err}");
    }

    #[test]
    fn half_linear_is_close_to_f32_and_gives_f32_gradients() {
        let device = Default::default();
        let layer = LinearConfig::new(64, 32).init::<B>(&device);
        let x = Tensor::<B, 2>::random([16, 64], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let reference = linear(&layer, x.clone(), Precision::Fp32);
        for p in [Precision::Bf16, Precision::Fp16] {
            let y = linear(&layer, x.clone(), p);
            assert_eq!(y.dtype(), DType::from(p.compute_dtype()));
            let y = to_f32(y);
            let diff = (y.clone() - reference.clone()).abs().max().into_scalar();
            let scale = reference.clone().abs().max().into_scalar();
            // One rounding of the inputs (2^-8 for bf16) over a 64-term sum, and one of the
            // output: well under 2% of the largest value.
            assert!(diff < 0.02 * scale, "{p}: max diff {diff} against {scale}");
            let grads = y.sum().backward();
            let gw = layer.weight.grad(&grads).expect("weight gradient");
            assert_eq!(
                gw.dtype(),
                DType::F32,
                "{p}: master weights get f32 gradients"
            );
            let gx = x.grad(&grads).expect("input gradient");
            assert_eq!(gx.dtype(), DType::F32);
        }
    }
}
