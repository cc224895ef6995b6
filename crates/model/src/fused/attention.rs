//! Fused multi-head attention on host slices, forward and backward, in the FlashAttention-2
//! scheme: the backward pass recomputes the probabilities from Q, K and the row log-sum-exp
//! instead of keeping them, and regenerates the dropout mask from its seed.
//!
//! Q, K, V and the context are the projections' `[batch · seq, heads · head_dim]` row-major
//! matrices; each head is a column block read and written in place through strides, so no head
//! is ever transposed or copied. Work is one task per (sequence, head), spread over the CPU's
//! threads; within a task, query rows go in blocks of [`QUERY_BLOCK`], so the scores of a block
//! (`QUERY_BLOCK × seq` floats, 128 KiB at seq 512) stay in cache and the `[batch, heads, seq,
//! seq]` probabilities never exist in memory. Matrix products are `gemm`'s (the kernels flex
//! uses), one thread each; every (sequence, head) is computed the same way whatever the thread
//! count, so results are bit-for-bit reproducible.

use rayon::prelude::*;

use super::math;

/// Query rows whose scores are computed and used together.
const QUERY_BLOCK: usize = 64;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence (queries and keys).
    pub seq: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head; the hidden size is `heads · head_dim`.
    pub head_dim: usize,
}

impl AttentionDims {
    /// `heads · head_dim`: the width of Q, K, V and the context.
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Elements of Q, K, V or the context.
    pub fn elements(&self) -> usize {
        self.batch * self.seq * self.hidden()
    }

    /// Query rows over all heads: the length of the row log-sum-exp.
    pub fn query_rows(&self) -> usize {
        self.batch * self.heads * self.seq
    }

    /// The scores' scale, `1/√head_dim`.
    pub fn scale(&self) -> f32 {
        (1.0 / (self.head_dim as f64).sqrt()) as f32
    }
}

/// Dropout on the attention probabilities: each probability is dropped with probability `p`
/// and the others scaled by `1/(1 − p)`, by a mask that is a pure function of `seed` and the
/// element's position ([`AttentionDropout::row`]), so the backward pass, and the composed
/// reference, regenerate it exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionDropout {
    /// The layer's mask seed (one draw of the run's seeded dropout stream).
    pub seed: u64,
    /// Drop probability, in `[0, 1)`.
    pub p: f64,
}

impl AttentionDropout {
    /// Dropped where a 32-bit draw falls under this.
    pub(crate) fn threshold(&self) -> u32 {
        (self.p * 4_294_967_296.0).round().min(u32::MAX as f64) as u32
    }

    /// The kept probabilities' multiplier, `1/(1 − p)` in f32.
    pub(crate) fn keep(&self) -> f32 {
        (1.0 / (1.0 - self.p)) as f32
    }

    /// The mask's multipliers (0 or `1/(1 − p)`) of query row `row` (`(b · heads + h) · seq +
    /// i`) over its `keys.len()` keys, into `keys`.
    ///
    /// Element `(row, j)` is dropped when [`mask_bits`] falls under `p · 2³²`: a counter-based
    /// draw in 32-bit integer arithmetic, so any element of the mask can be had without the
    /// ones before it, and a GPU kernel (WGSL has no 64-bit integers) draws the same mask.
    pub fn row(&self, row: usize, keys: &mut [f32]) {
        let threshold = self.threshold();
        let keep = self.keep();
        let row_key = row_key(self.seed, row as u32);
        for (j, m) in keys.iter_mut().enumerate() {
            let bits = mask_bits(row_key, column_key(self.seed, j as u32));
            *m = if bits < threshold { 0.0 } else { keep };
        }
    }

    /// The whole mask, `[batch, heads, seq, seq]`: what the composed reference multiplies the
    /// probabilities by.
    pub fn mask(&self, dims: AttentionDims) -> Vec<f32> {
        let mut mask = vec![0.0; dims.query_rows() * dims.seq];
        for (row, keys) in mask.chunks_exact_mut(dims.seq.max(1)).enumerate() {
            self.row(row, keys);
        }
        mask
    }
}

/// A 32-bit integer hash with low bias (Chris Wellons' `lowbias32`): every bit of the input
/// flips about half of the output's.
#[inline(always)]
pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The key of query row `row` (over batch and heads) under `seed`: both halves of the seed
/// enter, the low one first.
#[inline(always)]
pub fn row_key(seed: u64, row: u32) -> u32 {
    mix32(mix32((seed as u32) ^ row) ^ (seed >> 32) as u32)
}

/// The key of key column `j` under `seed`.
#[inline(always)]
pub fn column_key(seed: u64, j: u32) -> u32 {
    mix32(
        j.wrapping_add((seed >> 32) as u32)
            .wrapping_mul(0x9e37_79b9)
            ^ 0x85eb_ca6b,
    )
}

