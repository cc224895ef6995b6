//! Fused softmax, cross-entropy, LayerNorm, GELU and dropout with hand-written backward passes.
//!
//! Burn composes these from element-wise ops, and under autodiff every one of them is a graph
//! node with its own pass over memory and its own backward; on the CPU backend (flex) those
//! element-wise passes also run on one thread. Here each is one backend extension op
//! ([`FusedOps`]), in Burn's documented pattern: the kernels ([`FusedKernels`]) are
//! implemented for flex (row-parallel, [`kernels`]) and, with the `wgpu` or `cuda` feature, as
//! CubeCL kernels for Burn's wgpu and CUDA backends without fusion (`cube`), and `Autodiff<B>`
//! implements the ops for any backend with those kernels, recording one node whose backward is
//! the hand-written gradient.
//!
//! The model stays generic over every backend: the functions below ([`softmax_last`],
//! [`cross_entropy`], [`layer_norm`], [`gelu`], [`dropout`]) route a tensor to the fused op when
//! its backend is one of those (bare or under autodiff) and it is f32, and compute the same
//! function by composition of Burn ops everywhere else (Burn's fusion backends, ndarray, half
//! types), which is also the reference the tests hold the fused ops to. Dropout is fused on flex
//! only ([`DropoutKernels`]): its mask is a host stream the CubeCL kernels do not reproduce
//! (`cube` says why).
//!
//! The optimiser's AdamW update is fused the same way, on flex and on the CubeCL backends
//! ([`adamw`]).
//!
//! Self-attention is one op too ([`attention()`]): the scores, key bias, softmax, dropout and the
//! values' product, whose backward pass recomputes the probabilities (FlashAttention-2's scheme,
//! [`attention`]) instead of keeping `[batch, heads, seq, seq]` tensors. It has kernels on flex
//! and on the CubeCL backends, bare or under autodiff, with its own counter-based dropout mask
//! that both draw alike.
//!
//! `BERT_UNFUSED` (comma-separated `softmax`, `cross_entropy`, `layer_norm`, `gelu`, `dropout`,
//! `adamw`, `attention`, or `all`)
//! turns fused ops off for a run, for measuring what each one is worth (`docs/benchmarks.md`).

pub mod attention;
mod autodiff;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod cube;
mod flex;
pub mod kernels;
mod math;

use std::any::Any;
use std::sync::OnceLock;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};

pub use attention::{AttentionDims, AttentionDropout};

use crate::backend::FlexKind;
use burn::nn::LayerNorm;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, Int, Tensor, TensorData, TensorPrimitive};

/// Forward results of the fused cross-entropy on a backend's primitives.
#[derive(Debug, Clone)]
pub struct CrossEntropyParts<B: Backend> {
    /// `[n]` negative log-likelihood of each row's label.
    pub nll: FloatTensor<B>,
    /// `[n]` 1.0 where the row's arg-max is its label, else 0.0 (not differentiable).
    pub hit: FloatTensor<B>,
    /// `[n]` log Σ exp of each row, kept for the backward pass.
    pub log_sum_exp: FloatTensor<B>,
}

/// Forward results of the fused LayerNorm on a backend's primitives.
#[derive(Debug, Clone)]
pub struct LayerNormParts<B: Backend> {
    /// The normalised, scaled and shifted input.
    pub y: FloatTensor<B>,
    /// Mean of each row (shape of the input without its last dimension, flattened).
    pub mean: FloatTensor<B>,
    /// `1 / √(var + ε)` of each row.
    pub rstd: FloatTensor<B>,
}

/// Gradients of the fused LayerNorm's three inputs.
#[derive(Debug, Clone)]
pub struct LayerNormGradients<B: Backend> {
    /// Gradient of the input.
    pub x: FloatTensor<B>,
    /// Gradient of the scale `gamma`.
    pub gamma: FloatTensor<B>,
    /// Gradient of the shift `beta`.
    pub beta: FloatTensor<B>,
}

/// Forward results of the fused attention on a backend's primitives.
#[derive(Debug, Clone)]
pub struct AttentionParts<B: Backend> {
    /// `[batch · seq, hidden]` context.
    pub context: FloatTensor<B>,
    /// `[batch · heads · seq]` row log-sum-exp of the scores, kept for the backward pass.
    pub lse: FloatTensor<B>,
}

