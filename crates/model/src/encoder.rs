//! The post-LayerNorm transformer encoder, written out as BERT defines it.
//!
//! Burn's `TransformerEncoder` differs from BERT (extra dropout after the FFN activation,
//! other LayerNorm epsilon and placement, other initialisation), so the layer is spelled out.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear};
use burn::tensor::{backend::Backend, Int, Tensor};

use crate::activation::activate;
use crate::config::{Activation, BertConfig};
use crate::fused::{AttentionDims, AttentionDropout};
use crate::init::Initializer;
use crate::precision::{self, to_compute, to_f32, Precision};

/// Multi-head self-attention with its output projection, residual and LayerNorm.
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    /// Query projection.
    pub query: Linear<B>,
    /// Key projection.
    pub key: Linear<B>,
    /// Value projection.
    pub value: Linear<B>,
    /// Output projection (`attention.output.dense`).
    pub output: Linear<B>,
    /// Post-residual LayerNorm (`attention.output.LayerNorm`).
    pub layer_norm: LayerNorm<B>,
    probs_dropout: Dropout,
    output_dropout: Dropout,
    num_heads: usize,
    #[module(skip)]
    precision: Precision,
    /// LayerNorm epsilon from the config: Burn's `LayerNorm` keeps its own private, and the
    /// fused LayerNorm needs it.
    #[module(skip)]
    layer_norm_eps: f64,
}

impl<B: Backend> BertAttention<B> {
    /// Initialised as BERT does.
    pub fn new(config: &BertConfig, init: &mut Initializer<'_, B>) -> Self {
        let h = config.hidden_size;
        Self {
            query: init.linear(h, h),
            key: init.linear(h, h),
            value: init.linear(h, h),
            output: init.linear(h, h),
            layer_norm: init.layer_norm(h, config.layer_norm_eps),
            probs_dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
            output_dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            num_heads: config.num_attention_heads,
            precision: Precision::Fp32,
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// Sets the float type of this block's matrix products.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Number of attention heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// `x`: `[batch · seq, hidden]` (rows of a sequence are consecutive); `bias`: the batch's
    /// padding bias.
    ///
    /// Hidden states stay 2-D through the encoder: every linear layer is then one matrix
    /// product, and its weight gradient one product over all tokens (a 3-D input makes Burn
    /// compute one product per sequence and sum them), and the bias adds are plain row
    /// broadcasts.
    ///
    /// Where the backend has the fused attention op (flex, f32), the scores, softmax, dropout
    /// and the values' product are that one op ([`crate::fused::attention()`]). Elsewhere they
    /// are composed; in mixed precision, queries, keys, values, the scores' product, the context
    /// and the output projection are then in the half type; scores are scaled, masked and
    /// soft-maxed in f32, and the residual sum and LayerNorm are f32.
    pub fn forward(&self, x: Tensor<B, 2>, seq: usize, bias: &AttentionBias<B>) -> Tensor<B, 2> {
        let [rows, hidden] = x.dims();
        let heads = self.num_heads;
        let dims = AttentionDims {
            batch: rows / seq,
            seq,
            heads,
            head_dim: hidden / heads,
        };
        let p = self.precision;
        let q = precision::linear(&self.query, x.clone(), p);
        let k = precision::linear(&self.key, x.clone(), p);
        let v = precision::linear(&self.value, x.clone(), p);
        let context = if crate::fused::attention_is_fused::<B>(q.dtype()) {
            // Drawn where the composed path draws its probabilities' mask seed, so the
            // layers after this one draw the same seeds either way.
            let dropout =
                crate::dropout::draw_seed::<B>(&self.probs_dropout, &x.device()).map(|seed| {
                    AttentionDropout {
                        seed,
                        p: self.probs_dropout.prob,
                    }
                });
            match crate::fused::attention([q, k, v], bias.keys.clone(), dims, dropout) {
                Ok(context) => context,
                Err((qkv, _)) => self.composed_context(qkv, bias, dims),
            }
        } else {
            self.composed_context([q, k, v], bias, dims)
        };
        let projected = crate::dropout::apply(
            &self.output_dropout,
            precision::linear(&self.output, context, p),
        );
        crate::fused::layer_norm(&self.layer_norm, self.layer_norm_eps, to_f32(projected) + x)
    }

    /// The attention context by composition of Burn ops (every backend without the fused op).
    fn composed_context(
        &self,
        [q, k, v]: [Tensor<B, 2>; 3],
        bias: &AttentionBias<B>,
        dims: AttentionDims,
    ) -> Tensor<B, 2> {
        let AttentionDims {
            batch,
            seq,
            heads,
            head_dim,
        } = dims;
        let p = self.precision;
        // Views only: the batched matrix product reads the strided heads in place.
        let split = |t: Tensor<B, 2>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let (q, k, v) = (split(q), split(k), split(v));
        let full = bias.full.clone().unwrap_or_else(|| bias.expanded(heads));
        let scores =
            to_f32(q.matmul(k.swap_dims(2, 3))).div_scalar((head_dim as f64).sqrt()) + full;
        let probs = crate::dropout::apply(
            &self.probs_dropout,
            to_compute(crate::fused::softmax_last(scores), p),
        );
        probs
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch * seq, heads * head_dim])
    }
}

