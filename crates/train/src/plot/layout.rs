//! Laying a panel out and drawing it: title, plot area, grid, tick labels, axis label, the
//! series in layer order, and a legend in the corner that hides the least data.

use super::font::text_width;
use super::raster::{Canvas, Rect};
use super::series::{Panel, Series, Style};
use super::ticks::{format_tick, nice_ticks, value_range};
use super::{FRAME_COLOUR, GRID_COLOUR, LEGEND_BORDER, TEXT_COLOUR, WHITE};

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

/// Draws `panel` into `rect` with the shared step range `x_range`, at text scale `s`.
pub(super) fn draw_panel(
    canvas: &mut Canvas,
    panel: &Panel,
    rect: Rect,
    x_range: (f64, f64),
    s: i64,
) {
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
