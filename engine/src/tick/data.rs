//! Reading trades and book events from CSV or Parquet (the layout is in the [module
//! doc](super)), and writing them back in the same layout.
//!
//! Columns are found by name, in any case: `time` (or `timestamp`, `ts`, `datetime`, `date`),
//! `type` (or `event`, `kind`), `side` (or `aggressor`), `price`, and `size` (or `qty`,
//! `quantity`, `amount`, `volume`). Times are read as for bars: dates and RFC 3339 date-times,
//! integer epochs (unit by magnitude) and, in Parquet, `Datetime` of any unit and `Date`.
//!
//! CSV files are read whole and validated, so row numbers are the file's, then filtered to the
//! time range. Parquet files are scanned with the time range pushed down into the reader and a
//! row index read alongside, so errors still name the file's rows.
//!
//! Speed matters (files of tens of millions of events): polars parses the numbers on all cores,
//! and date-time texts are parsed in parallel parts; `type` and `side` are mapped to one-byte
//! codes straight from polars' string columns, with no allocation per row; the events are built
//! in one pass into vectors sized up front. Writing formats CSV rows on all cores. Timings are
//! printed by the ignored test `ten_million_events_load_fast` in `data/tests.rs`.

use std::io::Write;
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;

use super::book::{Book, BookSide};
use super::{Aggressor, EventKind, TickData};
use crate::data::write::{self as file, FileFormat};
use crate::data::{
    csv_header, csv_read_options, floats, format_time_short, parquet_coverage, parquet_epoch_unit,
    parquet_times, parse_text_floats, parse_text_times, scan_parquet, unpanicked, DataError,
    Floats, LoadOptions, ParquetTime, Rfc3339, RowProblem, ROW_INDEX,
};
use crate::limits::MAX_BOOK_LEVELS;

/// Reads trades and book events from a `.csv` or `.parquet`/`.pq` file (columns in the module
/// doc), validates every row and keeps `options.start..=options.end` (`options.timeframe` is
/// ignored: the bars are cut by the simulator).
///
/// A range that starts after the book was built opens with the book as it stood at `start`:
/// the book events before it are replayed and replaced by one snapshot at `start`.
pub fn load(path: &Path, options: &LoadOptions) -> Result<TickData, DataError> {
    let data = match FileFormat::of(path)? {
        FileFormat::Csv => read_csv(path)?,
        // From the beginning: the book at `start` is built from the events before it.
        FileFormat::Parquet => unpanicked(path, || {
            read_parquet(
                path,
                &LoadOptions {
                    start: None,
                    ..options.clone()
                },
            )
        })?,
    };
    keep_range(data, options)
}

/// Reads trades and book events as [`load`] does, after
/// [`check_file`](crate::data::check_file) has found the file within `limits` (rows, columns,
/// bytes, Parquet metadata), so a file declaring more than it may is refused before it is
/// decoded.
pub fn load_limited(
    path: &Path,
    options: &LoadOptions,
    limits: &crate::data::Limits,
) -> Result<TickData, DataError> {
    crate::data::check_file(path, limits)?;
    load(path, options)
}

// ---------------------------------------------------------------------------------------------
// Columns

/// Names of the time column, in order of preference, in any case.
const TIME_NAMES: [&str; 5] = ["time", "timestamp", "ts", "datetime", "date"];
/// Names of the event type column.
const TYPE_NAMES: [&str; 3] = ["type", "event", "kind"];
/// Names of the side column.
const SIDE_NAMES: [&str; 2] = ["side", "aggressor"];
/// Names of the price column.
const PRICE_NAMES: [&str; 1] = ["price"];
/// Names of the size column.
const SIZE_NAMES: [&str; 5] = ["size", "qty", "quantity", "amount", "volume"];

/// Which of the file's columns hold what.
#[derive(Debug)]
struct Columns {
    time: PlSmallStr,
    kind: Option<PlSmallStr>,
    side: Option<PlSmallStr>,
    price: PlSmallStr,
    size: PlSmallStr,
}