/// Gradients of the fused attention's queries, keys and values.
#[derive(Debug, Clone)]
pub struct AttentionGradients<B: Backend> {
    /// Gradient of the queries.
    pub q: FloatTensor<B>,
    /// Gradient of the keys.
    pub k: FloatTensor<B>,
    /// Gradient of the values.
    pub v: FloatTensor<B>,
}

/// What the fused attention's backward pass keeps of its forward pass: inputs, output and row
/// log-sum-exp (never the probabilities), and the mask's seed.
#[derive(Debug, Clone)]
pub struct AttentionSaved<B: Backend> {
    /// Queries, keys and values, `[batch · seq, hidden]`.
    pub qkv: [FloatTensor<B>; 3],
    /// The forward pass's context.
    pub context: FloatTensor<B>,
    /// The forward pass's row log-sum-exp.
    pub lse: FloatTensor<B>,
    /// `[batch, seq]` key bias.
    pub key_bias: FloatTensor<B>,
    /// Sizes.
    pub dims: AttentionDims,
    /// Dropout on the probabilities, if any.
    pub dropout: Option<AttentionDropout>,
}

/// The fused kernels a backend provides: forward passes that also return what their backward
/// needs, and the backward passes. Implemented for flex; `Autodiff<B>` builds [`FusedOps`] on
/// any backend that has them. Inputs are f32.
pub trait FusedKernels: Backend {
    /// Softmax over the last dimension.
    fn kernel_softmax(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Gradient of the softmax input from its output `y` and the output's gradient `dy`.
    fn kernel_softmax_backward(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Cross-entropy of each row of `logits [n, classes]` against `labels [n]`.
    fn kernel_cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
    ) -> CrossEntropyParts<Self>;
    /// Gradient of the logits from the gradient `dnll [n]` of each row's loss.
    fn kernel_cross_entropy_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        log_sum_exp: FloatTensor<Self>,
        dnll: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// LayerNorm over the last dimension, with the row statistics.
    fn kernel_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> LayerNormParts<Self>;
    /// Gradients of LayerNorm's input, scale and shift from the output's gradient `dy`.
    fn kernel_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> LayerNormGradients<Self>;
    /// Exact (erf) GELU.
    fn kernel_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Gradient of the GELU input from the output's gradient `dy`.
    fn kernel_gelu_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The fused dropout's kernel, a trait of its own: its mask is flex's host stream
/// ([`kernels::dropout`]), which the CubeCL backends do not reproduce (see `cube`), so only flex
/// has it. Inputs are f32.
pub trait DropoutKernels: Backend {
    /// `x` with the dropout mask of `(seed, p)` applied; applied to the output's gradient it is
    /// also the backward pass (the mask is regenerated, never stored).
    fn kernel_dropout(x: FloatTensor<Self>, seed: u64, p: f64) -> FloatTensor<Self>;
}

/// The fused attention's kernels, a trait of its own so a backend can have it without the other
/// fused kernels (the CubeCL backends). Inputs are f32.
pub trait AttentionKernels: Backend {
    /// Multi-head attention of `[batch · seq, hidden]` queries, keys and values with a
    /// `[batch, seq]` key bias ([`attention::attention_forward`]).
    fn kernel_attention(
        qkv: [FloatTensor<Self>; 3],
        key_bias: FloatTensor<Self>,
        dims: AttentionDims,
        dropout: Option<AttentionDropout>,
    ) -> AttentionParts<Self>;
    /// Gradients of the attention's queries, keys and values from the context's gradient.
    fn kernel_attention_backward(
        saved: AttentionSaved<Self>,
        dcontext: FloatTensor<Self>,
    ) -> AttentionGradients<Self>;
}

/// The fused ops the model calls: one op (one autodiff node) each. Implemented for flex, for the
/// CubeCL backends with the `wgpu` or `cuda` feature, and for `Autodiff<B>` over any backend
/// with [`FusedKernels`].
pub trait FusedOps: Backend {
    /// Softmax over the last dimension.
    fn fused_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `(nll [n], hit [n])` of `logits [n, classes]` against `labels [n]`.
    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// LayerNorm over the last dimension.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;
    /// Exact (erf) GELU.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The fused dropout op (one autodiff node). Implemented for flex and for `Autodiff<B>` over any
/// backend with [`DropoutKernels`].
pub trait DropoutOps: Backend {
    /// Inverted dropout with the mask of `(seed, p)`.
    fn fused_dropout(x: FloatTensor<Self>, seed: u64, p: f64) -> FloatTensor<Self>;
}

/// The fused attention op the model calls (one autodiff node). Implemented for flex, for the
/// CubeCL backends with the `wgpu` or `cuda` feature, and for `Autodiff<B>` over any backend
/// with [`AttentionKernels`].
pub trait AttentionOps: Backend {
    /// Multi-head attention with a key bias and dropout on the probabilities.
    fn fused_attention(
        qkv: [FloatTensor<Self>; 3],
        key_bias: FloatTensor<Self>,
        dims: AttentionDims,
        dropout: Option<AttentionDropout>,
    ) -> FloatTensor<Self>;
}

/// The fused ops, by name, as `BERT_UNFUSED` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Attention softmax.
    Softmax,
    /// Log-softmax + negative log-likelihood + arg-max of the MLM and NSP heads.
    CrossEntropy,
    /// Every LayerNorm.
    LayerNorm,
    /// The feed-forward activation (exact GELU).
    Gelu,
    /// The AdamW update of every parameter.
    Adamw,
    /// Dropout (mask drawn and applied in one pass, regenerated in the backward pass).
    Dropout,
    /// Self-attention: scores, key bias, softmax, dropout and the values' product in one op
    /// whose backward pass recomputes the probabilities.
    Attention,
}

impl Op {
    /// Every fused op.
    pub const ALL: [Op; 7] = [
        Op::Softmax,
        Op::CrossEntropy,
        Op::LayerNorm,
        Op::Gelu,
        Op::Adamw,
        Op::Dropout,
        Op::Attention,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Softmax => "softmax",
            Op::CrossEntropy => "cross_entropy",
            Op::LayerNorm => "layer_norm",
            Op::Gelu => "gelu",
            Op::Adamw => "adamw",
            Op::Dropout => "dropout",
            Op::Attention => "attention",
        }
    }
}

/// Whether `op` runs fused when the backend has it (`BERT_UNFUSED` turns ops off).
pub fn enabled(op: Op) -> bool {
    static UNFUSED: OnceLock<Vec<String>> = OnceLock::new();
    let off = UNFUSED.get_or_init(|| {
        let (off, unknown) = parse_unfused(&std::env::var("BERT_UNFUSED").unwrap_or_default());
        for name in unknown {
            // A typo would otherwise measure the fused op while claiming the composed one.
            tracing::warn!(
                "BERT_UNFUSED: unknown op `{name}` ignored; expected a comma-separated list of {}, or all",
                Op::ALL.map(Op::name).join(", ")
            );
        }
        off
    });
    !off.iter().any(|s| s == "all" || s == op.name())
}

/// Splits a `BERT_UNFUSED` value into the names it turns off and the names it does not know.
fn parse_unfused(value: &str) -> (Vec<String>, Vec<String>) {
    value
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .partition(|s| s == "all" || Op::ALL.iter().any(|op| op.name() == s))
}

impl Op {
    /// Whether the CubeCL backends have this op's kernels: all but dropout, whose mask is flex's
    /// host stream (`cube`'s module documentation says why).
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    fn on_cube(self) -> bool {
        self != Op::Dropout
    }
}

/// Which fused implementation a backend type has: flex's, or the CubeCL kernels' ([`cube`]).
#[derive(Clone, Copy)]
enum Route {
    Flex(FlexKind),
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    Cube(crate::backend::CubeKind),
}

impl Route {
    /// The route for backend `B` when `op` is on and its inputs are f32.
    fn of<B: Backend>(op: Op, f32_inputs: bool) -> Option<Route> {
        if !f32_inputs || !enabled(op) {
            return None;
        }
        if let Some(kind) = crate::backend::flex_kind::<B>() {
            return Some(Route::Flex(kind));
        }
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if op.on_cube() {
            if let Some(kind) = crate::backend::cube_kind::<B>() {
                return Some(Route::Cube(kind));
            }
        }
        None
    }

