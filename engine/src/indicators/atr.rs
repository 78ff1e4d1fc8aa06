//! Average true range, Wilder's definition.
//!
//! - True range: `TR[t] = max(high - low, |high - close[t-1]|, |low - close[t-1]|)`, and
//!   `high - low` for the first bar (and the first bar after a missing one: no previous close).
//! - Seed: the simple mean of the first `period` true ranges, so the first value is at index
//!   `first_present + period - 1`.
//! - Then Wilder's smoothing: `atr = (atr * (period - 1) + TR) / period`, evaluated as
//!   `atr * ((period - 1) / period) + TR * (1 / period)`: the same to within a few ulps, and
//!   without a division in the loop-carried chain.
//! - A bar is missing if its high, low or close is; the output is NaN there and the warm-up
//!   restarts from the next bar.

use super::window::CompensatedSum;

/// Wilder's average true range over `period` bars.
///
/// # Panics
/// If `high`, `low` and `close` differ in length.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "atr: period must be at least 1");
    assert!(
        high.len() == close.len() && low.len() == close.len(),
        "atr: high, low and close must be the same length ({}, {}, {})",
        high.len(),
        low.len(),
        close.len()
    );
    let mut out = vec![f64::NAN; close.len()];
    if period == 0 {
        return out;
    }
    let p = period as f64;
    let inv_p = 1.0 / p;
    let keep = (p - 1.0) / p;
    let mut prev_close = f64::NAN;
    // True ranges seen since the last (re)start, capped at `period` once seeded.
    let mut seen = 0;
    let mut seed = CompensatedSum::default();
    let mut avg = f64::NAN;
    let bars = high.iter().zip(low).zip(close);
    for (((&h, &l), &c), value) in bars.zip(out.iter_mut()) {
        if !(h.is_finite() && l.is_finite() && c.is_finite()) {
            prev_close = f64::NAN;
            seen = 0;
            seed = CompensatedSum::default();
            continue;
        }
        let range = h - l;
        let true_range = if prev_close.is_nan() {
            range
        } else {
            range
                .max((h - prev_close).abs())
                .max((l - prev_close).abs())
        };
        prev_close = c;
        if seen < period {
            seed.add(true_range);
            seen += 1;
            if seen < period {
                continue;
            }
            avg = seed.total() / p;
        } else {
            avg = avg * keep + true_range * inv_p;
        }
        *value = avg;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, CLOSE, HIGH, LOW, NAN};

    #[test]
    fn hand_computed() {
        // bars (high, low, close): (10, 8, 9), (12, 9, 11), (11, 10, 10), (15, 13, 14)
        // TR: 10-8 = 2; max(3, |12-9| = 3, |9-9| = 0) = 3; max(1, |11-11| = 0, |10-11| = 1) = 1;
        //     max(2, |15-10| = 5, |13-10| = 3) = 5.
        // period 2: [1] (2+3)/2 = 2.5; [2] (2.5*1 + 1)/2 = 1.75; [3] (1.75 + 5)/2 = 3.375.
        let high = [10.0, 12.0, 11.0, 15.0];
        let low = [8.0, 9.0, 10.0, 13.0];
        let close = [9.0, 11.0, 10.0, 14.0];
        assert_series(&atr(&high, &low, &close, 2), &[NAN, 2.5, 1.75, 3.375], 0.0);
        // period 1: the true range itself.
        assert_series(&atr(&high, &low, &close, 1), &[2.0, 3.0, 1.0, 5.0], 0.0);
    }

    #[test]
    fn matches_pandas_wilder_smoothing() {
        // pc = close.shift(1); tr = max(h - l, |h - pc|, |l - pc|) with tr[0] = h[0] - l[0];
        // seed index 4 with tr[0..5].mean(), NaN before, then .ewm(alpha=1/5, adjust=False).
        let expected = [
            NAN,
            NAN,
            NAN,
            NAN,
            0.7500000000000014,
            0.7800000000000009,
            0.7380000000000009,
            0.7204000000000004,
            0.7823200000000006,
            0.7398560000000006,
            0.7258848000000009,
            0.7207078400000013,
            0.7705662720000008,
            0.8264530176000001,
            0.7571624140799995,
            0.7297299312639991,
            0.7257839450111996,
            0.7086271560089598,
            0.7229017248071681,
            0.7883213798457339,
            0.8146571038765875,
            0.7757256831012695,
            0.8065805464810156,
            0.8532644371848124,
            0.8626115497478511,
            0.8920892397982806,
            1.0516713918386253,
            0.9473371134709005,
            0.8918696907767208,
            0.8474957526213771,
        ];
        let got = atr(&HIGH, &LOW, &CLOSE, 5);
        assert_eq!(leading_nans(&got), 4);
        assert_series(&got, &expected, 1e-12);
    }

    #[test]
    fn leading_and_interior_nans_restart_the_warm_up() {
        // Shifting every column by one missing bar shifts the output by one.
        let shift = |xs: &[f64]| [&[NAN][..], xs].concat();
        let shifted = atr(&shift(&HIGH), &shift(&LOW), &shift(&CLOSE), 5);
        assert!(shifted[0].is_nan());
        assert_series(&shifted[1..], &atr(&HIGH, &LOW, &CLOSE, 5), 0.0);

        // A missing close at 10: NaN there, and from 11 on the ATR is that of bars 11.. alone
        // (bar 11's true range is its high - low), first valid at 11 + 4.
        let mut close = CLOSE;
        close[10] = NAN;
        let got = atr(&HIGH, &LOW, &close, 5);
        assert!(got[10..15].iter().all(|x| x.is_nan()));
        assert_series(
            &got[11..],
            &atr(&HIGH[11..], &LOW[11..], &CLOSE[11..], 5),
            0.0,
        );
        assert_series(&got[..10], &atr(&HIGH, &LOW, &CLOSE, 5)[..10], 0.0);
    }

    #[test]
    fn period_longer_than_input_is_all_nan() {
        assert!(atr(&HIGH, &LOW, &CLOSE, 31).iter().all(|x| x.is_nan()));
    }

    #[test]
    #[should_panic(expected = "same length")]
    fn mismatched_columns_panic() {
        atr(&HIGH, &LOW[1..], &CLOSE, 5);
    }
}
