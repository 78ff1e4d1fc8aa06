//! Rate of change as a fraction: `roc[t] = x[t] / x[t-period] - 1` (0.05 means up 5%).
//!
//! - Warm-up: the first value is at index `first_present + period`.
//! - NaN when either end is missing, and when `x[t-period]` is 0 (no rate from zero).

/// Fractional change of `src` over `period` bars: `x[t] / x[t-period] - 1`.
pub fn roc(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "roc: period must be at least 1");
    let mut out = vec![f64::NAN; src.len()];
    if period == 0 || period >= src.len() {
        return out;
    }
    for ((value, &x), &base) in out[period..].iter_mut().zip(&src[period..]).zip(src) {
        if x.is_finite() && base.is_finite() && base != 0.0 {
            *value = x / base - 1.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, CLOSE, NAN};

    #[test]
    fn hand_computed() {
        // period 2: 110/100 - 1 = 0.1; 99/100 - 1 = -0.01; 121/110 - 1 = 0.1.
        assert_series(
            &roc(&[100.0, 100.0, 110.0, 99.0, 121.0], 2),
            &[NAN, NAN, 0.1, -0.01, 0.1],
            1e-15,
        );
    }

    #[test]
    fn matches_pandas_pct_change() {
        // pd.Series(CLOSE).pct_change(3)
        let expected = [
            NAN,
            NAN,
            NAN,
            -0.01646368967072631,
            0.005443411204354653,
            0.01540203850509636,
            0.03416647557899566,
            0.024588314910895637,
            0.02252955610082541,
            0.021729490022172948,
            0.010347864376926363,
            0.00414485165794054,
            -0.01019965277777779,
            0.008498583569405138,
            0.00543124049532917,
            0.00855075641306735,
            -0.005401901469317183,
            0.002808988764044784,
            0.0047826086956521685,
            -0.008472735172713408,
            -0.00430941607412183,
            0.0006490696668108864,
            0.0015337423312884457,
            0.005193681021423924,
            -0.010162162162162147,
            -0.007875738350470396,
            -0.052099031216361724,
            -0.03494975972040193,
            -0.02491730981256901,
            0.012264365205541639,
        ];
        assert_series(&roc(&CLOSE, 3), &expected, 1e-15);
    }

    #[test]
    fn warm_up_period_one_and_period_longer_than_input() {
        assert_eq!(leading_nans(&roc(&CLOSE, 3)), 3);
        // period 1: 4/2 - 1 = 1, 3/4 - 1 = -0.25.
        assert_series(&roc(&[2.0, 4.0, 3.0], 1), &[NAN, 1.0, -0.25], 0.0);
        assert!(roc(&CLOSE, 30).iter().all(|x| x.is_nan()));
        assert!(roc(&CLOSE, 31).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn leading_and_interior_nans_and_zero_base() {
        // period 1: [2]: 4/2 - 1 = 1; [3], [4]: NaN at one end; [5]: base 0 -> NaN;
        // [6]: 6/3 - 1 = 1.
        let src = [NAN, 2.0, 4.0, NAN, 0.0, 3.0, 6.0];
        assert_series(&roc(&src, 1), &[NAN, NAN, 1.0, NAN, NAN, NAN, 1.0], 0.0);
    }
}
