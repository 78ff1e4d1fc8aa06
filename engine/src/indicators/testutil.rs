//! Helpers for the indicator tests: comparing series and generating deterministic price paths.

/// NaN, for writing expected series.
pub(crate) const NAN: f64 = f64::NAN;

/// Asserts that `actual` and `expected` have the same length, NaN at the same places and
/// otherwise agree to `tol` relative to `max(|expected|, 1)`.
#[track_caller]
pub(crate) fn assert_series(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "length: {actual:?} vs {expected:?}"
    );
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if e.is_nan() {
            assert!(a.is_nan(), "index {i}: expected NaN, got {a}\n{actual:?}");
        } else {
            assert!(
                (a - e).abs() <= tol * e.abs().max(1.0),
                "index {i}: expected {e}, got {a} (diff {})\n{actual:?}",
                a - e
            );
        }
    }
}

/// Number of leading NaNs.
pub(crate) fn leading_nans(series: &[f64]) -> usize {
    series.iter().take_while(|x| x.is_nan()).count()
}

/// A mean-reverting random walk around 1000 with unit-sized steps, reproducible from `seed`.
pub(crate) fn random_walk(n: usize, seed: u64) -> Vec<f64> {
    // splitmix64: tiny, deterministic and good enough for test data.
    let mut state = seed;
    let mut next_unit = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Uniform in [-1, 1).
        (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    };
    let mut x = 1000.0;
    (0..n)
        .map(|_| {
            x += next_unit() + 0.001 * (1000.0 - x);
            x
        })
        .collect()
}

/// Closes of Wilder's classic RSI example (the StockCharts worked example), used for the
/// cross-checks against pandas (the reference values come from pandas 3.0 / numpy 2.4).
pub(crate) const CLOSE: [f64; 30] = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61,
    46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45, 45.78, 45.35,
    44.03, 44.18, 44.22, 44.57,
];

/// Highs for [`CLOSE`]: close plus a fixed offset per bar, rounded to cents.
pub(crate) const HIGH: [f64; 30] = [
    44.7, 44.3, 44.6, 44.13, 44.51, 45.23, 45.37, 45.75, 46.45, 46.2, 46.18, 46.53, 45.85, 46.66,
    46.43, 46.44, 46.34, 46.67, 46.79, 45.84, 46.56, 46.73, 45.93, 46.75, 46.19, 45.52, 44.66,
    44.46, 44.58, 44.82,
];

/// Lows for [`CLOSE`]: close minus a fixed offset per bar, rounded to cents.
pub(crate) const LOW: [f64; 30] = [
    44.06, 43.66, 43.96, 43.26, 43.82, 44.61, 44.8, 45.26, 45.57, 45.63, 45.51, 45.83, 45.06,
    46.04, 45.95, 45.82, 45.63, 46.12, 46.01, 45.17, 45.95, 46.11, 45.32, 46.13, 45.55, 44.77,
    43.66, 43.93, 43.91, 44.15,
];
