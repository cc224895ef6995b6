//! The fused kernels on host slices, rows spread over the CPU's threads.
//!
//! Each kernel reads its input once or twice and writes its output once, where the composed
//! version runs five to twenty single-threaded passes (flex runs element-wise ops on one
//! thread). Work is cut into fixed runs of rows, so every row is computed the same way whatever
//! the thread count, and the reductions across rows (LayerNorm's `gamma`/`beta` gradients) add
//! their per-run partial sums in run order: results are bit-for-bit reproducible.

use rayon::prelude::*;

use super::math;

/// About this many elements per parallel task: large enough that scheduling is noise, small
/// enough that two cores share a BERT-mini step's tensors evenly.
const ELEMENTS_PER_TASK: usize = 32 * 1024;

/// Rows per parallel task for rows of `row_len` elements.
fn rows_per_task(row_len: usize) -> usize {
    (ELEMENTS_PER_TASK / row_len.max(1)).max(1)
}

math::widest! {
    /// Softmax of each `row_len` row of `x`, in place.
    fn softmax_task(x: &mut [f32], row_len: usize) {
        for x in x.chunks_exact_mut(row_len) {
            let max = math::max(x);
            x.iter_mut().for_each(|v| *v = math::exp(*v - max));
            let inv = 1.0 / math::sum_map(x, |v| v);
            x.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// Softmax of every row of `x` (rows of `row_len`), in place.
pub fn softmax_rows(x: &mut [f32], row_len: usize) {
    let task = rows_per_task(row_len) * row_len;
    x.par_chunks_mut(task)
        .for_each(|x| softmax_task(x, row_len));
}

math::widest! {
    fn softmax_backward_task(dy: &mut [f32], y: &[f32], row_len: usize) {
        for (dy, y) in dy.chunks_exact_mut(row_len).zip(y.chunks_exact(row_len)) {
            let dot = math::dot(y, dy);
            for (dy, &y) in dy.iter_mut().zip(y) {
                *dy = y * (*dy - dot);
            }
        }
    }
}

/// Gradient of the softmax input from its output `y` and the output's gradient `dy`, written
/// over `dy`: `y · (dy − Σ dy·y)` per row.
pub fn softmax_rows_backward(y: &[f32], dy: &mut [f32], row_len: usize) {
    let task = rows_per_task(row_len) * row_len;
    dy.par_chunks_mut(task)
        .zip(y.par_chunks(task))
        .for_each(|(dy, y)| softmax_backward_task(dy, y, row_len));
}

/// Per-row results of [`cross_entropy_rows`].
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropyRows {
    /// Negative log-likelihood of each row's label (NaN for a label outside the row).
    pub nll: Vec<f32>,
    /// 1 where the row's first largest logit is its label, else 0.
    pub hit: Vec<f32>,
    /// log Σ exp(logits) of each row, kept for the backward pass.
    pub log_sum_exp: Vec<f32>,
}

/// Row index of `label` if it names one of `classes`.
fn class(label: i64, classes: usize) -> Option<usize> {
    usize::try_from(label).ok().filter(|&l| l < classes)
}

math::widest! {
    /// `(nll, hit, log Σ exp)` of one row.
    fn cross_entropy_row(x: &[f32], label: i64) -> (f32, f32, f32) {
        let (max, arg) = math::max_and_first_index(x);
        let lse = max + math::sum_map(x, |v| math::exp(v - max)).ln();
        match class(label, x.len()) {
            Some(l) => (lse - x[l], if arg == l { 1.0 } else { 0.0 }, lse),
            None => (f32::NAN, 0.0, lse),
        }
    }
}

/// Cross-entropy of each row of `logits` (rows of `classes`) against `labels`, with whether the
/// row's arg-max is the label: one pass for the maximum and its position, one for the sum.
pub fn cross_entropy_rows(logits: &[f32], classes: usize, labels: &[i64]) -> CrossEntropyRows {
    let rows: Vec<(f32, f32, f32)> = logits
        .par_chunks(classes)
        .zip(labels.par_iter())
        .map(|(x, &label)| cross_entropy_row(x, label))
        .collect();
    let mut out = CrossEntropyRows {
        nll: Vec::with_capacity(rows.len()),
        hit: Vec::with_capacity(rows.len()),
        log_sum_exp: Vec::with_capacity(rows.len()),
    };
    for (nll, hit, lse) in rows {
        out.nll.push(nll);
        out.hit.push(hit);
        out.log_sum_exp.push(lse);
    }
    out
}

math::widest! {
    fn cross_entropy_backward_row(x: &mut [f32], label: i64, lse: f32, g: f32) {
        x.iter_mut().for_each(|v| *v = g * math::exp(*v - lse));
        if let Some(l) = class(label, x.len()) {
            x[l] -= g;
        }
    }
}

/// Gradient of the logits from the gradient of each row's loss `dnll`, written over the
/// logits: `dnll · (softmax(logits) − onehot(label))`.
pub fn cross_entropy_rows_backward(
    logits: &mut [f32],
    classes: usize,
    labels: &[i64],
    log_sum_exp: &[f32],
    dnll: &[f32],
) {
    let per_row = labels
        .par_iter()
        .zip(log_sum_exp.par_iter().zip(dnll.par_iter()));
    logits
        .par_chunks_mut(classes)
        .zip(per_row)
        .for_each(|(x, (&label, (&lse, &g)))| cross_entropy_backward_row(x, label, lse, g));
}

/// Per-row results of [`layer_norm_rows`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormRows {
    /// `(x − mean) / √(var + ε) · gamma + beta`.
    pub y: Vec<f32>,
    /// Mean of each row.
    pub mean: Vec<f32>,
    /// `1 / √(var + ε)` of each row (biased variance, as PyTorch and Burn use).
    pub rstd: Vec<f32>,
}

math::widest! {
    fn layer_norm_task(
        y: &mut [f32],
        x: &[f32],
        mean: &mut [f32],
        rstd: &mut [f32],
        gamma: &[f32],
        beta: Option<&[f32]>,
        eps: f64,
    ) {
        let h = gamma.len();
        for (((y, x), mean), rstd) in y
            .chunks_exact_mut(h)
            .zip(x.chunks_exact(h))
            .zip(mean.iter_mut())
            .zip(rstd.iter_mut())
        {
            let m = math::sum_map_f64(x, |v| v) / h as f64;
            let var = math::sum_map_f64(x, |v| (v - m) * (v - m)) / h as f64;
            let (mf, rf) = (m as f32, (1.0 / (var + eps).sqrt()) as f32);
            match beta {
                Some(beta) => {
                    for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                        *y = (x - mf) * rf * g + b;
                    }
                }
                None => {
                    for ((y, &x), &g) in y.iter_mut().zip(x).zip(gamma) {
                        *y = (x - mf) * rf * g;
                    }
                }
            }
            *mean = mf;
            *rstd = rf;
        }
    }
}

/// LayerNorm over every row of `x` (rows of `gamma.len()`), statistics accumulated in f64.
pub fn layer_norm_rows(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, eps: f64) -> LayerNormRows {
    let h = gamma.len().max(1);
    let rows = x.len() / h;
    let mut y = vec![0.0f32; x.len()];
    let mut mean = vec![0.0f32; rows];
    let mut rstd = vec![0.0f32; rows];
    let per = rows_per_task(h);
    y.par_chunks_mut(per * h)
        .zip(x.par_chunks(per * h))
        .zip(mean.par_chunks_mut(per).zip(rstd.par_chunks_mut(per)))
        .for_each(|((y, x), (mean, rstd))| layer_norm_task(y, x, mean, rstd, gamma, beta, eps));
    LayerNormRows { y, mean, rstd }
}

/// Gradients of LayerNorm's `gamma` and `beta` (summed over rows).
pub struct LayerNormParamGrads {
    /// Gradient of `gamma`.
    pub dgamma: Vec<f32>,
    /// Gradient of `beta`.
    pub dbeta: Vec<f32>,
}

math::widest! {
    /// One task's rows: writes `dx` over `dy`, returns its partial `(dgamma, dbeta)`.
    fn layer_norm_backward_task(
        x: &[f32],
        dy: &mut [f32],
        mean: &[f32],
        rstd: &[f32],
        gamma: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let h = gamma.len();
        let mut dgamma = vec![0.0f32; h];
        let mut dbeta = vec![0.0f32; h];
        let mut xhat = vec![0.0f32; h];
        let mut gy = vec![0.0f32; h];
        for (((dy, x), &m), &r) in dy.chunks_exact_mut(h).zip(x.chunks_exact(h)).zip(mean).zip(rstd) {
            for j in 0..h {
                xhat[j] = (x[j] - m) * r;
                gy[j] = dy[j] * gamma[j];
                dgamma[j] += dy[j] * xhat[j];
                dbeta[j] += dy[j];
            }
            let mean_g = math::sum_map(&gy, |v| v) / h as f32;
            let mean_gx = math::dot(&gy, &xhat) / h as f32;
            // This row of `dy` has been read in full: overwrite it with `dx`.
            for ((dx, &g), &xh) in dy.iter_mut().zip(&gy).zip(&xhat) {
                *dx = r * (g - mean_g - xh * mean_gx);
            }
        }
        (dgamma, dbeta)
    }
}

/// Backward pass of [`layer_norm_rows`], from its saved `mean` and `rstd`: the input's
/// gradient written over `dy`, `dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))` with
/// `g = dy · gamma` and `x̂` the normalised input; returns the gradients of `gamma` and `beta`.
pub fn layer_norm_rows_backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &mut [f32],
) -> LayerNormParamGrads {
    let h = gamma.len().max(1);
    let per = rows_per_task(h);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dy
        .par_chunks_mut(per * h)
        .zip(x.par_chunks(per * h))
        .zip(mean.par_chunks(per).zip(rstd.par_chunks(per)))
        .map(|((dy, x), (mean, rstd))| layer_norm_backward_task(x, dy, mean, rstd, gamma))
        .collect();
    let mut dgamma = vec![0.0f32; gamma.len()];
    let mut dbeta = vec![0.0f32; gamma.len()];
    for (pg, pb) in partials {
        dgamma.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
        dbeta.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    LayerNormParamGrads { dgamma, dbeta }
}

/// 1/√(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

math::widest! {
    fn gelu_task(y: &mut [f32], x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            let (erf, _) = math::erf_and_gauss(x * std::f32::consts::FRAC_1_SQRT_2);
            *y = 0.5 * x * (1.0 + erf);
        }
    }
}