impl Columns {
    fn resolve(path: &Path, names: &[PlSmallStr]) -> Result<Columns, DataError> {
        let find = |aliases: &[&str]| {
            aliases.iter().find_map(|alias| {
                names
                    .iter()
                    .find(|n| n.trim().eq_ignore_ascii_case(alias))
                    .cloned()
            })
        };
        let (time, price, size) = (find(&TIME_NAMES), find(&PRICE_NAMES), find(&SIZE_NAMES));
        match (time, price, size) {
            (Some(time), Some(price), Some(size)) => Ok(Columns {
                time,
                kind: find(&TYPE_NAMES),
                side: find(&SIDE_NAMES),
                price,
                size,
            }),
            (time, price, size) => {
                let missing = [
                    (time.is_none(), "time (or timestamp, ts, datetime, date)"),
                    (price.is_none(), "price"),
                    (size.is_none(), "size (or qty, quantity, amount, volume)"),
                ];
                Err(DataError::MissingColumns {
                    path: path.to_path_buf(),
                    missing: missing
                        .iter()
                        .filter(|(absent, _)| *absent)
                        .map(|(_, name)| (*name).to_owned())
                        .collect(),
                    found: names.iter().map(|n| n.to_string()).collect(),
                })
            }
        }
    }

    /// The file's names of the columns to read.
    fn selected(&self) -> impl Iterator<Item = &PlSmallStr> {
        [&self.time]
            .into_iter()
            .chain(&self.kind)
            .chain(&self.side)
            .chain([&self.price, &self.size])
    }
}

/// What a `type` cell says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowType {
    Trade,
    Update,
    Snapshot,
    /// Empty or null.
    Missing,
    /// Anything else (the text is looked up again for the error message).
    Unknown,
}

impl RowType {
    fn parse(cell: Option<&str>) -> RowType {
        match cell {
            Some("trade") => RowType::Trade,
            Some("update") => RowType::Update,
            Some("snapshot") => RowType::Snapshot,
            None => RowType::Missing,
            // Other spellings (`Trade`, ` update `) are rare: compared only when the exact
            // match fails.
            Some(text) => {
                let text = text.trim();
                if text.eq_ignore_ascii_case("trade") {
                    RowType::Trade
                } else if text.eq_ignore_ascii_case("update") {
                    RowType::Update
                } else if text.eq_ignore_ascii_case("snapshot") {
                    RowType::Snapshot
                } else if text.is_empty() {
                    RowType::Missing
                } else {
                    RowType::Unknown
                }
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            RowType::Trade => "trade",
            RowType::Update => "update",
            RowType::Snapshot => "snapshot",
            RowType::Missing | RowType::Unknown => "",
        }
    }
}

/// What a `side` cell says; whether it fits the row's type is checked with the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowSide {
    Buy,
    Sell,
    Bid,
    Ask,
    /// Empty, null, or no side column.
    Empty,
    Unknown,
}

impl RowSide {
    fn parse(cell: Option<&str>) -> RowSide {
        match cell {
            Some("buy") => RowSide::Buy,
            Some("sell") => RowSide::Sell,
            Some("bid") => RowSide::Bid,
            Some("ask") => RowSide::Ask,
            None | Some("") => RowSide::Empty,
            Some(text) => {
                let text = text.trim();
                let is = |name: &str| text.eq_ignore_ascii_case(name);
                if is("buy") {
                    RowSide::Buy
                } else if is("sell") {
                    RowSide::Sell
                } else if is("bid") {
                    RowSide::Bid
                } else if is("ask") {
                    RowSide::Ask
                } else if text.is_empty() {
                    RowSide::Empty
                } else {
                    RowSide::Unknown
                }
            }
        }
    }
}