/// The 32 random bits of one mask element from its row's and column's keys.
#[inline(always)]
pub fn mask_bits(row_key: u32, column_key: u32) -> u32 {
    mix32(row_key ^ column_key)
}

/// Forward results: the context and what the backward pass needs besides the inputs.
#[derive(Debug, Clone)]
pub struct AttentionOutput {
    /// `[batch · seq, hidden]`: each head's probability-weighted values in its column block.
    pub context: Vec<f32>,
    /// `[batch, heads, seq]`: `log Σ_j exp(score_ij)` of each query row (scaled, biased
    /// scores), from which the backward pass recomputes the probabilities.
    pub lse: Vec<f32>,
}

/// Gradients of Q, K and V, each `[batch · seq, hidden]`.
#[derive(Debug, Clone)]
pub struct AttentionGrads {
    /// Gradient of the queries.
    pub q: Vec<f32>,
    /// Gradient of the keys.
    pub k: Vec<f32>,
    /// Gradient of the values.
    pub v: Vec<f32>,
}

/// A pointer that tasks writing disjoint parts of one buffer share.
#[derive(Clone, Copy)]
struct Shared(*mut f32);

// SAFETY: every task writes only the rows and column block of its own (sequence, head); no two
// tasks touch the same element, and the buffer outlives the parallel loop.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer, taken through the wrapper so closures capture the wrapper (which is
    /// `Sync`) rather than its field.
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// One product `dst (+)= beta · lhs · rhs` of strided matrices (`m × k` by `k × n`), on this
/// thread; strides are (row, column) in elements.
///
/// # Safety
/// Every pointer must address its matrix at the given sizes and strides, and `dst` must not
/// overlap `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    [m, n, k]: [usize; 3],
    dst: (*mut f32, usize, usize),
    accumulate: bool,
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    beta: f32,
) {
    let s = |x: usize| x as isize;
    // SAFETY: the caller's guarantees are gemm's.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            s(dst.2),
            s(dst.1),
            accumulate,
            lhs.0,
            s(lhs.2),
            s(lhs.1),
            rhs.0,
            s(rhs.2),
            s(rhs.1),
            1.0,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

math::widest! {
    /// Adds the key bias to a row of scaled scores and turns it into probabilities; returns the
    /// row's log-sum-exp.
    fn softmax_row(row: &mut [f32], bias: &[f32]) -> f32 {
        row.iter_mut().zip(bias).for_each(|(s, b)| *s += b);
        let max = math::max(row);
        row.iter_mut().for_each(|s| *s = math::exp(*s - max));
        let sum = math::sum_map(row, |e| e);
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|e| *e *= inv);
        max + sum.ln()
    }
}

math::widest! {
    /// Recomputes a row of probabilities from its scaled scores, the key bias and the row's
    /// log-sum-exp.
    fn probs_row(row: &mut [f32], bias: &[f32], lse: f32) {
        row.iter_mut()
            .zip(bias)
            .for_each(|(s, b)| *s = math::exp(*s + b - lse));
    }
}

math::widest! {
    /// Multiplies `row` by the dropout multipliers `mask`, into `out`.
    fn masked_row(row: &[f32], mask: &[f32], out: &mut [f32]) {
        out.iter_mut()
            .zip(row.iter().zip(mask))
            .for_each(|(o, (p, m))| *o = p * m);
    }
}

math::widest! {
    /// The scores' gradient from the probabilities (in `probs`, overwritten), the gradient of
    /// the dropped probabilities `dpd`, the mask (None without dropout) and the row's
    /// `Σ_j dO·O`: `dS = P ∘ (dPd ∘ M − D) · scale`.
    fn scores_grad_row(probs: &mut [f32], dpd: &[f32], mask: Option<&[f32]>, d: f32, scale: f32) {
        match mask {
            Some(mask) => probs
                .iter_mut()
                .zip(dpd.iter().zip(mask))
                .for_each(|(p, (g, m))| *p = *p * (g * m - d) * scale),
            None => probs
                .iter_mut()
                .zip(dpd)
                .for_each(|(p, g)| *p = *p * (g - d) * scale),
        }
    }
}

fn check_lengths(dims: AttentionDims, inputs: &[&[f32]], key_bias: &[f32]) {
    for (name, x) in ["q", "k", "v", "context", "context gradient"]
        .iter()
        .zip(inputs)
    {
        assert_eq!(x.len(), dims.elements(), "attention {name}: wrong length");
    }
    assert_eq!(key_bias.len(), dims.batch * dims.seq, "attention key bias");
}