    /// Whether this route's kernels take attention of these sizes (the CubeCL kernels keep a
    /// row of scores in shared memory, so their sequences have a bound).
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(unused_variables))]
    fn takes(self, dims: AttentionDims) -> bool {
        match self {
            Route::Flex(_) => true,
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            Route::Cube(_) => cube::supports(dims),
        }
    }
}

/// The flex type `B` is when `op` is on and its inputs are f32: the route of the ops only flex
/// has (dropout).
fn flex_route<B: Backend>(op: Op, f32_inputs: bool) -> Option<FlexKind> {
    match Route::of::<B>(op, f32_inputs)? {
        Route::Flex(kind) => Some(kind),
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        Route::Cube(_) => None,
    }
}

/// Moves `value` to the type `U` it is known to be: a primitive of `B` to the primitive of the
/// concrete backend `B` was found to be by [`Route::of`] (its `TypeId`), and back.
fn same<T: Any, U: Any>(value: T) -> U {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
        .expect("the route was chosen by the backend's TypeId, so the types are equal")
}

/// Runs `$call` with `$F` standing for flex's routed type.
macro_rules! flex_routed {
    ($kind:expr, |$F:ident| $call:expr) => {
        match $kind {
            FlexKind::Bare => {
                type $F = Flex;
                $call
            }
            FlexKind::Autodiff => {
                type $F = Autodiff<Flex>;
                $call
            }
        }
    };
}