/// A text column mapped cell by cell; an absent column is `absent` everywhere.
fn codes<T: Copy>(
    column: Option<&StringChunked>,
    n: usize,
    absent: T,
    parse: impl Fn(Option<&str>) -> T,
) -> Vec<T> {
    match column {
        None => vec![absent; n],
        Some(ca) => {
            let mut out = Vec::with_capacity(n);
            out.extend(ca.iter().map(parse));
            out
        }
    }
}

/// The columns of a file, parsed but not yet checked.
struct Rows<'a> {
    time: Vec<i64>,
    kind: Vec<RowType>,
    side: Vec<RowSide>,
    price: Floats,
    size: Floats,
    /// The text columns, to quote a bad cell.
    kind_text: Option<&'a StringChunked>,
    side_text: Option<&'a StringChunked>,
}

impl<'a> Rows<'a> {
    /// The columns read, with the `type` and `side` texts turned into codes.
    fn new(
        time: Vec<i64>,
        price: Floats,
        size: Floats,
        kind_text: Option<&'a StringChunked>,
        side_text: Option<&'a StringChunked>,
    ) -> Rows<'a> {
        let (kind, side) = rayon::join(
            || kind_codes(kind_text, time.len()),
            || codes(side_text, time.len(), RowSide::Empty, RowSide::parse),
        );
        Rows {
            time,
            kind,
            side,
            price,
            size,
            kind_text,
            side_text,
        }
    }
}

/// Checks every row and builds the events, a `Clear` before each snapshot run.
fn assemble(rows: Rows<'_>, row_of: impl Fn(usize) -> usize) -> Result<TickData, DataError> {
    let n = rows.time.len();
    // Re-slicing to `n` lets the compiler drop the bounds checks in the loop.
    let (time, kind, side, price, size) = (
        &rows.time[..n],
        &rows.kind[..n],
        &rows.side[..n],
        &rows.price.values[..n],
        &rows.size.values[..n],
    );
    // Rows are reported in order, so only the first missing number matters.
    let missing = [rows.price.first_missing, rows.size.first_missing]
        .into_iter()
        .flatten()
        .min_by_key(|&(i, _)| i);
    let stop = missing.map_or(n, |(i, _)| i);

    let clears = (0..n).filter(|&i| starts_snapshot(time, kind, i)).count();
    let capacity = n + clears;
    let mut out = TickData {
        time: Vec::with_capacity(capacity),
        kind: Vec::with_capacity(capacity),
        price: Vec::with_capacity(capacity),
        size: Vec::with_capacity(capacity),
    };
    let mut book = Book::new();
    for i in 0..n {
        let (t, p, s) = (time[i], price[i], size[i]);
        let event = match (kind[i], side[i]) {
            (RowType::Trade, RowSide::Buy) => Some(EventKind::Trade(Some(Aggressor::Buy))),
            (RowType::Trade, RowSide::Sell) => Some(EventKind::Trade(Some(Aggressor::Sell))),
            (RowType::Trade, RowSide::Empty) => Some(EventKind::Trade(None)),
            (RowType::Update | RowType::Snapshot, RowSide::Bid) => Some(EventKind::Bid),
            (RowType::Update | RowType::Snapshot, RowSide::Ask) => Some(EventKind::Ask),
            _ => None,
        };
        // One cheap test per row; the precise problem is worked out only for a bad row.
        let ok = i != stop
            && (i == 0 || t >= time[i - 1])
            && p.is_finite()
            && p > 0.0
            && s.is_finite()
            && (s > 0.0 || (s == 0.0 && kind[i] != RowType::Trade));
        let Some(event) = event.filter(|_| ok) else {
            let problem = row_problem(&rows, missing, i, &row_of);
            return Err(DataError::Row {
                path: None,
                row: row_of(i),
                time: Some(format_time_short(t)),
                problem,
            });
        };
        if starts_snapshot(time, kind, i) {
            out.push(t, EventKind::Clear, 0.0, 0.0);
            book.clear();
        }
        if let EventKind::Bid | EventKind::Ask = event {
            // The book is replayed as the simulation will replay it, so a feed that opens more
            // levels than a book holds is refused here, at its row, not in every run.
            book.apply(event, p, s);
            let side = if event == EventKind::Bid {
                BookSide::Bid
            } else {
                BookSide::Ask
            };
            if book.levels(side).len() > MAX_BOOK_LEVELS {
                return Err(DataError::Row {
                    path: None,
                    row: row_of(i),
                    time: Some(format_time_short(t)),
                    problem: RowProblem::TooManyLevels {
                        side: if side == BookSide::Bid { "bid" } else { "ask" },
                    },
                });
            }
        }
        out.push(t, event, p, s);
    }
    Ok(out)
}

