//! Reading bars from CSV and Parquet files through polars, and writing them to Parquet.
//!
//! Layout accepted:
//! - The timestamp is the first column named `time`, `timestamp`, `date` or `datetime`
//!   (case-insensitive), else the first column (whatever its name, even empty, as in the
//!   bundled `,Open,High,Low,Close,Volume` files).
//! - Prices are the columns named `open`, `high`, `low`, `close` (case-insensitive); `volume`
//!   is optional and becomes NaN when absent. Other columns are ignored.
//! - Timestamps may be dates, date-times (see [`parse_time_bound`](super::parse_time_bound)),
//!   integer epochs (unit by magnitude, see [`EpochUnit`]) or, in Parquet, `Datetime` of any
//!   unit and time zone (stored as UTC) and `Date`.
//!
//! CSV files are read whole, validated (so row numbers are the file's), then filtered. Parquet
//! files are scanned lazily with the time filter pushed down into the reader; row numbers
//! still come from the file (a row index is read with the data) and only the rows inside the
//! range are validated.

use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use super::error::{DataError, RowProblem};
use super::time::{parse_stamp, EpochUnit, Stamp, Timeframe, NANOS_PER_DAY};
use super::Bars;

/// What to keep of a file and at which bar length.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Earliest bar start to keep, ns since the epoch (inclusive).
    pub start: Option<i64>,
    /// Latest bar start to keep, ns since the epoch (inclusive).
    pub end: Option<i64>,
    /// Resample to this coarser bar length after filtering.
    pub timeframe: Option<Timeframe>,
}

/// What a data set covers, as its stored description keeps it: enough to find, without
/// reading the file, the errors loading it is sure to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// The first bar's (or event's) time, ns since the epoch.
    pub first: i64,
    /// The last bar's (or event's) time, ns since the epoch.
    pub last: i64,
    /// The typical time between bars (see [`Bars::spacing`]), ns; `None` when unknown.
    pub spacing: Option<i64>,
}

impl LoadOptions {
    /// The errors [`load`] is sure to give on bars that cover `coverage`, found without reading
    /// them: a range that misses the data, a timeframe finer than its spacing or not a whole
    /// multiple of it. The same errors in the same words, so a submission is refused with what
    /// its run would fail with. A range inside the data that holds no bar (a gap) is found only
    /// by reading it.
    pub fn check_bars(&self, coverage: &Coverage) -> Result<(), DataError> {
        if self.misses(coverage) {
            return Err(DataError::NoBarsInRange {
                start: self.start,
                end: self.end,
                first: Some(coverage.first),
                last: Some(coverage.last),
            });
        }
        match (self.timeframe, coverage.spacing) {
            (Some(timeframe), Some(spacing)) => {
                super::resample::check_timeframe(timeframe, spacing)
            }
            _ => Ok(()),
        }
    }

    /// As [`check_bars`](Self::check_bars) for trades and book events, which have no timeframe
    /// of their own: the range only.
    pub fn check_events(&self, coverage: &Coverage) -> Result<(), DataError> {
        if self.misses(coverage) {
            return Err(DataError::NoEventsInRange {
                start: self.start,
                end: self.end,
                first: Some(coverage.first),
                last: Some(coverage.last),
            });
        }
        Ok(())
    }

    /// Whether `start..=end` lies wholly before or after the data.
    fn misses(&self, coverage: &Coverage) -> bool {
        self.start.is_some_and(|start| start > coverage.last)
            || self.end.is_some_and(|end| end < coverage.first)
    }
}

/// Reads OHLCV bars from a `.csv` or `.parquet`/`.pq` file, validates them, keeps
/// `options.start..=options.end` and resamples to `options.timeframe`.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Bars, DataError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bars = match extension.as_deref() {
        Some("csv") => {
            let all = read_csv(path)?;
            all.validate().map_err(|e| e.in_file(path))?;
            keep_range(all, options)?
        }
        Some("parquet" | "pq") => unpanicked(path, || read_parquet(path, options))?,
        _ => {
            return Err(DataError::UnsupportedFormat {
                path: path.to_path_buf(),
            })
        }
    };
    match options.timeframe {
        Some(timeframe) => bars.resample(timeframe),
        None => Ok(bars),
    }
}