/// `softmax(Q Kᵀ / √d + bias) V` per head, with dropout on the probabilities when given.
/// `key_bias` is `[batch, seq]`: added to every query's score of that key (0 for real tokens,
/// a large negative number for padding).
pub fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    key_bias: &[f32],
    dims: AttentionDims,
    dropout: Option<AttentionDropout>,
) -> AttentionOutput {
    check_lengths(dims, &[q, k, v], key_bias);
    let AttentionDims {
        seq,
        heads,
        head_dim,
        ..
    } = dims;
    let hidden = dims.hidden();
    let mut context = vec![0.0; dims.elements()];
    let mut lse = vec![0.0; dims.query_rows()];
    if seq == 0 || head_dim == 0 {
        return AttentionOutput { context, lse };
    }
    let out = Shared(context.as_mut_ptr());
    let block = QUERY_BLOCK.min(seq);
    lse.par_chunks_mut(seq).enumerate().for_each_init(
        || (vec![0.0f32; block * seq], vec![0.0f32; seq]),
        |(scores, mask), (bh, lse)| {
            let (b, h) = (bh / heads, bh % heads);
            let base = b * seq * hidden + h * head_dim;
            let bias = &key_bias[b * seq..(b + 1) * seq];
            for i0 in (0..seq).step_by(block) {
                let rows = block.min(seq - i0);
                let s = &mut scores[..rows * seq];
                // SAFETY: Q's block rows and K's head columns lie inside their buffers;
                // `s` is this task's own scratch.
                unsafe {
                    product(
                        [rows, seq, head_dim],
                        (s.as_mut_ptr(), seq, 1),
                        false,
                        (q.as_ptr().add(base + i0 * hidden), hidden, 1),
                        (k.as_ptr().add(base), 1, hidden),
                        dims.scale(),
                    );
                }
                for (r, row) in s.chunks_exact_mut(seq).enumerate() {
                    lse[i0 + r] = softmax_row(row, bias);
                    if let Some(dropout) = dropout {
                        dropout.row(bh * seq + i0 + r, mask);
                        row.iter_mut().zip(mask.iter()).for_each(|(p, m)| *p *= m);
                    }
                }
                // SAFETY: the context rows of this block and head are written by this task
                // only; V's head columns lie inside `v`.
                unsafe {
                    product(
                        [rows, head_dim, seq],
                        (out.at(base + i0 * hidden), hidden, 1),
                        false,
                        (s.as_ptr(), seq, 1),
                        (v.as_ptr().add(base), hidden, 1),
                        1.0,
                    );
                }
            }
        },
    );
    AttentionOutput { context, lse }
}

/// Saved inputs and outputs of one forward pass, for [`attention_backward`].
#[derive(Debug, Clone, Copy)]
pub struct AttentionSaved<'a> {
    /// Queries.
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
    /// The forward pass's context.
    pub context: &'a [f32],
    /// The forward pass's row log-sum-exp.
    pub lse: &'a [f32],
    /// `[batch, seq]` key bias.
    pub key_bias: &'a [f32],
}

