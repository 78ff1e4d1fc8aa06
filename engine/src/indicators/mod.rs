//! Technical indicators over price columns: `indicators::sma(&close, 10)`.
//!
//! Conventions shared by every indicator (each file's module doc adds its own):
//!
//! - Every function takes plain slices and returns a new series of the same length as its input.
//! - The window "ending at t" covers `src[t-period+1..=t]`.
//! - Output is NaN during the warm-up, i.e. until enough input exists to compute a value.
//! - A missing value is anything not finite: NaN, and also ±infinity, which a running sum could
//!   never remove again (a NaN output means "no value"). Leading missing values are skipped: the
//!   warm-up starts at the first present value, so `sma(&rsi(&close, 14), 5)` is first valid at
//!   index 14 + 4. Later on, a windowed indicator is NaN for every window containing a missing
//!   value and recovers once it has left the window; a recursive indicator (ema, rsi, atr, and
//!   macd through ema) is NaN at the missing value and restarts its warm-up after it.
//! - Callers guarantee `period >= 1`; debug builds assert it and release builds return all NaN.
//! - Every indicator is O(n) whatever the period, allocates its outputs once and nothing inside
//!   its loop.

mod atr;
mod bollinger;
mod ema;
mod highest;
mod lowest;
mod macd;
mod roc;
mod rsi;
mod sma;
mod stdev;
mod window;
mod wma;
mod zscore;

#[cfg(test)]
mod testutil;

pub use atr::atr;
pub use bollinger::{bollinger, Bollinger};
pub use ema::ema;
pub use highest::highest;
pub use lowest::lowest;
pub use macd::{macd, Macd};
pub use roc::roc;
pub use rsi::rsi;
pub use sma::sma;
pub use stdev::stdev;
pub use wma::wma;
pub use zscore::zscore;

#[cfg(test)]
mod tests {
    use super::testutil::{assert_series, random_walk, CLOSE, HIGH, LOW};
    use super::*;

    /// Every single-series output of every indicator for `period` (MACD and Bollinger
    /// contribute all their series).
    fn all_outputs(src: &[f64], high: &[f64], low: &[f64], period: usize) -> Vec<Vec<f64>> {
        let m = macd(src, period, period, period);
        let b = bollinger(src, period, 2.0);
        vec![
            sma(src, period),
            ema(src, period),
            wma(src, period),
            rsi(src, period),
            m.line,
            m.signal,
            m.histogram,
            b.mid,
            b.upper,
            b.lower,
            atr(high, low, src, period),
            stdev(src, period),
            highest(src, period),
            lowest(src, period),
            roc(src, period),
            zscore(src, period),
        ]
    }

    #[test]
    fn output_length_always_equals_input_length() {
        for period in [1, 2, 29, 30, 31, 1000] {
            for out in all_outputs(&CLOSE, &HIGH, &LOW, period) {
                assert_eq!(out.len(), CLOSE.len(), "period {period}");
            }
        }
        for out in all_outputs(&[], &[], &[], 3) {
            assert!(out.is_empty());
        }
    }

    #[test]
    fn a_huge_period_gives_all_nan_without_allocating_by_period() {
        for out in all_outputs(&CLOSE, &HIGH, &LOW, usize::MAX / 4) {
            assert!(out.iter().all(|x| x.is_nan()));
        }
    }

    #[test]
    fn an_all_missing_input_gives_all_nan() {
        let missing = [f64::NAN; 12];
        for out in all_outputs(&missing, &missing, &missing, 3) {
            assert!(out.iter().all(|x| x.is_nan()));
        }
    }

    #[test]
    fn windowed_indicators_match_brute_force_around_scattered_nans() {
        // NaN runs of different lengths, including one at the very start and two close together.
        let mut src = random_walk(3_000, 9);
        for i in [0, 1, 400, 401, 402, 700, 703, 1_500, 2_999] {
            src[i] = f64::NAN;
        }
        for period in [1, 3, 16, 64] {
            let n = src.len();
            let [mut mean, mut sd, mut max, mut min, mut weighted] =
                std::array::from_fn(|_| vec![f64::NAN; n]);
            for t in period - 1..n {
                let w = &src[t + 1 - period..=t];
                if w.iter().any(|x| x.is_nan()) {
                    continue;
                }
                let p = period as f64;
                mean[t] = w.iter().sum::<f64>() / p;
                sd[t] = (w.iter().map(|x| (x - mean[t]).powi(2)).sum::<f64>() / p).sqrt();
                max[t] = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                min[t] = w.iter().copied().fold(f64::INFINITY, f64::min);
                let num: f64 = w.iter().enumerate().map(|(i, x)| (i + 1) as f64 * x).sum();
                weighted[t] = num / (p * (p + 1.0) / 2.0);
            }
            assert_series(&sma(&src, period), &mean, 1e-12);
            assert_series(&wma(&src, period), &weighted, 1e-12);
            assert_series(&highest(&src, period), &max, 0.0);
            assert_series(&lowest(&src, period), &min, 0.0);
            // Relative to the deviation itself, not to max(|sd|, 1).
            let got = stdev(&src, period);
            for t in 0..n {
                assert_eq!(got[t].is_nan(), sd[t].is_nan(), "period {period}, t {t}");
                if sd[t] > 0.0 {
                    assert!(
                        (got[t] - sd[t]).abs() <= 1e-9 * sd[t],
                        "period {period}, t {t}"
                    );
                }
            }
        }
    }
}