/// True when row `i` is a snapshot row that does not continue the snapshot of the row before
/// (a snapshot row at another time, or after a row of another type, starts a new snapshot).
fn starts_snapshot(time: &[i64], kind: &[RowType], i: usize) -> bool {
    kind[i] == RowType::Snapshot
        && (i == 0 || kind[i - 1] != RowType::Snapshot || time[i - 1] != time[i])
}

/// The first problem of bad row `i`, in reading order: time, type, side, price, size.
#[cold]
fn row_problem(
    rows: &Rows<'_>,
    missing: Option<(usize, &'static str)>,
    i: usize,
    row_of: &impl Fn(usize) -> usize,
) -> RowProblem {
    let text = |column: Option<&StringChunked>| {
        column.and_then(|c| c.get(i)).unwrap_or_default().to_owned()
    };
    if i > 0 && rows.time[i] < rows.time[i - 1] {
        return RowProblem::Unsorted {
            previous_row: row_of(i - 1),
            previous_time: rows.time[i - 1],
        };
    }
    let kind = rows.kind[i];
    match kind {
        RowType::Missing => return RowProblem::Missing { column: "type" },
        RowType::Unknown => {
            return RowProblem::UnknownEventType {
                text: text(rows.kind_text),
            }
        }
        RowType::Trade => {
            if !matches!(rows.side[i], RowSide::Buy | RowSide::Sell | RowSide::Empty) {
                return RowProblem::TradeSide {
                    text: text(rows.side_text),
                };
            }
        }
        RowType::Update | RowType::Snapshot => {
            if !matches!(rows.side[i], RowSide::Bid | RowSide::Ask) {
                return RowProblem::BookSide {
                    kind: kind.name(),
                    text: text(rows.side_text),
                };
            }
        }
    }
    let (price, size) = (rows.price.values[i], rows.size.values[i]);
    let missing_here = missing.filter(|&(at, _)| at == i).map(|(_, column)| column);
    if missing_here == Some("price") {
        return RowProblem::Missing { column: "price" };
    }
    if !price.is_finite() {
        return RowProblem::NotFinite {
            column: "price",
            value: price,
        };
    }
    if price <= 0.0 {
        return RowProblem::NotPositive {
            column: "price",
            value: price,
        };
    }
    if let Some(column) = missing_here {
        return RowProblem::Missing { column };
    }
    if !size.is_finite() {
        return RowProblem::NotFinite {
            column: "size",
            value: size,
        };
    }
    if size < 0.0 {
        return RowProblem::NegativeSize { value: size };
    }
    RowProblem::ZeroTradeSize
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Reads and checks every row of a CSV file.
fn read_csv(path: &Path) -> Result<TickData, DataError> {
    let empty = || DataError::Empty {
        path: path.to_path_buf(),
    };
    let names = csv_header(path)?;
    let columns = Columns::resolve(path, &names)?;

    // Fast path: polars parses price and size as floats; the rest stays text for our parsers.
    let schema = |numbers: DataType| -> Schema {
        columns
            .selected()
            .map(|name| {
                let number = *name == columns.price || *name == columns.size;
                let dtype = if number {
                    numbers.clone()
                } else {
                    DataType::String
                };
                (name.clone(), dtype)
            })
            .collect()
    };
    let read = |schema: Schema| {
        csv_read_options(Some(columns.selected().cloned().collect()), Some(schema))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
    };
    let (df, numbers_as_text) = match read(schema(DataType::Float64)) {
        Ok(df) => (df, false),
        // A cell polars cannot read as a number (polars does not say which row): read the
        // numbers as text and parse them here, to name the row.
        Err(typed_error) => (
            read(schema(DataType::String)).map_err(|_| DataError::read(path, typed_error))?,
            true,
        ),
    };
    if df.height() == 0 {
        return Err(empty());
    }
    let row_of = |i: usize| i + 1;
    let read_error = |e| DataError::read(path, e);
    let text = |name: &PlSmallStr| df.column(name).and_then(|c| c.str()).map_err(read_error);
    let time = parse_times(text(&columns.time)?, row_of).map_err(|e| e.in_file(path))?;
    let number = |name: &PlSmallStr, ours: &'static str| -> Result<Floats, DataError> {
        if numbers_as_text {
            parse_text_floats(text(name)?, ours, &time, row_of).map_err(|e| e.in_file(path))
        } else {
            let column = df.column(name).and_then(|c| c.f64()).map_err(read_error)?;
            Ok(floats(column, ours))
        }
    };
    let (price, size) = (
        number(&columns.price, "price")?,
        number(&columns.size, "size")?,
    );
    let kind_text = columns.kind.as_ref().map(text).transpose()?;
    let side_text = columns.side.as_ref().map(text).transpose()?;
    let rows = Rows::new(time, price, size, kind_text, side_text);
    assemble(rows, row_of).map_err(|e| e.in_file(path))
}

/// Parses a text time column on all cores when it holds dates or date-times: each part is
/// checked on its own, and a column whose parts all start with a date is all dates. Integer
/// epochs (whose unit depends on the whole column) and any error take the sequential path, so
/// units and messages are exactly those of bars.
fn parse_times(ca: &StringChunked, row_of: impl Fn(usize) -> usize) -> Result<Vec<i64>, DataError> {
    const MIN_PART: usize = 1 << 17;
    let n = ca.len();
    let parts = (rayon::current_num_threads() * 4).min(n / MIN_PART);
    if parts < 2 {
        return parse_text_times(ca, row_of);
    }
    let part_len = n.div_ceil(parts);
    let starts: Vec<usize> = (0..n).step_by(part_len).collect();
    let parsed: Option<Vec<Vec<i64>>> = starts
        .into_par_iter()
        .map(|start| {
            let part = ca.slice(start as i64, part_len.min(n - start));
            let starts_with_date = part.iter().next().flatten().is_some_and(|t| !is_epoch(t));
            // Row numbers do not matter here: an error is reported by the sequential path.
            starts_with_date
                .then(|| parse_text_times(&part, |i| i).ok())
                .flatten()
        })
        .collect();
    match parsed {
        Some(parts) => Ok(parts.concat()),
        None => parse_text_times(ca, row_of),
    }
}

/// True for the texts the time parser reads as integer epochs: digits, maybe after a minus.
fn is_epoch(text: &str) -> bool {
    let text = text.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `type` codes; without a `type` column every row is a trade.
fn kind_codes(column: Option<&StringChunked>, n: usize) -> Vec<RowType> {
    codes(column, n, RowType::Trade, RowType::parse)
}

/// The events of `data` with `start <= time <= end`; an error if none are.
fn keep_range(mut data: TickData, options: &LoadOptions) -> Result<TickData, DataError> {
    let (start, end) = (options.start, options.end);
    if start.is_none() && end.is_none() {
        return Ok(data);
    }
    let from = start.map_or(0, |s| data.time.partition_point(|&t| t < s));
    let to = end
        .map_or(data.len(), |e| data.time.partition_point(|&t| t <= e))
        .max(from);
    if from == to {
        return Err(DataError::NoEventsInRange {
            start,
            end,
            first: data.time.first().copied(),
            last: data.time.last().copied(),
        });
    }
    let opening = book_at(&data, from, start.unwrap_or(i64::MIN));
    // In place: a copy of the kept range would briefly double the memory of a large file.
    data.time.truncate(to);
    data.kind.truncate(to);
    data.price.truncate(to);
    data.size.truncate(to);
    data.time.splice(..from, opening.time);
    data.kind.splice(..from, opening.kind);
    data.price.splice(..from, opening.price);
    data.size.splice(..from, opening.size);
    Ok(data)
}

/// The book left by the events before `from`, as a snapshot at `time` (a `Clear` and its
/// levels); nothing when no book was built, or when the event at `from` starts a snapshot of
/// its own.
fn book_at(data: &TickData, from: usize, time: i64) -> TickData {
    let mut snapshot = TickData::default();
    if from == 0 || data.kind.get(from) == Some(&EventKind::Clear) {
        return snapshot;
    }
    let mut book = Book::new();
    for i in 0..from {
        book.apply(data.kind[i], data.price[i], data.size[i]);
    }
    let (bids, asks) = (book.levels(BookSide::Bid), book.levels(BookSide::Ask));
    if bids.is_empty() && asks.is_empty() {
        return snapshot;
    }
    snapshot.push(time, EventKind::Clear, 0.0, 0.0);
    for level in bids {
        snapshot.push(time, EventKind::Bid, level.price, level.size);
    }
    for level in asks {
        snapshot.push(time, EventKind::Ask, level.price, level.size);
    }
    snapshot
}

// ---------------------------------------------------------------------------------------------
// Parquet

/// Scans a Parquet file with the time range pushed down where the time column is stored as
/// numbers, and checks the rows read (numbered as in the file).
fn read_parquet(path: &Path, options: &LoadOptions) -> Result<TickData, DataError> {
    std::fs::metadata(path).map_err(|source| DataError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let read_error = |e| DataError::read(path, e);
    let mut lf = scan_parquet(path, None)?;
    let schema = lf.collect_schema().map_err(read_error)?;
    let names: Vec<PlSmallStr> = schema.iter_names_cloned().collect();
    let columns = Columns::resolve(path, &names)?;
    let dtype_of = |name: &PlSmallStr| schema.get(name).cloned().unwrap_or(DataType::Null);
    let type_error = |name: &PlSmallStr, expected| DataError::ColumnType {
        path: path.to_path_buf(),
        column: name.to_string(),
        dtype: dtype_of(name).to_string(),
        expected,
    };

    let time_kind = match dtype_of(&columns.time) {
        DataType::Datetime(unit, tz) => ParquetTime::Datetime(unit, tz),
        DataType::Date => ParquetTime::Date,
        DataType::String => ParquetTime::Text,
        dtype if dtype.is_integer() => {
            ParquetTime::Epoch(parquet_epoch_unit(path, &lf, &columns.time)?)
        }
        _ => {
            return Err(type_error(
                &columns.time,
                "timestamps (Datetime, Date, integers or text)",
            ))
        }
    };
    let mut select = vec![col(ROW_INDEX), col(columns.time.clone())];
    for name in columns.kind.iter().chain(&columns.side) {
        match dtype_of(name) {
            DataType::String => select.push(col(name.clone())),
            _ => return Err(type_error(name, "text")),
        }
    }
    for name in [&columns.price, &columns.size] {
        select.push(match dtype_of(name) {
            DataType::String => col(name.clone()),
            dtype if dtype.is_primitive_numeric() => col(name.clone()).cast(DataType::Float64),
            _ => return Err(type_error(name, "numbers")),
        });
    }
    // The row index is part of the scan, taken before the filter, so rows keep their numbers
    // in the file and the filter still reaches the reader.
    let mut query = scan_parquet(path, Some(ROW_INDEX))?;
    let predicate = time_kind.predicate(&columns.time, options.start, options.end);
    let filtered = predicate.is_some();
    if let Some(predicate) = predicate {
        query = query.filter(predicate);
    }
    let df = query.select(select).collect().map_err(read_error)?;
    if df.height() == 0 {
        if !filtered {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            });
        }
        let (first, last) = parquet_coverage(path, &columns.time, &time_kind)?;
        return Err(DataError::NoEventsInRange {
            start: options.start,
            end: options.end,
            first,
            last,
        });
    }

    let file_rows: Vec<usize> = df
        .column(ROW_INDEX)
        .and_then(|c| c.idx())
        .map_err(read_error)?
        .into_no_null_iter()
        .map(|r| r as usize + 1)
        .collect();
    let row_of = |i: usize| file_rows[i];
    let column = |name: &PlSmallStr| df.column(name).map_err(read_error);
    let time = parquet_times(path, column(&columns.time)?, &time_kind, &row_of)
        .map_err(|e| e.in_file(path))?;
    let number = |name: &PlSmallStr, ours: &'static str| -> Result<Floats, DataError> {
        let c = column(name)?;
        match c.dtype() {
            DataType::String => {
                let ca = c.str().map_err(read_error)?;
                parse_text_floats(ca, ours, &time, row_of).map_err(|e| e.in_file(path))
            }
            _ => Ok(floats(c.f64().map_err(read_error)?, ours)),
        }
    };
    let (price, size) = (
        number(&columns.price, "price")?,
        number(&columns.size, "size")?,
    );
    let text = |name: &PlSmallStr| column(name)?.str().map_err(read_error);
    let kind_text = columns.kind.as_ref().map(text).transpose()?;
    let side_text = columns.side.as_ref().map(text).transpose()?;
    // `load` keeps the range (and builds the opening book) whether or not it was pushed down.
    let rows = Rows::new(time, price, size, kind_text, side_text);
    assemble(rows, row_of).map_err(|e| e.in_file(path))
}

