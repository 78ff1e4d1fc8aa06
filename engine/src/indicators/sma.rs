//! Simple moving average: the mean of the window of `period` bars ending at each bar.
//!
//! - Warm-up: the first `period - 1` bars (after any leading missing values) are NaN; the first
//!   value is at index `first_present + period - 1`.
//! - A window holding any missing value is NaN; the average recovers once it has left.
//! - The running sum is compensated (Neumaier), so after millions of steps each value still
//!   agrees with a fresh sum of its window to within an ulp or two: crossover decisions don't
//!   drift.

use super::window::{CompensatedSum, WindowSum};

/// Simple moving average of `src` over `period` bars.
pub fn sma(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "sma: period must be at least 1");
    if period == 0 {
        return vec![f64::NAN; src.len()];
    }
    if let Some(out) = sma_without_gaps(src, period) {
        return out;
    }
    let mut out = vec![f64::NAN; src.len()];
    let p = period as f64;
    let mut sum = WindowSum::new(period);
    for (t, value) in out.iter_mut().enumerate() {
        if let Some(s) = sum.step(src, t) {
            *value = s / p;
        }
    }
    out
}

/// The common case, a column with no missing value after its leading ones, in one pass with
/// one compensated add per bar: the entering minus the leaving value (exact for nearby prices,
/// by Sterbenz's lemma), so each value stays within an ulp or so of a fresh window sum.
/// `None` when the column has a gap: the general path handles it.
fn sma_without_gaps(src: &[f64], period: usize) -> Option<Vec<f64>> {
    let start = src.iter().position(|x| x.is_finite()).unwrap_or(src.len());
    let mut out = Vec::with_capacity(src.len());
    out.resize((start + period - 1).min(src.len()), f64::NAN);
    let src = &src[start..];
    if src.len() < period {
        return Some(out);
    }
    let p = period as f64;
    let mut first = CompensatedSum::default();
    src[..period].iter().for_each(|&x| first.add(x));
    out.push(first.total() / p);
    // The running sum is moved into the closure (not borrowed), so it stays in registers.
    let (mut sum, mut compensation) = first.parts();
    out.extend(
        src[period..]
            .iter()
            .zip(src)
            .map(move |(&entering, &leaving)| {
                let x = entering - leaving;
                let t = sum + x;
                compensation += if sum.abs() >= x.abs() {
                    (sum - t) + x
                } else {
                    (x - t) + sum
                };
                sum = t;
                (sum + compensation) / p
            }),
    );
    // A missing value poisons the running sum for good, so it shows in the last value.
    out.last().is_some_and(|x| x.is_finite()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::rsi;
    use crate::indicators::testutil::{assert_series, leading_nans, random_walk, CLOSE, NAN};
    use crate::indicators::window::CompensatedSum;

    #[test]
    fn hand_computed() {
        // (1+2+4)/3 = 7/3, (2+4+8)/3 = 14/3, (4+8+16)/3 = 28/3
        assert_series(
            &sma(&[1.0, 2.0, 4.0, 8.0, 16.0], 3),
            &[NAN, NAN, 7.0 / 3.0, 14.0 / 3.0, 28.0 / 3.0],
            1e-15,
        );
    }

    #[test]
    fn matches_pandas_rolling_mean() {
        // pd.Series(CLOSE).rolling(5).mean()
        let expected = [
            NAN,
            NAN,
            NAN,
            NAN,
            44.104,
            44.202,
            44.403999999999996,
            44.658,
            45.104,
            45.45399999999999,
            45.666000000000004,
            45.852000000000004,
            45.89,
            45.977999999999994,
            46.01800000000001,
            46.04,
            46.04,
            46.2,
            46.188,
            46.059999999999995,
            46.102000000000004,
            46.146,
            46.00599999999999,
            46.05200000000001,
            46.08,
            45.908,
            45.464,
            45.158,
            44.712,
            44.47,
        ];
        assert_series(&sma(&CLOSE, 5), &expected, 1e-13);
    }

    #[test]
    fn warm_up_is_period_minus_one() {
        for period in [1, 2, 5, 29, 30] {
            assert_eq!(
                leading_nans(&sma(&CLOSE, period)),
                period - 1,
                "period {period}"
            );
        }
    }

    #[test]
    fn period_one_is_the_input() {
        assert_series(&sma(&CLOSE, 1), &CLOSE, 0.0);
    }

    #[test]
    fn period_longer_than_input_is_all_nan() {
        assert!(sma(&CLOSE, 31).iter().all(|x| x.is_nan()));
        assert!(sma(&[], 3).is_empty());
    }

    #[test]
    fn skips_leading_nans_of_a_composed_indicator() {
        // rsi(CLOSE, 14) is first valid at 14, so its 5-bar average is first valid at 14 + 4.
        // Expected: pd.Series(rsi14).rolling(5).mean(), rsi14 from pandas (see rsi.rs).
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
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            67.76725224623993,
            65.25742937603763,
            64.5836493273191,
            63.92921870403412,
            61.2621650293619,
            60.471208359756226,
            59.82239850127015,
            57.32361787830051,
            52.685744892905674,
            49.78195501584073,
            45.69445508935277,
            43.86016026155782,
        ];
        let smoothed = sma(&rsi(&CLOSE, 14), 5);
        assert_eq!(leading_nans(&smoothed), 18);
        assert_series(&smoothed, &expected, 1e-12);
    }

    #[test]
    fn interior_nan_spoils_only_the_windows_containing_it() {
        // Windows of 2: [1,2] -> 1.5; [2,NaN], [NaN,4] -> NaN; [4,5] -> 4.5; [5,6] -> 5.5;
        // [6,inf] and [inf,8] -> NaN (infinity counts as missing); [8,9] -> 8.5.
        let src = [1.0, 2.0, NAN, 4.0, 5.0, 6.0, f64::INFINITY, 8.0, 9.0];
        assert_series(
            &sma(&src, 2),
            &[NAN, 1.5, NAN, NAN, 4.5, 5.5, NAN, NAN, 8.5],
            0.0,
        );
    }

    #[test]
    fn does_not_drift_over_a_million_steps() {
        let src = random_walk(1_000_000, 42);
        let period = 50;
        let got = sma(&src, period);
        for t in [period - 1, 1_000, 123_457, 500_000, 777_777, 999_999] {
            let mut exact = CompensatedSum::default();
            for &x in &src[t + 1 - period..=t] {
                exact.add(x);
            }
            let exact = exact.total() / period as f64;
            let rel = ((got[t] - exact) / exact).abs();
            // Required: 1e-12. In practice the two agree to about an ulp.
            assert!(rel < 1e-12, "t={t}: {} vs {exact} (rel {rel:e})", got[t]);
            assert!(rel < 1e-15, "t={t}: {} vs {exact} (rel {rel:e})", got[t]);
        }
    }
}
