//! Word + position + token-type embeddings, LayerNorm and dropout.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm};
use burn::tensor::{backend::Backend, Int, Tensor};

use crate::config::BertConfig;
use crate::init::Initializer;

/// BERT's input embeddings.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// Word-piece embeddings `[vocab, hidden]`; also the tied MLM decoder.
    pub word: Embedding<B>,
    /// Absolute position embeddings `[max_position_embeddings, hidden]`.
    pub position: Embedding<B>,
    /// Segment embeddings `[type_vocab_size, hidden]`.
    pub token_type: Embedding<B>,
    /// LayerNorm over the summed embeddings.
    pub layer_norm: LayerNorm<B>,
    dropout: Dropout,
    /// LayerNorm epsilon from the config: Burn's `LayerNorm` keeps its own private, and the
    /// fused LayerNorm needs it.
    #[module(skip)]
    layer_norm_eps: f64,
}

impl<B: Backend> BertEmbeddings<B> {
    /// Initialised as BERT does (normal weights, zero padding row).
    pub fn new(config: &BertConfig, init: &mut Initializer<'_, B>) -> Self {
        Self {
            word: init.embedding(
                config.vocab_size,
                config.hidden_size,
                Some(config.pad_token_id),
            ),
            position: init.embedding(config.max_position_embeddings, config.hidden_size, None),
            token_type: init.embedding(config.type_vocab_size, config.hidden_size, None),
            layer_norm: init.layer_norm(config.hidden_size, config.layer_norm_eps),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// `[batch, seq]` ids and token types to `[batch · seq, hidden]` (the encoder's 2-D layout;
    /// rows of one sequence are consecutive). Positions are `0..seq`.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
    ) -> Tensor<B, 2> {
        let [batch, seq] = input_ids.dims();
        let hidden = self.position.weight.dims()[1];
        let words = self.word.forward(input_ids);
        let types = self.token_type.forward(token_type_ids);
        // Position rows are a prefix of the table: a slice is cheaper than a gather. Added as
        // one shared `[seq · hidden]` row per sequence, the broadcast CPU backends do fastest.
        let positions = self
            .position
            .weight
            .val()
            .narrow(0, 0, seq)
            .reshape([1, seq * hidden]);
        let summed = (words + types).reshape([batch, seq * hidden]) + positions;
        crate::dropout::apply(
            &self.dropout,
            crate::fused::layer_norm(
                &self.layer_norm,
                self.layer_norm_eps,
                summed.reshape([batch * seq, hidden]),
            ),
        )
    }
}