/// `all` filtered to the options' range; an error if that leaves nothing.
fn keep_range(all: Bars, options: &LoadOptions) -> Result<Bars, DataError> {
    if options.start.is_none() && options.end.is_none() {
        return Ok(all);
    }
    let kept = all.between(options.start, options.end);
    if kept.is_empty() {
        return Err(DataError::NoBarsInRange {
            start: options.start,
            end: options.end,
            first: all.time.first().copied(),
            last: all.time.last().copied(),
        });
    }
    Ok(kept)
}

/// Names used for the time column, in any case.
const TIME_NAMES: [&str; 5] = ["time", "timestamp", "date", "datetime", "__index_level_0__"];
/// Price and volume columns, in our names.
const PRICE_NAMES: [&str; 4] = ["open", "high", "low", "close"];

/// Which of the file's columns hold what.
#[derive(Debug)]
struct Columns {
    time: PlSmallStr,
    prices: [PlSmallStr; 4],
    volume: Option<PlSmallStr>,
}

impl Columns {
    fn resolve(path: &Path, names: &[PlSmallStr]) -> Result<Columns, DataError> {
        let find = |wanted: &str| {
            names
                .iter()
                .find(|n| n.trim().eq_ignore_ascii_case(wanted))
                .cloned()
        };
        let is_data_column = |n: &str| {
            PRICE_NAMES
                .iter()
                .chain(&["volume"])
                .any(|w| n.trim().eq_ignore_ascii_case(w))
        };
        let time = TIME_NAMES
            .iter()
            .find_map(|w| find(w))
            .or_else(|| names.first().filter(|n| !is_data_column(n)).cloned());
        let prices = PRICE_NAMES.map(find);
        let mut missing: Vec<String> = Vec::new();
        if time.is_none() {
            missing.push(
                "time (or timestamp, date, datetime, or a first column of timestamps)".to_owned(),
            );
        }
        missing.extend(
            PRICE_NAMES
                .iter()
                .zip(&prices)
                .filter(|(_, p)| p.is_none())
                .map(|(n, _)| (*n).to_owned()),
        );
        match (time, prices) {
            (Some(time), [Some(open), Some(high), Some(low), Some(close)]) => Ok(Columns {
                time,
                prices: [open, high, low, close],
                volume: find("volume"),
            }),
            _ => Err(DataError::MissingColumns {
                path: path.to_path_buf(),
                missing,
                found: names.iter().map(|n| n.to_string()).collect(),
            }),
        }
    }

