//! What can go wrong loading, validating, filtering and resampling bars, and reading and writing
//! trades and book events.

use std::fmt;
use std::path::{Path, PathBuf};

use super::limits::{Count, Measure};
use super::time::{format_duration, format_time_short, Timeframe};

/// Why bars could not be loaded or used; every message says what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// polars could not read or write the file (malformed CSV, corrupt Parquet, ...).
    #[error("cannot {action} {}: {source}", .path.display())]
    Polars {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// polars' own message.
        source: polars::prelude::PolarsError,
    },

    /// The file's extension is neither CSV nor Parquet.
    #[error("{}: unsupported file type; expected a .csv, .parquet or .pq file", .path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },

    /// The file holds (or declares) more than a [`Limits`](super::Limits) allows; found
    /// before anything was decoded.
    #[error("{}: too large: {found} {what}; the limit is {limit}", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What was counted.
        what: Measure,
        /// The most allowed.
        limit: u64,
        /// What the file has, or where counting stopped.
        found: Count,
    },

    /// The file cannot be read as what it claims to be (UTF-16 text, a quote never closed, a
    /// Parquet file without its footer).
    #[error("{}: {}{reason}", .path.display(), line_prefix(.line))]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line of a text file where the problem is, when there is one.
        line: Option<u64>,
        /// What is wrong.
        reason: String,
    },

    /// The file has no data rows.
    #[error("{}: the file is empty (no data rows)", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },

    /// Required columns are absent.
    #[error(
        "{}: missing column{} {}; found: {}",
        .path.display(),
        if .missing.len() == 1 { "" } else { "s" },
        .missing.join(", "),
        quoted_list(.found)
    )]
    MissingColumns {
        /// The file.
        path: PathBuf,
        /// What is missing, in our names (`time`, `open`, ...).
        missing: Vec<String>,
        /// Every column the file has, as spelled there.
        found: Vec<String>,
    },

    /// A column has a type that cannot hold what it should (a Parquet price column of booleans).
    #[error("{}: column \"{column}\" has type {dtype}; expected {expected}", .path.display())]
    ColumnType {
        /// The file.
        path: PathBuf,
        /// The column as spelled in the file.
        column: String,
        /// Its type, as polars names it.
        dtype: String,
        /// What it should hold.
        expected: &'static str,
    },

    /// One row is wrong; `row` is the 1-based data row of the file (the header is not counted).
    #[error("{}row {row}{}: {problem}", path_prefix(.path), time_suffix(.time))]
    Row {
        /// The file, when the bars came from one.
        path: Option<PathBuf>,
        /// 1-based data row (for bars built in memory: 1-based index).
        row: usize,
        /// The row's timestamp, for the reader to find it.
        time: Option<String>,
        /// What is wrong with it.
        problem: RowProblem,
    },

    /// The columns of a [`Bars`](super::Bars) have different lengths.
    #[error("bars have columns of different lengths: {lengths}")]
    RaggedColumns {
        /// `time 10, open 10, high 9, ...`
        lengths: String,
    },

    /// Filtering by `start`/`end` left no bars.
    #[error("no bars {}; the data covers {}", describe_range(.start, .end), describe_coverage(.first, .last))]
    NoBarsInRange {
        /// Inclusive lower bound, ns.
        start: Option<i64>,
        /// Inclusive upper bound, ns.
        end: Option<i64>,
        /// First bar of the unfiltered data, if any.
        first: Option<i64>,
        /// Last bar of the unfiltered data, if any.
        last: Option<i64>,
    },

    /// Filtering trades and book events by `start`/`end` left none.
    #[error("no events {}; the data covers {}", describe_range(.start, .end), describe_coverage(.first, .last))]
    NoEventsInRange {
        /// Inclusive lower bound, ns.
        start: Option<i64>,
        /// Inclusive upper bound, ns.
        end: Option<i64>,
        /// First event of the unfiltered data, if known.
        first: Option<i64>,
        /// Last event of the unfiltered data, if known.
        last: Option<i64>,
    },

    /// Events that the file format cannot express (a book clear without the snapshot rows that
    /// must follow it at the same time).
    #[error("cannot write {}: event {event}: {reason}", .path.display())]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// 1-based index of the event.
        event: usize,
        /// What the format cannot express.
        reason: &'static str,
    },

    /// A `start`/`end` text that is not a date or date-time.
    #[error("invalid time \"{text}\": {reason}")]
    InvalidTime {
        /// What was given.
        text: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A timeframe text that is not `<count><m|h|d|w>`.
    #[error("invalid timeframe \"{text}\": {reason}")]
    InvalidTimeframe {
        /// What was given.
        text: String,
        /// Why it was rejected.
        reason: String,
    },

    /// Resampling was asked for bars finer than the data's.
    #[error(
        "timeframe {timeframe} is finer than the data's spacing of {}; resampling can only make bars coarser",
        spacing_text(.spacing)
    )]
    TimeframeTooFine {
        /// The requested timeframe.
        timeframe: Timeframe,
        /// The data's spacing, ns.
        spacing: i64,
    },

    /// Resampling was asked for a timeframe that does not fit a whole number of the data's bars.
    #[error(
        "timeframe {timeframe} is not a whole multiple of the data's spacing of {}",
        spacing_text(.spacing)
    )]
    TimeframeNotMultiple {
        /// The requested timeframe.
        timeframe: Timeframe,
        /// The data's spacing, ns.
        spacing: i64,
    },
}

