//! The fused attention's host side: [`AttentionKernels`] for `CubeBackend<R, f32, _, _>` over
//! any CubeCL runtime `R`, launching the kernels of [`super::attention_kernels`]. `Autodiff<B>`
//! then has the op with its backward pass (`fused/autodiff.rs`), and the bare backend its
//! forward pass ([`AttentionOps`]).

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, IntElement};
use cubecl::prelude::{CubeCount, CubeDim};

use super::attention_kernels as kernels;
use super::launch::{contiguous_f32, empty_like, max_units, row_count, zeros_like};
use crate::fused::attention::{AttentionDims, AttentionDropout};
use crate::fused::{
    AttentionGradients, AttentionKernels, AttentionOps, AttentionParts, AttentionSaved,
};

/// Longest sequence the kernels take: a cube keeps a row of scores (and in the backward pass two)
/// in shared memory; with [`MAX_HEAD_DIM`] that stays within 16 KiB, the least any WebGPU
/// device has. Longer sequences take the composition ([`super::attention()`]).
pub const MAX_SEQ: usize = 1024;

/// Widest head the kernels take (see [`MAX_SEQ`]).
pub const MAX_HEAD_DIM: usize = 256;

/// Whether the kernels take attention of these sizes.
pub(crate) fn supports(dims: AttentionDims) -> bool {
    dims.seq <= MAX_SEQ && dims.head_dim <= MAX_HEAD_DIM
}

/// Checks the sizes of the inputs against `dims`, as the flex kernels do: a mismatch is a bug in
/// the caller, which would otherwise read past the rows it meant.
fn check_shapes<R: CubeRuntime>(dims: AttentionDims, rows: &[(&str, &CubeTensor<R>)]) {
    for (name, t) in rows {
        assert_eq!(
            t.shape().num_elements(),
            dims.elements(),
            "fused attention {name}: wrong size for {dims:?}"
        );
    }
}

/// Q, K, V and the key bias made contiguous and checked against `dims`: the inputs of both
/// passes.
fn inputs<R: CubeRuntime>(
    [q, k, v]: [CubeTensor<R>; 3],
    key_bias: CubeTensor<R>,
    dims: AttentionDims,
) -> ([CubeTensor<R>; 3], CubeTensor<R>) {
    let (q, k, v) = (
        contiguous_f32(q, "attention q"),
        contiguous_f32(k, "attention k"),
        contiguous_f32(v, "attention v"),
    );
    let bias = contiguous_f32(key_bias, "attention key bias");
    check_shapes(dims, &[("q", &q), ("k", &k), ("v", &v)]);
    assert_eq!(
        bias.shape().num_elements(),
        dims.batch * dims.seq,
        "fused attention key bias: wrong size for {dims:?}"
    );
    ([q, k, v], bias)
}

/// How one kernel of the attention is launched: the cube grid over `rows` rows (one cube each)
/// and the cube's units.
struct Grid {
    count: CubeCount,
    dim: CubeDim,
    /// Units per cube (a power of two).
    units: usize,
}

impl Grid {
    fn new<R: CubeRuntime>(tensor: &CubeTensor<R>, dims: AttentionDims) -> Self {
        assert!(
            supports(dims),
            "fused attention: seq {} and head_dim {} exceed the kernels' {MAX_SEQ} and \
             {MAX_HEAD_DIM} (the route composes those)",
            dims.seq,
            dims.head_dim
        );
        let limit = max_units(tensor);
        // No more units than the row or the head has elements to share out.
        let units = dims
            .seq
            .max(dims.head_dim)
            .next_power_of_two()
            .clamp(1, limit);
        // Scores, two head rows and the reduction slots; the backward key kernel's two score
        // rows are the largest need.
        let shared = 4 * (2 * dims.seq + 2 * dims.head_dim + units);
        let available = tensor.client.properties().hardware.max_shared_memory_size;
        assert!(
            shared <= available,
            "fused attention: {shared} bytes of shared memory per cube, the device has {available}"
        );
        Grid {
            count: row_count(tensor, dims.query_rows(), "attention"),
            dim: CubeDim::new_1d(units as u32),
            units,
        }
    }
}

/// The dropout mask's parameters as the kernels take them: the seed in two u32 halves (WGSL
/// has no 64-bit integers), the 32-bit threshold and the kept values' multiplier.
#[derive(Clone, Copy)]
struct Mask {
    on: bool,
    seed_lo: u32,
    seed_hi: u32,
    threshold: u32,
    keep: f32,
}

impl Mask {
    fn new(dropout: Option<AttentionDropout>) -> Self {
        match dropout {
            Some(d) => Mask {
                on: true,
                seed_lo: d.seed as u32,
                seed_hi: (d.seed >> 32) as u32,
                threshold: d.threshold(),
                keep: d.keep(),
            },
            None => Mask {
                on: false,
                seed_lo: 0,
                seed_hi: 0,
                threshold: 0,
                keep: 1.0,
            },
        }
    }
}

/// Rows as the kernels' u32 bound; more than 2³² rows cannot be launched anyway.
fn rows_u32(dims: AttentionDims) -> u32 {
    u32::try_from(dims.query_rows()).expect("fused attention: more than 2^32 query rows")
}

