//! What to draw: the four panels (loss, MLM accuracy, NSP or SOP accuracy, or the fill rate of
//! an MLM-only run, learning rate), their
//! series with colours, styles and legend labels, and the moving average that smooths the
//! training curves.

use super::{MLM_COLOUR, NSP_COLOUR, TRAIN_COLOUR, VAL_COLOUR, VAL_NSP_COLOUR};
use crate::metrics::{EvalRecord, StepRecord};

/// The marker of an evaluation series.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Marker {
    Circle,
    Square,
}

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Style {
    /// A solid line of this thickness.
    Line(f64),
    /// Markers joined by a thin dashed line (evaluations: few points, each one meaningful).
    Points(Marker),
}

/// One curve of a panel.
pub(super) struct Series {
    /// Legend text; `None` keeps it out of the legend.
    pub(super) label: Option<String>,
    pub(super) colour: [u8; 3],
    pub(super) alpha: f32,
    pub(super) style: Style,
    /// Drawing order: higher on top, whatever the legend order.
    pub(super) layer: u8,
    /// (step, value); non-finite values are gaps.
    pub(super) points: Vec<(f64, f64)>,
}

/// One chart of the grid.
pub(super) struct Panel {
    pub(super) title: &'static str,
    pub(super) series: Vec<Series>,
    /// Clamps the padded value range to [0, 1] where the data lie within it (accuracies), so
    /// the axis does not run to impossible values like 1.05.
    pub(super) unit_interval: bool,
}