/// Exact GELU, `x · Φ(x) = x/2 · (1 + erf(x/√2))`, as PyTorch's default.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(x.par_chunks(ELEMENTS_PER_TASK))
        .for_each(|(y, x)| gelu_task(y, x));
    y
}

math::widest! {
    fn gelu_backward_task(dy: &mut [f32], x: &[f32]) {
        for (dy, &x) in dy.iter_mut().zip(x) {
            // erf(x/√2) and e^(−x²/2), the Gaussian density's factor, from one exp.
            let (erf, gauss) = math::erf_and_gauss(x * std::f32::consts::FRAC_1_SQRT_2);
            let cdf = 0.5 * (1.0 + erf);
            *dy *= cdf + x * INV_SQRT_2PI * gauss;
        }
    }
}

/// Gradient of the GELU input, written over `dy`: `dy · (Φ(x) + x · φ(x))`.
pub fn gelu_backward(x: &[f32], dy: &mut [f32]) {
    dy.par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(x.par_chunks(ELEMENTS_PER_TASK))
        .for_each(|(dy, x)| gelu_backward_task(dy, x));
}

/// Inverted dropout applied to `x` in place: each element kept and scaled by `1/(1−p)` or zeroed with
/// probability `p`, decided by 32 random bits against a 32-bit threshold (`P(drop) = p` within
/// 2⁻³²). The decisions are a function of `(seed, position)` only: every run of
/// [`ELEMENTS_PER_TASK`] elements draws from its own stream `Rng::keyed(&[seed, run])`, so the
/// backward pass regenerates the mask instead of storing it, and threads change nothing.
pub fn dropout(x: &mut [f32], seed: u64, p: f64) {
    let keep_scale = (1.0 / (1.0 - p)) as f32;
    let threshold = (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u64;
    let apply = |bits: u64, x: &mut f32| {
        *x = if bits < threshold {
            0.0
        } else {
            *x * keep_scale
        }
    };
    x.par_chunks_mut(ELEMENTS_PER_TASK)
        .enumerate()
        .for_each(|(run, x)| {
            let mut rng = bert_rng::Rng::keyed(&[seed, run as u64]);
            let mut pairs = x.chunks_exact_mut(2);
            for pair in &mut pairs {
                let r = rng.next_u64();
                apply(r & 0xffff_ffff, &mut pair[0]);
                apply(r >> 32, &mut pair[1]);
            }
            if let Some(last) = pairs.into_remainder().first_mut() {
                apply(rng.next_u64() & 0xffff_ffff, last);
            }
        });
}

/// Scalars of one AdamW update (f32, as the composed update applies them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamwScalars {
    /// First-moment decay β₁.
    pub beta1: f32,
    /// Second-moment decay β₂.
    pub beta2: f32,
    /// `1 − β₁`, rounded from its exact value (not `1.0 − beta1` in f32).
    pub one_minus_beta1: f32,
    /// `1 − β₂`, rounded from its exact value.
    pub one_minus_beta2: f32,
    /// Added to the second moment's root.
    pub epsilon: f32,
    /// Decoupled weight decay (0 for parameters without decay).
    pub weight_decay: f32,
    /// Learning rate of this step.
    pub lr: f32,
    /// `1 − β₁^t` with bias correction, else 1.
    pub bias1: f32,
    /// `1 − β₂^t` with bias correction, else 1.
    pub bias2: f32,
    /// Factor on the gradient (clipping, averaging), 1 for none.
    pub grad_scale: f32,
}

