//! The fused attention's CubeCL kernels: one source for every CubeCL runtime (WGSL on wgpu, C++
//! on CUDA), in the scheme of [`crate::fused::attention`] (read it first: the same formulas, the
//! same dropout mask).
//!
//! Each cube owns one row: a query row in the forward pass and in the backward pass's first
//! kernel, a key row in the backward pass's second. Its units stride over the sequence to
//! compute that row's scores into shared memory, reduce them across the cube through shared
//! memory, then stride over the head's columns to accumulate its outputs. Cube-wide reductions go
//! through shared memory and `sync_cube`, never plane (subgroup) operations: wgpu turns those off
//! on a CPU adapter such as lavapipe, where the tests run. Arithmetic is f32 and u32 only, since
//! WGSL has no 64-bit integers (the dropout seed arrives as two u32 halves).
//!
//! Q, K, V, the context and their gradients are contiguous `[batch · seq, heads · head_dim]`;
//! the row of cube `r` is `(b · heads + h) · seq + i` (the layout of the row log-sum-exp), and
//! row `i` of head `h` of sequence `b` starts at `(b · seq + i) · hidden + h · head_dim`.

use cubecl::prelude::*;

use super::reduce::{cube_max, cube_sum};

/// Chris Wellons' `lowbias32` ([`crate::fused::attention::mix32`]); u32 products wrap on every
/// CubeCL target, as `wrapping_mul` does on the host.
#[cube]
fn mix32(x: u32) -> u32 {
    let x = x ^ (x >> 16u32);
    let x = x * 0x7feb_352du32;
    let x = x ^ (x >> 15u32);
    let x = x * 0x846c_a68bu32;
    x ^ (x >> 16u32)
}

/// [`crate::fused::attention::row_key`] of query row `row` under the seed `(seed_hi, seed_lo)`.
#[cube]
fn row_key(seed_lo: u32, seed_hi: u32, row: u32) -> u32 {
    mix32(mix32(seed_lo ^ row) ^ seed_hi)
}

/// [`crate::fused::attention::column_key`] of key column `j` under the seed's high half.
#[cube]
fn column_key(seed_hi: u32, j: u32) -> u32 {
    mix32(((j + seed_hi) * 0x9e37_79b9u32) ^ 0x85eb_ca6bu32)
}

/// The dropout multiplier of one probability: 0 where its bits fall under `threshold`
/// (`p · 2³²`), else `keep` (`1/(1 − p)`), as [`crate::fused::AttentionDropout::row`] draws it.
#[cube]
fn mask_value(row_key: u32, column_key: u32, threshold: u32, keep: f32) -> f32 {
    let bits = mix32(row_key ^ column_key);
    select(bits < threshold, f32::new(0.0), keep)
}

/// `Σ_d a[d] · b[at + d]` over one head's `n` columns.
#[cube]
fn dot(a: &SharedMemory<f32>, b: &Array<f32>, at: usize, #[comptime] n: usize) -> f32 {
    let mut acc = f32::new(0.0);
    for d in 0..n {
        acc += a[d] * b[at + d];
    }
    acc
}

