//! `bert plot`: the training curves of a run as a PNG.
//!
//! Drawn by a small built-in rasteriser (antialiased lines, markers, a 5×7 bitmap font) rather
//! than a plotting stack, so that plotting needs no font files, system libraries or C code and
//! renders the same pixels everywhere.

use std::path::Path;

use bert_model::fsutil::write_atomic;

use crate::error::{Result, TrainError};
use crate::metrics::{read_metrics, EvalRecord, StepRecord};

/// Colour of the main training series (smoothed total loss, smoothed accuracies, learning rate).
pub const TRAIN_COLOUR: [u8; 3] = [31, 119, 180];
const MLM_COLOUR: [u8; 3] = [255, 127, 14];
const NSP_COLOUR: [u8; 3] = [44, 160, 44];
const VAL_COLOUR: [u8; 3] = [214, 39, 40];
const VAL_NSP_COLOUR: [u8; 3] = [148, 103, 189];
const WHITE: [u8; 3] = [255, 255, 255];
const TEXT_COLOUR: [u8; 3] = [40, 40, 40];
const GRID_COLOUR: [u8; 3] = [232, 232, 232];
const FRAME_COLOUR: [u8; 3] = [150, 150, 150];
const LEGEND_BORDER: [u8; 3] = [205, 205, 205];

/// Smallest and largest accepted image sides: below the minimum the panels have no room for
/// their labels; above the maximum the buffer would be an accident, not a plot.
const MIN_SIZE: (u32, u32) = (320, 240);
const MAX_SIDE: u32 = 8192;

/// Options of the plot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotOptions {
    /// Image width in pixels (at least 320, at most 8192).
    pub width: u32,
    /// Image height in pixels (at least 240, at most 8192).
    pub height: u32,
    /// Moving-average window, in training steps, of the smoothed training series: 0 or 1 for
    /// none, [`PlotOptions::AUTO_SMOOTHING`] to choose from the number of steps. See
    /// [`PlotOptions::smoothing_window`] for the window actually used.
    pub smoothing: usize,
}

impl PlotOptions {
    /// The `smoothing` value that picks the window from the run: the number of steps / 50,
    /// clamped to 1..=100, so a curve shows about the same amount of detail whatever the run's
    /// length.
    pub const AUTO_SMOOTHING: usize = usize::MAX;

    /// The moving-average window used for `steps` training steps: odd (an even window is
    /// widened by one, because the average is centred on each step), 1 for no smoothing.
    pub fn smoothing_window(&self, steps: usize) -> usize {
        let w = if self.smoothing == Self::AUTO_SMOOTHING {
            (steps / 50).clamp(1, 100)
        } else {
            self.smoothing.clamp(1, usize::MAX - 1)
        };
        w | 1
    }
}

impl Default for PlotOptions {
    /// 1200×800 pixels, automatic smoothing ([`PlotOptions::AUTO_SMOOTHING`]).
    fn default() -> Self {
        Self {
            width: 1200,
            height: 800,
            smoothing: Self::AUTO_SMOOTHING,
        }
    }
}

/// What a plot drew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotSummary {
    /// Training steps with a finite total loss.
    pub train_points: usize,
    /// Evaluations with at least one finite value.
    pub eval_points: usize,
}

/// Renders `run_dir/metrics.jsonl` to `out` (PNG, written atomically). Returns what was drawn.
pub fn plot_run(run_dir: &Path, out: &Path, options: &PlotOptions) -> Result<PlotSummary> {
    let path = run_dir.join("metrics.jsonl");
    let (steps, evals) = read_metrics(&path)?;
    if steps.is_empty() {
        return Err(TrainError::Data(format!(
            "no training steps in {}: has the run started?",
            path.display()
        )));
    }
    let (bytes, summary) = render(&steps, &evals, options)?;
    write_atomic(out, &bytes)?;
    Ok(summary)
}

/// Renders records to PNG bytes (pure function, for tests): a 2×2 grid of loss, MLM accuracy,
/// NSP accuracy and learning rate against the step. Non-finite values are left out.
pub fn render_png(
    steps: &[StepRecord],
    evals: &[EvalRecord],
    options: &PlotOptions,
) -> Result<Vec<u8>> {
    render(steps, evals, options).map(|(bytes, _)| bytes)
}