math::widest! {
    fn adamw_task(w: &[f32], g_then_w: &mut [f32], m: &mut [f32], v: &mut [f32], s: AdamwScalars) {
        for i in 0..w.len() {
            let g = g_then_w[i] * s.grad_scale;
            let m1 = m[i] * s.beta1 + g * s.one_minus_beta1;
            let v1 = v[i] * s.beta2 + g * g * s.one_minus_beta2;
            let mut direction = (m1 / s.bias1) / ((v1 / s.bias2).sqrt() + s.epsilon);
            if s.weight_decay != 0.0 {
                direction += w[i] * s.weight_decay;
            }
            g_then_w[i] = w[i] - direction * s.lr;
            m[i] = m1;
            v[i] = v1;
        }
    }
}

/// One AdamW step over a flattened parameter `w`, in place: `g_then_w` holds the gradient and
/// receives the new value, `m` and `v` (zeros before the first step) are updated. Every element
/// is read and written once, and nothing is allocated.
pub fn adamw(w: &[f32], g_then_w: &mut [f32], m: &mut [f32], v: &mut [f32], s: AdamwScalars) {
    let t = ELEMENTS_PER_TASK;
    g_then_w
        .par_chunks_mut(t)
        .zip(m.par_chunks_mut(t).zip(v.par_chunks_mut(t)))
        .zip(w.par_chunks(t))
        .for_each(|((g, (m, v)), w)| adamw_task(w, g, m, v, s));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{i}: {x} vs {y}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_the_definition() {
        let x: Vec<f32> = (0..3 * 50)
            .map(|i| ((i * 37) % 23) as f32 * 0.7 - 8.0)
            .collect();
        let mut y = x.clone();
        softmax_rows(&mut y, 50);
        for (row, yr) in x.chunks(50).zip(y.chunks(50)) {
            let denom: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
            let expect: Vec<f32> = row
                .iter()
                .map(|&v| ((v as f64).exp() / denom) as f32)
                .collect();
            close(yr, &expect, 1e-6);
        }
    }

    #[test]
    fn cross_entropy_is_log_sum_exp_minus_the_label_logit() {
        let x = [1.0f32, 3.0, 2.0, 0.5, -1.0, 0.5];
        let ce = cross_entropy_rows(&x, 3, &[1, 0]);
        let lse0 = (1f64.exp() + 3f64.exp() + 2f64.exp()).ln() as f32;
        let lse1 = (0.5f64.exp() + (-1f64).exp() + 0.5f64.exp()).ln() as f32;
        close(&ce.nll, &[lse0 - 3.0, lse1 - 0.5], 1e-6);
        // Row 1's maximum is tied between positions 0 and 2: the first counts, as argmax does.
        assert_eq!(ce.hit, vec![1.0, 1.0]);
        let bad = cross_entropy_rows(&x, 3, &[3, -1]);
        assert!(bad.nll.iter().all(|v| v.is_nan()) && bad.hit == vec![0.0, 0.0]);
    }

    #[test]
    fn layer_norm_rows_match_an_f64_reference_far_from_zero() {
        let h = 256;
        let x: Vec<f32> = (0..3 * h)
            .map(|i| 1000.0 * (i / h) as f32 + ((i * 7919) % 101) as f32 * 0.01)
            .collect();
        let gamma: Vec<f32> = (0..h).map(|i| 0.5 + i as f32 / h as f32).collect();
        let beta: Vec<f32> = (0..h).map(|i| i as f32 * 0.01).collect();
        let out = layer_norm_rows(&x, &gamma, Some(&beta), 1e-12);
        for (r, row) in x.chunks(h).enumerate() {
            let m = row.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
            let var = row.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / h as f64;
            let expect: Vec<f32> = row
                .iter()
                .zip(&gamma)
                .zip(&beta)
                .map(|((&v, &g), &b)| {
                    ((v as f64 - m) / (var + 1e-12).sqrt() * g as f64 + b as f64) as f32
                })
                .collect();
            close(&out.y[r * h..(r + 1) * h], &expect, 2e-4);
        }
    }

    #[test]
    fn layer_norm_rows_have_zero_mean_and_unit_variance_before_the_affine_step() {
        let x: Vec<f32> = (0..4 * 64).map(|i| ((i * 13) % 17) as f32 - 3.0).collect();
        let gamma = vec![1.0f32; 64];
        let out = layer_norm_rows(&x, &gamma, None, 1e-12);
        for row in out.y.chunks(64) {
            let m: f32 = row.iter().sum::<f32>() / 64.0;
            let v: f32 = row.iter().map(|y| (y - m).powi(2)).sum::<f32>() / 64.0;
            assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-4, "{m} {v}");
        }
    }
}