// ---------------------------------------------------------------------------------------------
// Writing

impl TickData {
    /// Writes the events to a `.csv` or `.parquet`/`.pq` file in the layout [`load`] reads, so
    /// that loading the file gives these events back: each `Clear` and the book events at its
    /// time right after it become `snapshot` rows, other book events `update` rows. Times are
    /// RFC 3339 with the fraction of a second in CSV, `Datetime(ns, UTC)` in Parquet.
    pub fn write(&self, path: &Path) -> Result<(), DataError> {
        let format = FileFormat::of(path)?;
        let rows = self.row_types(path)?;
        match format {
            FileFormat::Csv => self.write_csv(path, &rows),
            FileFormat::Parquet => self.write_parquet(path, &rows),
        }
    }

    /// The row type of each event (`None` for a `Clear`, which is no row), or why the events
    /// cannot be written.
    fn row_types(&self, path: &Path) -> Result<Vec<Option<RowType>>, DataError> {
        let n = self.len();
        let unwritable = |i: usize, reason| DataError::Unwritable {
            path: path.to_path_buf(),
            event: i + 1,
            reason,
        };
        let mut rows = Vec::with_capacity(n);
        // The time of the snapshot the previous row belongs to, if it was a snapshot row.
        let mut snapshot: Option<i64> = None;
        for i in 0..n {
            let t = self.time[i];
            let row = match self.kind[i] {
                EventKind::Clear => {
                    let book_row_follows = i + 1 < n
                        && matches!(self.kind[i + 1], EventKind::Bid | EventKind::Ask)
                        && self.time[i + 1] == t;
                    if !book_row_follows {
                        return Err(unwritable(
                            i,
                            "a book clear must be followed by bid or ask events at the same time \
                             (the snapshot that rebuilds the book)",
                        ));
                    }
                    if snapshot == Some(t) {
                        return Err(unwritable(
                            i,
                            "a book clear right after a snapshot at the same time would read \
                             back as part of that snapshot",
                        ));
                    }
                    snapshot = Some(t);
                    None
                }
                EventKind::Bid | EventKind::Ask if snapshot == Some(t) => Some(RowType::Snapshot),
                EventKind::Bid | EventKind::Ask => {
                    snapshot = None;
                    Some(RowType::Update)
                }
                EventKind::Trade(_) => {
                    snapshot = None;
                    Some(RowType::Trade)
                }
            };
            rows.push(row);
        }
        Ok(rows)
    }