fn render(
    steps: &[StepRecord],
    evals: &[EvalRecord],
    options: &PlotOptions,
) -> Result<(Vec<u8>, PlotSummary)> {
    let (w, h) = (options.width, options.height);
    if w < MIN_SIZE.0 || h < MIN_SIZE.1 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(TrainError::Data(format!(
            "plot size {w}x{h} is outside {}x{}..={MAX_SIDE}x{MAX_SIDE}",
            MIN_SIZE.0, MIN_SIZE.1
        )));
    }
    if steps.is_empty() {
        return Err(TrainError::Data("no training steps to plot".into()));
    }
    // A resumed run's file is already in order, but a sort costs nothing and keeps lines from
    // zig-zagging if records were ever appended out of order.
    let mut steps: Vec<&StepRecord> = steps.iter().collect();
    steps.sort_by_key(|r| r.step);
    let mut evals: Vec<&EvalRecord> = evals.iter().collect();
    evals.sort_by_key(|r| r.step);

    let window = options.smoothing_window(steps.len());
    let panels = build_panels(&steps, &evals, window);

    // All panels share the step axis so that curves line up across panels.
    let x_max = steps
        .iter()
        .map(|r| r.step)
        .chain(evals.iter().map(|r| r.step))
        .max()
        .unwrap_or(0) as f64;
    let x_range = (0.0, x_max.max(5.0));

    let mut canvas = Canvas::new(w as usize, h as usize);
    let scale: i64 = if w >= 800 && h >= 500 { 2 } else { 1 };
    let gap = 4 * scale;
    let margin = 2 * gap;
    let col_w = (i64::from(w) - 2 * margin - gap) / 2;
    let row_h = (i64::from(h) - 2 * margin - gap) / 2;
    for (i, panel) in panels.iter().enumerate() {
        let (col, row) = ((i % 2) as i64, (i / 2) as i64);
        let x0 = margin + col * (col_w + gap);
        let y0 = margin + row * (row_h + gap);
        let rect = Rect {
            x0,
            y0,
            x1: x0 + col_w,
            y1: y0 + row_h,
        };
        draw_panel(&mut canvas, panel, rect, x_range, scale);
    }

    let summary = PlotSummary {
        train_points: steps.iter().filter(|r| r.loss.is_finite()).count(),
        eval_points: evals
            .iter()
            .filter(|r| {
                [r.mlm_loss, r.nsp_loss, r.mlm_accuracy, r.nsp_accuracy]
                    .iter()
                    .any(|v| v.is_finite())
            })
            .count(),
    };
    Ok((canvas.encode_png()?, summary))
}

// ---------------------------------------------------------------------------------------------
// What to draw.

#[derive(Clone, Copy, PartialEq)]
enum Marker {
    Circle,
    Square,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// A solid line of this thickness.
    Line(f64),
    /// Markers joined by a thin dashed line (evaluations: few points, each one meaningful).
    Points(Marker),
}

struct Series {
    /// Legend text; `None` keeps it out of the legend.
    label: Option<String>,
    colour: [u8; 3],
    alpha: f32,
    style: Style,
    /// Drawing order: higher on top, whatever the legend order.
    layer: u8,
    /// (step, value); non-finite values are gaps.
    points: Vec<(f64, f64)>,
}

struct Panel {
    title: &'static str,
    series: Vec<Series>,
    /// Clamps the padded value range to [0, 1] where the data lie within it (accuracies), so
    /// the axis does not run to impossible values like 1.05.
    unit_interval: bool,
}

