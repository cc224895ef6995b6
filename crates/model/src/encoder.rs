//! The post-LayerNorm transformer encoder, written out as BERT defines it.
//!
//! Burn's `TransformerEncoder` differs from BERT (extra dropout after the FFN activation,
//! other LayerNorm epsilon and placement, other initialisation), so the layer is spelled out.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::{backend::Backend, Tensor};

use crate::activation::apply;
use crate::config::{Activation, BertConfig};
use crate::init::Initializer;

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
        }
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
    pub fn forward(&self, x: Tensor<B, 2>, seq: usize, mask_bias: Tensor<B, 4>) -> Tensor<B, 2> {
        let [rows, hidden] = x.dims();
        let batch = rows / seq;
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        // Views only: the batched matrix product reads the strided heads in place.
        let split = |t: Tensor<B, 2>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((head_dim as f64).sqrt())
            + mask_bias;
        let probs = crate::dropout::apply(&self.probs_dropout, softmax(scores, 3));
        let context = probs.matmul(v).swap_dims(1, 2).reshape([rows, hidden]);
        let projected = crate::dropout::apply(&self.output_dropout, self.output.forward(context));
        self.layer_norm.forward(projected + x)
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
        }
    }

    /// `[batch · seq, hidden]` to `[batch · seq, hidden]`; `mask_bias` as
    /// [`BertAttention::forward`] takes it.
    pub fn forward(&self, x: Tensor<B, 2>, seq: usize, mask_bias: Tensor<B, 4>) -> Tensor<B, 2> {
        let attended = self.attention.forward(x, seq, mask_bias);
        let inner = apply(self.activation, self.intermediate.forward(attended.clone()));
        let out = crate::dropout::apply(&self.dropout, self.output.forward(inner));
        self.layer_norm.forward(out + attended)
    }
}
