//! The rasteriser: an RGB canvas with antialiased segments, discs, squares and dashed lines
//! drawn through a coverage mask, filled and outlined rectangles, bitmap text, and PNG
//! encoding.

use super::font::glyph;
use super::series::Marker;
use crate::error::{Result, TrainError};

/// A rectangle in pixel coordinates, by its corners.
#[derive(Clone, Copy)]
pub(super) struct Rect {
    pub(super) x0: i64,
    pub(super) y0: i64,
    pub(super) x1: i64,
    pub(super) y1: i64,
}

/// An RGB image plus a coverage mask: shapes are first accumulated in the mask (maximum
/// coverage), then composited once, so that where segments of one polyline overlap at their
/// joints a translucent line is not blended twice into darker dots.
pub(super) struct Canvas {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
    mask: Vec<f32>,
    /// Bounding box of the mask's non-zero pixels (x0, y0, x1, y1; exclusive ends).
    dirty: Option<(usize, usize, usize, usize)>,
}

impl Canvas {
    /// A white canvas of `w`×`h` pixels.
    pub(super) fn new(w: usize, h: usize) -> Self {
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
    pub(super) fn mask_segment(&mut self, p: (f64, f64), q: (f64, f64), hw: f64) {
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

    pub(super) fn mask_disc(&mut self, cx: f64, cy: f64, r: f64) {
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
    pub(super) fn mask_marker(&mut self, marker: Marker, x: f64, y: f64, r: f64) {
        match marker {
            Marker::Circle => self.mask_disc(x, y, r),
            Marker::Square => self.mask_square(x, y, r * 0.85),
        }
    }

    /// A polyline of half-thickness `hw`, `dash` pixels on and `gap` off; the pattern runs on
    /// across vertices so short segments still show gaps.
    pub(super) fn mask_dashed(&mut self, run: &[(f64, f64)], hw: f64, dash: f64, gap: f64) {
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
    pub(super) fn composite(&mut self, colour: [u8; 3], alpha: f32, clip: Rect) {
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
    pub(super) fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: [u8; 3]) {
        for y in Self::clamp_range(y0, y1, self.h) {
            for x in Self::clamp_range(x0, x1, self.w) {
                let i = (y * self.w + x) * 3;
                self.rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }

    /// Translucent rectangle `[x0, x1) × [y0, y1)`.
    pub(super) fn blend_rect(&mut self, r: Rect, colour: [u8; 3], alpha: f32) {
        for y in Self::clamp_range(r.y0, r.y1, self.h) {
            for x in Self::clamp_range(r.x0, r.x1, self.w) {
                self.blend(y * self.w + x, colour, alpha);
            }
        }
    }

    /// One-pixel outline on the edges of `r` (inclusive).
    pub(super) fn stroke_rect(&mut self, r: Rect, colour: [u8; 3]) {
        self.fill_rect(r.x0, r.y0, r.x1 + 1, r.y0 + 1, colour);
        self.fill_rect(r.x0, r.y1, r.x1 + 1, r.y1 + 1, colour);
        self.fill_rect(r.x0, r.y0, r.x0 + 1, r.y1 + 1, colour);
        self.fill_rect(r.x1, r.y0, r.x1 + 1, r.y1 + 1, colour);
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel `s`×`s`.
    pub(super) fn text(&mut self, x: i64, y: i64, text: &str, s: i64, colour: [u8; 3]) {
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

    pub(super) fn encode_png(&self) -> Result<Vec<u8>> {
        let err = TrainError::Png;
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
