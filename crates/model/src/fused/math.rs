//! Vectorisable `exp` and `erf`, lane-wise reductions, and a switch to the CPU's widest vectors.
//!
//! libm's `expf`/`erff` are scalar calls, and a plain `f32` sum or max does not vectorise
//! (reassociating it would change the result). The functions here are branch-free so the
//! compiler turns their loops into vector code, the reductions keep [`LANES`] partial results in
//! a fixed order (the same bits whatever the vector width), and [`widest!`] compiles a kernel for
//! AVX-512 and AVX2 beside the baseline and picks one at run time. No fused multiply-add is used,
//! so all three give identical results.

/// Partial sums kept by the lane-wise reductions: one AVX-512 register of f32.
pub const LANES: usize = 16;

/// `e^x` for `x ≤ 88` (every caller passes `x ≤ 0`), within 2 ulp; 0 below −87.3 (where
/// `e^x` leaves the normal range), NaN for NaN. Cephes' range reduction and polynomial.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LOW: f32 = -87.336_55;
    let xc = x.clamp(LOW, 88.0);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    // 2^n from the integer in `shifted`'s mantissa (|n| ≤ 127 after the clamp).
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if x < LOW {
        0.0
    } else {
        y * scale
    }
}

/// `(erf(z), e^(−z²))`: Abramowitz & Stegun 7.1.26 (absolute error 1.5·10⁻⁷, 5·10⁻⁷ once
/// evaluated in f32; the same approximation PyTorch's vectorised CPU GELU uses), with the
/// Gaussian factor it computes on the way, which GELU's derivative needs too. In GELU,
/// `x/2 · (1 + erf)`, that is a relative error below 3·10⁻⁷ of the result.
#[inline(always)]
pub fn erf_and_gauss(z: f32) -> (f32, f32) {
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4f32;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_7;
    p = p * t - 0.284_496_72;
    p = p * t + 0.254_829_6;
    let gauss = exp(-(z * z));
    let erf = 1.0 - p * t * gauss;
    (erf.copysign(z), gauss)
}

/// Largest element of `x` (−∞ for an empty slice; NaN elements are skipped, as `f32::max` does).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    acc.iter().copied().fold(tail, f32::max)
}

/// `Σ f(x_i)` with [`LANES`] partial sums, added in a fixed order.
#[inline(always)]
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f32>() + tail
}

/// Largest element of `x` and the first position holding it (`(−∞, 0)` for an empty slice or
/// one of NaNs only), as `argmax` defines it.
#[inline(always)]
pub fn max_and_first_index(x: &[f32]) -> (f32, usize) {
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut at = [u32::MAX; LANES];
    let mut chunks = x.chunks_exact(LANES);
    let mut base = 0u32;
    for c in &mut chunks {
        for (lane, &v) in c.iter().enumerate() {
            // Strictly greater: each lane keeps the first position of its maximum.
            let better = v > best[lane];
            best[lane] = if better { v } else { best[lane] };
            at[lane] = if better { base + lane as u32 } else { at[lane] };
        }
        base += LANES as u32;
    }
    let (mut max, mut first) = (f32::NEG_INFINITY, u32::MAX);
    for (&v, &i) in best.iter().zip(&at) {
        if v > max || (v == max && i < first) {
            max = v;
            first = i;
        }
    }
    for (k, &v) in chunks.remainder().iter().enumerate() {
        if v > max {
            max = v;
            first = base + k as u32;
        }
    }
    (max, if first == u32::MAX { 0 } else { first as usize })
}

/// `Σ f(x_i)` accumulated in f64 with [`LANES`]/2 partial sums, added in a fixed order.
#[inline(always)]
pub fn sum_map_f64(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    const L: usize = LANES / 2;
    let mut acc = [0.0f64; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v as f64);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v as f64)).sum();
    acc.iter().sum::<f64>() + tail
}

/// `Σ a_i · b_i` with [`LANES`] partial sums, added in a fixed order.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// Defines `fn $name(..)` that runs `$body` compiled for AVX-512 or AVX2 when the CPU has it,
/// else for the baseline target. The body should call only `#[inline(always)]` helpers, so they
/// are compiled into each version.
macro_rules! widest {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F, checked just above.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use widest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_library() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 10.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.001_3;
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-10_000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn erf_is_within_its_stated_bound() {
        let mut worst = 0.0f64;
        let mut z = -6.0f32;
        while z <= 6.0 {
            let (e, g) = erf_and_gauss(z);
            worst = worst.max((e as f64 - libm::erf(z as f64)).abs());
            // Against e^(−z²) of the f32 square the function itself rounds to.
            let want_g = (-(z * z) as f64).exp();
            assert!(
                (g as f64 - want_g).abs() <= 3e-7 * want_g + 1e-37,
                "gauss at {z}"
            );
            z += 0.000_7;
        }
        assert!(worst < 5e-7, "absolute error {worst:e}");
        assert_eq!(erf_and_gauss(0.0).0, 0.0);
    }

    #[test]
    fn reductions_match_sequential_sums() {
        let x: Vec<f32> = (0..1003)
            .map(|i| ((i * 37) % 101) as f32 * 0.25 - 9.0)
            .collect();
        assert_eq!(max(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        let s: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum_map(&x, |v| v) as f64 - s).abs() < 1e-3);
        let d: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        assert!((dot(&x, &x) as f64 - d).abs() / d < 1e-6);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        let mut y = x.clone();
        y[700] = 1e9;
        y[900] = 1e9;
        assert_eq!(max_and_first_index(&y), (1e9, 700));
        // A maximum in the tail after the full lanes.
        y[1002] = 2e9;
        assert_eq!(max_and_first_index(&y), (2e9, 1002));
        assert_eq!(max_and_first_index(&[2.0, 5.0, 5.0]), (5.0, 1));
        assert_eq!(max_and_first_index(&[]), (f32::NEG_INFINITY, 0));
        let m = sum_map_f64(&x, |v| v);
        assert!((m - s).abs() < 1e-9);
    }
}