    /// The file's names of the columns to read: time, prices, then volume if present.
    fn selected(&self) -> impl Iterator<Item = &PlSmallStr> {
        std::iter::once(&self.time)
            .chain(&self.prices)
            .chain(&self.volume)
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

/// The column names of a CSV file, from its header alone; [`DataError::Empty`] for an empty
/// file or one without a header.
pub(crate) fn csv_header(path: &Path) -> Result<Vec<PlSmallStr>, DataError> {
    let bytes = std::fs::metadata(path)
        .map_err(|source| DataError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let empty = || DataError::Empty {
        path: path.to_path_buf(),
    };
    if bytes == 0 {
        return Err(empty());
    }
    let header = csv_options(None, None)
        .with_n_rows(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| DataError::read(path, e))?;
    let names: Vec<PlSmallStr> = header.get_column_names_owned();
    if names.iter().all(|n| n.trim().is_empty()) && names.len() <= 1 {
        return Err(empty());
    }
    Ok(names)
}

/// Reads every row of a CSV file into bars (not yet validated).
fn read_csv(path: &Path) -> Result<Bars, DataError> {
    let empty = || DataError::Empty {
        path: path.to_path_buf(),
    };
    let names = csv_header(path)?;
    let columns = Columns::resolve(path, &names)?;

    // Fast path: polars parses the prices as floats; the time column stays text for our parser.
    let typed: Schema = columns
        .selected()
        .enumerate()
        .map(|(i, name)| {
            (
                name.clone(),
                if i == 0 {
                    DataType::String
                } else {
                    DataType::Float64
                },
            )
        })
        .collect();
    let read = |schema: Schema| {
        csv_options(Some(&columns), Some(schema))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
    };
    let (df, prices_as_text) = match read(typed) {
        Ok(df) => (df, false),
        // A cell polars cannot read as a number (polars does not say which row): read the
        // prices as text and parse them here, to name the row (or to accept what Rust parses).
        Err(typed_error) => {
            let text: Schema = columns
                .selected()
                .map(|n| (n.clone(), DataType::String))
                .collect();
            (
                read(text).map_err(|_| DataError::read(path, typed_error))?,
                true,
            )
        }
    };
    if df.height() == 0 {
        return Err(empty());
    }
    let time = df
        .column(&columns.time)
        .and_then(|c| c.str())
        .map_err(|e| DataError::read(path, e))?;
    let time = parse_text_times(time, |i| i + 1).map_err(|e| e.in_file(path))?;
    let mut price_columns = Vec::with_capacity(5);
    let names_and_ours = columns
        .prices
        .iter()
        .zip(PRICE_NAMES)
        .chain(columns.volume.iter().zip(["volume"]));
    for (name, ours) in names_and_ours {
        let column = df.column(name).map_err(|e| DataError::read(path, e))?;
        let values = if prices_as_text {
            let ca = column.str().map_err(|e| DataError::read(path, e))?;
            parse_text_floats(ca, ours, &time, |i| i + 1).map_err(|e| e.in_file(path))?
        } else {
            let ca = column.f64().map_err(|e| DataError::read(path, e))?;
            floats(ca, ours)
        };
        price_columns.push(values);
    }
    assemble(time, price_columns, |i| i + 1).map_err(|e| e.in_file(path))
}

/// CSV options shared by the header read and the data read.
fn csv_options(columns: Option<&Columns>, schema: Option<Schema>) -> CsvReadOptions {
    csv_read_options(columns.map(|c| c.selected().cloned().collect()), schema)
}

/// CSV options for bars and ticks alike: a header, every column text unless `schema` says
/// otherwise, only the `selected` columns when given.
pub(crate) fn csv_read_options(
    selected: Option<Arc<[PlSmallStr]>>,
    schema: Option<Schema>,
) -> CsvReadOptions {
    let mut options = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(false);
    if let Some(selected) = selected {
        options = options.with_columns(Some(selected));
    }
    if let Some(schema) = schema {
        options = options.with_schema_overwrite(Some(Arc::new(schema)));
    }
    options
}

/// A float column as a vector, nulls as NaN, with the index of the first null.
pub(crate) struct Floats {
    pub(crate) values: Vec<f64>,
    pub(crate) first_missing: Option<(usize, &'static str)>,
    pub(crate) all_missing: bool,
}

pub(crate) fn floats(ca: &Float64Chunked, ours: &'static str) -> Floats {
    let mut values = Vec::with_capacity(ca.len());
    for array in ca.downcast_iter() {
        values.extend_from_slice(array.values());
    }
    let mut first_missing = None;
    if ca.null_count() > 0 {
        for (i, v) in ca.iter().enumerate() {
            if v.is_none() {
                values[i] = f64::NAN;
                first_missing.get_or_insert((i, ours));
            }
        }
    }
    Floats {
        values,
        first_missing,
        all_missing: ca.null_count() == ca.len(),
    }
}

/// Parses a text column of numbers (after polars refused it), naming the first bad row.
pub(crate) fn parse_text_floats(
    ca: &StringChunked,
    ours: &'static str,
    time: &[i64],
    row_of: impl Fn(usize) -> usize,
) -> Result<Floats, DataError> {
    let mut values = Vec::with_capacity(ca.len());
    let mut first_missing = None;
    let mut missing = 0;
    for (i, cell) in ca.iter().enumerate() {
        let value = match cell.map(str::trim) {
            None | Some("") => {
                first_missing.get_or_insert((i, ours));
                missing += 1;
                f64::NAN
            }
            Some(text) => text.parse::<f64>().map_err(|_| DataError::Row {
                path: None,
                row: row_of(i),
                time: Some(super::format_time_short(time[i])),
                problem: RowProblem::NotNumeric {
                    column: ours,
                    text: text.to_owned(),
                },
            })?,
        };
        values.push(value);
    }
    Ok(Floats {
        values,
        first_missing,
        all_missing: missing == ca.len(),
    })
}

/// Parses a text time column: all dates/date-times, or all integer epochs (one unit for the
/// column, from its largest magnitude).
pub(crate) fn parse_text_times(
    ca: &StringChunked,
    row_of: impl Fn(usize) -> usize,
) -> Result<Vec<i64>, DataError> {
    let bad = |i: usize, text: &str, reason: String| DataError::Row {
        path: None,
        row: row_of(i),
        time: None,
        problem: RowProblem::BadTimestamp {
            text: text.to_owned(),
            reason,
        },
    };
    let mut out = Vec::with_capacity(ca.len());
    let mut epoch: Option<bool> = None;
    let mut max_abs = 0u64;
    for (i, cell) in ca.iter().enumerate() {
        let Some(text) = cell.filter(|t| !t.trim().is_empty()) else {
            return Err(DataError::Row {
                path: None,
                row: row_of(i),
                time: None,
                problem: RowProblem::Missing { column: "time" },
            });
        };
        match (parse_stamp(text), epoch) {
            (Err(reason), _) => return Err(bad(i, text, reason)),
            (Ok(Stamp::Calendar { nanos, .. }), None | Some(false)) => {
                epoch = Some(false);
                out.push(nanos);
            }
            (Ok(Stamp::Epoch(value)), None | Some(true)) => {
                epoch = Some(true);
                max_abs = max_abs.max(value.unsigned_abs());
                out.push(value);
            }
            (Ok(Stamp::Calendar { .. }), Some(true)) => {
                return Err(bad(
                    i,
                    text,
                    "a date among integer epoch timestamps; use one format for the column".into(),
                ))
            }
            (Ok(Stamp::Epoch(_)), Some(false)) => {
                return Err(bad(
                    i,
                    text,
                    "an integer among dates; use one format for the column".into(),
                ))
            }
        }
    }
    if epoch == Some(true) {
        epochs_to_nanos(&mut out, EpochUnit::from_magnitude(max_abs)).map_err(|(i, reason)| {
            let text = ca.get(i).unwrap_or_default();
            bad(i, text, reason)
        })?;
    }
    Ok(out)
}

/// Converts epoch values in `unit` to ns in place; on overflow, the index and the reason.
fn epochs_to_nanos(values: &mut [i64], unit: EpochUnit) -> Result<(), (usize, String)> {
    let scale = unit.nanos();
    if scale == 1 {
        return Ok(());
    }
    for (i, v) in values.iter_mut().enumerate() {
        *v = v.checked_mul(scale).ok_or_else(|| {
            (
                i,
                format!(
                    "out of range as epoch {} (supported: 1677-09-21 to 2262-04-11)",
                    unit.name()
                ),
            )
        })?;
    }
    Ok(())
}

/// Bars from parsed columns (prices then optional volume); a missing price or volume cell is an
/// error unless validation finds an earlier bad row. An entirely empty volume column means no
/// volume (NaN).
fn assemble(
    time: Vec<i64>,
    columns: Vec<Floats>,
    row_of: impl Fn(usize) -> usize,
) -> Result<Bars, DataError> {
    let n = time.len();
    let first_missing = columns
        .iter()
        .filter(|c| !(c.all_missing && c.first_missing.is_some_and(|(_, name)| name == "volume")))
        .filter_map(|c| c.first_missing)
        .min_by_key(|&(i, _)| i);
    let mut values = columns.into_iter().map(|c| c.values);
    let mut next = || values.next().unwrap_or_else(|| vec![f64::NAN; n]);
    let bars = Bars {
        time,
        open: next(),
        high: next(),
        low: next(),
        close: next(),
        volume: next(),
    };
    let Some((i, column)) = first_missing else {
        return Ok(bars);
    };
    // Report whichever comes first: the missing cell or a problem in an earlier row.
    let earlier = bars.slice(0..i).validate_rows(&row_of);
    earlier?;
    Err(DataError::Row {
        path: None,
        row: row_of(i),
        time: Some(super::format_time_short(bars.time[i])),
        problem: RowProblem::Missing { column },
    })
}

// ---------------------------------------------------------------------------------------------
// Parquet

/// Name of the row-index column read along with a Parquet file.
pub(crate) const ROW_INDEX: &str = "__strata_row";

/// How a Parquet time column maps to ns, and how to compare it with a bound.
#[derive(Debug, Clone)]
pub(crate) enum ParquetTime {
    /// `Datetime` in a unit of this many ns, with its time zone (values are UTC).
    Datetime(TimeUnit, Option<TimeZone>),
    /// `Date`: days since the epoch.
    Date,
    /// Integers: epoch in a unit decided by magnitude.
    Epoch(EpochUnit),
    /// Text: parsed like CSV, so filtered after reading.
    Text,
}

fn time_unit_nanos(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Nanoseconds => 1,
        TimeUnit::Microseconds => 1_000,
        TimeUnit::Milliseconds => 1_000_000,
    }
}

impl ParquetTime {
    /// ns per stored unit, for the kinds that are stored as numbers.
    pub(crate) fn scale(&self) -> Option<i64> {
        match self {
            ParquetTime::Datetime(unit, _) => Some(time_unit_nanos(*unit)),
            ParquetTime::Date => Some(NANOS_PER_DAY),
            ParquetTime::Epoch(unit) => Some(unit.nanos()),
            ParquetTime::Text => None,
        }
    }

    /// The column and a literal for the stored value `v` to compare it with, in the column's
    /// own type where possible (so Parquet statistics can skip row groups).
    fn operands(&self, column: &str, v: i64) -> (Expr, Expr) {
        match self {
            // A time-zone-aware literal cannot even be displayed without polars' `timezones`
            // feature (it panics), so zoned columns are compared on their UTC integers.
            ParquetTime::Datetime(_, Some(_)) => (col(column).to_physical(), lit(v)),
            ParquetTime::Datetime(unit, None) => {
                (col(column), lit(Scalar::new_datetime(v, *unit, None)))
            }
            ParquetTime::Date => {
                let days = i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX });
                (col(column), lit(Scalar::new_date(days)))
            }
            ParquetTime::Epoch(_) | ParquetTime::Text => (col(column), lit(v)),
        }
    }

    /// The predicate `start <= time <= end` on the stored values, if it can be pushed down.
    pub(crate) fn predicate(
        &self,
        column: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Option<Expr> {
        let scale = self.scale()?;
        let lower = start.map(|s| {
            let (column, bound) = self.operands(column, div_ceil(s, scale));
            column.gt_eq(bound)
        });
        let upper = end.map(|e| {
            let (column, bound) = self.operands(column, e.div_euclid(scale));
            column.lt_eq(bound)
        });
        match (lower, upper) {
            (Some(l), Some(u)) => Some(l.and(u)),
            (l, u) => l.or(u),
        }
    }
}

fn div_ceil(a: i64, b: i64) -> i64 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 {
        q
    } else {
        q + 1
    }
}

/// Runs a Parquet read, turning a panic into [`DataError::Malformed`]. polars 0.55 panics on
/// some malformed Parquet files (an assertion on a bitmap, a footer it misreads: found by
/// fuzzing, see `fuzz/crashes/`); a file comes from a user, so it is an error naming the file,
/// never a lost api thread or worker.
pub(crate) fn unpanicked<T>(
    path: &Path,
    read: impl FnOnce() -> Result<T, DataError>,
) -> Result<T, DataError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Err(DataError::Malformed {
            path: path.to_path_buf(),
            line: None,
            reason: "not a readable Parquet file (its structure is damaged)".into(),
        })
    })
}

