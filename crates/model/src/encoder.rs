//! The post-LayerNorm transformer encoder, written out as BERT defines it.
//!
//! Burn's `TransformerEncoder` differs from BERT (extra dropout after the FFN activation,
//! other LayerNorm epsilon and placement, other initialisation), so the layer is spelled out.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear};
use burn::tensor::{backend::Backend, Tensor};

use crate::activation::activate;
use crate::config::{Activation, BertConfig};
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

    /// `x`: `[batch · seq, hidden]` (rows of a sequence are consecutive); `mask_bias`:
    /// `[batch, heads, seq, seq]`, 0 for real keys and a large negative number for padding.
    ///
    /// Hidden states stay 2-D through the encoder: every linear layer is then one matrix
    /// product, and its weight gradient one product over all tokens (a 3-D input makes Burn
    /// compute one product per sequence and sum them), and the bias adds are plain row
    /// broadcasts.
    ///
    /// In mixed precision, queries, keys, values, the scores' product, the context and the
    /// output projection are in the half type; scores are scaled, masked and soft-maxed in f32,
    /// and the residual sum and LayerNorm are f32.
    pub fn forward(&self, x: Tensor<B, 2>, seq: usize, mask_bias: Tensor<B, 4>) -> Tensor<B, 2> {
        let [rows, hidden] = x.dims();
        let batch = rows / seq;
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        let p = self.precision;
        // Views only: the batched matrix product reads the strided heads in place.
        let split = |t: Tensor<B, 2>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let q = split(precision::linear(&self.query, x.clone(), p));
        let k = split(precision::linear(&self.key, x.clone(), p));
        let v = split(precision::linear(&self.value, x.clone(), p));
        let scores =
            to_f32(q.matmul(k.swap_dims(2, 3))).div_scalar((head_dim as f64).sqrt()) + mask_bias;
        let probs = crate::dropout::apply(
            &self.probs_dropout,
            to_compute(crate::fused::softmax_last(scores), p),
        );
        let context = probs.matmul(v).swap_dims(1, 2).reshape([rows, hidden]);
        let projected = crate::dropout::apply(
            &self.output_dropout,
            precision::linear(&self.output, context, p),
        );
        crate::fused::layer_norm(&self.layer_norm, self.layer_norm_eps, to_f32(projected) + x)
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

    /// `[batch · seq, hidden]` to `[batch · seq, hidden]`; `mask_bias` as
    /// [`BertAttention::forward`] takes it. In mixed precision the feed-forward block's
    /// activation stays in the half type between its two products.
    pub fn forward(&self, x: Tensor<B, 2>, seq: usize, mask_bias: Tensor<B, 4>) -> Tensor<B, 2> {
        let p = self.precision;
        let attended = self.attention.forward(x, seq, mask_bias);
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