    fn write_csv(&self, path: &Path, rows: &[Option<RowType>]) -> Result<(), DataError> {
        // Formatting is most of the cost: each batch of rows is formatted in parts on all cores,
        // then written in order, so memory stays at one batch.
        const PART: usize = 1 << 16;
        let batch = PART * 4 * rayon::current_num_threads().max(1);
        let format_part = |range: std::ops::Range<usize>| -> std::io::Result<Vec<u8>> {
            let mut text = Vec::with_capacity(range.len() * 64);
            for i in range {
                let Some(row) = rows[i] else { continue };
                writeln!(
                    text,
                    "{},{},{},{},{}",
                    Rfc3339(self.time[i]),
                    row.name(),
                    side_name(self.kind[i]).unwrap_or_default(),
                    self.price[i],
                    self.size[i]
                )?;
            }
            Ok(text)
        };
        let mut out = file::create(path)?;
        let written = (|| {
            out.write_all(b"time,type,side,price,size\n")?;
            for batch_start in (0..rows.len()).step_by(batch) {
                let batch_end = (batch_start + batch).min(rows.len());
                let parts: Vec<Vec<u8>> = (batch_start..batch_end)
                    .step_by(PART)
                    .collect::<Vec<_>>()
                    .into_par_iter()
                    .map(|start| format_part(start..(start + PART).min(batch_end)))
                    .collect::<std::io::Result<_>>()?;
                for part in parts {
                    out.write_all(&part)?;
                }
            }
            out.flush()
        })();
        written.map_err(|source| file::write_error(path, source))
    }