/// The panels of a run, in grid order (left to right, top to bottom); training series
/// smoothed over `window` steps.
pub(super) fn build_panels(
    steps: &[&StepRecord],
    evals: &[&EvalRecord],
    window: usize,
) -> Vec<Panel> {
    let xs: Vec<f64> = steps.iter().map(|r| r.step as f64).collect();
    let train = |f: fn(&StepRecord) -> f64| -> Vec<f64> { steps.iter().map(|r| f(r)).collect() };
    let zip = |ys: Vec<f64>| -> Vec<(f64, f64)> { xs.iter().copied().zip(ys).collect() };
    let eval = |f: fn(&EvalRecord) -> f64| -> Vec<(f64, f64)> {
        evals.iter().map(|r| (r.step as f64, f(r))).collect()
    };
    let train_label = if window > 1 {
        format!("train (avg {window})")
    } else {
        "train".to_string()
    };
    let has_evals = !evals.is_empty();

    let raw = |ys: Vec<f64>| Series {
        label: None,
        colour: TRAIN_COLOUR,
        alpha: 0.22,
        style: Style::Line(1.0),
        layer: 0,
        points: zip(ys),
    };
    let smoothed = |ys: Vec<f64>, label: String, colour: [u8; 3], main: bool| Series {
        label: Some(label),
        colour,
        alpha: if main { 1.0 } else { 0.75 },
        style: Style::Line(if main { 2.0 } else { 1.25 }),
        layer: if main { 2 } else { 1 },
        points: zip(moving_average(&ys, window)),
    };
    let val = |points: Vec<(f64, f64)>, label: &str, colour: [u8; 3], marker: Marker| Series {
        label: Some(label.to_string()),
        colour,
        alpha: 1.0,
        style: Style::Points(marker),
        layer: 3,
        points,
    };

    // The pair head's curves are NSP's or SOP's, by what the run logged; an `mlm` run has
    // none and shows its packing instead.
    let sop = steps.iter().any(|r| r.sop_loss.is_some());
    let nsp = steps.iter().any(|r| r.nsp_loss.is_some())
        || (!sop && steps.iter().all(|r| r.fill_rate.is_none()));
    type Step = fn(&StepRecord) -> f64;
    type Eval = fn(&EvalRecord) -> f64;
    let (pair_name, pair_loss, pair_acc): (&str, Step, Step) = if sop {
        (
            "SOP",
            |r| r.sop_loss.unwrap_or(f64::NAN),
            |r| r.sop_accuracy.unwrap_or(f64::NAN),
        )
    } else {
        (
            "NSP",
            |r| r.nsp_loss.unwrap_or(f64::NAN),
            |r| r.nsp_accuracy.unwrap_or(f64::NAN),
        )
    };
    let (pair_eval_loss, pair_eval_acc): (Eval, Eval) = if sop {
        (
            |r| r.sop_loss.unwrap_or(f64::NAN),
            |r| r.sop_accuracy.unwrap_or(f64::NAN),
        )
    } else {
        (
            |r| r.nsp_loss.unwrap_or(f64::NAN),
            |r| r.nsp_accuracy.unwrap_or(f64::NAN),
        )
    };
    let pair = nsp || sop;

    let mut loss = vec![
        raw(train(|r| r.loss)),
        smoothed(train(|r| r.loss), train_label.clone(), TRAIN_COLOUR, true),
        smoothed(train(|r| r.mlm_loss), "train MLM".into(), MLM_COLOUR, false),
    ];
    if pair {
        loss.push(smoothed(
            train(pair_loss),
            format!("train {pair_name}"),
            NSP_COLOUR,
            false,
        ));
    }
    let mut mlm_acc = vec![
        raw(train(|r| r.mlm_accuracy)),
        smoothed(
            train(|r| r.mlm_accuracy),
            train_label.clone(),
            TRAIN_COLOUR,
            true,
        ),
    ];
    let third_series = if pair {
        train(pair_acc)
    } else {
        train(|r| r.fill_rate.unwrap_or(f64::NAN))
    };
    let mut third = vec![
        raw(third_series.clone()),
        smoothed(third_series, train_label, TRAIN_COLOUR, true),
    ];
    if has_evals {
        loss.push(val(
            eval(|r| r.mlm_loss),
            "val MLM",
            VAL_COLOUR,
            Marker::Circle,
        ));
        if pair {
            loss.push(val(
                eval(pair_eval_loss),
                &format!("val {pair_name}"),
                VAL_NSP_COLOUR,
                Marker::Square,
            ));
        }
        mlm_acc.push(val(
            eval(|r| r.mlm_accuracy),
            "val",
            VAL_COLOUR,
            Marker::Circle,
        ));
        if pair {
            third.push(val(eval(pair_eval_acc), "val", VAL_COLOUR, Marker::Circle));
        }
    }
    // The schedule is deterministic, so neither a faint raw line nor smoothing would add anything.
    let lr = vec![Series {
        label: None,
        colour: TRAIN_COLOUR,
        alpha: 1.0,
        style: Style::Line(2.0),
        layer: 2,
        points: zip(train(|r| r.lr)),
    }];
    vec![
        Panel {
            title: "loss",
            series: loss,
            unit_interval: false,
        },
        Panel {
            title: "MLM accuracy",
            series: mlm_acc,
            unit_interval: true,
        },
        Panel {
            title: match (pair, sop) {
                (true, true) => "SOP accuracy",
                (true, false) => "NSP accuracy",
                (false, _) => "fill rate (real tokens / padded slots)",
            },
            series: third,
            unit_interval: true,
        },
        Panel {
            title: "learning rate",
            series: lr,
            unit_interval: false,
        },
    ]
}

/// Moving average over `window` records (odd), centred so that the curve does not lag behind
/// the raw one, ignoring non-finite values. NaN where a window has no finite value.
fn moving_average(ys: &[f64], window: usize) -> Vec<f64> {
    if window <= 1 {
        return ys.to_vec();
    }
    let n = ys.len();
    let mut sum = vec![0.0; n + 1];
    let mut count = vec![0usize; n + 1];
    for (i, &y) in ys.iter().enumerate() {
        let finite = y.is_finite();
        sum[i + 1] = sum[i] + if finite { y } else { 0.0 };
        count[i + 1] = count[i] + usize::from(finite);
    }
    let half = window / 2;
    (0..n)
        .map(|i| {
            // Symmetric even at the ends (narrower there): a one-sided window would pull the
            // first and last points towards the middle of the run.
            let r = half.min(i).min(n - 1 - i);
            let (lo, hi) = (i - r, i + r + 1);
            let c = count[hi] - count[lo];
            if c == 0 {
                f64::NAN
            } else {
                (sum[hi] - sum[lo]) / c as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_skips_non_finite() {
        let m = moving_average(&[1.0, f64::NAN, 3.0, 5.0], 3);
        assert_eq!(m, [1.0, 2.0, 4.0, 5.0]);
        assert!(moving_average(&[f64::NAN], 3)[0].is_nan());
    }
}