/// Runs `$call` with `$F` standing for the routed concrete backend.
macro_rules! routed {
    ($route:expr, |$F:ident| $call:expr) => {
        match $route {
            Route::Flex(kind) => flex_routed!(kind, |$F| $call),
            #[cfg(feature = "wgpu")]
            Route::Cube(crate::backend::CubeKind::Wgpu) => {
                type $F = cube::Wgpu;
                $call
            }
            #[cfg(feature = "wgpu")]
            Route::Cube(crate::backend::CubeKind::AutodiffWgpu) => {
                type $F = Autodiff<cube::Wgpu>;
                $call
            }
            #[cfg(feature = "cuda")]
            Route::Cube(crate::backend::CubeKind::Cuda) => {
                type $F = cube::Cuda;
                $call
            }
            #[cfg(feature = "cuda")]
            Route::Cube(crate::backend::CubeKind::AutodiffCuda) => {
                type $F = Autodiff<cube::Cuda>;
                $call
            }
        }
    };
}

fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

fn tensor<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// Softmax over the last dimension (the attention probabilities).
pub fn softmax_last<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match Route::of::<B>(Op::Softmax, x.dtype() == DType::F32) {
        Some(route) => {
            let p = float(x);
            let out: FloatTensor<B> = routed!(route, |F| same(F::fused_softmax_last(same(p))));
            tensor(out)
        }
        None => softmax(x, D - 1),
    }
}

/// Per-row cross-entropy and correctness of `logits [n, classes]` against `labels [n]`:
/// `(−log softmax(logits)[label], 1.0 if the first arg-max is the label else 0.0)`.
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    match Route::of::<B>(Op::CrossEntropy, logits.dtype() == DType::F32) {
        Some(route) => {
            let (x, l) = (float(logits), labels.into_primitive());
            let (nll, hit): (FloatTensor<B>, FloatTensor<B>) = routed!(route, |F| {
                let (nll, hit) = F::fused_cross_entropy(same(x), same(l));
                (same(nll), same(hit))
            });
            (tensor(nll), tensor(hit))
        }
        None => cross_entropy_composed(logits, labels),
    }
}

/// [`cross_entropy`] composed from Burn ops: the path of every backend without the fused op.
pub fn cross_entropy_composed<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [n, _] = logits.dims();
    let labels = labels.reshape([n, 1]);
    let hit = logits
        .clone()
        .argmax(1)
        .equal(labels.clone())
        .float()
        .reshape([n]);
    let nll = log_softmax(logits, 1).gather(1, labels).reshape([n]).neg();
    (nll, hit)
}

/// `norm` applied to `x` over its last dimension, with epsilon `eps` (the module keeps its own
/// private; the model passes the config's, which built the module).
pub fn layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    eps: f64,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let route = Route::of::<B>(Op::LayerNorm, x.dtype() == DType::F32);
    match (route, norm.beta.as_ref()) {
        (Some(route), Some(beta)) => {
            let (p, g, b) = (float(x), float(norm.gamma.val()), float(beta.val()));
            let out: FloatTensor<B> = routed!(route, |F| same(F::fused_layer_norm(
                same(p),
                same(g),
                same(b),
                eps
            )));
            tensor(out)
        }
        _ => norm.forward(x),
    }
}

