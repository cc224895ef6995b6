//! Reductions whose result does not depend on thread scheduling, and the metric sums of an
//! all-reduced vector.
//!
//! Burn's CPU backend sums a large tensor (4M elements or more) in parallel chunks and adds the
//! partial sums in whatever order the thread pool finishes them, so the last bits of a global
//! gradient norm could differ between two runs. Exact resume needs the same bits every time:
//! these helpers reduce rows first (each row summed by one thread, in order), then the short
//! vector of row sums.

use bert_model::PretrainingMetrics;
use burn::tensor::{backend::Backend, Tensor};

/// Elements per row when a long vector is folded into a matrix before summing.
const ROW: usize = 4096;

/// The sum of squares of a 1-D tensor, `[1]`, with the same bits on every run.
pub fn sum_of_squares<B: Backend>(values: Tensor<B, 1>) -> Tensor<B, 1> {
    let n = values.dims()[0];
    let squares = values.powi_scalar(2);
    let rows = n / ROW;
    if rows < 2 {
        return squares.sum();
    }
    let body = squares
        .clone()
        .narrow(0, 0, rows * ROW)
        .reshape([rows, ROW])
        .sum_dim(1)
        .reshape([rows])
        .sum();
    if rows * ROW == n {
        body
    } else {
        body + squares.narrow(0, rows * ROW, n - rows * ROW).sum()
    }
}

/// The global norm of a set of gradients (absent ones skipped): the square root of every
/// tensor's sum of squares, added up, with one read back from the device; NaN where that read
/// fails.
pub fn global_norm<B: Backend>(grads: &[Option<Tensor<B, 1>>]) -> f64 {
    let sq: Vec<Tensor<B, 1>> = grads
        .iter()
        .flatten()
        .map(|g| sum_of_squares(g.clone()))
        .collect();
    if sq.is_empty() {
        return 0.0;
    }
    bert_model::host_values::<f64, B, 1>(Tensor::cat(sq, 0).sum(), "a scalar")
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
        .sqrt()
}

/// A tensor's values as f64, or why they could not be read back from the device.
pub fn to_f64_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f64>, String> {
    bert_model::host_values(t, "a reduced tensor").map_err(|e| e.to_string())
}

/// The first [`PretrainingMetrics::SUMS`] values of an all-reduced vector, as
/// [`PretrainingMetrics::set_sums`] takes them, or why there are too few.
pub fn metric_sums(values: &[f64]) -> Result<[f64; PretrainingMetrics::SUMS], String> {
    values
        .get(..PretrainingMetrics::SUMS)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            format!(
                "the all-reduce returned {} metric values, expected {}",
                values.len(),
                PretrainingMetrics::SUMS
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn matches_a_plain_sum_of_squares() {
        let device = Default::default();
        for n in [1usize, 7, 4096, 8192, 3 * 4096 + 5, 100_000] {
            let values: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 17.0).collect();
            let expected: f64 = values.iter().map(|&v| (v as f64) * (v as f64)).sum();
            let t = Tensor::<Flex, 1>::from_floats(values.as_slice(), &device);
            let got = sum_of_squares(t).into_scalar() as f64;
            assert!(
                (got - expected).abs() <= 1e-5 * expected.max(1.0),
                "n = {n}: {got} vs {expected}"
            );
        }
    }
}