impl<R: CubeRuntime, I: IntElement, BT: BoolElement> AttentionKernels
    for CubeBackend<R, f32, I, BT>
{
    fn kernel_attention(
        qkv: [CubeTensor<R>; 3],
        key_bias: CubeTensor<R>,
        dims: AttentionDims,
        dropout: Option<AttentionDropout>,
    ) -> AttentionParts<Self> {
        let shape = qkv[0].shape();
        let ([q, k, v], bias) = inputs(qkv, key_bias, dims);
        let lse_shape = Shape::new([dims.query_rows()]);
        if dims.elements() == 0 {
            return AttentionParts {
                context: zeros_like(&q, shape),
                lse: zeros_like(&q, lse_shape),
            };
        }
        let grid = Grid::new(&q, dims);
        let mask = Mask::new(dropout);
        let context = empty_like(&q, shape);
        let lse = empty_like(&q, lse_shape);
        let client = q.client.clone();
        kernels::attention_forward::launch::<R>(
            &client,
            grid.count,
            grid.dim,
            q.into_array_arg(),
            k.into_array_arg(),
            v.into_array_arg(),
            bias.into_array_arg(),
            context.clone().into_array_arg(),
            lse.clone().into_array_arg(),
            rows_u32(dims),
            dims.scale(),
            mask.seed_lo,
            mask.seed_hi,
            mask.threshold,
            mask.keep,
            dims.seq,
            dims.heads,
            dims.head_dim,
            grid.units,
            mask.on,
        );
        AttentionParts { context, lse }
    }

    fn kernel_attention_backward(
        saved: AttentionSaved<Self>,
        dcontext: CubeTensor<R>,
    ) -> AttentionGradients<Self> {
        let dims = saved.dims;
        let shape = dcontext.shape();
        let ([q, k, v], bias) = inputs(saved.qkv, saved.key_bias, dims);
        let out = contiguous_f32(saved.context, "attention context");
        let dout = contiguous_f32(dcontext, "attention context gradient");
        let lse = contiguous_f32(saved.lse, "attention log-sum-exp");
        check_shapes(dims, &[("context", &out), ("context gradient", &dout)]);
        assert_eq!(
            lse.shape().num_elements(),
            dims.query_rows(),
            "fused attention log-sum-exp: wrong size for {dims:?}"
        );
        if dims.elements() == 0 {
            return AttentionGradients {
                q: zeros_like(&q, shape.clone()),
                k: zeros_like(&q, shape.clone()),
                v: zeros_like(&q, shape),
            };
        }
        let grid = Grid::new(&q, dims);
        let mask = Mask::new(saved.dropout);
        let client = q.client.clone();
        let dq = empty_like(&q, shape.clone());
        let dk = empty_like(&q, shape.clone());
        let dv = empty_like(&q, shape);
        let delta = empty_like(&q, Shape::new([dims.query_rows()]));
        kernels::attention_backward_queries::launch::<R>(
            &client,
            grid.count.clone(),
            grid.dim,
            q.clone().into_array_arg(),
            k.clone().into_array_arg(),
            v.clone().into_array_arg(),
            bias.clone().into_array_arg(),
            out.into_array_arg(),
            lse.clone().into_array_arg(),
            dout.clone().into_array_arg(),
            dq.clone().into_array_arg(),
            delta.clone().into_array_arg(),
            rows_u32(dims),
            dims.scale(),
            mask.seed_lo,
            mask.seed_hi,
            mask.threshold,
            mask.keep,
            dims.seq,
            dims.heads,
            dims.head_dim,
            grid.units,
            mask.on,
        );
        // Launched on the same stream, so it reads the `delta` the first kernel wrote.
        kernels::attention_backward_keys::launch::<R>(
            &client,
            grid.count,
            grid.dim,
            q.into_array_arg(),
            k.into_array_arg(),
            v.into_array_arg(),
            bias.into_array_arg(),
            lse.into_array_arg(),
            delta.into_array_arg(),
            dout.into_array_arg(),
            dk.clone().into_array_arg(),
            dv.clone().into_array_arg(),
            rows_u32(dims),
            dims.scale(),
            mask.seed_lo,
            mask.seed_hi,
            mask.threshold,
            mask.keep,
            dims.seq,
            dims.heads,
            dims.head_dim,
            grid.units,
            mask.on,
        );
        AttentionGradients {
            q: dq,
            k: dk,
            v: dv,
        }
    }
}

/// Without autodiff (evaluation, inference) the fused op is the forward kernel.
impl<R: CubeRuntime, I: IntElement, BT: BoolElement> AttentionOps for CubeBackend<R, f32, I, BT> {
    fn fused_attention(
        qkv: [CubeTensor<R>; 3],
        key_bias: CubeTensor<R>,
        dims: AttentionDims,
        dropout: Option<AttentionDropout>,
    ) -> CubeTensor<R> {
        <Self as AttentionKernels>::kernel_attention(qkv, key_bias, dims, dropout).context
    }
}
