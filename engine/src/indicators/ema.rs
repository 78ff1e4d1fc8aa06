//! Exponential moving average, TA-Lib convention.
//!
//! - `alpha = 2 / (period + 1)`.
//! - Seed: the simple average of the first `period` present values, so the first value is at
//!   index `first_present + period - 1` (where it equals [`super::sma`] exactly).
//! - Then `ema[t] = alpha * x[t] + (1 - alpha) * ema[t-1]` (pandas `ewm(adjust=False)` after
//!   that seed).
//! - A missing value makes the output NaN there and restarts the warm-up: the next value is
//!   seeded again from the next `period` present values.

use super::window::CompensatedSum;

/// Exponential moving average of `src` with smoothing `2 / (period + 1)`, seeded with an SMA.
pub fn ema(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "ema: period must be at least 1");
    let mut out = vec![f64::NAN; src.len()];
    if period == 0 {
        return out;
    }
    let p = period as f64;
    let alpha = 2.0 / (p + 1.0);
    let keep = 1.0 - alpha;
    // Present values seen since the last (re)start, capped at `period` once seeded.
    let mut seen = 0;
    let mut seed = CompensatedSum::default();
    let mut prev = f64::NAN;
    for (&x, value) in src.iter().zip(out.iter_mut()) {
        if !x.is_finite() {
            seen = 0;
            seed = CompensatedSum::default();
            continue;
        }
        if seen < period {
            seed.add(x);
            seen += 1;
            if seen < period {
                continue;
            }
            prev = seed.total() / p;
        } else {
            prev = alpha * x + keep * prev;
        }
        *value = prev;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::sma;
    use crate::indicators::testutil::{assert_series, leading_nans, CLOSE, NAN};

    #[test]
    fn hand_computed() {
        // period 3: alpha = 2/4 = 0.5. Seed at index 2: (2+4+6)/3 = 4.
        // [3]: 0.5*10 + 0.5*4 = 7; [4]: 0.5*4 + 0.5*7 = 5.5; [5]: 0.5*1 + 0.5*5.5 = 3.25.
        assert_series(
            &ema(&[2.0, 4.0, 6.0, 10.0, 4.0, 1.0], 3),
            &[NAN, NAN, 4.0, 7.0, 5.5, 3.25],
            0.0,
        );
    }

    #[test]
    fn matches_pandas_ewm_after_sma_seed() {
        // s = pd.Series(CLOSE); s[:9] = NaN; s[9] = mean(CLOSE[:10]);
        // s.ewm(alpha=2/11, adjust=False).mean()
        let expected = [
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            44.779,
            44.981,
            45.17172727272727,
            45.251413223140496,
            45.43842900075131,
            45.591441909705615,
            45.66572519885005,
            45.731956980877314,
            45.85523752980871,
            45.9215579789344,
            45.87036561912815,
            45.93211732474121,
            45.98991417478827,
            45.939020688463124,
            46.03192601783346,
            45.98612128731829,
            45.87046287144224,
            45.53583325845274,
            45.28931812055224,
            45.094896644088195,
            44.99946089061761,
        ];
        assert_series(&ema(&CLOSE, 10), &expected, 1e-13);
    }

    #[test]
    fn seed_equals_the_sma() {
        for period in [1, 3, 10, 30] {
            let e = ema(&CLOSE, period);
            assert_eq!(leading_nans(&e), period - 1);
            assert_eq!(e[period - 1], sma(&CLOSE, period)[period - 1]);
        }
    }

    #[test]
    fn period_one_is_the_input() {
        // alpha = 1: every value is the input itself.
        assert_series(&ema(&CLOSE, 1), &CLOSE, 0.0);
    }

    #[test]
    fn period_longer_than_input_is_all_nan() {
        assert!(ema(&CLOSE, 31).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn skips_leading_nans() {
        // Two leading NaNs, then the hand-computed sequence above, shifted by two.
        let src = [NAN, NAN, 2.0, 4.0, 6.0, 10.0, 4.0, 1.0];
        assert_series(
            &ema(&src, 3),
            &[NAN, NAN, NAN, NAN, 4.0, 7.0, 5.5, 3.25],
            0.0,
        );
    }

    #[test]
    fn restarts_after_an_interior_nan() {
        // period 2: alpha = 2/3.
        // [1]: seed (1+2)/2 = 1.5; [2]: 2/3*3 + 1/3*1.5 = 2.5; [3]: NaN;
        // [4]: warming up again; [5]: seed (5+6)/2 = 5.5; [6]: 2/3*7 + 1/3*5.5 = 6.5;
        // [7]: 2/3*8 + 1/3*6.5 = 7.5.
        let src = [1.0, 2.0, 3.0, NAN, 5.0, 6.0, 7.0, 8.0];
        assert_series(
            &ema(&src, 2),
            &[NAN, 1.5, 2.5, NAN, NAN, 5.5, 6.5, 7.5],
            1e-15,
        );
    }
}