/// Added to attention scores at padded keys. Large enough that `exp` underflows to exactly 0 in
/// f32 (as HuggingFace's `finfo.min` does), small enough to stay finite in f16/bf16.
const MASKED_SCORE: f32 = -10_000.0;

/// A batch's attention padding bias, built once and shared by every layer.
#[derive(Debug, Clone)]
pub struct AttentionBias<B: Backend> {
    /// `[batch, seq]`: 0 for real keys, a large negative number for padding (the fused op's
    /// form).
    pub keys: Tensor<B, 2>,
    /// The same expanded to the scores' `[batch, heads, seq, seq]` (the composed path's form):
    /// adding a same-shaped tensor is the CPU backend's fast path, a `[batch, 1, 1, seq]`
    /// broadcast is not. Built only where the composed path runs.
    pub full: Option<Tensor<B, 4>>,
}

impl<B: Backend> AttentionBias<B> {
    /// The bias of `attention_mask` (`[batch, seq]`, 1 for real tokens, 0 for padding), for
    /// `heads` heads whose matrix products run in `precision`.
    pub fn new(attention_mask: Tensor<B, 2, Int>, heads: usize, precision: Precision) -> Self {
        let keys = attention_mask
            .float()
            .neg()
            .add_scalar(1.0)
            .mul_scalar(MASKED_SCORE);
        let mut bias = Self { keys, full: None };
        // The fused op takes f32 inputs; mixed precision composes.
        let fused = precision == Precision::Fp32
            && crate::fused::attention_is_fused::<B>(burn::tensor::DType::F32);
        if !fused {
            bias.full = Some(bias.expanded(heads));
        }
        bias
    }

    fn expanded(&self, heads: usize) -> Tensor<B, 4> {
        let [batch, seq] = self.keys.dims();
        self.keys
            .clone()
            .reshape([batch, 1, 1, seq])
            .repeat_dim(2, seq)
            .repeat_dim(1, heads)
    }
}

/// One encoder layer: attention, then the feed-forward block with residual and LayerNorm.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention block.
    pub attention: BertAttention<B>,
    /// `intermediate.dense`: hidden → intermediate.
    pub intermediate: Linear<B>,
    /// `output.dense`: intermediate → hidden.
    pub output: Linear<B>,
    /// `output.LayerNorm`.
    pub layer_norm: LayerNorm<B>,
    dropout: Dropout,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    precision: Precision,
    /// LayerNorm epsilon from the config: Burn's `LayerNorm` keeps its own private, and the
    /// fused LayerNorm needs it.
    #[module(skip)]
    layer_norm_eps: f64,
}

impl<B: Backend> BertLayer<B> {
    /// Initialised as BERT does.
    pub fn new(config: &BertConfig, init: &mut Initializer<'_, B>) -> Self {
        Self {
            attention: BertAttention::new(config, init),
            intermediate: init.linear(config.hidden_size, config.intermediate_size),
            output: init.linear(config.intermediate_size, config.hidden_size),
            layer_norm: init.layer_norm(config.hidden_size, config.layer_norm_eps),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            activation: config.hidden_act,
            precision: Precision::Fp32,
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// Sets the float type of this layer's matrix products.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        self.attention.set_precision(precision);
    }

    /// `[batch · seq, hidden]` to `[batch · seq, hidden]`, with the batch's padding `bias`. In
    /// mixed precision the feed-forward block's activation stays in the half type between its
    /// two products.
    pub fn forward(&self, x: Tensor<B, 2>, seq: usize, bias: &AttentionBias<B>) -> Tensor<B, 2> {
        let p = self.precision;
        let attended = self.attention.forward(x, seq, bias);
        let inner = activate(
            self.activation,
            precision::linear(&self.intermediate, attended.clone(), p),
        );
        let out = crate::dropout::apply(&self.dropout, precision::linear(&self.output, inner, p));
        crate::fused::layer_norm(
            &self.layer_norm,
            self.layer_norm_eps,
            to_f32(out) + attended,
        )
    }
}
