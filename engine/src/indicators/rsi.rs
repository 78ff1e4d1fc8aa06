//! Relative strength index, Wilder's definition, on the conventional 0–100 scale.
//!
//! - `change[t] = x[t] - x[t-1]`; gain = `max(change, 0)`, loss = `max(-change, 0)`.
//! - Seed: average gain and loss = simple means of the first `period` changes, so the first value
//!   is at index `first_present + period` (a change needs two present values).
//! - Then Wilder's smoothing: `avg = (avg * (period - 1) + current) / period` (pandas
//!   `ewm(alpha=1/period, adjust=False)` after that seed), evaluated as
//!   `avg * ((period - 1) / period) + current * (1 / period)`: the same to within a few ulps, and
//!   without a division in the loop-carried chain (three times faster).
//! - `RSI = 100 - 100 / (1 + avg_gain / avg_loss)`, computed as the algebraically identical
//!   `100 * avg_gain / (avg_gain + avg_loss)`: 100 when `avg_loss == 0`, and 50 when both
//!   averages are 0 (a flat market).
//! - A missing value makes the output NaN there and restarts the warm-up from the next present
//!   value: its first value is `period` bars later.

/// Wilder's relative strength index of `src` over `period` changes, from 0 to 100.
pub fn rsi(src: &[f64], period: usize) -> Vec<f64> {
    debug_assert!(period >= 1, "rsi: period must be at least 1");
    let mut out = vec![f64::NAN; src.len()];
    if period == 0 {
        return out;
    }
    let p = period as f64;
    let inv_p = 1.0 / p;
    let keep = (p - 1.0) / p;
    let mut prev = f64::NAN;
    // Changes seen since the last (re)start, capped at `period` once seeded.
    let mut changes = 0;
    let mut avg_gain = 0.0;
    let mut avg_loss = 0.0;
    for (&x, value) in src.iter().zip(out.iter_mut()) {
        if !x.is_finite() {
            prev = f64::NAN;
            changes = 0;
            avg_gain = 0.0;
            avg_loss = 0.0;
            continue;
        }
        let change = x - prev;
        prev = x;
        if change.is_nan() {
            // First present value after a (re)start: no change yet.
            continue;
        }
        let gain = change.max(0.0);
        let loss = (-change).max(0.0);
        if changes < period {
            // Warm-up: accumulate sums, turned into the seed averages at the period-th change.
            avg_gain += gain;
            avg_loss += loss;
            changes += 1;
            if changes < period {
                continue;
            }
            avg_gain /= p;
            avg_loss /= p;
        } else {
            avg_gain = avg_gain * keep + gain * inv_p;
            avg_loss = avg_loss * keep + loss * inv_p;
        }
        let total = avg_gain + avg_loss;
        *value = if total == 0.0 {
            50.0
        } else {
            100.0 * avg_gain / total
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, CLOSE, NAN};

    #[test]
    fn hand_computed() {
        // period 2. Changes: +2, -1, +3, 0.
        // [2]: seed gain (2+0)/2 = 1, loss (0+1)/2 = 0.5 -> 100*1/1.5 = 66.666...
        // [3]: gain (1*1 + 3)/2 = 2, loss (0.5*1 + 0)/2 = 0.25 -> 100*2/2.25 = 88.888...
        // [4]: gain (2 + 0)/2 = 1, loss (0.25 + 0)/2 = 0.125 -> 100*1/1.125 = 88.888...
        assert_series(
            &rsi(&[10.0, 12.0, 11.0, 14.0, 14.0], 2),
            &[NAN, NAN, 200.0 / 3.0, 800.0 / 9.0, 800.0 / 9.0],
            1e-14,
        );
    }

    #[test]
    fn matches_pandas_wilder_smoothing() {
        // ch = pd.Series(CLOSE).diff(); for gains ch.clip(lower=0) and losses (-ch).clip(lower=0):
        // seed index 14 with the mean of changes 1..=14, NaN before, then
        // .ewm(alpha=1/14, adjust=False).mean(); rsi = 100 * gain / (gain + loss).
        // The first value, 70.46, is the one in StockCharts' worked example of these closes.
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
            70.46413502109705,
            66.24961855355507,
            66.48094183471265,
            69.34685316290866,
            66.29471265892623,
            57.91502067008555,
            62.8807183099624,
            63.208788718287764,
            56.01158478954756,
            62.33992931089787,
            54.67097137765516,
            50.386815195114224,
            40.01942379131357,
            41.49263540422282,
            41.902429678458105,
            45.49949723868042,
        ];
        assert_series(&rsi(&CLOSE, 14), &expected, 1e-12);
    }

    #[test]
    fn extremes_and_flat_market() {
        // Only gains -> 100; only losses -> 0; no change at all -> 50.
        assert_series(
            &rsi(&[1.0, 2.0, 3.0, 4.0], 2),
            &[NAN, NAN, 100.0, 100.0],
            0.0,
        );
        assert_series(&rsi(&[4.0, 3.0, 2.0, 1.0], 2), &[NAN, NAN, 0.0, 0.0], 0.0);
        assert_series(&rsi(&[5.0, 5.0, 5.0, 5.0], 2), &[NAN, NAN, 50.0, 50.0], 0.0);
    }

    #[test]
    fn warm_up_period_one_and_period_longer_than_input() {
        assert_eq!(leading_nans(&rsi(&CLOSE, 14)), 14);
        // period 1: each value reflects the last change alone.
        assert_series(
            &rsi(&[1.0, 2.0, 1.5, 1.5], 1),
            &[NAN, 100.0, 0.0, 50.0],
            0.0,
        );
        // 30 values give only 29 changes.
        assert!(rsi(&CLOSE, 30).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn leading_and_interior_nans_restart_the_warm_up() {
        // period 2. Leading NaN: changes start at [2] (12-10), first value at [3]:
        // gain (2+0)/2 = 1, loss (0+1)/2 = 0.5 -> 66.666...
        // The NaN at [4] restarts the run at [5]; its changes are at [6] (+1) and [7] (+1), so
        // the first value is at [7]: gain 1, loss 0 -> 100.
        let src = [NAN, 10.0, 12.0, 11.0, NAN, 20.0, 21.0, 22.0];
        assert_series(
            &rsi(&src, 2),
            &[NAN, NAN, NAN, 200.0 / 3.0, NAN, NAN, NAN, 100.0],
            1e-14,
        );
    }
}