/// A lazy scan of one Parquet file, optionally numbering its rows from 0 in `row_index`.
pub(crate) fn scan_parquet(path: &Path, row_index: Option<&str>) -> Result<LazyFrame, DataError> {
    let source = PlRefPath::try_from_path(path).map_err(|e| DataError::read(path, e))?;
    let args = ScanArgsParquet {
        glob: false,
        row_index: row_index.map(|name| RowIndex {
            name: name.into(),
            offset: 0,
        }),
        ..Default::default()
    };
    LazyFrame::scan_parquet(source, args).map_err(|e| DataError::read(path, e))
}

/// A Parquet scan ready to collect: the columns found, how to read the time, the query.
struct ParquetPlan {
    columns: Columns,
    kind: ParquetTime,
    /// The scan with a row index, the time filter (if pushed down) and the selected columns.
    query: LazyFrame,
    /// True when the time filter is part of `query`.
    filtered: bool,
}

/// Finds the columns of a Parquet file and builds the scan, pushing the time range down where
/// the time column is stored as numbers (Datetime, Date or integers).
fn plan_parquet(path: &Path, options: &LoadOptions) -> Result<ParquetPlan, DataError> {
    std::fs::metadata(path).map_err(|source| DataError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut lf = scan_parquet(path, None)?;
    let schema = lf.collect_schema().map_err(|e| DataError::read(path, e))?;
    let names: Vec<PlSmallStr> = schema.iter_names_cloned().collect();
    let columns = Columns::resolve(path, &names)?;

    let type_error = |name: &PlSmallStr, dtype: &DataType, expected| DataError::ColumnType {
        path: path.to_path_buf(),
        column: name.to_string(),
        dtype: dtype.to_string(),
        expected,
    };
    let time_dtype = schema.get(&columns.time).cloned().unwrap_or(DataType::Null);
    let kind = match &time_dtype {
        DataType::Datetime(unit, tz) => ParquetTime::Datetime(*unit, tz.clone()),
        DataType::Date => ParquetTime::Date,
        DataType::String => ParquetTime::Text,
        dtype if dtype.is_integer() => {
            ParquetTime::Epoch(parquet_epoch_unit(path, &lf, &columns.time)?)
        }
        dtype => {
            return Err(type_error(
                &columns.time,
                dtype,
                "timestamps (Datetime, Date, integers or text)",
            ))
        }
    };
    let mut select = vec![col(ROW_INDEX), col(columns.time.clone())];
    for name in columns.prices.iter().chain(&columns.volume) {
        let dtype = schema.get(name).cloned().unwrap_or(DataType::Null);
        select.push(match dtype {
            DataType::String => col(name.clone()),
            dtype if dtype.is_primitive_numeric() => col(name.clone()).cast(DataType::Float64),
            dtype => return Err(type_error(name, &dtype, "numbers")),
        });
    }

    // The row index is taken before the filter, so rows keep their numbers in the file.
    // A fresh scan: the row index must be part of the scan (not a node above it, which would
    // stop the filter from reaching the reader).
    let mut query = scan_parquet(path, Some(ROW_INDEX))?;
    let predicate = kind.predicate(&columns.time, options.start, options.end);
    let filtered = predicate.is_some();
    if let Some(predicate) = predicate {
        query = query.filter(predicate);
    }
    Ok(ParquetPlan {
        columns,
        kind,
        query: query.select(select),
        filtered,
    })
}

/// Scans a Parquet file with the time range pushed down, validates what it read, and filters.
fn read_parquet(path: &Path, options: &LoadOptions) -> Result<Bars, DataError> {
    let ParquetPlan {
        columns,
        kind,
        query,
        filtered,
    } = plan_parquet(path, options)?;
    let df = query.collect().map_err(|e| DataError::read(path, e))?;
    if df.height() == 0 {
        if !filtered {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            });
        }
        let (first, last) = parquet_coverage(path, &columns.time, &kind)?;
        return Err(DataError::NoBarsInRange {
            start: options.start,
            end: options.end,
            first,
            last,
        });
    }

    let read_error = |e| DataError::read(path, e);
    let rows: Vec<usize> = df
        .column(ROW_INDEX)
        .map_err(read_error)?
        .idx()
        .map_err(read_error)?
        .into_no_null_iter()
        .map(|r| r as usize + 1)
        .collect();
    let row_of = |i: usize| rows[i];
    let time_column = df.column(&columns.time).map_err(read_error)?;
    let time = parquet_times(path, time_column, &kind, &row_of).map_err(|e| e.in_file(path))?;
    let mut price_columns = Vec::with_capacity(5);
    for (name, ours) in columns
        .prices
        .iter()
        .zip(PRICE_NAMES)
        .chain(columns.volume.iter().zip(["volume"]))
    {
        let column = df.column(name).map_err(read_error)?;
        let values = match column.dtype() {
            DataType::String => {
                let ca = column.str().map_err(read_error)?;
                parse_text_floats(ca, ours, &time, row_of).map_err(|e| e.in_file(path))?
            }
            _ => floats(column.f64().map_err(read_error)?, ours),
        };
        price_columns.push(values);
    }
    let bars = assemble(time, price_columns, row_of).map_err(|e| e.in_file(path))?;
    bars.validate_rows(row_of).map_err(|e| e.in_file(path))?;
    if filtered {
        Ok(bars)
    } else {
        keep_range(bars, options)
    }
}