/// Exact (erf) GELU; `composed` computes it where the fused op does not apply.
pub fn gelu<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    composed: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    match Route::of::<B>(Op::Gelu, x.dtype() == DType::F32) {
        Some(route) => {
            let p = float(x);
            let out: FloatTensor<B> = routed!(route, |F| same(F::fused_gelu(same(p))));
            tensor(out)
        }
        None => composed(x),
    }
}

/// Inverted dropout of `x` with the mask of `(seed, p)` ([`kernels::dropout`]); `composed`
/// computes the same where the fused op does not apply.
pub fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    seed: u64,
    p: f64,
    composed: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    match flex_route::<B>(Op::Dropout, x.dtype() == DType::F32) {
        Some(kind) => {
            let x = float(x);
            let out: FloatTensor<B> =
                flex_routed!(kind, |F| same(F::fused_dropout(same(x), seed, p)));
            tensor(out)
        }
        None => composed(x),
    }
}

/// Whether [`attention()`] runs fused for backend `B` on inputs of type `dtype`: where it does
/// not, the caller computes attention by composition and needs the full score bias. (On the
/// CubeCL backends, sequences longer than `cube::MAX_SEQ` still come back for composition.)
pub fn attention_is_fused<B: Backend>(dtype: DType) -> bool {
    Route::of::<B>(Op::Attention, dtype == DType::F32).is_some()
}

/// Multi-head self-attention of `q`, `k`, `v` (`[batch · seq, hidden]`, each head a column
/// block) with `key_bias` (`[batch, seq]`: 0 for real keys, a large negative number for padding)
/// added to every query's scores, scale `1/√head_dim`, and `dropout` on the probabilities:
/// `Ok(context)`, `[batch · seq, hidden]`. On backends without the fused op (or with it turned
/// off, or half-precision inputs, or sizes its kernels do not take) the inputs come back
/// (`Err`) for the caller's composition.
#[allow(clippy::type_complexity)]
pub fn attention<B: Backend>(
    qkv: [Tensor<B, 2>; 3],
    key_bias: Tensor<B, 2>,
    dims: AttentionDims,
    dropout: Option<AttentionDropout>,
) -> Result<Tensor<B, 2>, ([Tensor<B, 2>; 3], Tensor<B, 2>)> {
    let all_f32 = qkv.iter().all(|t| t.dtype() == DType::F32) && key_bias.dtype() == DType::F32;
    match Route::of::<B>(Op::Attention, all_f32).filter(|route| route.takes(dims)) {
        Some(route) => {
            let qkv = qkv.map(float);
            let bias = float(key_bias);
            let out: FloatTensor<B> = routed!(route, |F| same(F::fused_attention(
                qkv.map(same),
                same(bias),
                dims,
                dropout
            )));
            Ok(tensor(out))
        }
        None => Err((qkv, key_bias)),
    }
}

/// [`attention()`] composed from Burn ops, with the same dropout mask: the reference the fused op
/// is tested against. `key_bias` is `[batch, seq]`.
pub fn attention_composed<B: Backend>(
    [q, k, v]: [Tensor<B, 2>; 3],
    key_bias: Tensor<B, 2>,
    dims: AttentionDims,
    dropout: Option<AttentionDropout>,
) -> Tensor<B, 2> {
    let AttentionDims {
        batch,
        seq,
        heads,
        head_dim,
    } = dims;
    let split = |t: Tensor<B, 2>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
    let (q, k, v) = (split(q), split(k), split(v));
    let bias = key_bias.reshape([batch, 1, 1, seq]);
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .div_scalar((head_dim as f64).sqrt())
        + bias;
    let mut probs = softmax(scores, 3);
    if let Some(dropout) = dropout {
        let mask = TensorData::new(dropout.mask(dims), [batch, heads, seq, seq]);
        probs = probs * Tensor::from_data(mask, &v.device());
    }
    probs
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([batch * seq, heads * head_dim])
}