/// The forward pass of one query row per cube: `context` and the row log-sum-exp `lse`.
///
/// `rows` is `batch · heads · seq` (cubes past it return at once: the launch grid may be larger);
/// `scale` is `1/√head_dim`; `(seed_lo, seed_hi, threshold, keep)` is the dropout mask, used
/// when `dropout` is set. `units` is the cube's unit count (a power of two).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_forward(
    q: &Array<f32>,
    k: &Array<f32>,
    v: &Array<f32>,
    key_bias: &Array<f32>,
    context: &mut Array<f32>,
    lse: &mut Array<f32>,
    rows: u32,
    scale: f32,
    seed_lo: u32,
    seed_hi: u32,
    threshold: u32,
    keep: f32,
    #[comptime] seq: usize,
    #[comptime] heads: usize,
    #[comptime] head_dim: usize,
    #[comptime] units: usize,
    #[comptime] dropout: bool,
) {
    let row = CUBE_POS;
    if row >= rows as usize {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let hidden = heads * head_dim;
    let bh = row / seq;
    let i = row % seq;
    let b = bh / heads;
    let h = bh % heads;
    let base = b * seq * hidden + h * head_dim;
    let q_at = base + i * hidden;
    let bias_at = b * seq;

    let mut q_row = SharedMemory::<f32>::new(head_dim);
    let mut probs = SharedMemory::<f32>::new(seq);
    let mut partial = SharedMemory::<f32>::new(units);

    let mut d = unit;
    while d < head_dim {
        q_row[d] = q[q_at + d];
        d += units;
    }
    sync_cube();

    // Scaled, biased scores; a finite floor, since WGSL has no infinite literals (every row has
    // at least one key, so the floor never survives the reduction).
    let mut local_max = f32::new(-3.0e38);
    let mut j = unit;
    while j < seq {
        let s = dot(&q_row, k, base + j * hidden, head_dim) * scale + key_bias[bias_at + j];
        probs[j] = s;
        local_max = max(local_max, s);
        j += units;
    }
    let row_max = cube_max(&mut partial, local_max);

    let mut local_sum = f32::new(0.0);
    let mut j = unit;
    while j < seq {
        let e = (probs[j] - row_max).exp();
        probs[j] = e;
        local_sum += e;
        j += units;
    }
    let sum = cube_sum(&mut partial, local_sum);
    if unit == 0 {
        lse[row] = row_max + sum.ln();
    }

    let inv = f32::new(1.0) / sum;
    let key = row_key(seed_lo, seed_hi, row as u32);
    let mut j = unit;
    while j < seq {
        let mut p = probs[j] * inv;
        if dropout {
            p *= mask_value(key, column_key(seed_hi, j as u32), threshold, keep);
        }
        probs[j] = p;
        j += units;
    }
    sync_cube();

    let mut d = unit;
    while d < head_dim {
        let mut acc = f32::new(0.0);
        for j in 0..seq {
            acc += probs[j] * v[base + j * hidden + d];
        }
        context[q_at + d] = acc;
        d += units;
    }
}

/// The backward pass's first kernel, one query row per cube: `D_i = dO_i · O_i` into `delta`,
/// and `dQ_i = Σ_j dS_ij K_j` with `dS_ij = P_ij (dPd_ij M_ij − D_i) · scale`, the
/// probabilities recomputed from the row log-sum-exp. Arguments as [`attention_forward`];
/// `out` is the forward pass's context and `dout` its gradient.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_backward_queries(
    q: &Array<f32>,
    k: &Array<f32>,
    v: &Array<f32>,
    key_bias: &Array<f32>,
    out: &Array<f32>,
    lse: &Array<f32>,
    dout: &Array<f32>,
    dq: &mut Array<f32>,
    delta: &mut Array<f32>,
    rows: u32,
    scale: f32,
    seed_lo: u32,
    seed_hi: u32,
    threshold: u32,
    keep: f32,
    #[comptime] seq: usize,
    #[comptime] heads: usize,
    #[comptime] head_dim: usize,
    #[comptime] units: usize,
    #[comptime] dropout: bool,
) {
    let row = CUBE_POS;
    if row >= rows as usize {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let hidden = heads * head_dim;
    let bh = row / seq;
    let i = row % seq;
    let b = bh / heads;
    let h = bh % heads;
    let base = b * seq * hidden + h * head_dim;
    let q_at = base + i * hidden;
    let bias_at = b * seq;

    let mut q_row = SharedMemory::<f32>::new(head_dim);
    let mut dout_row = SharedMemory::<f32>::new(head_dim);
    let mut ds = SharedMemory::<f32>::new(seq);
    let mut partial = SharedMemory::<f32>::new(units);

    let mut local = f32::new(0.0);
    let mut d = unit;
    while d < head_dim {
        q_row[d] = q[q_at + d];
        let g = dout[q_at + d];
        dout_row[d] = g;
        local += g * out[q_at + d];
        d += units;
    }
    // The reduction's barrier also publishes the rows just loaded.
    let row_delta = cube_sum(&mut partial, local);

    let row_lse = lse[row];
    let key = row_key(seed_lo, seed_hi, row as u32);
    let mut j = unit;
    while j < seq {
        let at = base + j * hidden;
        let s = dot(&q_row, k, at, head_dim) * scale + key_bias[bias_at + j];
        let p = (s - row_lse).exp();
        let mut dp = dot(&dout_row, v, at, head_dim);
        if dropout {
            dp *= mask_value(key, column_key(seed_hi, j as u32), threshold, keep);
        }
        ds[j] = p * (dp - row_delta) * scale;
        j += units;
    }
    sync_cube();

    let mut d = unit;
    while d < head_dim {
        let mut acc = f32::new(0.0);
        for j in 0..seq {
            acc += ds[j] * k[base + j * hidden + d];
        }
        dq[q_at + d] = acc;
        d += units;
    }
    if unit == 0 {
        delta[row] = row_delta;
    }
}

/// The backward pass's second kernel, one key row per cube (cube `(b · heads + h) · seq + j`
/// owns key `j` of head `h` of sequence `b`): `dV_j = Σ_i P_ij M_ij dO_i` and
/// `dK_j = Σ_i dS_ij Q_i`, with `D_i` from [`attention_backward_queries`] in `delta`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_backward_keys(
    q: &Array<f32>,
    k: &Array<f32>,
    v: &Array<f32>,
    key_bias: &Array<f32>,
    lse: &Array<f32>,
    delta: &Array<f32>,
    dout: &Array<f32>,
    dk: &mut Array<f32>,
    dv: &mut Array<f32>,
    rows: u32,
    scale: f32,
    seed_lo: u32,
    seed_hi: u32,
    threshold: u32,
    keep: f32,
    #[comptime] seq: usize,
    #[comptime] heads: usize,
    #[comptime] head_dim: usize,
    #[comptime] units: usize,
    #[comptime] dropout: bool,
) {
    let row = CUBE_POS;
    if row >= rows as usize {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let hidden = heads * head_dim;
    let bh = row / seq;
    let j = row % seq;
    let b = bh / heads;
    let h = bh % heads;
    let base = b * seq * hidden + h * head_dim;
    let k_at = base + j * hidden;

    let mut k_row = SharedMemory::<f32>::new(head_dim);
    let mut v_row = SharedMemory::<f32>::new(head_dim);
    let mut pm = SharedMemory::<f32>::new(seq);
    let mut ds = SharedMemory::<f32>::new(seq);

    let mut d = unit;
    while d < head_dim {
        k_row[d] = k[k_at + d];
        v_row[d] = v[k_at + d];
        d += units;
    }
    sync_cube();

    let bias = key_bias[b * seq + j];
    let column = column_key(seed_hi, j as u32);
    let query_rows = bh * seq;
    let mut i = unit;
    while i < seq {
        let at = base + i * hidden;
        let query = query_rows + i;
        let s = dot(&k_row, q, at, head_dim) * scale + bias;
        let p = (s - lse[query]).exp();
        let dp = dot(&v_row, dout, at, head_dim);
        let mut m = f32::new(1.0);
        if dropout {
            m = mask_value(
                row_key(seed_lo, seed_hi, query as u32),
                column,
                threshold,
                keep,
            );
        }
        pm[i] = p * m;
        ds[i] = p * (dp * m - delta[query]) * scale;
        i += units;
    }
    sync_cube();

    let mut d = unit;
    while d < head_dim {
        let mut acc_v = f32::new(0.0);
        let mut acc_k = f32::new(0.0);
        for i in 0..seq {
            let at = base + i * hidden + d;
            acc_v += pm[i] * dout[at];
            acc_k += ds[i] * q[at];
        }
        dv[k_at + d] = acc_v;
        dk[k_at + d] = acc_k;
        d += units;
    }
}