/// The epoch unit of an integer time column, from its largest magnitude.
pub(crate) fn parquet_epoch_unit(
    path: &Path,
    lf: &LazyFrame,
    time: &str,
) -> Result<EpochUnit, DataError> {
    let df = lf
        .clone()
        .select([
            col(time).cast(DataType::Int64).min().alias("min"),
            col(time).cast(DataType::Int64).max().alias("max"),
        ])
        .collect()
        .map_err(|e| DataError::read(path, e))?;
    let value = |name: &str| {
        df.column(name)
            .ok()
            .and_then(|c| c.i64().ok()?.get(0))
            .map_or(0, i64::unsigned_abs)
    };
    Ok(EpochUnit::from_magnitude(value("min").max(value("max"))))
}

/// First and last time of the whole file, for the message when a filter leaves nothing.
pub(crate) fn parquet_coverage(
    path: &Path,
    time: &str,
    kind: &ParquetTime,
) -> Result<(Option<i64>, Option<i64>), DataError> {
    let Some(scale) = kind.scale() else {
        return Ok((None, None));
    };
    let df = scan_parquet(path, None)?
        .select([
            col(time).min().alias("first"),
            col(time).max().alias("last"),
        ])
        .collect()
        .map_err(|e| DataError::read(path, e))?;
    let value = |name: &str| {
        let c = df
            .column(name)
            .ok()?
            .to_physical_repr()
            .cast(&DataType::Int64)
            .ok()?;
        c.i64().ok()?.get(0).and_then(|v| v.checked_mul(scale))
    };
    Ok((value("first"), value("last")))
}

