//! `BertModel` (embeddings, encoder, pooler) and `BertForPreTraining` (plus MLM and NSP heads).

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{backend::Backend, Int, Tensor};

use crate::activation::activate;
use crate::config::{Activation, BertConfig};
use crate::embeddings::BertEmbeddings;
use crate::encoder::{AttentionBias, BertLayer};
use crate::init::Initializer;
use crate::precision::{self, to_f32, Precision};

/// The BERT encoder: embeddings, `num_hidden_layers` layers and the `[CLS]` pooler.
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// Input embeddings.
    pub embeddings: BertEmbeddings<B>,
    /// Encoder layers, bottom first.
    pub layers: Vec<BertLayer<B>>,
    /// Pooler: dense + tanh on the first token.
    pub pooler: Linear<B>,
    #[module(skip)]
    precision: Precision,
}

/// Outputs of [`BertModel::forward`].
#[derive(Debug, Clone)]
pub struct EncoderOutput<B: Backend> {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// `[batch, hidden]`.
    pub pooler_output: Tensor<B, 2>,
}

impl<B: Backend> BertModel<B> {
    /// A freshly initialised encoder.
    pub fn new(config: &BertConfig, init: &mut Initializer<'_, B>) -> Self {
        Self {
            embeddings: BertEmbeddings::new(config, init),
            layers: (0..config.num_hidden_layers)
                .map(|_| BertLayer::new(config, init))
                .collect(),
            pooler: init.linear(config.hidden_size, config.hidden_size),
            precision: Precision::Fp32,
        }
    }

    /// Sets the float type of every matrix product in the encoder and pooler.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        for layer in &mut self.layers {
            layer.set_precision(precision);
        }
    }

    /// Runs the encoder. `attention_mask` is 1 for real tokens and 0 for padding.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> EncoderOutput<B> {
        let [batch, seq] = input_ids.dims();
        let heads = self
            .layers
            .first()
            .map(|layer| layer.attention.num_heads())
            .unwrap_or(1);
        let bias = AttentionBias::new(attention_mask, heads, self.precision);
        let mut hidden = self.embeddings.forward(input_ids, token_type_ids);
        for layer in &self.layers {
            hidden = layer.forward(hidden, seq, &bias);
        }
        let width = hidden.dims()[1];
        let hidden = hidden.reshape([batch, seq, width]);
        let first = hidden
            .clone()
            .slice([0..batch, 0..1])
            .reshape([batch, width]);
        let pooled = to_f32(precision::linear(&self.pooler, first, self.precision)).tanh();
        EncoderOutput {
            last_hidden_state: hidden,
            pooler_output: pooled,
        }
    }
}

/// The MLM prediction head: transform (dense, activation, LayerNorm), then the decoder tied to
/// the word embeddings plus its own output bias.
#[derive(Module, Debug)]
pub struct MlmHead<B: Backend> {
    /// `cls.predictions.transform.dense`.
    pub transform: Linear<B>,
    /// `cls.predictions.transform.LayerNorm`.
    pub layer_norm: LayerNorm<B>,
    /// `cls.predictions.bias`: one bias per vocabulary entry.
    pub bias: Param<Tensor<B, 1>>,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    precision: Precision,
    /// LayerNorm epsilon from the config: Burn's `LayerNorm` keeps its own private, and the
    /// fused LayerNorm needs it.
    #[module(skip)]
    layer_norm_eps: f64,
}

