//! Bollinger bands: a simple moving average with bands `k` population standard deviations away.
//!
//! - `mid = sma(src, period)` (bit-identical to [`super::sma`]);
//!   `upper/lower = mid ± k * stdev(src, period)` with the population (ddof = 0) deviation of
//!   [`super::stdev`].
//! - Warm-up: the first value is at index `first_present + period - 1`.
//! - A window holding any missing value is NaN in all three bands.

use super::window::for_each_mean_stdev;

/// The three Bollinger bands, each as long as the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Bollinger {
    /// Simple moving average.
    pub mid: Vec<f64>,
    /// `mid + k * stdev`.
    pub upper: Vec<f64>,
    /// `mid - k * stdev`.
    pub lower: Vec<f64>,
}

/// Bollinger bands of `src` over `period` bars, `k` population standard deviations wide.
pub fn bollinger(src: &[f64], period: usize, k: f64) -> Bollinger {
    debug_assert!(period >= 1, "bollinger: period must be at least 1");
    let n = src.len();
    let mut bands = Bollinger {
        mid: vec![f64::NAN; n],
        upper: vec![f64::NAN; n],
        lower: vec![f64::NAN; n],
    };
    for_each_mean_stdev(src, period, |t, mean, stdev| {
        bands.mid[t] = mean;
        bands.upper[t] = mean + k * stdev;
        bands.lower[t] = mean - k * stdev;
    });
    bands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::{assert_series, leading_nans, CLOSE, NAN};
    use crate::indicators::{sma, stdev};

    #[test]
    fn hand_computed() {
        // period 2, k 2: [1,3] mean 2, stdev 1 -> 2 ± 2; [3,7] mean 5, stdev 2 -> 5 ± 4.
        let b = bollinger(&[1.0, 3.0, 7.0], 2, 2.0);
        assert_series(&b.mid, &[NAN, 2.0, 5.0], 0.0);
        assert_series(&b.upper, &[NAN, 4.0, 9.0], 0.0);
        assert_series(&b.lower, &[NAN, 0.0, 1.0], 0.0);
    }

    #[test]
    fn matches_pandas() {
        // m = pd.Series(CLOSE).rolling(6).mean(); sd = pd.Series(CLOSE).rolling(6).std(ddof=0);
        // upper = m + 2*sd; lower = m - 2*sd
        let upper = [
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            44.951796624464734,
            45.3343444142297,
            45.791674646576695,
            46.310048681888915,
            46.45256529452471,
            46.42671604802799,
            46.43052902694901,
            46.27403977238206,
            46.37400676207751,
            46.49272062380924,
            46.477276973253055,
            46.4869484863939,
            46.62821728679311,
            46.493314175612376,
            46.59287450842475,
            46.5664907406517,
            46.61474680580593,
            46.653295017891494,
            46.67598657703005,
            46.62361254940049,
            46.71273523034992,
            47.16911350713134,
            46.99657760587194,
            46.83743777319264,
            45.993370582695306,
        ];
        let lower = [
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            43.49820337553527,
            43.368988919103636,
            43.354992020089966,
            43.39995131811108,
            44.080768038808635,
            44.626617285305336,
            45.02280430638432,
            45.349293560951274,
            45.535993237922504,
            45.56394604285743,
            45.55272302674696,
            45.58971818027277,
            45.575116046540224,
            45.913352491054276,
            45.60045882490859,
            45.6035092593483,
            45.6385865275274,
            45.49337164877517,
            45.48401342296996,
            45.389720783932844,
            45.20393143631675,
            44.020886492868655,
            43.50342239412806,
            43.16589556014069,
            43.38329608397136,
        ];
        let b = bollinger(&CLOSE, 6, 2.0);
        assert_series(&b.upper, &upper, 1e-13);
        assert_series(&b.lower, &lower, 1e-13);
        assert_eq!(leading_nans(&b.mid), 5);
    }

    #[test]
    fn mid_is_the_sma_and_bands_use_the_stdev() {
        let mut src = CLOSE.to_vec();
        src[3] = NAN;
        src[17] = f64::NEG_INFINITY;
        let b = bollinger(&src, 4, 1.5);
        // Bit-identical mid, NaN in exactly the same places.
        assert_series(&b.mid, &sma(&src, 4), 0.0);
        let sd = stdev(&src, 4);
        let expected_upper: Vec<f64> = b.mid.iter().zip(&sd).map(|(m, s)| m + 1.5 * s).collect();
        let expected_lower: Vec<f64> = b.mid.iter().zip(&sd).map(|(m, s)| m - 1.5 * s).collect();
        assert_series(&b.upper, &expected_upper, 0.0);
        assert_series(&b.lower, &expected_lower, 0.0);
        // Windows containing index 3 or 17 are NaN: 3..=6 and 17..=20.
        let nan_at: Vec<usize> = (0..src.len()).filter(|&t| b.mid[t].is_nan()).collect();
        assert_eq!(nan_at, [0, 1, 2, 3, 4, 5, 6, 17, 18, 19, 20]);
    }

    #[test]
    fn period_one_and_period_longer_than_input() {
        // A single bar has no spread: all three bands are the input.
        let b = bollinger(&CLOSE, 1, 2.0);
        assert_series(&b.upper, &CLOSE, 0.0);
        assert_series(&b.lower, &CLOSE, 0.0);
        let b = bollinger(&CLOSE, 31, 2.0);
        assert!(b
            .mid
            .iter()
            .chain(&b.upper)
            .chain(&b.lower)
            .all(|x| x.is_nan()));
    }
}
