//! The fused ops under `Autodiff<B>`: each records one graph node whose backward calls the
//! inner backend's hand-written gradient kernel ([`FusedKernels`]).
//!
//! What the backward needs is kept in the node's state as inner-backend tensors (the op is
//! marked compute-bound, so no checkpointing strategy recomputes it): the softmax output, the
//! logits with their labels and row log-sum-exp, the LayerNorm input with its row statistics,
//! the GELU input; dropout keeps only its seed and rate; attention keeps Q, K, V, its output and
//! the row log-sum-exp, never the probabilities.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::BackendTypes;
use burn::tensor::ops::{FloatTensor, IntTensor};

use super::{
    AttentionDims, AttentionDropout, AttentionKernels, AttentionOps, AttentionSaved,
    DropoutKernels, DropoutOps, FusedKernels, FusedOps,
};

/// An untracked autodiff tensor around an inner-backend result (the cross-entropy's `hit`).
fn untracked<B: FusedKernels, C: CheckpointStrategy>(
    p: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    <<Autodiff<B, C> as BackendTypes>::FloatTensorPrimitive>::new(p)
}

#[derive(Debug)]
struct SoftmaxBackward;

impl<B: FusedKernels> Backward<B, 1> for SoftmaxBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let y = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| {
            B::kernel_softmax_backward(y, dy)
        });
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: FusedKernels> Backward<B, 1> for CrossEntropyBackward {
    type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, labels, lse) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dnll| {
            B::kernel_cross_entropy_backward(logits, labels, lse, dnll)
        });
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl<B: FusedKernels> Backward<B, 3> for LayerNormBackward {
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, mean, rstd) = ops.state;
        let g = B::kernel_layer_norm_backward(x, gamma, mean, rstd, dy);
        if let Some(node) = x_node {
            grads.register::<B>(node.id, g.x);
        }
        if let Some(node) = gamma_node {
            grads.register::<B>(node.id, g.gamma);
        }
        if let Some(node) = beta_node {
            grads.register::<B>(node.id, g.beta);
        }
    }
}

#[derive(Debug)]
struct GeluBackward;

impl<B: FusedKernels> Backward<B, 1> for GeluBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| {
            B::kernel_gelu_backward(x, dy)
        });
    }
}

#[derive(Debug)]
struct DropoutBackward;

impl<B: DropoutKernels> Backward<B, 1> for DropoutBackward {
    /// The mask's seed and rate: the backward pass regenerates it.
    type State = (u64, f64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (seed, p) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| {
            B::kernel_dropout(dy, seed, p)
        });
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: AttentionKernels> Backward<B, 3> for AttentionBackward {
    type State = AttentionSaved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dcontext = grads.consume::<B>(&ops.node);
        let g = B::kernel_attention_backward(ops.state, dcontext);
        for (node, grad) in ops.parents.into_iter().zip([g.q, g.k, g.v]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: FusedKernels, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn fused_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::kernel_softmax(x.primitive);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kernel_softmax(x.primitive)),
        }
    }

    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let prep = CrossEntropyBackward
            .prepare::<C>([logits.node.clone()])
            .compute_bound()
            .stateful();
        let parts = B::kernel_cross_entropy(logits.primitive.clone(), labels.clone());
        let nll = match prep {
            OpsKind::Tracked(prep) => {
                prep.finish((logits.primitive, labels, parts.log_sum_exp), parts.nll)
            }
            OpsKind::UnTracked(prep) => prep.finish(parts.nll),
        };
        (nll, untracked::<B, C>(parts.hit))
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        match LayerNormBackward
            .prepare::<C>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let parts = B::kernel_layer_norm(
                    x.primitive.clone(),
                    gamma.primitive.clone(),
                    beta.primitive,
                    eps,
                );
                prep.finish(
                    (x.primitive, gamma.primitive, parts.mean, parts.rstd),
                    parts.y,
                )
            }
            OpsKind::UnTracked(prep) => prep
                .finish(B::kernel_layer_norm(x.primitive, gamma.primitive, beta.primitive, eps).y),
        }
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::kernel_gelu(x.primitive.clone());
                prep.finish(x.primitive, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kernel_gelu(x.primitive)),
        }
    }
}

impl<B: DropoutKernels, C: CheckpointStrategy> DropoutOps for Autodiff<B, C> {
    fn fused_dropout(x: FloatTensor<Self>, seed: u64, p: f64) -> FloatTensor<Self> {
        match DropoutBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((seed, p), B::kernel_dropout(x.primitive, seed, p))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kernel_dropout(x.primitive, seed, p)),
        }
    }
}

impl<B: AttentionKernels, C: CheckpointStrategy> AttentionOps for Autodiff<B, C> {
    fn fused_attention(
        qkv: [FloatTensor<Self>; 3],
        key_bias: FloatTensor<Self>,
        dims: AttentionDims,
        dropout: Option<AttentionDropout>,
    ) -> FloatTensor<Self> {
        let nodes = qkv.clone().map(|t| t.node);
        let qkv = qkv.map(|t| t.primitive);
        let key_bias = key_bias.primitive;
        match AttentionBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let parts = B::kernel_attention(qkv.clone(), key_bias.clone(), dims, dropout);
                let saved = AttentionSaved {
                    qkv,
                    context: parts.context.clone(),
                    lse: parts.lse,
                    key_bias,
                    dims,
                    dropout,
                };
                prep.finish(saved, parts.context)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::kernel_attention(qkv, key_bias, dims, dropout).context)
            }
        }
    }
}
