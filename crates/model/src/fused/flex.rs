//! The fused kernels on flex, Burn's CPU backend: its tensors read as host slices, handed to
//! [`super::kernels`], and the results wrapped back without a copy.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::Flex;
use burn::tensor::ops::{FloatTensor, FloatTensorOps, IntTensor};
use burn::tensor::{Bytes, DType, FloatDType, Shape, TensorMetadata};

use super::attention::{self, AttentionDims, AttentionDropout};
use super::kernels;
use super::{
    AttentionGradients, AttentionKernels, AttentionOps, AttentionParts, AttentionSaved,
    CrossEntropyParts, DropoutKernels, DropoutOps, FusedKernels, FusedOps, LayerNormGradients,
    LayerNormParts,
};

/// `t` as a contiguous f32 tensor whose storage is exactly its elements.
pub(super) fn contiguous_f32(t: FlexTensor) -> FlexTensor {
    let t = if t.dtype() == DType::F32 {
        t
    } else {
        Flex::float_cast(t, FloatDType::F32)
    };
    t.to_contiguous()
}

pub(super) fn values(t: &FlexTensor) -> &[f32] {
    t.storage::<f32>()
}

pub(super) fn from_vec(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// Last dimension of `shape` (1 for a scalar).
fn last_dim(shape: &Shape) -> usize {
    shape.as_slice().last().copied().unwrap_or(1)
}

/// The shape of one value per row of `shape` (its last dimension dropped).
fn rows_shape(shape: &Shape) -> Shape {
    let dims = shape.as_slice();
    let rows = dims[..dims.len().saturating_sub(1)]
        .iter()
        .product::<usize>();
    Shape::new([rows])
}

/// Labels as i64 whatever the backend's integer type.
fn labels_i64(labels: IntTensor<Flex>) -> Vec<i64> {
    labels.into_data().iter::<i64>().collect()
}

impl FusedKernels for Flex {
    fn kernel_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // In place: the scores are usually owned by this op alone (a copy is made otherwise).
        let mut x = contiguous_f32(x);
        let row = last_dim(&x.shape());
        kernels::softmax_rows(x.storage_mut::<f32>(), row);
        x
    }

    fn kernel_softmax_backward(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        let (y, mut dy) = (contiguous_f32(y), contiguous_f32(dy));
        let row = last_dim(&y.shape());
        kernels::softmax_rows_backward(values(&y), dy.storage_mut::<f32>(), row);
        dy
    }

    fn kernel_cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
    ) -> CrossEntropyParts<Self> {
        let x = contiguous_f32(logits);
        let shape = x.shape();
        let rows = rows_shape(&shape);
        let out = kernels::cross_entropy_rows(values(&x), last_dim(&shape), &labels_i64(labels));
        CrossEntropyParts {
            nll: from_vec(out.nll, rows.clone()),
            hit: from_vec(out.hit, rows.clone()),
            log_sum_exp: from_vec(out.log_sum_exp, rows),
        }
    }

    fn kernel_cross_entropy_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        log_sum_exp: FloatTensor<Self>,
        dnll: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        // The logits are dropped after this: their buffer receives the gradient.
        let (mut x, lse, g) = (
            contiguous_f32(logits),
            contiguous_f32(log_sum_exp),
            contiguous_f32(dnll),
        );
        let classes = last_dim(&x.shape());
        kernels::cross_entropy_rows_backward(
            x.storage_mut::<f32>(),
            classes,
            &labels_i64(labels),
            values(&lse),
            values(&g),
        );
        x
    }

    fn kernel_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> LayerNormParts<Self> {
        let (x, gamma, beta) = (
            contiguous_f32(x),
            contiguous_f32(gamma),
            contiguous_f32(beta),
        );
        let shape = x.shape();
        let rows = rows_shape(&shape);
        let out = kernels::layer_norm_rows(values(&x), values(&gamma), Some(values(&beta)), eps);
        LayerNormParts {
            y: from_vec(out.y, shape),
            mean: from_vec(out.mean, rows.clone()),
            rstd: from_vec(out.rstd, rows),
        }
    }

    fn kernel_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> LayerNormGradients<Self> {
        let (x, gamma, mean, rstd, mut dy) = (
            contiguous_f32(x),
            contiguous_f32(gamma),
            contiguous_f32(mean),
            contiguous_f32(rstd),
            contiguous_f32(dy),
        );
        let gamma_shape = gamma.shape();
        let g = kernels::layer_norm_rows_backward(
            values(&x),
            values(&gamma),
            values(&mean),
            values(&rstd),
            dy.storage_mut::<f32>(),
        );
        LayerNormGradients {
            x: dy,
            gamma: from_vec(g.dgamma, gamma_shape.clone()),
            beta: from_vec(g.dbeta, gamma_shape),
        }
    }

    fn kernel_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let x = contiguous_f32(x);
        let shape = x.shape();
        from_vec(kernels::gelu(values(&x)), shape)
    }

    fn kernel_gelu_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, mut dy) = (contiguous_f32(x), contiguous_f32(dy));
        kernels::gelu_backward(values(&x), dy.storage_mut::<f32>());
        dy
    }
}

