//! Resampling bars to a coarser [`Timeframe`].
//!
//! Buckets are aligned to the UTC epoch (1970-01-01T00:00Z), except timeframes of whole weeks,
//! which are aligned to Monday 1970-01-05T00:00Z so weekly bars run Monday to Sunday. A bucket
//! is labelled with its start and aggregates open = first, high = max, low = min, close = last,
//! volume = sum. Buckets without bars produce no bar.

use super::error::DataError;
use super::time::{Timeframe, NANOS_PER_DAY};
use super::Bars;

/// The first Monday after the epoch (1970-01-01 was a Thursday).
const FIRST_MONDAY: i64 = 4 * NANOS_PER_DAY;

impl Bars {
    /// Aggregates sorted bars into `timeframe` buckets.
    ///
    /// Errors when `timeframe` is finer than the data's [`spacing`](Self::spacing) or not a whole
    /// multiple of it (bars would straddle bucket edges).
    pub fn resample(&self, timeframe: Timeframe) -> Result<Bars, DataError> {
        let step = timeframe.nanos();
        if let Some(spacing) = self.spacing() {
            check_timeframe(timeframe, spacing)?;
        }
        let origin = if timeframe.is_weeks() {
            FIRST_MONDAY
        } else {
            0
        };
        let n = self.len();
        let (time, open, high, low, close, volume) = (
            &self.time[..n],
            &self.open[..n],
            &self.high[..n],
            &self.low[..n],
            &self.close[..n],
            &self.volume[..n],
        );
        // The span in i128: times from 1677 to 2262 fill the whole i64 range.
        let estimate = match (time.first(), time.last()) {
            (Some(&first), Some(&last)) => {
                usize::try_from((i128::from(last) - i128::from(first)) / i128::from(step) + 1)
                    .unwrap_or(n)
                    .min(n)
            }
            _ => 0,
        };
        let mut out = Bars::with_capacity(estimate);
        let mut i = 0;
        while i < n {
            let start = bucket_start(time[i], origin, step);
            // After the bar's time, so only the upper end can leave the i64 range.
            let end = i64::try_from(start + i128::from(step)).unwrap_or(i64::MAX);
            let (mut h, mut l, mut v) = (high[i], low[i], volume[i]);
            let mut j = i + 1;
            while j < n && time[j] < end {
                h = h.max(high[j]);
                l = l.min(low[j]);
                v += volume[j];
                j += 1;
            }
            // A bucket starting before the earliest representable time is labelled with it.
            let label = i64::try_from(start).unwrap_or(i64::MIN);
            out.push(label, open[i], h, l, close[j - 1], v);
            i = j;
        }
        Ok(out)
    }
}

/// The start of the `step`-long bucket, aligned to `origin`, that holds `time`. In i128: for
/// a time in the first bucket of the i64 range (1677-09-21) the bucket starts before it.
fn bucket_start(time: i64, origin: i64, step: i64) -> i128 {
    let fast = time
        .checked_sub(origin)
        .and_then(|since| since.div_euclid(step).checked_mul(step))
        .and_then(|offset| offset.checked_add(origin));
    fast.map_or_else(
        || {
            let (time, origin, step) = (i128::from(time), i128::from(origin), i128::from(step));
            origin + (time - origin).div_euclid(step) * step
        },
        i128::from,
    )
}