    fn write_parquet(&self, path: &Path, rows: &[Option<RowType>]) -> Result<(), DataError> {
        let write_error = |source| DataError::Polars {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        // Clears are rare (one per snapshot): the numeric columns are copied in the runs
        // between them.
        let clears: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].is_none()).collect();
        let height = rows.len() - clears.len();
        let time = Int64Chunked::from_vec("time".into(), without(&self.time, &clears))
            .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
            .into_column();
        let kind = StringChunked::from_iter_values(
            "type".into(),
            rows.iter().flatten().map(|row| row.name()),
        );
        let side = StringChunked::from_iter_options(
            "side".into(),
            self.kind
                .iter()
                .filter(|&&k| k != EventKind::Clear)
                .map(|&k| side_name(k)),
        );
        let float = |name: &str, values: &[f64]| {
            Float64Chunked::from_vec(name.into(), without(values, &clears)).into_column()
        };
        let columns = vec![
            time,
            kind.into_column(),
            side.into_column(),
            float("price", &self.price),
            float("size", &self.size),
        ];
        let mut df = DataFrame::new(height, columns).map_err(write_error)?;
        let out = std::fs::File::create(path).map_err(|source| file::write_error(path, source))?;
        ParquetWriter::new(out)
            .finish(&mut df)
            .map_err(write_error)?;
        Ok(())
    }
}

/// `values` without the entries at `skip` (sorted indices).
fn without<T: Copy>(values: &[T], skip: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len() - skip.len());
    let mut from = 0;
    for &i in skip {
        out.extend_from_slice(&values[from..i]);
        from = i + 1;
    }
    out.extend_from_slice(&values[from..]);
    out
}

/// The `side` cell of an event; `None` for a trade without an aggressor (and a `Clear`).
fn side_name(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::Trade(Some(Aggressor::Buy)) => Some("buy"),
        EventKind::Trade(Some(Aggressor::Sell)) => Some("sell"),
        EventKind::Bid => Some("bid"),
        EventKind::Ask => Some("ask"),
        EventKind::Trade(None) | EventKind::Clear => None,
    }
}

#[cfg(test)]
mod tests;
