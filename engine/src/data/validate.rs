//! Row checks on bars: finite positive prices, a high and a low that contain the open and the
//! close, sane volumes, strictly increasing timestamps.

use super::error::{DataError, RowProblem};
use super::time::format_time_short;
use super::Bars;

impl Bars {
    /// Checks every bar and reports the first bad row (1-based) with its timestamp and problem.
    ///
    /// A volume column that is entirely NaN means "no volume" and is accepted; otherwise NaN,
    /// infinite or negative volumes are errors.
    pub fn validate(&self) -> Result<(), DataError> {
        self.validate_rows(|i| i + 1)
    }

    /// [`validate`](Self::validate) with `row_of(i)` naming the file row of bar `i` (bars read
    /// with a pushed-down time filter are a subset of the file's rows).
    pub(crate) fn validate_rows(&self, row_of: impl Fn(usize) -> usize) -> Result<(), DataError> {
        let n = self.len();
        let columns = [
            ("open", self.open.len()),
            ("high", self.high.len()),
            ("low", self.low.len()),
            ("close", self.close.len()),
            ("volume", self.volume.len()),
        ];
        if columns.iter().any(|&(_, len)| len != n) {
            let lengths = std::iter::once(("time", n))
                .chain(columns)
                .map(|(name, len)| format!("{name} {len}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(DataError::RaggedColumns { lengths });
        }
        // Re-slicing to `n` lets the compiler drop the bounds checks in the loop.
        let (time, open, high, low, close, volume) = (
            &self.time[..n],
            &self.open[..n],
            &self.high[..n],
            &self.low[..n],
            &self.close[..n],
            &self.volume[..n],
        );
        let volume_absent = volume.iter().all(|v| v.is_nan());
        for i in 0..n {
            let (o, h, l, c, v) = (open[i], high[i], low[i], close[i], volume[i]);
            // One cheap test per row; the precise problem is worked out only for a bad row.
            let prices_ok = o.is_finite()
                && h.is_finite()
                && l.is_finite()
                && c.is_finite()
                && l > 0.0
                && h >= o.max(c)
                && l <= o.min(c);
            let volume_ok = volume_absent || (v.is_finite() && v >= 0.0);
            let time_ok = i == 0 || time[i] > time[i - 1];
            if !(prices_ok && volume_ok && time_ok) {
                let problem = row_problem(time, [o, h, l, c], v, volume_absent, i, &row_of);
                return Err(DataError::Row {
                    path: None,
                    row: row_of(i),
                    time: Some(format_time_short(time[i])),
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// The first problem of bad row `i`, in reading order: prices, their consistency, volume, time.
#[cold]
fn row_problem(
    time: &[i64],
    [o, h, l, c]: [f64; 4],
    v: f64,
    volume_absent: bool,
    i: usize,
    row_of: &impl Fn(usize) -> usize,
) -> RowProblem {
    for (column, value) in [("open", o), ("high", h), ("low", l), ("close", c)] {
        if !value.is_finite() {
            return RowProblem::NotFinite { column, value };
        }
        if value <= 0.0 {
            return RowProblem::NotPositive { column, value };
        }
    }
    if h < o.max(c) {
        return RowProblem::HighBelow {
            high: h,
            max: o.max(c),
        };
    }
    if l > o.min(c) {
        return RowProblem::LowAbove {
            low: l,
            min: o.min(c),
        };
    }
    if !volume_absent {
        if !v.is_finite() {
            return RowProblem::VolumeNotFinite { value: v };
        }
        if v < 0.0 {
            return RowProblem::VolumeNegative { value: v };
        }
    }
    let previous_row = row_of(i - 1);
    if time[i] == time[i - 1] {
        RowProblem::Duplicate { previous_row }
    } else {
        RowProblem::Unsorted {
            previous_row,
            previous_time: time[i - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::time::parse_time_bound;
    use super::*;

    /// Five good daily bars from 2004-08-19.
    fn bars() -> Bars {
        let day = |d: &str| parse_time_bound(d, false).unwrap();
        Bars {
            time: [
                "2004-08-19",
                "2004-08-20",
                "2004-08-23",
                "2004-08-24",
                "2004-08-25",
            ]
            .map(day)
            .to_vec(),
            open: vec![100.0, 101.0, 110.0, 111.0, 104.0],
            high: vec![104.0, 109.0, 113.0, 111.5, 108.0],
            low: vec![95.9, 100.5, 109.0, 103.5, 103.0],
            close: vec![100.3, 108.3, 109.4, 104.9, 106.0],
            volume: vec![2.2e7, 1.1e7, 1.8e7, 1.5e7, 9.1e6],
        }
    }

    fn message(bars: &Bars) -> String {
        bars.validate().unwrap_err().to_string()
    }

    #[test]
    fn good_bars_pass() {
        bars().validate().unwrap();
        Bars::default().validate().unwrap();
        let mut no_volume = bars();
        no_volume.volume = vec![f64::NAN; 5];
        no_volume.validate().unwrap();
    }

    #[test]
    fn high_below_open_or_close_names_the_row() {
        let mut b = bars();
        b.open[4] = 101.2;
        b.close[4] = 100.9;
        b.low[4] = 100.0;
        b.high[4] = 100.5;
        assert_eq!(
            message(&b),
            "row 5 (2004-08-25): high 100.5 is below max(open, close) = 101.2"
        );
    }

    #[test]
    fn low_above_open_or_close_names_the_row() {
        let mut b = bars();
        b.low[1] = 101.5;
        assert_eq!(
            message(&b),
            "row 2 (2004-08-20): low 101.5 is above min(open, close) = 101"
        );
    }

    #[test]
    fn non_finite_and_non_positive_prices() {
        let mut b = bars();
        b.close[2] = f64::NAN;
        assert_eq!(message(&b), "row 3 (2004-08-23): close is not finite (NaN)");
        let mut b = bars();
        b.open[0] = f64::INFINITY;
        assert_eq!(message(&b), "row 1 (2004-08-19): open is not finite (inf)");
        let mut b = bars();
        b.low[3] = 0.0;
        assert_eq!(message(&b), "row 4 (2004-08-24): low 0 is not positive");
        let mut b = bars();
        b.open[3] = -1.0;
        assert_eq!(message(&b), "row 4 (2004-08-24): open -1 is not positive");
    }

    #[test]
    fn bad_volumes() {
        let mut b = bars();
        b.volume[1] = -5.0;
        assert_eq!(message(&b), "row 2 (2004-08-20): volume -5 is negative");
        let mut b = bars();
        b.volume[2] = f64::NAN;
        assert_eq!(
            message(&b),
            "row 3 (2004-08-23): volume is not finite (NaN)"
        );
        let mut b = bars();
        b.volume[2] = f64::INFINITY;
        assert_eq!(
            message(&b),
            "row 3 (2004-08-23): volume is not finite (inf)"
        );
    }

    #[test]
    fn duplicate_and_unsorted_timestamps() {
        let mut b = bars();
        b.time[3] = b.time[2];
        assert_eq!(
            message(&b),
            "row 4 (2004-08-23): duplicate timestamp (same as row 3)"
        );
        let mut b = bars();
        b.time.swap(1, 2);
        assert_eq!(
            message(&b),
            "row 3 (2004-08-20): timestamp is earlier than row 2 (2004-08-23); rows must be sorted by time, oldest first"
        );
    }

    #[test]
    fn ragged_columns_are_reported() {
        let mut b = bars();
        b.high.pop();
        assert_eq!(
            message(&b),
            "bars have columns of different lengths: time 5, open 5, high 4, low 5, close 5, volume 5"
        );
    }

    #[test]
    fn the_first_bad_row_is_reported() {
        let mut b = bars();
        b.volume[3] = -1.0;
        b.high[1] = 1.0;
        assert!(message(&b).starts_with("row 2 "));
    }
}
