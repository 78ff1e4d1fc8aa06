//! Moving average convergence/divergence.
//!
//! - `line = ema(src, fast) - ema(src, slow)`, each EMA seeded independently as in
//!   [`super::ema`] (so, with `fast < slow`, the line is first valid at `first_present + slow - 1`).
//!   TA-Lib's own MACD differs slightly here: it delays the fast EMA's seed to the slow one's.
//! - `signal = ema(line, signal)`, seeded with the mean of the first `signal` valid line values:
//!   first valid at `first_present + max(fast, slow) + signal - 2`.
//! - `histogram = line - signal`.
//! - A missing value restarts both EMAs, hence the line and then the signal.

use super::ema::ema;

/// The three MACD series, each as long as the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Macd {
    /// Fast EMA minus slow EMA.
    pub line: Vec<f64>,
    /// EMA of the line.
    pub signal: Vec<f64>,
    /// Line minus signal.
    pub histogram: Vec<f64>,
}

/// MACD of `src`: EMAs over `fast` and `slow` bars and a signal EMA over `signal` line values.
pub fn macd(src: &[f64], fast: usize, slow: usize, signal: usize) -> Macd {
    debug_assert!(
        fast >= 1 && slow >= 1 && signal >= 1,
        "macd: periods must be at least 1"
    );
    let mut line = ema(src, fast);
    // The slow EMA's buffer is reused for the histogram: three allocations in all.
    let mut histogram = ema(src, slow);
    for (l, s) in line.iter_mut().zip(&histogram) {
        *l -= s;
    }
    let signal = ema(&line, signal);
    for ((h, l), s) in histogram.iter_mut().zip(&line).zip(&signal) {
        *h = l - s;
    }
    Macd {
        line,
        signal,
        histogram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, CLOSE, NAN};

    #[test]
    fn hand_computed() {
        // fast 1 (the input itself), slow 2 (alpha 2/3), signal 2 (alpha 2/3).
        // slow: [1] (2+4)/2 = 3; [2] 2/3*8 + 1/3*3 = 19/3.
        // line: [1] 4-3 = 1; [2] 8-19/3 = 5/3. signal: [2] (1 + 5/3)/2 = 4/3.
        // histogram: [2] 5/3 - 4/3 = 1/3.
        let m = macd(&[2.0, 4.0, 8.0], 1, 2, 2);
        assert_series(&m.line, &[NAN, 1.0, 5.0 / 3.0], 1e-15);
        assert_series(&m.signal, &[NAN, NAN, 4.0 / 3.0], 1e-15);
        assert_series(&m.histogram, &[NAN, NAN, 1.0 / 3.0], 1e-15);
    }

    #[test]
    fn matches_pandas() {
        // line = ema(c, 5) - ema(c, 12); signal = ema(line, 4); hist = line - signal, with each
        // ema a pandas ewm(alpha=2/(p+1), adjust=False) seeded with the mean of its first p
        // valid values (see ema.rs).
        let line = [
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
            0.7828689986282669,
            0.6357374520769667,
            0.6403946590440839,
            0.6101810496899347,
            0.5115897290445233,
            0.43512335693456805,
            0.4378795902605148,
            0.38287646084128824,
            0.2281118001001161,
            0.23141830942046937,
            0.2285954013744984,
            0.11835707368833681,
            0.18292226967622582,
            0.08970662281420516,
            -0.04465638940612848,
            -0.3550839147916349,
            -0.48506436937876884,
            -0.526332094049522,
            -0.4597994210920291,
        ];
        let signal = [
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
            0.667295539859813,
            0.6050132155336971,
            0.5370572720940454,
            0.49738619936063316,
            0.45158230395289517,
            0.36219410241178357,
            0.3098837852152579,
            0.2773684316789541,
            0.21376388848270717,
            0.2014272409601146,
            0.15673899370175082,
            0.07618084045859909,
            -0.09632506164149451,
            -0.25182078473640424,
            -0.3616253084616513,
            -0.40089495351380244,
        ];
        let histogram = [
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
            -0.05711449016987835,
            -0.09342348648917387,
            -0.10193391515947736,
            -0.059506609100118346,
            -0.06870584311160693,
            -0.13408230231166746,
            -0.07846547579478852,
            -0.04877303030445568,
            -0.09540681479437035,
            -0.018504971283888783,
            -0.06703237088754566,
            -0.12083722986472757,
            -0.2587588531501404,
            -0.2332435846423646,
            -0.16470678558787066,
            -0.05890446757822665,
        ];
        let m = macd(&CLOSE, 5, 12, 4);
        assert_series(&m.line, &line, 1e-12);
        assert_series(&m.signal, &signal, 1e-12);
        assert_series(&m.histogram, &histogram, 1e-12);
        // Warm-up: line at slow - 1 = 11, signal at 11 + 4 - 1 = 14.
        assert_eq!(leading_nans(&m.line), 11);
        assert_eq!(leading_nans(&m.signal), 14);
    }

    #[test]
    fn leading_and_interior_nans() {
        // Shifting the input by two leading NaNs shifts every output by two.
        let mut src = vec![NAN, NAN];
        src.extend_from_slice(&CLOSE);
        let shifted = macd(&src, 5, 12, 4);
        let plain = macd(&CLOSE, 5, 12, 4);
        assert_series(&shifted.histogram[2..], &plain.histogram, 0.0);
        assert_eq!(leading_nans(&shifted.histogram), 16);

        // A NaN at 20 restarts everything: with slow 3 the line is valid again at 20 + 3, the
        // signal (2) at 20 + 3 + 1, and from there on both equal the MACD of the closes after
        // the NaN.
        let mut src = CLOSE.to_vec();
        src[20] = NAN;
        let m = macd(&src, 2, 3, 2);
        let after = macd(&CLOSE[21..], 2, 3, 2);
        assert!(m.line[20..23].iter().all(|x| x.is_nan()));
        assert!(m.signal[20..24].iter().all(|x| x.is_nan()));
        assert_series(&m.line[21..], &after.line, 0.0);
        assert_series(&m.signal[21..], &after.signal, 0.0);
        assert_series(&m.histogram[21..], &after.histogram, 0.0);
        // Before the NaN nothing changed.
        let clean = macd(&CLOSE, 2, 3, 2);
        assert_series(&m.histogram[..20], &clean.histogram[..20], 0.0);
    }

    #[test]
    fn period_one_and_periods_longer_than_input() {
        // fast = slow: the line is exactly 0 once valid, and so are signal and histogram.
        let m = macd(&CLOSE, 3, 3, 1);
        assert_eq!(leading_nans(&m.line), 2);
        assert!(m.line[2..].iter().chain(&m.signal[2..]).all(|&x| x == 0.0));
        let m = macd(&CLOSE, 5, 31, 4);
        assert!(m
            .line
            .iter()
            .chain(&m.signal)
            .chain(&m.histogram)
            .all(|x| x.is_nan()));
    }
}
