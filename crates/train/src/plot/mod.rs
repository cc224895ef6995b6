//! `bert plot`: the training curves of a run as a PNG.
//!
//! Drawn by a small built-in rasteriser (antialiased lines, markers, a 5×7 bitmap font) rather
//! than a plotting stack, so that plotting needs no font files, system libraries or C code and
//! renders the same pixels everywhere.
//!
//! One module per job: `series` (what to draw: panels, series, smoothing), `ticks` (value
//! ranges, tick positions and labels), `layout` (placing and drawing a panel and its legend),
//! `raster` (the canvas, antialiased shapes, PNG encoding) and `font` (the bitmap font). This
//! module holds the options, the palette and the entry points.
//!
//! Why not a plotting crate: see "Plotting" in `docs/architecture.md`.

mod font;
mod layout;
mod raster;
mod series;
mod ticks;

use std::path::Path;

use bert_fsutil::write_atomic;

use crate::error::{Result, TrainError};
use crate::metrics::{read_metrics, EvalRecord, StepRecord};
use layout::draw_panel;
use raster::{Canvas, Rect};
use series::build_panels;

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
        return Err(TrainError::Plot(format!(
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
        return Err(TrainError::Plot(format!(
            "plot size {w}x{h} is outside {}x{}..={MAX_SIDE}x{MAX_SIDE}",
            MIN_SIZE.0, MIN_SIZE.1
        )));
    }
    if steps.is_empty() {
        return Err(TrainError::Plot("no training steps to plot".into()));
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
                [r.mlm_loss, r.mlm_accuracy]
                    .into_iter()
                    .chain(
                        [r.nsp_loss, r.nsp_accuracy, r.sop_loss, r.sop_accuracy]
                            .into_iter()
                            .flatten(),
                    )
                    .any(|v| v.is_finite())
            })
            .count(),
    };
    Ok((canvas.encode_png()?, summary))
}
