//! Linearly weighted moving average.
//!
//! - Weights `1, 2, ..., period` from the oldest bar of the window to the newest, divided by
//!   their sum `period * (period + 1) / 2`.
//! - Warm-up: the first value is at index `first_present + period - 1`.
//! - A window holding any missing value is NaN; the average recovers once it has left.
//! - O(n): sliding the window lowers every weight by one, which is subtracting the plain sum of
//!   the window from the weighted sum; both sums are compensated (Neumaier).

use super::window::CompensatedSum;

/// Linearly weighted moving average of `src` over `period` bars, newest bar weighted `period`.
pub fn wma(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "wma: period must be at least 1");
    let mut out = vec![f64::NAN; src.len()];
    if period == 0 {
        return out;
    }
    let p = period as f64;
    let weight_sum = p * (p + 1.0) / 2.0;
    // Sums over the present values of the window (missing values count as 0) and their number.
    let mut plain = CompensatedSum::default();
    let mut weighted = CompensatedSum::default();
    let mut valid = 0;
    for (t, value) in out.iter_mut().enumerate() {
        // Age the window: every weight drops by one, and the oldest value's falls to 0.
        weighted.add(-plain.total());
        if t >= period {
            let leaving = src[t - period];
            if leaving.is_finite() {
                plain.add(-leaving);
                valid -= 1;
                if valid == 0 {
                    // Nothing left in the window: drop any residual rounding.
                    plain = CompensatedSum::default();
                    weighted = CompensatedSum::default();
                }
            }
        }
        let x = src[t];
        if x.is_finite() {
            plain.add(x);
            weighted.add(p * x);
            valid += 1;
        }
        if valid == period {
            *value = weighted.total() / weight_sum;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, random_walk, CLOSE, NAN};

    /// The definition, computed afresh for the window ending at `t`.
    fn naive(src: &[f64], period: usize, t: usize) -> f64 {
        let w = &src[t + 1 - period..=t];
        let num: f64 = w.iter().enumerate().map(|(i, x)| (i + 1) as f64 * x).sum();
        num / (period * (period + 1) / 2) as f64
    }

    #[test]
    fn hand_computed() {
        // period 3, weights 1,2,3 (sum 6):
        // [2]: (1*1 + 2*2 + 3*4)/6 = 17/6; [3]: (1*2 + 2*4 + 3*8)/6 = 34/6;
        // [4]: (1*4 + 2*8 + 3*16)/6 = 68/6.
        assert_series(
            &wma(&[1.0, 2.0, 4.0, 8.0, 16.0], 3),
            &[NAN, NAN, 17.0 / 6.0, 34.0 / 6.0, 68.0 / 6.0],
            1e-15,
        );
    }

    #[test]
    fn matches_pandas_rolling_dot() {
        // pd.Series(CLOSE).rolling(5).apply(lambda x: np.dot(x, [1,2,3,4,5]) / 15, raw=True)
        let expected = [
            NAN,
            NAN,
            NAN,
            NAN,
            44.07066666666666,
            44.312666666666665,
            44.612,
            44.95066666666666,
            45.34466666666667,
            45.669999999999995,
            45.815333333333335,
            45.936666666666675,
            45.856,
            45.986000000000004,
            46.086666666666666,
            46.080666666666666,
            46.07733333333333,
            46.20066666666666,
            46.20733333333333,
            46.02466666666666,
            46.074666666666666,
            46.124,
            45.97866666666667,
            46.126666666666665,
            46.03600000000001,
            45.792666666666676,
            45.166666666666664,
            44.73866666666667,
            44.42600000000001,
            44.37866666666666,
        ];
        assert_series(&wma(&CLOSE, 5), &expected, 1e-13);
    }

    #[test]
    fn warm_up_period_one_and_period_longer_than_input() {
        assert_eq!(leading_nans(&wma(&CLOSE, 7)), 6);
        assert_series(&wma(&CLOSE, 1), &CLOSE, 0.0);
        assert!(wma(&CLOSE, 31).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn leading_and_interior_nans() {
        // period 2, weights 1,2 (sum 3): [2]: contains a leading NaN; [3]: (1*3 + 2*6)/3 = 5;
        // [4], [5]: contain the NaN; [6]: (1*9 + 2*3)/3 = 5; [7]: (1*3 + 2*0)/3 = 1.
        let src = [NAN, NAN, 3.0, 6.0, NAN, 9.0, 3.0, 0.0];
        assert_series(
            &wma(&src, 2),
            &[NAN, NAN, NAN, 5.0, NAN, NAN, 5.0, 1.0],
            1e-15,
        );
    }

    #[test]
    fn does_not_drift_over_a_million_steps() {
        let src = random_walk(1_000_000, 3);
        let period = 20;
        let got = wma(&src, period);
        for t in [period - 1, 4_321, 250_000, 999_999] {
            let exact = naive(&src, period, t);
            let rel = ((got[t] - exact) / exact).abs();
            assert!(rel < 1e-12, "t={t}: {} vs {exact} (rel {rel:e})", got[t]);
        }
    }
}