impl<B: Backend> MlmHead<B> {
    /// Freshly initialised as BERT does.
    pub fn new(config: &BertConfig, init: &mut Initializer<'_, B>) -> Self {
        Self {
            transform: init.linear(config.hidden_size, config.hidden_size),
            layer_norm: init.layer_norm(config.hidden_size, config.layer_norm_eps),
            bias: init.zeros(config.vocab_size),
            activation: config.hidden_act,
            precision: Precision::Fp32,
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// Sets the float type of the transform's and the decoder's products.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// `[n, hidden]` hidden states to `[n, vocab]` f32 logits. `word_embeddings` is `[vocab, hidden]`:
    /// reading it through `val()` (not a cloned `Param`) is what keeps the weights tied, so the
    /// decoder's gradient flows into the one embedding parameter.
    pub fn forward(&self, hidden: Tensor<B, 2>, word_embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        let p = self.precision;
        let h = crate::fused::layer_norm(
            &self.layer_norm,
            self.layer_norm_eps,
            to_f32(activate(
                self.activation,
                precision::linear(&self.transform, hidden, p),
            )),
        );
        to_f32(precision::matmul(h, word_embeddings.transpose(), p))
            + self.bias.val().unsqueeze::<2>()
    }
}

/// BERT with the two pre-training heads (masked-language model and next-sentence prediction).
#[derive(Module, Debug)]
pub struct BertForPreTraining<B: Backend> {
    /// The encoder (`bert.` in HuggingFace names).
    pub bert: BertModel<B>,
    /// MLM head (`cls.predictions`).
    pub mlm: MlmHead<B>,
    /// NSP head (`cls.seq_relationship`): pooled output → 2 logits (0 = is next, 1 = random).
    pub nsp: Linear<B>,
    #[module(skip)]
    precision: Precision,
}

/// Outputs of [`BertForPreTraining::forward_full`], named as HuggingFace names them.
#[derive(Debug, Clone)]
pub struct FullOutput<B: Backend> {
    /// `[batch, seq, vocab]`: MLM logits at every position.
    pub prediction_logits: Tensor<B, 3>,
    /// `[batch, 2]`: NSP logits.
    pub seq_relationship_logits: Tensor<B, 2>,
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// `[batch, hidden]`.
    pub pooler_output: Tensor<B, 2>,
}

impl<B: Backend> BertForPreTraining<B> {
    /// A freshly initialised model; every weight follows from `seed`.
    pub fn new(config: &BertConfig, seed: u64, device: &B::Device) -> Self {
        let mut init = Initializer::new(seed, config.initializer_range, device);
        Self::with_initializer(config, &mut init)
    }

    /// A freshly initialised model drawing from an existing initialiser.
    pub fn with_initializer(config: &BertConfig, init: &mut Initializer<'_, B>) -> Self {
        Self {
            bert: BertModel::new(config, init),
            mlm: MlmHead::new(config, init),
            nsp: init.linear(config.hidden_size, 2),
            precision: Precision::Fp32,
        }
    }

    /// The float type of the matrix products ([`Precision`]); weights stay f32 whatever it is.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Sets the float type of every matrix product (mixed precision); f32 is the default.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        self.bert.set_precision(precision);
        self.mlm.set_precision(precision);
    }

    /// `self` with [`set_precision`](Self::set_precision) applied.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.set_precision(precision);
        self
    }

    /// NSP logits `[batch, 2]` (f32) from the pooled output.
    pub fn nsp_logits(&self, pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        to_f32(precision::linear(&self.nsp, pooled, self.precision))
    }

    /// The word-embedding matrix `[vocab, hidden]` (shared with the MLM decoder).
    pub fn word_embeddings(&self) -> Tensor<B, 2> {
        self.bert.embeddings.word.weight.val()
    }

    /// Full-sequence forward, for inference (fill-mask) and for checking against HuggingFace.
    pub fn forward_full(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> FullOutput<B> {
        let encoded = self.bert.forward(input_ids, token_type_ids, attention_mask);
        let [batch, seq, hidden] = encoded.last_hidden_state.dims();
        let flat = encoded
            .last_hidden_state
            .clone()
            .reshape([batch * seq, hidden]);
        let logits = self.mlm.forward(flat, self.word_embeddings());
        let vocab = logits.dims()[1];
        FullOutput {
            prediction_logits: logits.reshape([batch, seq, vocab]),
            seq_relationship_logits: self.nsp_logits(encoded.pooler_output.clone()),
            last_hidden_state: encoded.last_hidden_state,
            pooler_output: encoded.pooler_output,
        }
    }
}