/// What is wrong with one row of bars, or of trades and book events.
#[derive(Debug, Clone, PartialEq)]
pub enum RowProblem {
    /// An empty cell where a value is required.
    Missing {
        /// Our column name (`time`, `open`, ..., `volume`).
        column: &'static str,
    },
    /// A cell that is not a number.
    NotNumeric {
        /// Our column name.
        column: &'static str,
        /// The cell's text.
        text: String,
    },
    /// A timestamp that cannot be parsed.
    BadTimestamp {
        /// The cell's text.
        text: String,
        /// Why.
        reason: String,
    },
    /// A price that is NaN or infinite.
    NotFinite {
        /// Our column name.
        column: &'static str,
        /// The value.
        value: f64,
    },
    /// A price that is zero or negative.
    NotPositive {
        /// Our column name.
        column: &'static str,
        /// The value.
        value: f64,
    },
    /// `high < max(open, close)`.
    HighBelow {
        /// The high.
        high: f64,
        /// `max(open, close)`.
        max: f64,
    },
    /// `low > min(open, close)`.
    LowAbove {
        /// The low.
        low: f64,
        /// `min(open, close)`.
        min: f64,
    },
    /// A volume that is NaN or infinite (while other rows have volumes).
    VolumeNotFinite {
        /// The value.
        value: f64,
    },
    /// A negative volume.
    VolumeNegative {
        /// The value.
        value: f64,
    },
    /// The same timestamp as the row before.
    Duplicate {
        /// The row it repeats.
        previous_row: usize,
    },
    /// A timestamp earlier than the row before.
    Unsorted {
        /// The row before.
        previous_row: usize,
        /// Its timestamp, ns.
        previous_time: i64,
    },
    /// A negative trade or level size.
    NegativeSize {
        /// The value.
        value: f64,
    },
    /// A trade of size 0 (a level of size 0 is a removal, a trade of nothing is an error).
    ZeroTradeSize,
    /// A `type` cell that is not `trade`, `update` or `snapshot`.
    UnknownEventType {
        /// The cell's text.
        text: String,
    },
    /// A book row (`update` or `snapshot`) whose side is not `bid` or `ask`.
    BookSide {
        /// `update` or `snapshot`.
        kind: &'static str,
        /// The cell's text (empty when missing).
        text: String,
    },
    /// A trade whose side is not `buy`, `sell` or empty.
    TradeSide {
        /// The cell's text.
        text: String,
    },
    /// A book row that opens one price level more than a side of the book may hold
    /// ([`MAX_BOOK_LEVELS`](crate::limits::MAX_BOOK_LEVELS)).
    TooManyLevels {
        /// `bid` or `ask`.
        side: &'static str,
    },
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowProblem::Missing { column } => write!(f, "{column} is missing"),
            RowProblem::NotNumeric { column, text } => write!(f, "{column} \"{text}\" is not a number"),
            RowProblem::BadTimestamp { text, reason } => {
                write!(f, "cannot parse timestamp \"{text}\": {reason}")
            }
            RowProblem::NotFinite { column, value } => write!(f, "{column} is not finite ({value})"),
            RowProblem::NotPositive { column, value } => write!(f, "{column} {value} is not positive"),
            RowProblem::HighBelow { high, max } => {
                write!(f, "high {high} is below max(open, close) = {max}")
            }
            RowProblem::LowAbove { low, min } => write!(f, "low {low} is above min(open, close) = {min}"),
            RowProblem::VolumeNotFinite { value } => write!(f, "volume is not finite ({value})"),
            RowProblem::VolumeNegative { value } => write!(f, "volume {value} is negative"),
            RowProblem::Duplicate { previous_row } => {
                write!(f, "duplicate timestamp (same as row {previous_row})")
            }
            RowProblem::Unsorted { previous_row, previous_time } => write!(
                f,
                "timestamp is earlier than row {previous_row} ({}); rows must be sorted by time, oldest first",
                format_time_short(*previous_time)
            ),
            RowProblem::NegativeSize { value } => write!(f, "size {value} is negative"),
            RowProblem::ZeroTradeSize => write!(f, "trade size is 0; a trade must have a positive size"),
            RowProblem::UnknownEventType { text } => {
                write!(f, "type \"{text}\" is not trade, update or snapshot")
            }
            RowProblem::BookSide { kind, text } if text.trim().is_empty() => {
                write!(f, "side is missing; a book row ({kind}) needs bid or ask")
            }
            RowProblem::BookSide { kind, text } => {
                write!(f, "side \"{text}\" of a book row ({kind}) is not bid or ask")
            }
            RowProblem::TradeSide { text } => {
                write!(f, "side \"{text}\" of a trade is not buy, sell or empty")
            }
            RowProblem::TooManyLevels { side } => write!(
                f,
                "this {side} level would be price level {} of the {side} side; a book holds at most {}",
                crate::limits::MAX_BOOK_LEVELS + 1,
                crate::limits::MAX_BOOK_LEVELS
            ),
        }
    }
}