/// Whether bars `spacing` ns apart can be resampled to `timeframe`: it must be coarser and a
/// whole multiple, or bars would straddle bucket edges. A spacing of 0 (or less) says nothing.
pub(crate) fn check_timeframe(timeframe: Timeframe, spacing: i64) -> Result<(), DataError> {
    let step = timeframe.nanos();
    if spacing > 0 && step < spacing {
        return Err(DataError::TimeframeTooFine { timeframe, spacing });
    }
    if spacing > 0 && step % spacing != 0 {
        return Err(DataError::TimeframeNotMultiple { timeframe, spacing });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::time::{parse_time_bound, NANOS_PER_HOUR};
    use super::*;

    fn at(text: &str) -> i64 {
        parse_time_bound(text, false).unwrap()
    }

    fn hourly(start: &str, closes: &[f64]) -> Bars {
        let t0 = at(start);
        let mut bars = Bars::with_capacity(closes.len());
        for (k, &c) in closes.iter().enumerate() {
            bars.push(
                t0 + k as i64 * NANOS_PER_HOUR,
                c - 0.5,
                c + 1.0,
                c - 1.0,
                c,
                k as f64 + 1.0,
            );
        }
        bars
    }

    #[test]
    fn four_hour_buckets_align_to_midnight_utc() {
        // 09:00 .. 16:00: buckets 08:00 (09-11), 12:00 (12-15), 16:00 (16).
        let bars = hourly(
            "2017-04-19 09:00",
            &[10.0, 11.0, 12.0, 13.0, 9.0, 14.0, 15.0, 16.0],
        );
        let out = bars.resample("4h".parse().unwrap()).unwrap();
        assert_eq!(
            out.time,
            vec![
                at("2017-04-19 08:00"),
                at("2017-04-19 12:00"),
                at("2017-04-19 16:00")
            ]
        );
        assert_eq!(out.open, vec![9.5, 12.5, 15.5]);
        assert_eq!(out.high, vec![13.0, 16.0, 17.0]);
        assert_eq!(out.low, vec![9.0, 8.0, 15.0]);
        assert_eq!(out.close, vec![12.0, 15.0, 16.0]);
        assert_eq!(out.volume, vec![6.0, 4.0 + 5.0 + 6.0 + 7.0, 8.0]);
        out.validate().unwrap();
    }

    #[test]
    fn weekly_buckets_start_on_monday() {
        // 2004-08-19 was a Thursday; its week starts Monday 2004-08-16.
        let day = |d: &str| at(d);
        let bars = Bars {
            time: [
                "2004-08-19",
                "2004-08-20",
                "2004-08-21",
                "2004-08-23",
                "2004-08-29",
            ]
            .map(day)
            .to_vec(),
            open: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            high: vec![1.5, 2.5, 3.5, 4.5, 5.5],
            low: vec![0.5, 1.5, 2.5, 3.5, 4.5],
            close: vec![1.2, 2.2, 3.2, 4.2, 5.2],
            volume: vec![1.0, 2.0, 3.0, 4.0, 5.0],
        };
        let out = bars.resample("1w".parse().unwrap()).unwrap();
        assert_eq!(out.time, vec![day("2004-08-16"), day("2004-08-23")]);
        assert_eq!(out.open, vec![1.0, 4.0]);
        assert_eq!(out.high, vec![3.5, 5.5]);
        assert_eq!(out.low, vec![0.5, 3.5]);
        assert_eq!(out.close, vec![3.2, 5.2]);
        assert_eq!(out.volume, vec![6.0, 9.0]);
    }

    #[test]
    fn finer_or_misaligned_timeframes_are_errors() {
        let bars = hourly("2017-04-19 09:00", &[10.0, 11.0, 12.0]);
        let err = bars
            .resample("30m".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "timeframe 30m is finer than the data's spacing of 1h; resampling can only make bars coarser");
        let err = bars
            .resample("90m".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "timeframe 90m is not a whole multiple of the data's spacing of 1h"
        );
        assert_eq!(bars.resample("1h".parse().unwrap()).unwrap(), bars);
        assert!(Bars::default()
            .resample("1d".parse().unwrap())
            .unwrap()
            .is_empty());
    }

    /// Flat bars at `times` (ns since the epoch).
    fn at_times(times: &[i64]) -> Bars {
        let mut bars = Bars::with_capacity(times.len());
        for &t in times {
            bars.push(t, 1.0, 2.0, 0.5, 1.5, 1.0);
        }
        bars
    }

    // Found reviewing the bar loader for its fuzz target (fuzz/): epoch-nanosecond times reach
    // the ends of the i64 range, and the gaps, the span and the first bucket overflowed it.
    #[test]
    fn times_at_the_ends_of_the_i64_range_do_not_overflow() {
        let bars = at_times(&[-9_000_000_000_000_000_000, 9_000_000_000_000_000_000]);
        // The one gap (about 570 years) is wider than i64: the spacing saturates, not wraps.
        assert_eq!(bars.spacing(), Some(i64::MAX));
        let per_year = bars.periods_per_year().unwrap();
        assert!((0.00175..0.00176).contains(&per_year), "{per_year}");
        assert!(matches!(
            bars.resample("1d".parse().unwrap()),
            Err(DataError::TimeframeTooFine { .. })
        ));
    }

    #[test]
    fn buckets_before_the_earliest_time_are_labelled_with_it() {
        // Daily bars from the first nanosecond of the range: the first day bucket starts
        // 12 minutes before it (1677-09-21 00:00), so it is labelled i64::MIN.
        let first = i64::MIN + 1;
        let bars = at_times(&[first, first + NANOS_PER_DAY, first + 2 * NANOS_PER_DAY]);
        let day_before = -106_752 * i128::from(NANOS_PER_DAY);
        assert!(day_before < i128::from(i64::MIN));
        let out = bars.resample("1d".parse().unwrap()).unwrap();
        let second = i64::try_from(day_before + i128::from(NANOS_PER_DAY)).unwrap();
        assert_eq!(out.time, vec![i64::MIN, second, second + NANOS_PER_DAY]);
        out.validate().unwrap();
        // Weekly buckets are aligned to a Monday: the three days share one, labelled i64::MIN.
        let weekly = bars.resample("1w".parse().unwrap()).unwrap();
        assert_eq!(weekly.time, vec![i64::MIN]);
        assert_eq!(weekly.volume, vec![3.0]);
        // And at the other end the last bucket ends after the latest time.
        let last = at_times(&[i64::MAX - NANOS_PER_DAY, i64::MAX]);
        let out = last.resample("1d".parse().unwrap()).unwrap();
        assert_eq!(out.len(), 2);
        out.validate().unwrap();
    }
}
