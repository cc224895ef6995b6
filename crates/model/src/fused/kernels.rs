//! The fused kernels on host slices, rows spread over the CPU's threads.
//!
//! Each kernel reads its input once or twice and writes its output once, where the composed
//! version runs five to twenty single-threaded passes (flex runs element-wise ops on one
//! thread). Work is cut into fixed runs of rows, so every row is computed the same way whatever
//! the thread count, and the reductions across rows (LayerNorm's `gamma`/`beta` gradients) add
//! their per-run partial sums in run order: results are bit-for-bit reproducible.

use rayon::prelude::*;

/// About this many elements per parallel task: large enough that scheduling is noise, small
/// enough that two cores share a BERT-mini step's tensors evenly.
const ELEMENTS_PER_TASK: usize = 32 * 1024;

/// Rows per parallel task for rows of `row_len` elements.
fn rows_per_task(row_len: usize) -> usize {
    (ELEMENTS_PER_TASK / row_len.max(1)).max(1)
}

/// Softmax of every row of `x` (rows of `row_len`).
pub fn softmax_rows(x: &[f32], row_len: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    let task = rows_per_task(row_len) * row_len;
    y.par_chunks_mut(task)
        .zip(x.par_chunks(task))
        .for_each(|(y, x)| {
            for (y, x) in y.chunks_exact_mut(row_len).zip(x.chunks_exact(row_len)) {
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = (x - max).exp();
                    sum += *y;
                }
                let inv = 1.0 / sum;
                y.iter_mut().for_each(|y| *y *= inv);
            }
        });
    y
}

/// Gradient of the softmax input from its output `y` and the output's gradient `dy`:
/// `y · (dy − Σ dy·y)` per row.
pub fn softmax_rows_backward(y: &[f32], dy: &[f32], row_len: usize) -> Vec<f32> {
    let mut dx = vec![0.0f32; y.len()];
    let task = rows_per_task(row_len) * row_len;
    dx.par_chunks_mut(task)
        .zip(y.par_chunks(task).zip(dy.par_chunks(task)))
        .for_each(|(dx, (y, dy))| {
            for ((dx, y), dy) in dx
                .chunks_exact_mut(row_len)
                .zip(y.chunks_exact(row_len))
                .zip(dy.chunks_exact(row_len))
            {
                let dot: f32 = y.iter().zip(dy).map(|(y, dy)| y * dy).sum();
                for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                    *dx = y * (dy - dot);
                }
            }
        });
    dx
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