impl DropoutKernels for Flex {
    fn kernel_dropout(x: FloatTensor<Self>, seed: u64, p: f64) -> FloatTensor<Self> {
        let mut x = contiguous_f32(x);
        kernels::dropout(x.storage_mut::<f32>(), seed, p);
        x
    }
}

impl AttentionKernels for Flex {
    fn kernel_attention(
        qkv: [FloatTensor<Self>; 3],
        key_bias: FloatTensor<Self>,
        dims: AttentionDims,
        dropout: Option<AttentionDropout>,
    ) -> AttentionParts<Self> {
        let shape = qkv[0].shape();
        let [q, k, v] = qkv.map(contiguous_f32);
        let bias = contiguous_f32(key_bias);
        let out = attention::attention_forward(
            values(&q),
            values(&k),
            values(&v),
            values(&bias),
            dims,
            dropout,
        );
        AttentionParts {
            context: from_vec(out.context, shape),
            lse: from_vec(out.lse, Shape::new([dims.query_rows()])),
        }
    }

    fn kernel_attention_backward(
        saved: AttentionSaved<Self>,
        dcontext: FloatTensor<Self>,
    ) -> AttentionGradients<Self> {
        let shape = dcontext.shape();
        let [q, k, v] = saved.qkv.map(contiguous_f32);
        let (context, lse, bias, dcontext) = (
            contiguous_f32(saved.context),
            contiguous_f32(saved.lse),
            contiguous_f32(saved.key_bias),
            contiguous_f32(dcontext),
        );
        let g = attention::attention_backward(
            attention::AttentionSaved {
                q: values(&q),
                k: values(&k),
                v: values(&v),
                context: values(&context),
                lse: values(&lse),
                key_bias: values(&bias),
            },
            values(&dcontext),
            saved.dims,
            saved.dropout,
        );
        AttentionGradients {
            q: from_vec(g.q, shape.clone()),
            k: from_vec(g.k, shape.clone()),
            v: from_vec(g.v, shape),
        }
    }
}

/// Without autodiff (evaluation, inference) the fused ops are the kernels' forward passes.
impl FusedOps for Flex {
    fn fused_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Flex as FusedKernels>::kernel_softmax(x)
    }

    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let parts = <Flex as FusedKernels>::kernel_cross_entropy(logits, labels);
        (parts.nll, parts.hit)
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        <Flex as FusedKernels>::kernel_layer_norm(x, gamma, beta, eps).y
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Flex as FusedKernels>::kernel_gelu(x)
    }
}

impl DropoutOps for Flex {
    fn fused_dropout(x: FloatTensor<Self>, seed: u64, p: f64) -> FloatTensor<Self> {
        <Flex as DropoutKernels>::kernel_dropout(x, seed, p)
    }
}

impl AttentionOps for Flex {
    fn fused_attention(
        qkv: [FloatTensor<Self>; 3],
        key_bias: FloatTensor<Self>,
        dims: AttentionDims,
        dropout: Option<AttentionDropout>,
    ) -> FloatTensor<Self> {
        <Flex as AttentionKernels>::kernel_attention(qkv, key_bias, dims, dropout).context
    }
}