/// Gradients of Q, K and V from the context's gradient `dcontext`.
pub fn attention_backward(
    saved: AttentionSaved<'_>,
    dcontext: &[f32],
    dims: AttentionDims,
    dropout: Option<AttentionDropout>,
) -> AttentionGrads {
    let AttentionSaved {
        q,
        k,
        v,
        context,
        lse,
        key_bias,
    } = saved;
    check_lengths(dims, &[q, k, v, context, dcontext], key_bias);
    assert_eq!(lse.len(), dims.query_rows(), "attention log-sum-exp");
    let AttentionDims {
        batch,
        seq,
        heads,
        head_dim,
    } = dims;
    let hidden = dims.hidden();
    let scale = dims.scale();
    let mut grads = AttentionGrads {
        q: vec![0.0; dims.elements()],
        k: vec![0.0; dims.elements()],
        v: vec![0.0; dims.elements()],
    };
    if seq == 0 || head_dim == 0 {
        return grads;
    }
    let (dq, dk, dv) = (
        Shared(grads.q.as_mut_ptr()),
        Shared(grads.k.as_mut_ptr()),
        Shared(grads.v.as_mut_ptr()),
    );
    let block = QUERY_BLOCK.min(seq);
    (0..batch * heads).into_par_iter().for_each_init(
        || {
            let scratch = || vec![0.0f32; block * seq];
            (scratch(), scratch(), scratch(), scratch())
        },
        |(probs, dpd, mask, dropped), bh| {
            let (b, h) = (bh / heads, bh % heads);
            let base = b * seq * hidden + h * head_dim;
            let bias = &key_bias[b * seq..(b + 1) * seq];
            for i0 in (0..seq).step_by(block) {
                let rows = block.min(seq - i0);
                let (p, g) = (&mut probs[..rows * seq], &mut dpd[..rows * seq]);
                let first = i0 > 0;
                // SAFETY (every product below): the matrices are this (sequence, head)'s rows
                // and column block of buffers of `dims.elements()` floats, or this task's
                // scratch; the gradients' rows and column block are written by this task only.
                unsafe {
                    product(
                        [rows, seq, head_dim],
                        (p.as_mut_ptr(), seq, 1),
                        false,
                        (q.as_ptr().add(base + i0 * hidden), hidden, 1),
                        (k.as_ptr().add(base), 1, hidden),
                        scale,
                    );
                }
                for (r, row) in p.chunks_exact_mut(seq).enumerate() {
                    probs_row(row, bias, lse[bh * seq + i0 + r]);
                }
                // The dropped probabilities are what multiplied V.
                let used: &[f32] = match dropout {
                    Some(dropout) => {
                        let (m, pd) = (&mut mask[..rows * seq], &mut dropped[..rows * seq]);
                        for (r, ((m, pd), p)) in m
                            .chunks_exact_mut(seq)
                            .zip(pd.chunks_exact_mut(seq))
                            .zip(p.chunks_exact(seq))
                            .enumerate()
                        {
                            dropout.row(bh * seq + i0 + r, m);
                            masked_row(p, m, pd);
                        }
                        pd
                    }
                    None => p,
                };
                unsafe {
                    // dV += Pdᵀ · dO
                    product(
                        [seq, head_dim, rows],
                        (dv.at(base), hidden, 1),
                        first,
                        (used.as_ptr(), 1, seq),
                        (dcontext.as_ptr().add(base + i0 * hidden), hidden, 1),
                        1.0,
                    );
                    // dPd = dO · Vᵀ
                    product(
                        [rows, seq, head_dim],
                        (g.as_mut_ptr(), seq, 1),
                        false,
                        (dcontext.as_ptr().add(base + i0 * hidden), hidden, 1),
                        (v.as_ptr().add(base), 1, hidden),
                        1.0,
                    );
                }
                for (r, (row, grow)) in p.chunks_exact_mut(seq).zip(g.chunks_exact(seq)).enumerate()
                {
                    let at = base + (i0 + r) * hidden;
                    let d = math::dot(&dcontext[at..at + head_dim], &context[at..at + head_dim]);
                    let m = dropout.map(|_| &mask[r * seq..(r + 1) * seq]);
                    scores_grad_row(row, grow, m, d, scale);
                }
                unsafe {
                    // dQ = dS · K (the scale is in dS)
                    product(
                        [rows, head_dim, seq],
                        (dq.at(base + i0 * hidden), hidden, 1),
                        false,
                        (p.as_ptr(), seq, 1),
                        (k.as_ptr().add(base), hidden, 1),
                        1.0,
                    );
                    // dK += dSᵀ · Q
                    product(
                        [seq, head_dim, rows],
                        (dk.at(base), hidden, 1),
                        first,
                        (p.as_ptr(), 1, seq),
                        (q.as_ptr().add(base + i0 * hidden), hidden, 1),
                        1.0,
                    );
                }
            }
        },
    );
    grads
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask is part of a run's exact resume and what a GPU kernel must reproduce: its bits
    /// are pinned (values from an independent Python transcription of the three hashes).
    #[test]
    fn the_mask_bits_are_pinned() {
        let bits = |seed: u64, row: u32, j: u32| mask_bits(row_key(seed, row), column_key(seed, j));
        assert_eq!(bits(0, 0, 0), 0xa11e_2aea);
        assert_eq!(bits(42, 0, 1), 0xe837_530d);
        assert_eq!(bits(42, 7, 3), 0x6900_8d14);
        assert_eq!(bits(0xDEAD_BEEF_1234_5678, 100, 511), 0x2f02_92c8);
        assert_eq!(bits(u64::MAX, u32::MAX, u32::MAX), 0x3be2_705b);
    }

    #[test]
    fn the_dropout_mask_is_a_function_of_seed_and_position_at_the_stated_rate() {
        let dims = AttentionDims {
            batch: 3,
            seq: 100,
            heads: 4,
            head_dim: 8,
        };
        let dropout = AttentionDropout { seed: 11, p: 0.1 };
        let mask = dropout.mask(dims);
        assert_eq!(mask.len(), 3 * 4 * 100 * 100);
        let dropped = mask.iter().filter(|&&m| m == 0.0).count() as f64 / mask.len() as f64;
        // Binomial sd at n = 120k and p = 0.1 is 8.7e-4: 5 sd.
        assert!((dropped - 0.1).abs() < 4.4e-3, "dropped {dropped}");
        assert!(mask.iter().all(|&m| m == 0.0 || m == (1.0f64 / 0.9) as f32));
        let mut row = vec![0.0; 100];
        dropout.row(517, &mut row);
        assert_eq!(row, mask[517 * 100..518 * 100]);
        let other = AttentionDropout { seed: 12, p: 0.1 }.mask(dims);
        assert_ne!(mask, other);
    }
}