/// A Parquet time column as ns since the epoch.
pub(crate) fn parquet_times(
    path: &Path,
    column: &Column,
    kind: &ParquetTime,
    row_of: &impl Fn(usize) -> usize,
) -> Result<Vec<i64>, DataError> {
    let missing = |i: usize| DataError::Row {
        path: None,
        row: row_of(i),
        time: None,
        problem: RowProblem::Missing { column: "time" },
    };
    if let ParquetTime::Text = kind {
        let ca = column.str().map_err(|e| DataError::read(path, e))?;
        return parse_text_times(ca, row_of);
    }
    let physical = column
        .to_physical_repr()
        .cast(&DataType::Int64)
        .map_err(|e| DataError::read(path, e))?;
    let ca = physical.i64().map_err(|e| DataError::read(path, e))?;
    if ca.null_count() > 0 {
        let i = ca.iter().position(|v| v.is_none()).unwrap_or(0);
        return Err(missing(i));
    }
    let mut out = Vec::with_capacity(ca.len());
    for array in ca.downcast_iter() {
        out.extend_from_slice(array.values());
    }
    let scale = kind.scale().unwrap_or(1);
    for (i, v) in out.iter_mut().enumerate() {
        *v = v.checked_mul(scale).ok_or_else(|| DataError::Row {
            path: None,
            row: row_of(i),
            time: None,
            problem: RowProblem::BadTimestamp {
                text: v.to_string(),
                reason: "out of range (supported: 1677-09-21 to 2262-04-11)".to_owned(),
            },
        })?;
    }
    Ok(out)
}

impl Bars {
    /// Writes the bars to a Parquet file: `time` as `Datetime(ns, UTC)`, then open, high, low,
    /// close and volume as `f64`.
    pub fn write_parquet(&self, path: &Path) -> Result<(), DataError> {
        let write_error = |source| DataError::Polars {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let time = Int64Chunked::from_slice("time".into(), &self.time)
            .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
            .into_column();
        let float = |name: &str, values: &[f64]| {
            Float64Chunked::from_slice(name.into(), values).into_column()
        };
        let columns = vec![
            time,
            float("open", &self.open),
            float("high", &self.high),
            float("low", &self.low),
            float("close", &self.close),
            float("volume", &self.volume),
        ];
        let mut df = DataFrame::new(self.len(), columns).map_err(write_error)?;
        let file = std::fs::File::create(path).map_err(|source| DataError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })?;
        ParquetWriter::new(file)
            .finish(&mut df)
            .map_err(write_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