impl DataError {
    /// Attaches the file to a row error (validation of in-memory bars does not know it).
    pub(crate) fn in_file(self, file: &Path) -> DataError {
        match self {
            DataError::Row {
                path: None,
                row,
                time,
                problem,
            } => DataError::Row {
                path: Some(file.to_path_buf()),
                row,
                time,
                problem,
            },
            other => other,
        }
    }

    /// polars failed reading `path`.
    pub(crate) fn read(path: &Path, source: polars::prelude::PolarsError) -> DataError {
        DataError::Polars {
            action: "read",
            path: path.to_path_buf(),
            source,
        }
    }
}

fn path_prefix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

fn line_prefix(line: &Option<u64>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

fn time_suffix(time: &Option<String>) -> String {
    time.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
}

fn quoted_list(names: &[String]) -> String {
    if names.is_empty() {
        return "no columns".to_owned();
    }
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An inclusive end bound that is the last nanosecond of a day reads as that day.
fn describe_end(end: i64) -> String {
    const DAY: i64 = 86_400_000_000_000;
    if end.checked_add(1).is_some_and(|e| e.rem_euclid(DAY) == 0) {
        format_time_short(end + 1 - DAY)
    } else {
        format_time_short(end)
    }
}

fn describe_range(start: &Option<i64>, end: &Option<i64>) -> String {
    match (*start, *end) {
        (Some(s), Some(e)) => format!("between {} and {}", format_time_short(s), describe_end(e)),
        (Some(s), None) => format!("from {} on", format_time_short(s)),
        (None, Some(e)) => format!("up to {}", describe_end(e)),
        (None, None) => "at all".to_owned(),
    }
}

fn spacing_text(spacing: &i64) -> String {
    format_duration(*spacing)
}

fn describe_coverage(first: &Option<i64>, last: &Option<i64>) -> String {
    match (*first, *last) {
        (Some(f), Some(l)) => format!("{} to {}", format_time_short(f), format_time_short(l)),
        _ => "no rows".to_owned(),
    }
}
