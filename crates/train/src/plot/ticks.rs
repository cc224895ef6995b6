//! Axis ranges and ticks: the padded value range of a panel, "nice" tick positions and compact
//! tick labels.

use super::series::Panel;

/// The value range of a panel: all finite values, padded so lines do not sit on the frame and
/// so a constant series still gets a non-empty axis.
pub(super) fn value_range(panel: &Panel) -> (f64, f64) {
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
pub(super) fn nice_ticks(lo: f64, hi: f64, integer: bool) -> (Vec<f64>, f64) {
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
pub(super) fn format_tick(v: f64, step: f64, axis_max: f64) -> String {
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
}
