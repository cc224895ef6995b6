//! The GLUE metrics, computed as scikit-learn and SciPy compute them (the libraries behind the
//! GLUE numbers of the literature), in f64.
//!
//! Where a metric divides by zero, the convention is scikit-learn's: F1 is 0 when there is no
//! positive among the predictions and the labels, and Matthews correlation is 0 when the
//! predictions or the labels hold one class only. A correlation of a constant column (or of
//! fewer than two pairs) is undefined, as in SciPy (which returns NaN): here it is an error
//! saying so, so a sweep never averages a NaN into its table.

use serde::{Deserialize, Serialize};

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// Predictions and labels differ in number.
    #[error(
        "{predictions} predictions for {labels} labels: a metric needs one of each per example"
    )]
    LengthMismatch {
        /// Number of predictions.
        predictions: usize,
        /// Number of labels.
        labels: usize,
    },
    /// No example at all.
    #[error("no examples to score")]
    Empty,
    /// The metric is not defined on these values.
    #[error("{metric} is undefined here: {reason}")]
    Undefined {
        /// The metric's name.
        metric: &'static str,
        /// Why.
        reason: &'static str,
    },
}

fn check_lengths(predictions: usize, labels: usize) -> Result<usize, MetricError> {
    if predictions != labels {
        return Err(MetricError::LengthMismatch {
            predictions,
            labels,
        });
    }
    if labels == 0 {
        return Err(MetricError::Empty);
    }
    Ok(labels)
}

/// Share of predictions equal to their label.
pub fn accuracy(predictions: &[u32], labels: &[u32]) -> Result<f64, MetricError> {
    let n = check_lengths(predictions.len(), labels.len())?;
    let right = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(right as f64 / n as f64)
}

/// F1 of the class `positive` (GLUE: class 1 of MRPC and QQP): `2·tp / (2·tp + fp + fn)`, 0
/// where no prediction and no label is positive.
pub fn f1(predictions: &[u32], labels: &[u32], positive: u32) -> Result<f64, MetricError> {
    check_lengths(predictions.len(), labels.len())?;
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    for (&p, &l) in predictions.iter().zip(labels) {
        match (p == positive, l == positive) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    let denominator = 2 * tp + fp + fn_;
    Ok(if denominator == 0 {
        0.0
    } else {
        (2 * tp) as f64 / denominator as f64
    })
}

/// Matthews correlation coefficient over any number of classes (GLUE: CoLA), from the
/// confusion matrix as scikit-learn computes it; 0 where the predictions or the labels hold
/// one class only.
pub fn matthews(predictions: &[u32], labels: &[u32]) -> Result<f64, MetricError> {
    let n = check_lengths(predictions.len(), labels.len())?;
    let classes = predictions
        .iter()
        .chain(labels)
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    let (mut predicted, mut actual) = (vec![0f64; classes], vec![0f64; classes]);
    let mut correct = 0f64;
    for (&p, &l) in predictions.iter().zip(labels) {
        predicted[p as usize] += 1.0;
        actual[l as usize] += 1.0;
        if p == l {
            correct += 1.0;
        }
    }
    let s = n as f64;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let cov_pred_actual = correct * s - dot(&predicted, &actual);
    let cov_pred = s * s - dot(&predicted, &predicted);
    let cov_actual = s * s - dot(&actual, &actual);
    if cov_pred * cov_actual == 0.0 {
        return Ok(0.0);
    }
    Ok(cov_pred_actual / (cov_actual * cov_pred).sqrt())
}

/// Pearson correlation of predicted and gold scores (GLUE: STS-B).
pub fn pearson(predictions: &[f64], labels: &[f64]) -> Result<f64, MetricError> {
    correlation("Pearson correlation", predictions, labels)
}

/// Spearman rank correlation of predicted and gold scores (GLUE: STS-B): Pearson correlation of
/// the ranks, ties given their average rank.
pub fn spearman(predictions: &[f64], labels: &[f64]) -> Result<f64, MetricError> {
    check_lengths(predictions.len(), labels.len())?;
    correlation(
        "Spearman correlation",
        &average_ranks(predictions),
        &average_ranks(labels),
    )
}

fn correlation(metric: &'static str, x: &[f64], y: &[f64]) -> Result<f64, MetricError> {
    let n = check_lengths(x.len(), y.len())?;
    if n < 2 {
        return Err(MetricError::Undefined {
            metric,
            reason: "it needs at least two examples",
        });
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(MetricError::Undefined {
            metric,
            reason: "a score is not a finite number",
        });
    }
    // Tested on the values, not on the sum of squares: the mean of a constant column like 0.1
    // need not round to 0.1, which would leave a tiny spread and a meaningless correlation.
    let constant = |v: &[f64]| v.iter().all(|a| *a == v[0]);
    if constant(x) || constant(y) {
        return Err(MetricError::Undefined {
            metric,
            reason: "the predictions or the labels are all the same",
        });
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    // Rounding can carry |r| a hair past 1; SciPy clips the same way.
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// 1-based ranks of `values`, tied values sharing the average of their ranks.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their mean.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// How one score spreads over runs (seeds, grid points): what a sweep's table reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Number of runs.
    pub runs: usize,
    /// Mean over the runs.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for one run.
    pub std: f64,
    /// Lowest score.
    pub min: f64,
    /// Highest score.
    pub max: f64,
}

impl Spread {
    /// The spread of `scores`; `None` for no scores.
    pub fn of(scores: &[f64]) -> Option<Spread> {
        if scores.is_empty() {
            return None;
        }
        let n = scores.len() as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let std = if scores.len() < 2 {
            0.0
        } else {
            (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        };
        Some(Spread {
            runs: scores.len(),
            mean,
            std,
            min: scores.iter().copied().fold(f64::INFINITY, f64::min),
            max: scores.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_average_rank() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0, 3.0]),
            [4.0, 1.0, 4.0, 2.0, 4.0]
        );
        assert_eq!(average_ranks(&[]), Vec::<f64>::new());
    }

    #[test]
    fn the_spread_is_the_sample_spread() {
        let s = Spread::of(&[0.8, 0.9, 1.0]).expect("three runs");
        assert_eq!(s.runs, 3);
        assert!((s.mean - 0.9).abs() < 1e-15);
        assert!((s.std - 0.1).abs() < 1e-15);
        assert_eq!((s.min, s.max), (0.8, 1.0));
        assert_eq!(Spread::of(&[0.5]).map(|s| s.std), Some(0.0));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn mismatched_and_empty_inputs_are_errors() {
        assert_eq!(
            accuracy(&[1, 0], &[1]),
            Err(MetricError::LengthMismatch {
                predictions: 2,
                labels: 1
            })
        );
        assert_eq!(matthews(&[], &[]), Err(MetricError::Empty));
        assert!(matches!(
            pearson(&[1.0, f64::NAN], &[1.0, 2.0]),
            Err(MetricError::Undefined { .. })
        ));
        // The mean of ten 0.1s is not 0.1 in f64: still a constant column.
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        assert!(matches!(
            pearson(&[0.1; 10], &x),
            Err(MetricError::Undefined { .. })
        ));
    }
}
