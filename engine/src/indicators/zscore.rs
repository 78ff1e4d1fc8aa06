//! Rolling z-score: how many population standard deviations the bar sits from its window's mean.
//!
//! - `z[t] = (x[t] - sma[t]) / stdev[t]` over the window of `period` bars ending at `t`, with the
//!   population (ddof = 0) deviation of [`super::stdev`] and the mean of [`super::sma`].
//! - NaN when the deviation is 0 (a constant window, and always when `period == 1`).
//! - Warm-up: the first value is at index `first_present + period - 1`.
//! - A window holding any missing value is NaN.

use super::window::for_each_mean_stdev;

/// Z-score of each bar against the mean and population deviation of its `period`-bar window.
pub fn zscore(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "zscore: period must be at least 1");
    let mut out = vec![f64::NAN; src.len()];
    for_each_mean_stdev(src, period, |t, mean, stdev| {
        if stdev > 0.0 {
            out[t] = (src[t] - mean) / stdev;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, CLOSE, NAN};

    #[test]
    fn hand_computed() {
        // period 2: [1,3] mean 2, stdev 1 -> (3-2)/1 = 1; [3,1] -> (1-2)/1 = -1;
        // [1,1] stdev 0 -> NaN. period 4 on 2,4,4,6: mean 4, var (4+0+0+4)/4 = 2 -> 2/sqrt(2).
        assert_series(
            &zscore(&[1.0, 3.0, 1.0, 1.0], 2),
            &[NAN, 1.0, -1.0, NAN],
            0.0,
        );
        assert_series(
            &zscore(&[2.0, 4.0, 4.0, 6.0], 4),
            &[NAN, NAN, NAN, 2f64.sqrt()],
            1e-15,
        );
    }

    #[test]
    fn matches_pandas() {
        // c = pd.Series(CLOSE); (c - c.rolling(6).mean()) / c.rolling(6).std(ddof=0)
        let expected = [
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            1.6648398730403093,
            1.5230493113111498,
            1.3898677775487194,
            1.3539065905634096,
            1.3716742969883724,
            0.8073631088636354,
            0.8619109372794307,
            -0.8723114046810545,
            1.551287613539203,
            1.083865436578832,
            -0.06489615909030669,
            -0.037151368055585235,
            1.1711441276407093,
            0.11495012246798435,
            -1.8406265610341372,
            0.5192207843117083,
            0.505381487355066,
            -1.2529563349004011,
            1.2416387021459543,
            -0.7348024292252543,
            -1.6127566373814697,
            -1.9884207751346246,
            -1.225253314141544,
            -0.851594911683622,
            -0.1813485912240201,
        ];
        assert_series(&zscore(&CLOSE, 6), &expected, 1e-11);
    }

    #[test]
    fn warm_up_period_one_and_period_longer_than_input() {
        assert_eq!(leading_nans(&zscore(&CLOSE, 6)), 5);
        // A single bar has no deviation: always NaN.
        assert!(zscore(&CLOSE, 1).iter().all(|x| x.is_nan()));
        assert!(zscore(&CLOSE, 31).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn leading_and_interior_nans() {
        // period 2: [2]: [1,3] -> 1; [3], [4] contain the NaN; [5]: [8,4] -> -1; [6]: [4,4] -> NaN.
        let src = [NAN, 1.0, 3.0, NAN, 8.0, 4.0, 4.0];
        assert_series(&zscore(&src, 2), &[NAN, NAN, 1.0, NAN, NAN, -1.0, NAN], 0.0);
    }
}
