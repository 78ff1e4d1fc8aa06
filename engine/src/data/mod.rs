//! OHLCV bars: loading from CSV or Parquet through polars, validation, time filters, resampling.
//!
//! - [`load`] reads a file into [`Bars`] (see [`load`](load::load) for the accepted layouts),
//!   validates it, keeps `start..=end` and resamples to a coarser [`Timeframe`].
//! - [`check_file`] measures a file against [`Limits`] before anything is decoded (Parquet by
//!   its metadata, CSV in one bounded pass); [`load_limited`] checks, then loads. Files from
//!   users (uploads) go through it.
//! - Times are `i64` nanoseconds since the epoch, UTC, marking the start of each bar.
//! - Row errors name the 1-based data row of the file (the header is not counted) and the
//!   row's timestamp: `row 5 (2004-08-25): high 100.5 is below max(open, close) = 101.2`.

mod error;
mod limits;
mod load;
mod resample;
pub mod synthetic;
mod time;
mod validate;
pub(crate) mod write;

pub use error::{DataError, RowProblem};
pub use limits::{check_file, load_limited, Count, Extent, Limits, Measure};
pub use load::{load, Coverage, LoadOptions};
// The column readers shared with the tick loader (`crate::tick`), which reads the same kinds of
// time and number columns.
pub(crate) use load::{
    csv_header, csv_read_options, floats, parquet_coverage, parquet_epoch_unit, parquet_times,
    parse_text_floats, parse_text_times, scan_parquet, unpanicked, Floats, ParquetTime, ROW_INDEX,
};
pub use time::{
    format_duration, format_time, format_time_short, parse_time_bound, serialize_time,
    serialize_times, EpochUnit, Rfc3339, ShortTime, Timeframe, NANOS_PER_DAY, NANOS_PER_HOUR,
    NANOS_PER_MINUTE, NANOS_PER_SECOND, NANOS_PER_WEEK,
};

/// OHLCV bars as parallel columns, sorted by time with unique timestamps.
///
/// `time` is nanoseconds since the Unix epoch, UTC, and marks the bar's start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bars {
    /// Bar start, nanoseconds since the Unix epoch (UTC).
    pub time: Vec<i64>,
    /// Opening price.
    pub open: Vec<f64>,
    /// Highest price.
    pub high: Vec<f64>,
    /// Lowest price.
    pub low: Vec<f64>,
    /// Closing price.
    pub close: Vec<f64>,
    /// Traded volume (NaN where the source has no volume column).
    pub volume: Vec<f64>,
}

/// Average days in a year, for annualising.
const DAYS_PER_YEAR: f64 = 365.25;

impl Bars {
    /// Number of bars.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Empty bars with room for `capacity` bars in every column.
    pub fn with_capacity(capacity: usize) -> Bars {
        Bars {
            time: Vec::with_capacity(capacity),
            open: Vec::with_capacity(capacity),
            high: Vec::with_capacity(capacity),
            low: Vec::with_capacity(capacity),
            close: Vec::with_capacity(capacity),
            volume: Vec::with_capacity(capacity),
        }
    }

    /// Appends one bar.
    pub fn push(&mut self, time: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) {
        self.time.push(time);
        self.open.push(open);
        self.high.push(high);
        self.low.push(low);
        self.close.push(close);
        self.volume.push(volume);
    }

    /// The bars with `start <= time <= end` (either bound may be open); bars must be sorted.
    pub fn between(&self, start: Option<i64>, end: Option<i64>) -> Bars {
        let from = start.map_or(0, |s| self.time.partition_point(|&t| t < s));
        let to = end
            .map_or(self.len(), |e| self.time.partition_point(|&t| t <= e))
            .max(from);
        self.slice(from..to)
    }

    /// A copy of the bars in `range` (indices).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Bars {
        Bars {
            time: self.time[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
        }
    }

    /// The typical time between consecutive bars: the (lower) median gap in ns, so weekends,
    /// holidays and missing bars do not distort it. `None` for fewer than 2 bars.
    pub fn spacing(&self) -> Option<i64> {
        if self.len() < 2 {
            return None;
        }
        // Saturating: times span the whole i64 range (1677 to 2262), so one gap can exceed it.
        let mut gaps: Vec<i64> = self
            .time
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .collect();
        let middle = (gaps.len() - 1) / 2;
        Some(*gaps.select_nth_unstable(middle).1)
    }

    /// Bars per year as observed: `(len - 1)` gaps over the span in years of 365.25 days
    /// (about 252 for US daily stocks). `None` for fewer than 2 bars or a zero span.
    pub fn periods_per_year(&self) -> Option<f64> {
        let (&first, &last) = (self.time.first()?, self.time.last()?);
        // In i128: the span of times from 1677 to 2262 exceeds i64.
        let span = (i128::from(last) - i128::from(first)) as f64;
        let years = span / (DAYS_PER_YEAR * NANOS_PER_DAY as f64);
        (self.len() >= 2 && years > 0.0).then(|| (self.len() - 1) as f64 / years)
    }
}