fn build_panels(steps: &[&StepRecord], evals: &[&EvalRecord], window: usize) -> Vec<Panel> {
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

    let mut loss = vec![
        raw(train(|r| r.loss)),
        smoothed(train(|r| r.loss), train_label.clone(), TRAIN_COLOUR, true),
        smoothed(train(|r| r.mlm_loss), "train MLM".into(), MLM_COLOUR, false),
        smoothed(train(|r| r.nsp_loss), "train NSP".into(), NSP_COLOUR, false),
    ];
    let mut mlm_acc = vec![
        raw(train(|r| r.mlm_accuracy)),
        smoothed(
            train(|r| r.mlm_accuracy),
            train_label.clone(),
            TRAIN_COLOUR,
            true,
        ),
    ];
    let mut nsp_acc = vec![
        raw(train(|r| r.nsp_accuracy)),
        smoothed(train(|r| r.nsp_accuracy), train_label, TRAIN_COLOUR, true),
    ];
    if has_evals {
        loss.push(val(
            eval(|r| r.mlm_loss),
            "val MLM",
            VAL_COLOUR,
            Marker::Circle,
        ));
        loss.push(val(
            eval(|r| r.nsp_loss),
            "val NSP",
            VAL_NSP_COLOUR,
            Marker::Square,
        ));
        mlm_acc.push(val(
            eval(|r| r.mlm_accuracy),
            "val",
            VAL_COLOUR,
            Marker::Circle,
        ));
        nsp_acc.push(val(
            eval(|r| r.nsp_accuracy),
            "val",
            VAL_COLOUR,
            Marker::Circle,
        ));
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
            title: "NSP accuracy",
            series: nsp_acc,
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

// ---------------------------------------------------------------------------------------------
// Axes and layout.

#[derive(Clone, Copy)]
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

/// A plot area (frame lines on its edges, inclusive) and the data range it shows.
struct Frame {
    area: Rect,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    /// Pixel-space x of a step (pixel centres are at +0.5).
    fn px(&self, x: f64) -> f64 {
        let t = (x - self.x.0) / (self.x.1 - self.x.0);
        self.area.x0 as f64 + 0.5 + t * (self.area.x1 - self.area.x0) as f64
    }

    fn py(&self, y: f64) -> f64 {
        let t = (y - self.y.0) / (self.y.1 - self.y.0);
        self.area.y1 as f64 + 0.5 - t * (self.area.y1 - self.area.y0) as f64
    }
}

/// The value range of a panel: all finite values, padded so lines do not sit on the frame and
/// so a constant series still gets a non-empty axis.
fn value_range(panel: &Panel) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in &panel.series {
        for &(_, y) in &s.points {
            if y.is_finite() {
                lo = lo.min(y);
                hi = hi.max(y);
            }
        }
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > hi.abs().max(lo.abs()) * 1e-9 && span > 0.0 {
        span * 0.05
    } else if lo == 0.0 {
        0.1
    } else {
        lo.abs() * 0.1
    };
    let (mut a, mut b) = (lo - pad, hi + pad);
    // Losses, accuracies and rates are non-negative: an axis below zero would only waste room.
    // Data exactly on a bound keep their padding, or they would be hidden under the frame.
    if lo > 0.0 {
        a = a.max(0.0);
    }
    if panel.unit_interval && hi < 1.0 {
        b = b.min(1.0);
    }
    if b <= a {
        b = a + 1.0;
    }
    (a, b)
}

/// "Nice" ticks (1, 2, 2.5 or 5 × 10^k apart) inside `[lo, hi]`, aiming at 4 to 6 of them.
/// `integer` keeps the spacing a whole number (steps).
fn nice_ticks(lo: f64, hi: f64, integer: bool) -> (Vec<f64>, f64) {
    let span = hi - lo;
    let k0 = span.log10().floor() as i32;
    let mut best: Option<(f64, f64)> = None; // (score, step)
    for k in (k0 - 2)..=(k0 + 1) {
        for m in [1.0, 2.0, 2.5, 5.0] {
            let step = m * 10f64.powi(k);
            if integer && (step < 1.0 || step.fract() != 0.0) {
                continue;
            }
            let count = ((hi / step + 1e-9).floor() - (lo / step - 1e-9).ceil() + 1.0).max(0.0);
            let score = if (4.0..=6.0).contains(&count) {
                (count - 5.0).abs()
            } else if count < 4.0 {
                10.0 + 4.0 - count
            } else {
                10.0 + count - 6.0
            };
            // Ties go to the wider spacing: fewer labels, less clutter.
            if best.is_none_or(|(s, _)| score <= s) {
                best = Some((score, step));
            }
        }
    }
    let step = best.map_or(span, |(_, s)| s);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|i| i as f64 * step).collect();
    (ticks, step)
}

/// Compact tick label: `0.25`, `300`, `1.5k`, `2e-4` (lowercase; drawn in capitals).
/// `axis_max` is the largest |tick| of the axis, so one axis uses one notation for small values.
fn format_tick(v: f64, step: f64, axis_max: f64) -> String {
    if v.abs() < step * 1e-6 {
        return "0".into();
    }
    let mag = v.abs();
    if mag >= 1000.0 {
        let (scale, suffix) = if mag >= 1e9 {
            (1e9, "g")
        } else if mag >= 1e6 {
            (1e6, "m")
        } else {
            (1e3, "k")
        };
        return format!("{}{suffix}", fixed(v / scale, step / scale));
    }
    if axis_max < 0.01 {
        let mut e = mag.log10().floor() as i32;
        let mut m = v / 10f64.powi(e);
        // Rounding can push the mantissa to 10 (9.9999 → "10.0"); renormalise.
        if (m.abs() - 10.0).abs() < 1e-9 {
            m /= 10.0;
            e += 1;
        }
        let decimals = (e - step.log10().floor() as i32 + 1).clamp(0, 3) as usize;
        return format!("{}e{e}", trim_zeros(format!("{m:.decimals$}")));
    }
    fixed(v, step)
}

/// `v` with as many decimals as its tick spacing needs, trailing zeros dropped.
fn fixed(v: f64, step: f64) -> String {
    let decimals = (1 - step.log10().floor() as i32).clamp(0, 6) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn draw_panel(canvas: &mut Canvas, panel: &Panel, rect: Rect, x_range: (f64, f64), s: i64) {
    let gap = 4 * s;
    let char_h = 7 * s;
    let tick_len = 2 * s;

    let y_range = value_range(panel);
    let (y_ticks, y_step) = nice_ticks(y_range.0, y_range.1, false);
    let y_max = y_ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    let y_labels: Vec<String> = y_ticks
        .iter()
        .map(|&t| format_tick(t, y_step, y_max))
        .collect();
    let label_w = y_labels.iter().map(|l| text_width(l, s)).max().unwrap_or(0);

    let area = Rect {
        x0: rect.x0 + gap + label_w + gap + tick_len,
        y0: rect.y0 + gap + char_h + 2 * gap,
        x1: rect.x1 - 3 * gap,
        y1: rect.y1 - (tick_len + gap + char_h + gap + char_h + gap),
    };
    let frame = Frame {
        area,
        x: x_range,
        y: y_range,
    };

    // Title, centred over the plot area.
    let title_w = text_width(panel.title, s);
    canvas.text(
        (area.x0 + area.x1 - title_w) / 2,
        rect.y0 + gap,
        panel.title,
        s,
        TEXT_COLOUR,
    );

    // Grid and tick labels; the frame goes on top of the grid.
    let (x_ticks, x_step) = nice_ticks(x_range.0, x_range.1, true);
    let x_max = x_ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    for &t in &x_ticks {
        let x = frame.px(t).floor() as i64;
        canvas.fill_rect(x, area.y0, x + 1, area.y1 + 1, GRID_COLOUR);
        canvas.fill_rect(x, area.y1, x + 1, area.y1 + tick_len + 1, FRAME_COLOUR);
        let label = format_tick(t, x_step, x_max);
        let w = text_width(&label, s);
        let lx = (x - w / 2).clamp(rect.x0, rect.x1 - w);
        canvas.text(lx, area.y1 + tick_len + gap, &label, s, TEXT_COLOUR);
    }
    for (&t, label) in y_ticks.iter().zip(&y_labels) {
        let y = frame.py(t).floor() as i64;
        canvas.fill_rect(area.x0, y, area.x1 + 1, y + 1, GRID_COLOUR);
        canvas.fill_rect(area.x0 - tick_len, y, area.x0, y + 1, FRAME_COLOUR);
        let w = text_width(label, s);
        let ly = (y - char_h / 2).clamp(rect.y0, rect.y1 - char_h);
        canvas.text(area.x0 - tick_len - gap - w, ly, label, s, TEXT_COLOUR);
    }
    let step_w = text_width("step", s);
    canvas.text(
        (area.x0 + area.x1 - step_w) / 2,
        area.y1 + tick_len + gap + char_h + gap,
        "step",
        s,
        TEXT_COLOUR,
    );
    canvas.stroke_rect(area, FRAME_COLOUR);

    // Series, bottom layer first.
    let mut order: Vec<&Series> = panel.series.iter().collect();
    order.sort_by_key(|s| s.layer);
    for series in order {
        draw_series(canvas, &frame, series, s);
    }

    if !panel.series.iter().any(has_data) {
        let w = text_width("no data", s);
        let y = (area.y0 + area.y1 - char_h) / 2;
        canvas.text((area.x0 + area.x1 - w) / 2, y, "no data", s, FRAME_COLOUR);
    }
    draw_legend(canvas, &frame, panel, s);
}

/// Line thickness in pixels: as given at text scale 2 (the default size), thinner but still
/// solid when the text scale is 1.
fn thickness(width: f64, s: f64) -> f64 {
    width * (s / 2.0).max(0.75)
}

/// Runs of consecutive finite points, in pixel space: non-finite values break the line.
fn pixel_runs(frame: &Frame, points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![];
    let mut run = vec![];
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            run.push((frame.px(x), frame.py(y)));
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

fn draw_series(canvas: &mut Canvas, frame: &Frame, series: &Series, s: i64) {
    let s = s as f64;
    let runs = pixel_runs(frame, &series.points);
    match series.style {
        Style::Line(width) => {
            let width = thickness(width, s);
            for run in &runs {
                if let [(x, y)] = run.as_slice() {
                    // A lone point (one step, or between gaps) would be an invisible line.
                    canvas.mask_disc(*x, *y, (1.5 * width).max(2.0 * s));
                } else {
                    for w in run.windows(2) {
                        canvas.mask_segment(w[0], w[1], width / 2.0);
                    }
                }
            }
            canvas.composite(series.colour, series.alpha, frame.area);
        }
        Style::Points(marker) => {
            for run in &runs {
                canvas.mask_dashed(run, 0.6 * s, 3.0 * s, 2.5 * s);
            }
            canvas.composite(series.colour, 0.8 * series.alpha, frame.area);
            for run in &runs {
                for &(x, y) in run {
                    // A white halo keeps markers readable where they sit on a line.
                    canvas.mask_marker(marker, x, y, 2.5 * s + 1.0);
                }
            }
            canvas.composite(WHITE, 1.0, frame.area);
            for run in &runs {
                for &(x, y) in run {
                    canvas.mask_marker(marker, x, y, 2.5 * s);
                }
            }
            canvas.composite(series.colour, series.alpha, frame.area);
        }
    }
}

fn draw_legend(canvas: &mut Canvas, frame: &Frame, panel: &Panel, s: i64) {
    let entries: Vec<(&Series, &str)> = panel
        .series
        .iter()
        .filter(|se| has_data(se))
        .filter_map(|se| se.label.as_deref().map(|l| (se, l)))
        .collect();
    if entries.is_empty() {
        return;
    }
    let gap = 4 * s;
    let pad = 3 * s;
    let char_h = 7 * s;
    let row = char_h + 3 * s;
    let swatch = 10 * s;
    let text_w = entries
        .iter()
        .map(|(_, l)| text_width(l, s))
        .max()
        .unwrap_or(0);
    let w = pad + swatch + 3 * s + text_w + pad;
    let h = 2 * pad + entries.len() as i64 * row - 3 * s;
    let a = frame.area;
    let (left, right) = (a.x0 + gap, a.x1 - gap - w);
    let (top, bottom) = (a.y0 + gap, a.y1 - gap - h);
    // The corner that hides the least data; in ties, top right, then bottom right.
    let corners = [(right, top), (right, bottom), (left, top), (left, bottom)];
    let runs: Vec<Vec<(f64, f64)>> = panel
        .series
        .iter()
        .flat_map(|se| pixel_runs(frame, &se.points))
        .collect();
    let (x0, y0) = corners
        .iter()
        .copied()
        .min_by_key(|&(x, y)| {
            let b = Rect {
                x0: x - s,
                y0: y - s,
                x1: x + w + s,
                y1: y + h + s,
            };
            runs.iter().map(|run| hits(&b, run)).sum::<usize>()
        })
        .unwrap_or((right, top));
    let b = Rect {
        x0,
        y0,
        x1: x0 + w,
        y1: y0 + h,
    };
    canvas.blend_rect(b, WHITE, 0.85);
    canvas.stroke_rect(
        Rect {
            x1: b.x1 - 1,
            y1: b.y1 - 1,
            ..b
        },
        LEGEND_BORDER,
    );
    let sf = s as f64;
    for (i, (series, label)) in entries.iter().enumerate() {
        let ty = y0 + pad + i as i64 * row;
        let cy = ty as f64 + char_h as f64 / 2.0;
        let (sx0, sx1) = ((x0 + pad) as f64, (x0 + pad + swatch) as f64);
        match series.style {
            Style::Line(width) => {
                canvas.mask_segment((sx0, cy), (sx1, cy), thickness(width, sf) / 2.0);
                canvas.composite(series.colour, series.alpha, b);
            }
            Style::Points(marker) => {
                canvas.mask_segment((sx0, cy), (sx1, cy), 0.3 * sf);
                canvas.composite(series.colour, 0.8, b);
                canvas.mask_marker(marker, (sx0 + sx1) / 2.0, cy, 2.5 * sf);
                canvas.composite(series.colour, 1.0, b);
            }
        }
        canvas.text(x0 + pad + swatch + 3 * s, ty, label, s, TEXT_COLOUR);
    }
}

fn has_data(series: &Series) -> bool {
    series
        .points
        .iter()
        .any(|(x, y)| x.is_finite() && y.is_finite())
}

/// How many points of a polyline (sampled every few pixels, so that a long segment crossing
/// the box counts) fall inside `b`.
fn hits(b: &Rect, run: &[(f64, f64)]) -> usize {
    let inside = |(x, y): (f64, f64)| {
        x >= b.x0 as f64 && x < b.x1 as f64 && y >= b.y0 as f64 && y < b.y1 as f64
    };
    let mut n = usize::from(run.first().is_some_and(|&p| inside(p)));
    for w in run.windows(2) {
        let (p, q) = (w[0], w[1]);
        let len = ((q.0 - p.0).powi(2) + (q.1 - p.1).powi(2)).sqrt();
        let k = (len / 4.0).ceil().clamp(1.0, 10_000.0) as usize;
        n += (1..=k)
            .filter(|&j| {
                let t = j as f64 / k as f64;
                inside((p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1)))
            })
            .count();
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Rasteriser.

/// An RGB image plus a coverage mask: shapes are first accumulated in the mask (maximum
/// coverage), then composited once, so that where segments of one polyline overlap at their
/// joints a translucent line is not blended twice into darker dots.
struct Canvas {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
    mask: Vec<f32>,
    /// Bounding box of the mask's non-zero pixels (x0, y0, x1, y1; exclusive ends).
    dirty: Option<(usize, usize, usize, usize)>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            rgb: vec![255; w * h * 3],
            mask: vec![0.0; w * h],
            dirty: None,
        }
    }

    /// Pixel range of `[lo, hi]` (continuous coordinates, widened by `r`) within `0..n`.
    fn span(lo: f64, hi: f64, r: f64, n: usize) -> (usize, usize) {
        let a = (lo - r - 1.0).floor().max(0.0);
        let b = (hi + r + 1.0).ceil().clamp(0.0, n as f64);
        (a as usize, (b as usize).max(a as usize))
    }

    /// Raises the mask over the bounding box `[x0, x1] × [y0, y1]` widened by `r`, to
    /// `coverage(pixel centre)`.
    fn mask_shape(
        &mut self,
        (x0, y0, x1, y1): (f64, f64, f64, f64),
        r: f64,
        coverage: impl Fn(f64, f64) -> f32,
    ) {
        let (ax, bx) = Self::span(x0, x1, r, self.w);
        let (ay, by) = Self::span(y0, y1, r, self.h);
        if ax >= bx || ay >= by {
            return;
        }
        let mut touched = false;
        for y in ay..by {
            for x in ax..bx {
                let c = coverage(x as f64 + 0.5, y as f64 + 0.5);
                if c > 0.0 {
                    let m = &mut self.mask[y * self.w + x];
                    *m = m.max(c.min(1.0));
                    touched = true;
                }
            }
        }
        if touched {
            self.dirty = Some(match self.dirty {
                None => (ax, ay, bx, by),
                Some((a, b, c, d)) => (a.min(ax), b.min(ay), c.max(bx), d.max(by)),
            });
        }
    }

    /// A segment of half-thickness `hw`, antialiased by distance to the pixel centre.
    fn mask_segment(&mut self, p: (f64, f64), q: (f64, f64), hw: f64) {
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let len2 = dx * dx + dy * dy;
        let bbox = (p.0.min(q.0), p.1.min(q.1), p.0.max(q.0), p.1.max(q.1));
        self.mask_shape(bbox, hw, |x, y| {
            let t = if len2 > 0.0 {
                (((x - p.0) * dx + (y - p.1) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (ex, ey) = (x - p.0 - t * dx, y - p.1 - t * dy);
            (hw + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0) as f32
        });
    }

    fn mask_disc(&mut self, cx: f64, cy: f64, r: f64) {
        self.mask_shape((cx, cy, cx, cy), r, |x, y| {
            let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
            (r + 0.5 - d).clamp(0.0, 1.0) as f32
        });
    }

    /// A square of half-side `r` (its coverage is the product of the two axes' coverages).
    fn mask_square(&mut self, cx: f64, cy: f64, r: f64) {
        self.mask_shape((cx, cy, cx, cy), r, |x, y| {
            let cov = |d: f64| (r + 0.5 - d.abs()).clamp(0.0, 1.0);
            (cov(x - cx) * cov(y - cy)) as f32
        });
    }

    /// Marker of visual size `r`: squares are drawn a little smaller than circles of the same
    /// radius so both look equally heavy.
    fn mask_marker(&mut self, marker: Marker, x: f64, y: f64, r: f64) {
        match marker {
            Marker::Circle => self.mask_disc(x, y, r),
            Marker::Square => self.mask_square(x, y, r * 0.85),
        }
    }

    /// A polyline of half-thickness `hw`, `dash` pixels on and `gap` off; the pattern runs on
    /// across vertices so short segments still show gaps.
    fn mask_dashed(&mut self, run: &[(f64, f64)], hw: f64, dash: f64, gap: f64) {
        let mut on = true;
        let mut left = dash;
        for w in run.windows(2) {
            let (p, q) = (w[0], w[1]);
            let len = ((q.0 - p.0).powi(2) + (q.1 - p.1).powi(2)).sqrt();
            let mut t = 0.0;
            while t < len {
                let d = left.min(len - t);
                if on {
                    let a = (p.0 + (q.0 - p.0) * t / len, p.1 + (q.1 - p.1) * t / len);
                    let e = t + d;
                    let b = (p.0 + (q.0 - p.0) * e / len, p.1 + (q.1 - p.1) * e / len);
                    self.mask_segment(a, b, hw);
                }
                t += d;
                left -= d;
                if left <= 1e-9 {
                    on = !on;
                    left = if on { dash } else { gap };
                }
            }
        }
    }

    /// Blends `colour` through the mask (times `alpha`) inside `clip` (inclusive), then clears
    /// the whole mask, clipped or not.
    fn composite(&mut self, colour: [u8; 3], alpha: f32, clip: Rect) {
        let Some((ax, ay, bx, by)) = self.dirty.take() else {
            return;
        };
        let cx0 = clip.x0.max(0) as usize;
        let cy0 = clip.y0.max(0) as usize;
        let cx1 = (clip.x1 + 1).max(0) as usize;
        let cy1 = (clip.y1 + 1).max(0) as usize;
        for y in ay..by {
            for x in ax..bx {
                let i = y * self.w + x;
                let m = std::mem::take(&mut self.mask[i]);
                if m > 0.0 && x >= cx0 && x < cx1 && y >= cy0 && y < cy1 {
                    self.blend(i, colour, m * alpha);
                }
            }
        }
    }

    fn blend(&mut self, i: usize, colour: [u8; 3], a: f32) {
        let a = a.clamp(0.0, 1.0);
        for (k, &c) in colour.iter().enumerate() {
            let old = f32::from(self.rgb[i * 3 + k]);
            self.rgb[i * 3 + k] = (old + (f32::from(c) - old) * a).round() as u8;
        }
    }

    /// Pixel index range of `[a, b)` within `0..n`.
    fn clamp_range(a: i64, b: i64, n: usize) -> std::ops::Range<usize> {
        let a = a.clamp(0, n as i64) as usize;
        let b = b.clamp(0, n as i64) as usize;
        a..b.max(a)
    }

    /// Opaque rectangle `[x0, x1) × [y0, y1)`.
    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: [u8; 3]) {
        for y in Self::clamp_range(y0, y1, self.h) {
            for x in Self::clamp_range(x0, x1, self.w) {
                let i = (y * self.w + x) * 3;
                self.rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }

    /// Translucent rectangle `[x0, x1) × [y0, y1)`.
    fn blend_rect(&mut self, r: Rect, colour: [u8; 3], alpha: f32) {
        for y in Self::clamp_range(r.y0, r.y1, self.h) {
            for x in Self::clamp_range(r.x0, r.x1, self.w) {
                self.blend(y * self.w + x, colour, alpha);
            }
        }
    }

    /// One-pixel outline on the edges of `r` (inclusive).
    fn stroke_rect(&mut self, r: Rect, colour: [u8; 3]) {
        self.fill_rect(r.x0, r.y0, r.x1 + 1, r.y0 + 1, colour);
        self.fill_rect(r.x0, r.y1, r.x1 + 1, r.y1 + 1, colour);
        self.fill_rect(r.x0, r.y0, r.x0 + 1, r.y1 + 1, colour);
        self.fill_rect(r.x1, r.y0, r.x1 + 1, r.y1 + 1, colour);
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel `s`×`s`.
    fn text(&mut self, x: i64, y: i64, text: &str, s: i64, colour: [u8; 3]) {
        for (i, ch) in text.chars().enumerate() {
            let gx = x + i as i64 * 6 * s;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits >> (4 - col) & 1 == 1 {
                        let (px, py) = (gx + col * s, y + row as i64 * s);
                        self.fill_rect(px, py, px + s, py + s, colour);
                    }
                }
            }
        }
    }

    fn encode_png(&self) -> Result<Vec<u8>> {
        let err = |e: png::EncodingError| TrainError::Data(format!("encoding the plot: {e}"));
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, self.w as u32, self.h as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(err)?;
        writer.write_image_data(&self.rgb).map_err(err)?;
        writer.finish().map_err(err)?;
        Ok(bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// 5×7 bitmap font (capitals only: lowercase is drawn as capitals, which keeps the table small).

/// Width in pixels of `text` drawn at scale `s` (6 font pixels per character, less the last
/// character's spacing column).
fn text_width(text: &str, s: i64) -> i64 {
    let n = text.chars().count() as i64;
    if n == 0 {
        0
    } else {
        (6 * n - 1) * s
    }
}

/// Rows of a character, top first; bit 4 is the leftmost column. Unknown characters show as '?'.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ' ' => [0; 7],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        let (t, step) = nice_ticks(0.0, 300.0, true);
        assert_eq!(step, 100.0);
        assert_eq!(t, vec![0.0, 100.0, 200.0, 300.0]);
        let (t, _) = nice_ticks(0.0, 5.0, true);
        assert_eq!(t.len(), 6);
        let (t, step) = nice_ticks(0.0, 1.05e-4, false);
        assert!((4..=6).contains(&t.len()), "{t:?}");
        assert_eq!(format_tick(t[1], step, 1e-4), "2.5e-5");
    }

    #[test]
    fn tick_labels_are_compact() {
        assert_eq!(format_tick(0.25, 0.25, 1.0), "0.25");
        assert_eq!(format_tick(0.30000000000000004, 0.1, 1.0), "0.3");
        assert_eq!(format_tick(1500.0, 500.0, 2000.0), "1.5k");
        assert_eq!(format_tick(2000.0, 1000.0, 2000.0), "2k");
        assert_eq!(format_tick(300.0, 100.0, 300.0), "300");
        assert_eq!(format_tick(1.5e-4, 5e-5, 2e-4), "1.5e-4");
        assert_eq!(format_tick(-1e-17, 0.1, 1.0), "0");
    }

    #[test]
    fn moving_average_skips_non_finite() {
        let m = moving_average(&[1.0, f64::NAN, 3.0, 5.0], 3);
        assert_eq!(m, [1.0, 2.0, 4.0, 5.0]);
        assert!(moving_average(&[f64::NAN], 3)[0].is_nan());
    }
}
