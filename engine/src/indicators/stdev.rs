//! Rolling population standard deviation (ddof = 0): `sqrt(sum((x - mean)^2) / period)`.
//!
//! - Warm-up: the first value is at index `first_present + period - 1`; with `period == 1` every
//!   value is 0.
//! - A window holding any missing value is NaN; the value recovers once it has left.
//! - Numerically stable: the window's moments are merged from partial Welford sums and never
//!   updated by subtracting the leaving bar, so each value is as accurate as a fresh pass over
//!   its window, is never negative, and is exactly 0 for a constant window.

use super::window::WindowMoments;

/// Population (ddof = 0) standard deviation of `src` over `period` bars.
pub fn stdev(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "stdev: period must be at least 1");
    let mut out = vec![f64::NAN; src.len()];
    if period == 0 || period > src.len() {
        // No window fits (and the window's tables are sized by the period).
        return out;
    }
    let p = period as f64;
    let mut moments = WindowMoments::new(period);
    for (t, value) in out.iter_mut().enumerate() {
        if let Some(m2) = moments.step(src, t) {
            *value = (m2 / p).sqrt();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, random_walk, CLOSE, NAN};

    #[test]
    fn hand_computed() {
        // period 2: [1,3] mean 2, var (1+1)/2 = 1 -> 1; [3,7] mean 5, var (4+4)/2 = 4 -> 2.
        // period 3 on [2,4,4]: mean 10/3, var (16/9 + 4/9 + 4/9)/3 = 8/9.
        assert_series(&stdev(&[1.0, 3.0, 7.0], 2), &[NAN, 1.0, 2.0], 1e-15);
        let s = stdev(&[2.0, 4.0, 4.0], 3);
        assert_series(&s, &[NAN, NAN, (8.0f64 / 9.0).sqrt()], 1e-15);
        // The textbook example: 2,4,4,4,5,5,7,9 has mean 5 and population stdev 2.
        let s = stdev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], 8);
        assert_series(&s[7..], &[2.0], 1e-15);
    }

    #[test]
    fn matches_pandas_rolling_std_ddof0() {
        // pd.Series(CLOSE).rolling(6).std(ddof=0)
        let expected = [
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            0.3633983122323672,
            0.4913388737815166,
            0.6091706566216819,
            0.7275243409444608,
            0.5929493139290194,
            0.4500246906806641,
            0.351931180141173,
            0.2311865528576964,
            0.2095033810387493,
            0.23219364523795372,
            0.23113848662652475,
            0.22430757653028202,
            0.2632753100632225,
            0.14499042113952326,
            0.24810392087903863,
            0.24074537032584906,
            0.24404006956963284,
            0.2899808422790819,
            0.2979932885150225,
            0.3084729413669123,
            0.3772009485082922,
            0.7870567535656735,
            0.8732888029359711,
            0.9178855532629874,
            0.652518624680988,
        ];
        assert_series(&stdev(&CLOSE, 6), &expected, 1e-12);
    }

    #[test]
    fn warm_up_period_one_and_period_longer_than_input() {
        assert_eq!(leading_nans(&stdev(&CLOSE, 6)), 5);
        assert!(stdev(&CLOSE, 1).iter().all(|&x| x == 0.0));
        assert!(stdev(&CLOSE, 31).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn constant_window_is_exactly_zero() {
        // 0.1 is not exact in binary; the naive sum-of-squares formula gives a tiny nonzero (or
        // negative) variance here.
        let s = stdev(&[5.0, 0.1, 0.1, 0.1, 0.1], 3);
        assert_series(&s, &[NAN, NAN, s[2], 0.0, 0.0], 0.0);
        assert!(s[2] > 0.0);
    }

    #[test]
    fn leading_and_interior_nans() {
        // period 2: [1]: leading NaN; [2]: |3-1|/2 = 1; [3], [4]: contain the NaN;
        // [5]: [4,8] -> 2.
        let src = [NAN, 1.0, 3.0, NAN, 4.0, 8.0];
        assert_series(&stdev(&src, 2), &[NAN, NAN, 1.0, NAN, NAN, 2.0], 0.0);
    }

    #[test]
    fn calm_after_volatile_matches_a_fresh_computation() {
        // A volatile stretch (swings of thousands) followed by a calm one (swings of 1e-3) on a
        // price of 1000: a subtracting running update would carry the volatile stretch's
        // rounding into the calm one. Each value must match a fresh two-pass computation.
        let mut src = random_walk(200_000, 11);
        for (i, x) in src.iter_mut().enumerate() {
            *x = if i < 100_000 {
                1000.0 + (*x - 1000.0) * 1e3
            } else {
                1000.0 + (*x - 1000.0) * 1e-3
            };
        }
        let period = 30;
        let got = stdev(&src, period);
        for t in [
            period - 1,
            50_000,
            100_000 + period - 1,
            100_000 + period,
            150_000,
            199_999,
        ] {
            let w = &src[t + 1 - period..=t];
            let mean = w.iter().sum::<f64>() / period as f64;
            let var = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / period as f64;
            let exact = var.sqrt();
            let rel = ((got[t] - exact) / exact).abs();
            assert!(rel < 1e-12, "t={t}: {} vs {exact} (rel {rel:e})", got[t]);
        }
    }
}
