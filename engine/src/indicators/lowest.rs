//! Rolling minimum: the lowest value of the window of `period` bars ending at each bar.
//!
//! - Warm-up: the first value is at index `first_present + period - 1`.
//! - A window holding any missing value is NaN; the minimum recovers once it has left.
//! - O(n) whatever the period (a monotonic deque of candidate bars).

use super::window::rolling_extreme;

/// Lowest value of `src` over the last `period` bars.
pub fn lowest(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "lowest: period must be at least 1");
    rolling_extreme(src, period, |candidate, held| candidate <= held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, random_walk, CLOSE, NAN};

    #[test]
    fn hand_computed() {
        // period 3: min(3,1,4) = 1, min(1,4,1) = 1, min(4,1,5) = 1, min(1,5,9) = 1, min(5,9,2) = 2.
        assert_series(
            &lowest(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0], 3),
            &[NAN, NAN, 1.0, 1.0, 1.0, 1.0, 2.0],
            0.0,
        );
    }

    #[test]
    fn matches_pandas_rolling_min() {
        // pd.Series(CLOSE).rolling(4).min()
        let expected = [
            NAN, NAN, NAN, 43.61, 43.61, 43.61, 43.61, 44.33, 44.83, 45.1, 45.42, 45.84, 45.61,
            45.61, 45.61, 45.61, 46.0, 46.0, 46.0, 45.64, 45.64, 45.64, 45.64, 45.71, 45.71, 45.35,
            44.03, 44.03, 44.03, 44.03,
        ];
        assert_series(&lowest(&CLOSE, 4), &expected, 0.0);
    }

    #[test]
    fn matches_a_brute_force_minimum_on_a_long_walk() {
        let src = random_walk(20_000, 6);
        for period in [1, 2, 17, 250] {
            let got = lowest(&src, period);
            assert_eq!(leading_nans(&got), period - 1);
            for t in period - 1..src.len() {
                let w = &src[t + 1 - period..=t];
                assert_eq!(got[t], w.iter().copied().fold(f64::INFINITY, f64::min));
            }
        }
    }

    #[test]
    fn period_one_and_period_longer_than_input() {
        assert_series(&lowest(&CLOSE, 1), &CLOSE, 0.0);
        assert!(lowest(&CLOSE, 31).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn leading_and_interior_nans() {
        // period 2: [2]: min(5,2) = 2; [3], [4] contain the NaN; [5]: min(1,3) = 1;
        // [6]: min(3,3) = 3.
        let src = [NAN, 5.0, 2.0, NAN, 1.0, 3.0, 3.0];
        assert_series(&lowest(&src, 2), &[NAN, NAN, 2.0, NAN, NAN, 1.0, 3.0], 0.0);
    }
}
