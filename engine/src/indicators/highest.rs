//! Rolling maximum: the highest value of the window of `period` bars ending at each bar.
//!
//! - Warm-up: the first value is at index `first_present + period - 1`.
//! - A window holding any missing value is NaN; the maximum recovers once it has left.
//! - O(n) whatever the period (a monotonic deque of candidate bars).

use super::window::rolling_extreme;

/// Highest value of `src` over the last `period` bars.
pub fn highest(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "highest: period must be at least 1");
    rolling_extreme(src, period, |candidate, held| candidate >= held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, random_walk, CLOSE, NAN};

    #[test]
    fn hand_computed() {
        // period 3: max(3,1,4) = 4, max(1,4,1) = 4, max(4,1,5) = 5, max(1,5,9) = 9, max(5,9,2) = 9.
        assert_series(
            &highest(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0], 3),
            &[NAN, NAN, 4.0, 4.0, 5.0, 9.0, 9.0],
            0.0,
        );
    }

    #[test]
    fn matches_pandas_rolling_max() {
        // pd.Series(CLOSE).rolling(4).max()
        let expected = [
            NAN, NAN, NAN, 44.34, 44.33, 44.83, 45.1, 45.42, 45.84, 46.08, 46.08, 46.08, 46.08,
            46.28, 46.28, 46.28, 46.28, 46.41, 46.41, 46.41, 46.41, 46.25, 46.25, 46.45, 46.45,
            46.45, 46.45, 45.78, 45.35, 44.57,
        ];
        assert_series(&highest(&CLOSE, 4), &expected, 0.0);
    }

    #[test]
    fn matches_a_brute_force_maximum_on_a_long_walk() {
        let src = random_walk(20_000, 5);
        for period in [1, 2, 17, 250] {
            let got = highest(&src, period);
            assert_eq!(leading_nans(&got), period - 1);
            for t in period - 1..src.len() {
                let w = &src[t + 1 - period..=t];
                assert_eq!(got[t], w.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            }
        }
    }

    #[test]
    fn period_one_and_period_longer_than_input() {
        assert_series(&highest(&CLOSE, 1), &CLOSE, 0.0);
        assert!(highest(&CLOSE, 31).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn leading_and_interior_nans() {
        // period 2: [2]: max(5,2) = 5; [3], [4] contain the NaN; [5]: max(1,3) = 3;
        // [6]: max(3,3) = 3.
        let src = [NAN, 5.0, 2.0, NAN, 1.0, 3.0, 3.0];
        assert_series(&highest(&src, 2), &[NAN, NAN, 5.0, NAN, NAN, 3.0, 3.0], 0.0);
    }
}
