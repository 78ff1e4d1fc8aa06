//! Loading the bundled files, every bad-input message, time formats, filters and resampling.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use tempfile::TempDir;

use super::super::time::{parse_time_bound, NANOS_PER_HOUR, NANOS_PER_SECOND};
use super::super::{format_time, Bars, DataError, Timeframe, NANOS_PER_DAY};
use super::{load, LoadOptions};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/data")
        .join(name)
}

fn at(text: &str) -> i64 {
    parse_time_bound(text, false).unwrap()
}

fn all(path: &Path) -> Bars {
    load(path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Writes `content` to `name` in a fresh temporary directory.
fn file(name: &str, content: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

/// The error message of loading a CSV with `content`, with the temporary path removed.
fn csv_error(content: &str) -> String {
    let (_dir, path) = file("bars.csv", content);
    let message = load(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    message.replace(&format!("{}: ", path.display()), "")
}

fn csv_bars(content: &str) -> Bars {
    let (_dir, path) = file("bars.csv", content);
    all(&path)
}

const HEADER: &str = "date,open,high,low,close,volume\n";

fn rows(lines: &[&str]) -> String {
    let mut text = HEADER.to_owned();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

const GOOD: [&str; 3] = [
    "2004-08-19,100,104.06,95.96,100.34,22351900",
    "2004-08-20,101.01,109.08,100.5,108.31,11428600",
    "2004-08-23,110.75,113.48,109.05,109.4,9137200",
];

// --- The bundled files -----------------------------------------------------------------------

#[test]
fn goog_loads() {
    let bars = all(&example("GOOG.csv"));
    assert_eq!(bars.len(), 2148);
    assert_eq!(format_time(bars.time[0]), "2004-08-19T00:00:00Z");
    assert_eq!(
        (bars.open[0], bars.high[0], bars.low[0], bars.close[0]),
        (100.0, 104.06, 95.96, 100.34)
    );
    assert_eq!(bars.volume[0], 22_351_900.0);
    assert_eq!(
        format_time(*bars.time.last().unwrap()),
        "2013-03-01T00:00:00Z"
    );
    assert_eq!(bars.close.last(), Some(&806.19));
}

#[test]
fn eurusd_loads_hourly() {
    let bars = all(&example("EURUSD.csv"));
    assert_eq!(bars.len(), 5000);
    assert_eq!(format_time(bars.time[0]), "2017-04-19T09:00:00Z");
    assert_eq!(bars.close[0], 1.07219);
    assert_eq!(
        format_time(*bars.time.last().unwrap()),
        "2018-02-07T15:00:00Z"
    );
    assert_eq!(bars.spacing(), Some(NANOS_PER_HOUR));
}

#[test]
fn btcusd_loads_monthly() {
    let bars = all(&example("BTCUSD.csv"));
    assert_eq!(bars.len(), 156);
    assert_eq!(format_time(bars.time[0]), "2012-01-31T00:00:00Z");
    assert_eq!(bars.volume[0], 2012.25343589);
    assert_eq!(
        format_time(*bars.time.last().unwrap()),
        "2024-12-31T00:00:00Z"
    );
    assert_eq!(bars.spacing(), Some(31 * NANOS_PER_DAY));
}

#[test]
fn spacing_and_periods_per_year() {
    let goog = all(&example("GOOG.csv"));
    assert_eq!(goog.spacing(), Some(NANOS_PER_DAY));
    let ppy = goog.periods_per_year().unwrap();
    assert!((ppy - 251.7).abs() < 0.05, "{ppy}");

    // 4999 hourly gaps over 2017-04-19 09:00 .. 2018-02-07 15:00 (294.25 days): weekends
    // make it far less than 24 * 365.25.
    let eurusd = all(&example("EURUSD.csv"));
    let ppy = eurusd.periods_per_year().unwrap();
    let expected = 4999.0 / (294.25 / 365.25);
    assert!((ppy - expected).abs() < 1e-6, "{ppy} vs {expected}");

    assert_eq!(goog.slice(0..1).periods_per_year(), None);
    assert_eq!(Bars::default().spacing(), None);
}

// --- Parquet ---------------------------------------------------------------------------------

#[test]
fn parquet_round_trip() {
    let bars = all(&example("GOOG.csv"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("goog.parquet");
    bars.write_parquet(&path).unwrap();

    let schema =
        LazyFrame::scan_parquet(PlRefPath::try_from_path(&path).unwrap(), Default::default())
            .unwrap()
            .collect_schema()
            .unwrap();
    assert_eq!(
        schema.get("time"),
        Some(&DataType::Datetime(
            TimeUnit::Nanoseconds,
            Some(TimeZone::UTC)
        ))
    );
    assert_eq!(all(&path), bars);

    // The same file under the other extension.
    let pq = dir.path().join("goog.pq");
    std::fs::copy(&path, &pq).unwrap();
    assert_eq!(all(&pq), bars);
}

#[test]
fn parquet_filter_is_pushed_down_and_matches_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("goog.parquet");
    all(&example("GOOG.csv")).write_parquet(&path).unwrap();
    let options = LoadOptions {
        start: Some(parse_time_bound("2005-01-01", false).unwrap()),
        end: Some(parse_time_bound("2012-12-31", true).unwrap()),
        timeframe: None,
    };
    let from_parquet = load(&path, &options).unwrap();
    let from_csv = load(&example("GOOG.csv"), &options).unwrap();
    assert_eq!(from_parquet, from_csv);
    assert_eq!(format_time(from_parquet.time[0]), "2005-01-03T00:00:00Z");
    assert_eq!(
        format_time(*from_parquet.time.last().unwrap()),
        "2012-12-31T00:00:00Z"
    );

    // The predicate reaches the scan.
    let plan = super::plan_parquet(&path, &options).unwrap();
    assert!(plan.filtered);
    let text = plan.query.explain(true).unwrap();
    assert!(
        text.contains("SELECTION") && !text.contains("FILTER"),
        "{text}"
    );
}

/// Writes a Parquet file with the given columns.
fn parquet(dir: &TempDir, name: &str, columns: Vec<Column>) -> PathBuf {
    let path = dir.path().join(name);
    let mut df = DataFrame::new_infer_height(columns).unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();
    path
}

fn prices(n: usize, capitalised: bool) -> Vec<Column> {
    let name = |s: &str| {
        if capitalised {
            s[..1].to_uppercase() + &s[1..]
        } else {
            s.to_owned()
        }
    };
    let series = |s: &str, base: f64| {
        let values: Vec<f64> = (0..n).map(|i| base + i as f64).collect();
        Float64Chunked::from_vec(name(s).as_str().into(), values).into_column()
    };
    vec![
        series("open", 10.0),
        series("high", 12.0),
        series("low", 9.0),
        series("close", 11.0),
    ]
}

#[test]
fn parquet_time_types() {
    let dir = tempfile::tempdir().unwrap();
    let days: Vec<i32> = (0..5).map(|d| 12_649 + d).collect(); // 2004-08-19 ..
    let expected: Vec<i64> = days.iter().map(|&d| i64::from(d) * NANOS_PER_DAY).collect();

    // Date, named, not first, capitalised.
    let mut columns = prices(5, true);
    columns.push(
        Int32Chunked::from_vec("Date".into(), days.clone())
            .into_date()
            .into_column(),
    );
    let bars = all(&parquet(&dir, "date.parquet", columns));
    assert_eq!(bars.time, expected);
    assert!(bars.volume.iter().all(|v| v.is_nan()));

    // Datetime in ms with a non-UTC zone: the stored values are UTC.
    let ms: Vec<i64> = expected.iter().map(|t| t / 1_000_000).collect();
    let tz = TimeZone::opt_try_new(Some("America/New_York")).unwrap();
    let mut columns = vec![Int64Chunked::from_vec("timestamp".into(), ms.clone())
        .into_datetime(TimeUnit::Milliseconds, tz)
        .into_column()];
    columns.extend(prices(5, false));
    let path = parquet(&dir, "ms.parquet", columns);
    assert_eq!(all(&path).time, expected);
    let options = LoadOptions {
        start: Some(expected[1]),
        end: Some(expected[3]),
        timeframe: None,
    };
    assert_eq!(load(&path, &options).unwrap().time, expected[1..=3]);

    // Datetime in us without a zone, filtered in the reader.
    let us: Vec<i64> = expected.iter().map(|t| t / 1_000).collect();
    let mut columns = vec![Int64Chunked::from_vec("time".into(), us)
        .into_datetime(TimeUnit::Microseconds, None)
        .into_column()];
    columns.extend(prices(5, false));
    let path = parquet(&dir, "us.parquet", columns);
    assert_eq!(load(&path, &options).unwrap().time, expected[1..=3]);
    assert!(super::plan_parquet(&path, &options)
        .unwrap()
        .query
        .explain(true)
        .unwrap()
        .contains("SELECTION"));

    // Integer epoch milliseconds, first column without a time name, filtered.
    let mut columns = vec![Int64Chunked::from_vec("t".into(), ms).into_column()];
    columns.extend(prices(5, false));
    let path = parquet(&dir, "epoch.parquet", columns);
    assert_eq!(all(&path).time, expected);
    assert_eq!(load(&path, &options).unwrap().time, expected[1..=3]);

    // Text timestamps.
    let text: Vec<String> = expected.iter().map(|&t| format_time(t)).collect();
    let mut columns =
        vec![
            StringChunked::from_iter_values("datetime".into(), text.iter().map(String::as_str))
                .into_column(),
        ];
    columns.extend(prices(5, false));
    let path = parquet(&dir, "text.parquet", columns);
    assert_eq!(load(&path, &options).unwrap().time, expected[1..=3]);
}

#[test]
fn parquet_errors_name_file_rows_even_when_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let mut bars = all(&example("GOOG.csv"));
    bars.high[100] = 1.0; // file row 101
    let path = dir.path().join("bad.parquet");
    bars.write_parquet(&path).unwrap();
    let options = LoadOptions {
        start: Some(bars.time[50]),
        end: None,
        timeframe: None,
    };
    let message = load(&path, &options).unwrap_err().to_string();
    let expected = format!(
        "{}: row 101 ({}): high 1 is below max(open, close) = {}",
        path.display(),
        super::super::format_time_short(bars.time[100]),
        bars.open[100].max(bars.close[100])
    );
    assert_eq!(message, expected);
    // Outside the range the bad row is not read.
    let options = LoadOptions {
        start: Some(bars.time[101]),
        end: None,
        timeframe: None,
    };
    assert_eq!(load(&path, &options).unwrap().len(), bars.len() - 101);
}

#[test]
fn parquet_missing_columns_and_bad_types() {
    let dir = tempfile::tempdir().unwrap();
    let time = Int64Chunked::from_vec("time".into(), vec![0, NANOS_PER_DAY])
        .into_datetime(TimeUnit::Nanoseconds, None)
        .into_column();
    let mut columns = vec![time.clone()];
    columns.extend(prices(2, false).into_iter().take(3));
    let path = parquet(&dir, "missing.parquet", columns);
    let message = load(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!(
            "{}: missing column close; found: \"time\", \"open\", \"high\", \"low\"",
            path.display()
        )
    );

    let mut columns = vec![time];
    columns.extend(prices(2, false).into_iter().take(3));
    columns.push(BooleanChunked::from_slice("close".into(), &[true, false]).into_column());
    let path = parquet(&dir, "bool.parquet", columns);
    let message = load(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!(
            "{}: column \"close\" has type bool; expected numbers",
            path.display()
        )
    );
}

#[test]
fn parquet_empty_and_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.parquet");
    Bars::default().write_parquet(&path).unwrap();
    let message = load(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!("{}: the file is empty (no data rows)", path.display())
    );

    let path = dir.path().join("goog.parquet");
    all(&example("GOOG.csv")).write_parquet(&path).unwrap();
    let options = LoadOptions {
        start: Some(parse_time_bound("2020-01-01", false).unwrap()),
        end: Some(parse_time_bound("2020-12-31", true).unwrap()),
        timeframe: None,
    };
    let message = load(&path, &options).unwrap_err().to_string();
    assert_eq!(
        message,
        "no bars between 2020-01-01 and 2020-12-31; the data covers 2004-08-19 to 2013-03-01"
    );
}

// --- Bad input: one test per problem, asserting the message ----------------------------------

#[test]
fn unsorted_timestamps() {
    let message = csv_error(&rows(&[GOOD[1], GOOD[0], GOOD[2]]));
    assert_eq!(
        message,
        "row 2 (2004-08-19): timestamp is earlier than row 1 (2004-08-20); rows must be sorted by time, oldest first"
    );
}

#[test]
fn duplicate_timestamps() {
    let message = csv_error(&rows(&[GOOD[0], GOOD[1], GOOD[1]]));
    assert_eq!(
        message,
        "row 3 (2004-08-20): duplicate timestamp (same as row 2)"
    );
}

#[test]
fn non_finite_prices() {
    let message = csv_error(&rows(&[
        GOOD[0],
        "2004-08-20,101.01,109.08,100.5,NaN,11428600",
    ]));
    assert_eq!(message, "row 2 (2004-08-20): close is not finite (NaN)");
    let message = csv_error(&rows(&[
        GOOD[0],
        "2004-08-20,101.01,inf,100.5,108.31,11428600",
    ]));
    assert_eq!(message, "row 2 (2004-08-20): high is not finite (inf)");
}

#[test]
fn non_positive_prices() {
    let message = csv_error(&rows(&[
        GOOD[0],
        GOOD[1],
        "2004-08-23,110.75,113.48,0,109.4,9137200",
    ]));
    assert_eq!(message, "row 3 (2004-08-23): low 0 is not positive");
    let message = csv_error(&rows(&["2004-08-19,-100,104.06,95.96,100.34,22351900"]));
    assert_eq!(message, "row 1 (2004-08-19): open -100 is not positive");
}

#[test]
fn high_below_open_or_close() {
    let message = csv_error(&rows(&[
        GOOD[0],
        GOOD[1],
        "2004-08-23,110.75,110.5,109.05,111.2,9137200",
    ]));
    assert_eq!(
        message,
        "row 3 (2004-08-23): high 110.5 is below max(open, close) = 111.2"
    );
}

#[test]
fn low_above_open_or_close() {
    let message = csv_error(&rows(&["2004-08-19,100,104.06,100.2,100.34,22351900"]));
    assert_eq!(
        message,
        "row 1 (2004-08-19): low 100.2 is above min(open, close) = 100"
    );
}

#[test]
fn missing_columns_are_named_with_those_found() {
    let message = csv_error("Date,Open,High,Close\n2004-08-19,100,104.06,100.34\n");
    assert_eq!(
        message,
        "missing column low; found: \"Date\", \"Open\", \"High\", \"Close\""
    );
    let message = csv_error("open,high,low,close\n100,104.06,95.96,100.34\n");
    assert_eq!(
        message,
        "missing column time (or timestamp, date, datetime, or a first column of timestamps); \
         found: \"open\", \"high\", \"low\", \"close\""
    );
    let message = csv_error("date,price\n2004-08-19,100\n");
    assert!(
        message.starts_with("missing columns open, high, low, close; found: \"date\", \"price\""),
        "{message}"
    );
}

#[test]
fn empty_files() {
    assert_eq!(csv_error(""), "the file is empty (no data rows)");
    assert_eq!(csv_error(HEADER), "the file is empty (no data rows)");
    assert_eq!(csv_error("\n"), "the file is empty (no data rows)");
}

#[test]
fn unparseable_timestamps() {
    let message = csv_error(&rows(&[
        GOOD[0],
        "2004-13-20,101.01,109.08,100.5,108.31,11428600",
    ]));
    assert_eq!(
        message,
        "row 2: cannot parse timestamp \"2004-13-20\": month 13 is out of range"
    );
    let message = csv_error(&rows(&[
        GOOD[0],
        "next day,101.01,109.08,100.5,108.31,11428600",
    ]));
    assert!(
        message.starts_with("row 2: cannot parse timestamp \"next day\": expected a date"),
        "{message}"
    );
    let message = csv_error(&rows(&[GOOD[0], ",101.01,109.08,100.5,108.31,11428600"]));
    assert_eq!(message, "row 2: time is missing");
    let message = csv_error(&rows(&[
        GOOD[0],
        "1092960000,101.01,109.08,100.5,108.31,11428600",
    ]));
    assert_eq!(
        message,
        "row 2: cannot parse timestamp \"1092960000\": an integer among dates; use one format for the column"
    );
}

#[test]
fn non_numeric_prices_name_row_and_column() {
    let mut lines = vec![GOOD[0].to_owned(); 1];
    // Far past polars' schema-inference window, to be sure the row is found anyway.
    let t0 = at("2004-08-20");
    for k in 0..300 {
        let day = super::super::format_time_short(t0 + k * NANOS_PER_DAY);
        let close = if k == 250 {
            "12O.5".to_owned()
        } else {
            "100.5".to_owned()
        };
        lines.push(format!("{day},100,101,99,{close},1000"));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let message = csv_error(&rows(&refs));
    assert_eq!(
        message,
        "row 252 (2005-04-27): close \"12O.5\" is not a number"
    );
}

#[test]
fn missing_price_cells() {
    let message = csv_error(&rows(&[
        GOOD[0],
        "2004-08-20,101.01,,100.5,108.31,11428600",
    ]));
    assert_eq!(message, "row 2 (2004-08-20): high is missing");
}

#[test]
fn bad_volumes() {
    let message = csv_error(&rows(&[
        GOOD[0],
        "2004-08-20,101.01,109.08,100.5,108.31,-5",
    ]));
    assert_eq!(message, "row 2 (2004-08-20): volume -5 is negative");
    let message = csv_error(&rows(&[
        GOOD[0],
        "2004-08-20,101.01,109.08,100.5,108.31,inf",
    ]));
    assert_eq!(message, "row 2 (2004-08-20): volume is not finite (inf)");
    let message = csv_error(&rows(&[GOOD[0], "2004-08-20,101.01,109.08,100.5,108.31,"]));
    assert_eq!(message, "row 2 (2004-08-20): volume is missing");
}

#[test]
fn absent_or_empty_volume_is_nan() {
    let bars = csv_bars("time,open,high,low,close\n2004-08-19,100,104.06,95.96,100.34\n");
    assert!(bars.volume[0].is_nan());
    let bars = csv_bars("time,open,high,low,close,volume\n2004-08-19,100,104.06,95.96,100.34,\n");
    assert!(bars.volume[0].is_nan());
}

#[test]
fn io_and_format_errors_name_the_file() {
    let missing = Path::new("/nonexistent/prices.csv");
    let message = load(missing, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("cannot read /nonexistent/prices.csv: "),
        "{message}"
    );
    let missing = Path::new("/nonexistent/prices.parquet");
    assert!(matches!(
        load(missing, &LoadOptions::default()),
        Err(DataError::Io { .. })
    ));
    let message = load(Path::new("prices.xlsx"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "prices.xlsx: unsupported file type; expected a .csv, .parquet or .pq file"
    );
    let (_dir, path) = file("bad.parquet", "not parquet at all");
    let message = load(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!("cannot read {}: ", path.display())),
        "{message}"
    );
}

// --- Time formats and column names -----------------------------------------------------------

#[test]
fn epoch_seconds_millis_micros_nanos() {
    let seconds = [1_092_873_600i64, 1_092_960_000];
    for scale in [1, 1_000, 1_000_000, 1_000_000_000] {
        let text = format!(
            "timestamp,open,high,low,close\n{},1,2,0.5,1.5\n{},1,2,0.5,1.5\n",
            seconds[0] * scale,
            seconds[1] * scale
        );
        let bars = csv_bars(&text);
        assert_eq!(
            bars.time,
            seconds.map(|s| s * NANOS_PER_SECOND),
            "scale {scale}"
        );
    }
}

#[test]
fn iso_datetimes_with_offsets_become_utc() {
    let bars = csv_bars(
        "datetime,open,high,low,close\n\
         2017-04-19T11:00:00+02:00,1,2,0.5,1.5\n\
         2017-04-19T10:00:00.500Z,1,2,0.5,1.5\n\
         2017-04-19 05:30:00-0500,1,2,0.5,1.5\n",
    );
    assert_eq!(
        bars.time,
        vec![
            at("2017-04-19 09:00"),
            at("2017-04-19 10:00") + 500_000_000,
            at("2017-04-19 10:30")
        ]
    );
}

#[test]
fn column_names_are_case_insensitive_and_time_need_not_be_first() {
    let bars = csv_bars("Symbol,VOLUME,Close,LOW,High,Open,DateTime\nX,5,1.5,0.5,2,1,2004-08-19\n");
    assert_eq!(bars.time, vec![at("2004-08-19")]);
    assert_eq!(
        (
            bars.open[0],
            bars.high[0],
            bars.low[0],
            bars.close[0],
            bars.volume[0]
        ),
        (1.0, 2.0, 0.5, 1.5, 5.0)
    );
}

// --- Filters ---------------------------------------------------------------------------------

#[test]
fn start_and_end_are_inclusive_and_a_bare_end_date_covers_the_day() {
    let path = example("EURUSD.csv");
    let options = LoadOptions {
        start: Some(parse_time_bound("2017-04-19 10:00", false).unwrap()),
        end: Some(parse_time_bound("2017-04-20", true).unwrap()),
        timeframe: None,
    };
    let bars = load(&path, &options).unwrap();
    assert_eq!(bars.time[0], at("2017-04-19 10:00"));
    assert_eq!(*bars.time.last().unwrap(), at("2017-04-20 23:00"));
    assert_eq!(bars.len(), 14 + 24);

    let options = LoadOptions {
        end: Some(parse_time_bound("2017-04-20", false).unwrap()),
        ..options
    };
    assert_eq!(
        *load(&path, &options).unwrap().time.last().unwrap(),
        at("2017-04-20 00:00")
    );

    let goog = all(&example("GOOG.csv"));
    let kept = goog.between(Some(at("2005-01-01")), None);
    assert_eq!(format_time(kept.time[0]), "2005-01-03T00:00:00Z");
    assert_eq!(
        kept.len() + goog.between(None, Some(at("2004-12-31"))).len(),
        goog.len()
    );
}

#[test]
fn a_range_without_bars_is_an_error_naming_it() {
    let options = LoadOptions {
        start: Some(parse_time_bound("2030-01-01", false).unwrap()),
        end: None,
        timeframe: None,
    };
    let message = load(&example("GOOG.csv"), &options)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "no bars from 2030-01-01 on; the data covers 2004-08-19 to 2013-03-01"
    );
    let options = LoadOptions {
        start: Some(parse_time_bound("2017-04-22", false).unwrap()),
        end: Some(parse_time_bound("2017-04-22 12:00", false).unwrap()),
        timeframe: None,
    };
    let message = load(&example("EURUSD.csv"), &options)
        .unwrap_err()
        .to_string();
    assert_eq!(message, "no bars between 2017-04-22 and 2017-04-22 12:00; the data covers 2017-04-19 09:00 to 2018-02-07 15:00");
}

// --- Resampling ------------------------------------------------------------------------------

fn timeframe(text: &str) -> Option<Timeframe> {
    Some(text.parse().unwrap())
}

#[test]
fn eurusd_to_four_hours() {
    let options = LoadOptions {
        timeframe: timeframe("4h"),
        ..Default::default()
    };
    let bars = load(&example("EURUSD.csv"), &options).unwrap();
    // 09:00, 10:00, 11:00 fall in the 08:00 bucket; 12:00 .. 15:00 in the 12:00 bucket.
    assert_eq!(
        bars.time[..2],
        [at("2017-04-19 08:00"), at("2017-04-19 12:00")]
    );
    assert_eq!(bars.open[..2], [1.0716, 1.07195]);
    assert_eq!(bars.high[..2], [1.07299, 1.0728]);
    assert_eq!(bars.low[..2], [1.07083, 1.07002]);
    assert_eq!(bars.close[..2], [1.07192, 1.07064]);
    assert_eq!(bars.volume[..2], [3679.0, 7223.0]);
    bars.validate().unwrap();
    assert_eq!(bars.spacing(), Some(4 * NANOS_PER_HOUR));
}

#[test]
fn eurusd_to_days() {
    let options = LoadOptions {
        timeframe: timeframe("1d"),
        ..Default::default()
    };
    let bars = load(&example("EURUSD.csv"), &options).unwrap();
    // 2017-04-19 has 15 bars (09:00 .. 23:00), 2017-04-20 all 24.
    assert_eq!(bars.time[..2], [at("2017-04-19"), at("2017-04-20")]);
    assert_eq!(bars.open[..2], [1.0716, 1.07146]);
    assert_eq!(bars.high[..2], [1.07299, 1.07775]);
    assert_eq!(bars.low[..2], [1.07002, 1.07072]);
    assert_eq!(bars.close[..2], [1.07149, 1.07142]);
    assert_eq!(bars.volume[..2], [16728.0, 25433.0]);
}

#[test]
fn resampling_finer_than_the_data_is_an_error() {
    let options = LoadOptions {
        timeframe: timeframe("1h"),
        ..Default::default()
    };
    let message = load(&example("GOOG.csv"), &options)
        .unwrap_err()
        .to_string();
    assert_eq!(message, "timeframe 1h is finer than the data's spacing of 1d; resampling can only make bars coarser");
    let options = LoadOptions {
        timeframe: timeframe("90m"),
        ..Default::default()
    };
    let message = load(&example("EURUSD.csv"), &options)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "timeframe 90m is not a whole multiple of the data's spacing of 1h"
    );
}

#[test]
fn goog_to_weeks_starts_on_monday() {
    let options = LoadOptions {
        timeframe: timeframe("1w"),
        ..Default::default()
    };
    let bars = load(&example("GOOG.csv"), &options).unwrap();
    // Thursday 2004-08-19 and Friday 2004-08-20 make the week of Monday 2004-08-16.
    assert_eq!(format_time(bars.time[0]), "2004-08-16T00:00:00Z");
    assert_eq!((bars.open[0], bars.close[0]), (100.0, 108.31));
    assert_eq!(bars.volume[0], 22_351_900.0 + 11_428_600.0);
    assert_eq!(format_time(bars.time[1]), "2004-08-23T00:00:00Z");
}

// --- Speed (run with `cargo test --release -p engine data:: -- --ignored --nocapture`) -------

/// A million minute bars from 2000-01-01.
fn million_bars() -> Bars {
    let n = 1_000_000;
    let t0 = at("2000-01-01");
    let mut bars = Bars::with_capacity(n);
    for i in 0..n {
        let base = 100.0 + (i % 1000) as f64 * 0.01;
        bars.push(
            t0 + i as i64 * 60 * NANOS_PER_SECOND,
            base,
            base + 0.5,
            base - 0.5,
            base + 0.25,
            1000.0 + i as f64,
        );
    }
    bars
}

#[test]
#[ignore = "timing; run explicitly in release"]
fn a_million_rows_load_fast() {
    let bars = million_bars();
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("m.parquet");
    bars.write_parquet(&parquet).unwrap();
    let csv = dir.path().join("m.csv");
    let mut text = String::from("datetime,open,high,low,close,volume\n");
    for i in 0..bars.len() {
        let t = super::super::format_time_short(bars.time[i]);
        text.push_str(&format!(
            "{t},{},{},{},{},{}\n",
            bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]
        ));
    }
    std::fs::write(&csv, text).unwrap();

    for path in [&parquet, &csv] {
        let started = std::time::Instant::now();
        let loaded = all(path);
        let elapsed = started.elapsed();
        println!("{}: {} rows in {elapsed:?}", path.display(), loaded.len());
        assert_eq!(loaded, bars);
    }
    let options = LoadOptions {
        start: Some(at("2001-01-01")),
        end: Some(parse_time_bound("2001-03-31", true).unwrap()),
        timeframe: Some("1h".parse().unwrap()),
    };
    let started = std::time::Instant::now();
    let loaded = load(&parquet, &options).unwrap();
    println!(
        "parquet, one quarter resampled to 1h: {} bars in {:?}",
        loaded.len(),
        started.elapsed()
    );
    let started = std::time::Instant::now();
    bars.validate().unwrap();
    println!("validate: {:?}", started.elapsed());
}

/// Parquet files on which polars 0.55 panics (found by `fuzz/run`, kept in `fuzz/crashes/`):
/// loading them as bars or ticks, and measuring them as an upload does, is an error that names
/// the file.
#[test]
fn parquet_files_that_panic_polars_are_errors() {
    let crashes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/crashes");
    for name in [
        "bars_parquet/polars_bitmap_slice_assert.parquet",
        "ticks/polars_thrift_metadata.parquet",
    ] {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("upload.parquet");
        std::fs::copy(crashes.join(name), &path).unwrap();
        let bars = load(&path, &LoadOptions::default());
        let ticks = crate::tick::load(&path, &LoadOptions::default());
        assert!(bars.is_err() && ticks.is_err(), "{name} loaded");
        // Measuring reads the footer only; it may pass a file whose pages are damaged.
        let measured = super::super::check_file(&path, &super::super::Limits::default());
        for result in [bars.err(), ticks.err(), measured.err()]
            .into_iter()
            .flatten()
        {
            let text = result.to_string();
            assert!(text.contains("upload.parquet"), "{name}: {text}");
        }
    }
}