/// One parameter's AdamW inputs for [`adamw`]: flattened value, gradient and moments (`None`
/// before the first step).
#[derive(Debug, Clone)]
pub struct AdamwInputs<B: Backend> {
    /// Current value.
    pub value: Tensor<B, 1>,
    /// Gradient (before `grad_scale`).
    pub grad: Tensor<B, 1>,
    /// First and second moments.
    pub moments: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
}

/// The fused AdamW update (one pass over value, gradient and moments) on flex and, with the
/// `wgpu` or `cuda` feature, on the CubeCL backends, each without autodiff (the optimiser's
/// tensors): `Ok((value, m, v))`, or the inputs back (`Err`) on backends without it, for the
/// caller's composed update.
#[allow(clippy::type_complexity)]
pub fn adamw<B: Backend>(
    inputs: AdamwInputs<B>,
    scalars: kernels::AdamwScalars,
) -> Result<(Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>), AdamwInputs<B>> {
    let all_f32 = inputs.value.dtype() == DType::F32
        && inputs.grad.dtype() == DType::F32
        && inputs
            .moments
            .as_ref()
            .is_none_or(|(m, v)| m.dtype() == DType::F32 && v.dtype() == DType::F32);
    match Route::of::<B>(Op::Adamw, all_f32) {
        Some(Route::Flex(FlexKind::Bare)) => Ok(adamw_flex(inputs, scalars)),
        #[cfg(feature = "wgpu")]
        Some(Route::Cube(crate::backend::CubeKind::Wgpu)) => {
            Ok(adamw_cube::<cubecl::wgpu::WgpuRuntime, B>(inputs, scalars))
        }
        #[cfg(feature = "cuda")]
        Some(Route::Cube(crate::backend::CubeKind::Cuda)) => {
            Ok(adamw_cube::<cubecl::cuda::CudaRuntime, B>(inputs, scalars))
        }
        _ => Err(inputs),
    }
}

/// [`adamw`] on flex, `B` being `Flex`.
fn adamw_flex<B: Backend>(
    inputs: AdamwInputs<B>,
    scalars: kernels::AdamwScalars,
) -> (Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>) {
    let flex_f32 = |t: Tensor<B, 1>| flex::contiguous_f32(same(float(t)));
    let w = flex_f32(inputs.value);
    // The gradient's buffer receives the new value, the moments are updated where they
    // are: in place when this is their only owner (the trainer's case), else on a copy.
    let mut out = flex_f32(inputs.grad);
    let n = flex::values(&w).len();
    let (mut m, mut v) = match inputs.moments {
        Some((m, v)) => (flex_f32(m), flex_f32(v)),
        None => (
            flex::from_vec(vec![0.0; n], [n].into()),
            flex::from_vec(vec![0.0; n], [n].into()),
        ),
    };
    kernels::adamw(
        flex::values(&w),
        out.storage_mut::<f32>(),
        m.storage_mut::<f32>(),
        v.storage_mut::<f32>(),
        scalars,
    );
    let back = |t: FlexTensor| tensor::<B, 1>(same(t));
    (back(out), back(m), back(v))
}

/// [`adamw`] on a CubeCL backend without autodiff, `B`'s float tensors being `CubeTensor<R>`.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn adamw_cube<R: burn_cubecl::CubeRuntime, B: Backend>(
    inputs: AdamwInputs<B>,
    scalars: kernels::AdamwScalars,
) -> (Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>) {
    type Cube<R> = burn_cubecl::tensor::CubeTensor<R>;
    let cube = |t: Tensor<B, 1>| -> Cube<R> { same(float(t)) };
    let moments = inputs.moments.map(|(m, v)| (cube(m), cube(v)));
    let (w, m, v) = cube::adamw(cube(inputs.value), cube(inputs.grad), moments, scalars);
    let back = |t: Cube<R>| tensor::<B, 1>(same(t));
    (back(w), back(m), back(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_unfused_names_are_split_into_known_and_unknown() {
        let (off, unknown) = parse_unfused(" Softmax, gelu,,layernorm ,all");
        assert_eq!(off, ["softmax", "gelu", "all"]);
        assert_eq!(unknown, ["layernorm"]);
        let (off, unknown) = parse_unfused("");
        assert!(off.is_empty() && unknown.is_empty());
        for op in Op::ALL {
            assert_eq!(parse_unfused(op.name()).0, [op.name()]);
        }
    }
}