/// Cross-entropy of each row of `logits` (rows of `classes`) against `labels`, with whether the
/// row's arg-max is the label: one pass for the maximum and its position, one for the sum.
pub fn cross_entropy_rows(logits: &[f32], classes: usize, labels: &[i64]) -> CrossEntropyRows {
    let rows: Vec<(f32, f32, f32)> = logits
        .par_chunks(classes)
        .zip(labels.par_iter())
        .map(|(x, &label)| {
            let (mut max, mut arg) = (f32::NEG_INFINITY, 0usize);
            for (j, &v) in x.iter().enumerate() {
                if v > max {
                    max = v;
                    arg = j;
                }
            }
            let sum: f32 = x.iter().map(|&v| (v - max).exp()).sum();
            let lse = max + sum.ln();
            match usize::try_from(label).ok().filter(|&l| l < classes) {
                Some(l) => (lse - x[l], if arg == l { 1.0 } else { 0.0 }, lse),
                None => (f32::NAN, 0.0, lse),
            }
        })
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

/// Gradient of the logits from the gradient of each row's loss `dnll`:
/// `dnll · (softmax(logits) − onehot(label))`.
pub fn cross_entropy_rows_backward(
    logits: &[f32],
    classes: usize,
    labels: &[i64],
    log_sum_exp: &[f32],
    dnll: &[f32],
) -> Vec<f32> {
    let mut dx = vec![0.0f32; logits.len()];
    dx.par_chunks_mut(classes)
        .zip(logits.par_chunks(classes))
        .zip(
            labels
                .par_iter()
                .zip(log_sum_exp.par_iter().zip(dnll.par_iter())),
        )
        .for_each(|((dx, x), (&label, (&lse, &g)))| {
            for (dx, &x) in dx.iter_mut().zip(x) {
                *dx = g * (x - lse).exp();
            }
            if let Some(l) = usize::try_from(label).ok().filter(|&l| l < classes) {
                dx[l] -= g;
            }
        });
    dx
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

/// LayerNorm over every row of `x` (rows of `gamma.len()`), statistics accumulated in f64.
pub fn layer_norm_rows(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, eps: f64) -> LayerNormRows {
    let h = gamma.len();
    let rows = x.len() / h.max(1);
    let mut y = vec![0.0f32; x.len()];
    let mut mean = vec![0.0f32; rows];
    let mut rstd = vec![0.0f32; rows];
    let per = rows_per_task(h);
    y.par_chunks_mut(per * h)
        .zip(x.par_chunks(per * h))
        .zip(mean.par_chunks_mut(per).zip(rstd.par_chunks_mut(per)))
        .for_each(|((y, x), (mean, rstd))| {
            for (((y, x), mean), rstd) in y
                .chunks_exact_mut(h)
                .zip(x.chunks_exact(h))
                .zip(mean.iter_mut())
                .zip(rstd.iter_mut())
            {
                let m = x.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
                let var = x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / h as f64;
                let r = 1.0 / (var + eps).sqrt();
                let (mf, rf) = (m as f32, r as f32);
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
        });
    LayerNormRows { y, mean, rstd }
}

/// Gradients of LayerNorm's input, `gamma` and `beta` from the output's gradient `dy`.
pub struct LayerNormGrads {
    /// Gradient of the input.
    pub dx: Vec<f32>,
    /// Gradient of `gamma` (summed over rows).
    pub dgamma: Vec<f32>,
    /// Gradient of `beta` (summed over rows).
    pub dbeta: Vec<f32>,
}

/// Backward pass of [`layer_norm_rows`], from its saved `mean` and `rstd`:
/// `dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))` with `g = dy · gamma`, `x̂` the normalised input.
pub fn layer_norm_rows_backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
) -> LayerNormGrads {
    let h = gamma.len();
    let mut dx = vec![0.0f32; x.len()];
    let per = rows_per_task(h);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(per * h)
        .zip(x.par_chunks(per * h).zip(dy.par_chunks(per * h)))
        .zip(mean.par_chunks(per).zip(rstd.par_chunks(per)))
        .map(|((dx, (x, dy)), (mean, rstd))| {
            let mut dgamma = vec![0.0f32; h];
            let mut dbeta = vec![0.0f32; h];
            for ((((dx, x), dy), &m), &r) in dx
                .chunks_exact_mut(h)
                .zip(x.chunks_exact(h))
                .zip(dy.chunks_exact(h))
                .zip(mean)
                .zip(rstd)
            {
                let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
                for (((&x, &dy), &g), (dg, db)) in x
                    .iter()
                    .zip(dy)
                    .zip(gamma)
                    .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
                {
                    let xhat = (x - m) * r;
                    let gy = dy * g;
                    sum_g += gy;
                    sum_gx += gy * xhat;
                    *dg += dy * xhat;
                    *db += dy;
                }
                let (mean_g, mean_gx) = (sum_g / h as f32, sum_gx / h as f32);
                for (((dx, &x), &dy), &g) in dx.iter_mut().zip(x).zip(dy).zip(gamma) {
                    let xhat = (x - m) * r;
                    *dx = r * (dy * g - mean_g - xhat * mean_gx);
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    let mut dgamma = vec![0.0f32; h];
    let mut dbeta = vec![0.0f32; h];
    for (pg, pb) in partials {
        dgamma.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
        dbeta.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    LayerNormGrads { dx, dgamma, dbeta }
}

/// Exact GELU, `x · Φ(x) = x/2 · (1 + erf(x/√2))`, as PyTorch's default.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    x.par_iter()
        .with_min_len(ELEMENTS_PER_TASK)
        .map(|&x| 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)))
        .collect()
}

/// Gradient of the GELU input: `dy · (Φ(x) + x · φ(x))`.
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    // 1/√(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    x.par_iter()
        .zip(dy.par_iter())
        .with_min_len(ELEMENTS_PER_TASK)
        .map(|(&x, &dy)| {
            let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
            dy * (cdf + x * pdf)
        })
        .collect()
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
        let y = softmax_rows(&x, 50);
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
