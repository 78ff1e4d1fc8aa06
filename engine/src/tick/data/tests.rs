//! Loading and writing trades and book events: round trips, snapshots, column names, time
//! ranges, and every bad-input message with its row.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use tempfile::TempDir;

use super::super::{datagen, Aggressor, EventKind, TickData};
use super::load;
use crate::data::{format_time, parse_time_bound, DataError, LoadOptions, NANOS_PER_SECOND};

/// 2024-01-02T00:00:00Z plus `seconds`.
fn at(seconds: i64) -> i64 {
    datagen::START + seconds * NANOS_PER_SECOND
}

/// Writes `content` to `name` in a fresh temporary directory.
fn file(name: &str, content: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

fn all(path: &Path) -> TickData {
    load(path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn csv(content: &str) -> TickData {
    let (_dir, path) = file("ticks.csv", content);
    all(&path)
}

/// The message of loading a CSV with `content`, without the temporary path.
fn csv_error(content: &str) -> String {
    let (_dir, path) = file("ticks.csv", content);
    let message = load(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    message.replace(&format!("{}: ", path.display()), "")
}

const HEADER: &str = "time,type,side,price,size\n";

/// A CSV of the header and these rows.
fn rows(lines: &[&str]) -> String {
    let mut text = HEADER.to_owned();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

const T0: &str = "2024-01-02T00:00:00Z";
const T1: &str = "2024-01-02T00:00:01Z";
const T2: &str = "2024-01-02T00:00:02Z";

// --- Round trips -----------------------------------------------------------------------------

#[test]
fn generated_book_and_trades_round_trip_through_csv_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    for (what, data) in [
        ("book", datagen::book(20_000, 20, 5)),
        ("trades", datagen::trades(5_000, 5)),
    ] {
        for extension in ["csv", "parquet", "pq"] {
            let path = dir.path().join(format!("{what}.{extension}"));
            data.write(&path).unwrap();
            assert_eq!(all(&path), data, "{what}.{extension}");
        }
    }
}

#[test]
fn written_files_have_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = datagen::book(100, 2, 1);
    data.push(data.time[99] + 1_500, EventKind::Trade(None), 100.01, 3.0);
    let path = dir.path().join("book.csv");
    data.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // One row per event but the Clear.
    assert_eq!(lines.len(), 1 + data.len() - 1);
    let first_rows = [
        format!("2024-01-02T00:00:00Z,snapshot,bid,100,{}", data.size[1]),
        format!(
            "2024-01-02T00:00:00Z,snapshot,bid,{},{}",
            data.price[2], data.size[2]
        ),
    ];
    assert_eq!(
        lines[..3],
        [
            "time,type,side,price,size",
            first_rows[0].as_str(),
            first_rows[1].as_str()
        ]
    );
    assert!(
        lines[5].contains(",update,") || lines[5].contains(",trade,"),
        "{}",
        lines[5]
    );
    let last = lines.last().unwrap();
    assert!(last.ends_with(",trade,,100.01,3"), "{last}");
    assert!(last.starts_with(&format_time(data.time[100])), "{last}");
    // Nanoseconds survive the text.
    assert_eq!(all(&path), data);

    let path = dir.path().join("book.parquet");
    data.write(&path).unwrap();
    let df = LazyFrame::scan_parquet(PlRefPath::try_from_path(&path).unwrap(), Default::default())
        .unwrap()
        .collect()
        .unwrap();
    let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
    assert_eq!(names, ["time", "type", "side", "price", "size"]);
    assert_eq!(
        df.column("time").unwrap().dtype(),
        &DataType::Datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
    );
    assert_eq!(df.height(), data.len() - 1);
    assert_eq!(df.column("side").unwrap().null_count(), 1);
}

#[test]
fn events_the_format_cannot_express_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    let mut data = TickData::default();
    data.push(at(0), EventKind::Clear, 0.0, 0.0);
    data.push(at(1), EventKind::Bid, 99.0, 1.0);
    let message = data.write(&path).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "cannot write {}: event 1: a book clear must be followed by bid or ask events at the \
             same time (the snapshot that rebuilds the book)",
            path.display()
        )
    );
    let mut data = TickData::default();
    for _ in 0..2 {
        data.push(at(0), EventKind::Clear, 0.0, 0.0);
        data.push(at(0), EventKind::Bid, 99.0, 1.0);
    }
    let message = data.write(&path).unwrap_err().to_string();
    assert!(
        message.contains("event 3: a book clear right after a snapshot at the same time"),
        "{message}"
    );
    let message = TickData::default()
        .write(Path::new("ticks.json"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "ticks.json: unsupported file type; expected a .csv, .parquet or .pq file"
    );
    let message = datagen::trades(3, 1)
        .write(Path::new("/nonexistent/ticks.csv"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("cannot write /nonexistent/ticks.csv: "),
        "{message}"
    );
}

// --- Reading ---------------------------------------------------------------------------------

#[test]
fn snapshot_runs_start_with_a_clear() {
    let data = csv(&rows(&[
        &format!("{T0},snapshot,bid,99.99,5"),
        &format!("{T0},snapshot,ask,100.01,7"),
        &format!("{T1},update,bid,100,2"),
        &format!("{T1},trade,buy,100.01,1"),
        // Same time as the previous snapshot rows would not matter: the trade broke the run.
        &format!("{T1},snapshot,bid,99.98,1"),
        &format!("{T2},snapshot,bid,99.97,1"),
        &format!("{T2},snapshot,ask,100.02,0"),
    ]));
    use EventKind::*;
    assert_eq!(
        data.kind,
        [
            Clear,
            Bid,
            Ask,
            Bid,
            Trade(Some(Aggressor::Buy)),
            Clear,
            Bid,
            Clear,
            Bid,
            Ask
        ]
    );
    assert_eq!(
        data.time,
        [
            at(0),
            at(0),
            at(0),
            at(1),
            at(1),
            at(1),
            at(1),
            at(2),
            at(2),
            at(2)
        ]
    );
    assert_eq!(data.price[..3], [0.0, 99.99, 100.01]);
    assert_eq!(data.size[..3], [0.0, 5.0, 7.0]);
}

#[test]
fn without_a_type_column_every_row_is_a_trade() {
    let data = csv("Timestamp,PRICE,Qty\n1704153600000,100.5,3\n1704153600001,100.25,1.5\n");
    assert_eq!(data.kind, [EventKind::Trade(None); 2]);
    assert_eq!(data.time, [at(0), at(0) + 1_000_000]);
    assert_eq!(data.price, [100.5, 100.25]);
    assert_eq!(data.size, [3.0, 1.5]);
}

#[test]
fn aliases_any_case_and_spellings_of_values() {
    let data = csv("ts,Event,Aggressor,price,Quantity,venue\n\
         2024-01-02 00:00:00.000000001,Trade,SELL,100,1,X\n\
         2024-01-02 00:00:00.000000002,trade,,100,2,X\n\
         2024-01-02 00:00:00.000000003, update , Ask ,100.01,0,X\n");
    assert_eq!(
        data.kind,
        [
            EventKind::Trade(Some(Aggressor::Sell)),
            EventKind::Trade(None),
            EventKind::Ask
        ]
    );
    assert_eq!(data.time, [at(0) + 1, at(0) + 2, at(0) + 3]);
    assert_eq!(data.size, [1.0, 2.0, 0.0]);
    let data = csv("datetime,kind,side,price,amount\n2024-01-02,trade,buy,1,1\n");
    assert_eq!(data.kind, [EventKind::Trade(Some(Aggressor::Buy))]);
    let data = csv("date,price,volume\n2024-01-02,1,1\n");
    assert_eq!(data.time, [at(0)]);
}

#[test]
fn parquet_columns_of_other_types() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, columns: Vec<Column>| {
        let path = dir.path().join(name);
        let mut df = DataFrame::new_infer_height(columns).unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        path
    };
    let ms = vec![at(0) / 1_000_000, at(1) / 1_000_000];
    // Epoch milliseconds, integer prices and sizes, no type column.
    let path = write(
        "epoch.parquet",
        vec![
            Int64Chunked::from_vec("timestamp".into(), ms.clone()).into_column(),
            Int64Chunked::from_vec("price".into(), vec![100, 101]).into_column(),
            Int32Chunked::from_vec("qty".into(), vec![1, 2]).into_column(),
        ],
    );
    let data = all(&path);
    assert_eq!(data.time, [at(0), at(1)]);
    assert_eq!(
        (data.price, data.size),
        (vec![100.0, 101.0], vec![1.0, 2.0])
    );
    // A Datetime in ms with a time zone, filtered in the reader.
    let tz = TimeZone::opt_try_new(Some("America/New_York")).unwrap();
    let path = write(
        "zoned.parquet",
        vec![
            Int64Chunked::from_vec("time".into(), ms.clone())
                .into_datetime(TimeUnit::Milliseconds, tz)
                .into_column(),
            Float64Chunked::from_vec("price".into(), vec![100.0, 101.0]).into_column(),
            Float64Chunked::from_vec("size".into(), vec![1.0, 2.0]).into_column(),
        ],
    );
    let options = LoadOptions {
        start: Some(at(1)),
        ..Default::default()
    };
    assert_eq!(load(&path, &options).unwrap().price, [101.0]);
    // A `type` column that is not text.
    let path = write(
        "bool.parquet",
        vec![
            Int64Chunked::from_vec("time".into(), ms).into_column(),
            BooleanChunked::from_slice("type".into(), &[true, false]).into_column(),
            Float64Chunked::from_vec("price".into(), vec![100.0, 101.0]).into_column(),
            Float64Chunked::from_vec("size".into(), vec![1.0, 2.0]).into_column(),
        ],
    );
    let message = load(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!(
            "{}: column \"type\" has type bool; expected text",
            path.display()
        )
    );
}

// --- Time range ------------------------------------------------------------------------------

#[test]
fn the_time_range_is_inclusive_and_the_same_from_csv_and_parquet() {
    let data = datagen::book(50_000, 10, 2);
    let dir = tempfile::tempdir().unwrap();
    let (csv_path, parquet_path) = (dir.path().join("b.csv"), dir.path().join("b.parquet"));
    data.write(&csv_path).unwrap();
    data.write(&parquet_path).unwrap();
    let (start, end) = (data.time[10_000], data.time[20_000]);
    let options = LoadOptions {
        start: Some(start),
        end: Some(end),
        timeframe: Some("1h".parse().unwrap()),
    };
    let from_csv = load(&csv_path, &options).unwrap();
    let from = data.time.partition_point(|&t| t < start);
    let to = data.time.partition_point(|&t| t <= end);
    // The range opens with the book as it stood at `start`, as one snapshot, then the events.
    let opening = from_csv.len() - (to - from);
    assert_eq!(from_csv.kind[0], EventKind::Clear);
    assert!(opening > 10, "a snapshot of both sides: {opening} events");
    assert!(from_csv.time[..opening].iter().all(|&t| t == start));
    assert_eq!(from_csv.time[opening..], data.time[from..to]);
    assert_eq!(from_csv.kind[opening..], data.kind[from..to]);
    assert_eq!(from_csv.price[opening..], data.price[from..to]);
    let book_after = |d: &TickData, n: usize| {
        let mut book = crate::tick::book::Book::new();
        for i in 0..n {
            book.apply(d.kind[i], d.price[i], d.size[i]);
        }
        book
    };
    for n in [opening, opening + 1_000, from_csv.len()] {
        let whole = book_after(&data, from + n - opening);
        let cut = book_after(&from_csv, n);
        for side in [
            crate::tick::book::BookSide::Bid,
            crate::tick::book::BookSide::Ask,
        ] {
            assert_eq!(whole.levels(side), cut.levels(side), "after {n} events");
        }
    }
    assert_eq!(load(&parquet_path, &options).unwrap(), from_csv);

    let late = LoadOptions {
        start: Some(parse_time_bound("2030-01-01", false).unwrap()),
        ..Default::default()
    };
    let covers = format!(
        "the data covers 2024-01-02 to {}",
        crate::data::format_time_short(*data.time.last().unwrap())
    );
    for path in [&csv_path, &parquet_path] {
        let message = load(path, &late).unwrap_err().to_string();
        assert_eq!(message, format!("no events from 2030-01-01 on; {covers}"));
    }
}

#[test]
fn parquet_errors_name_the_file_row_even_when_filtered() {
    let mut data = datagen::trades(1_000, 3);
    data.size[500] = -2.0; // file row 501
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.parquet");
    data.write(&path).unwrap();
    let options = LoadOptions {
        start: Some(data.time[400]),
        ..Default::default()
    };
    let message = load(&path, &options).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "{}: row 501 ({}): size -2 is negative",
            path.display(),
            crate::data::format_time_short(data.time[500])
        )
    );
    // Rows before `start` are read (they build the opening book), rows after `end` are not.
    let options = LoadOptions {
        start: Some(data.time[501]),
        ..Default::default()
    };
    assert!(load(&path, &options).is_err());
    let options = LoadOptions {
        end: Some(data.time[499]),
        ..Default::default()
    };
    assert_eq!(load(&path, &options).unwrap().len(), 500);
}

// --- Bad input: one test per problem, asserting the message ----------------------------------

#[test]
fn time_going_backwards() {
    let message = csv_error(&rows(&[
        &format!("{T0},trade,buy,100,1"),
        &format!("{T2},trade,buy,100,1"),
        &format!("{T1},trade,buy,100,1"),
    ]));
    assert_eq!(
        message,
        "row 3 (2024-01-02 00:00:01): timestamp is earlier than row 2 (2024-01-02 00:00:02); \
         rows must be sorted by time, oldest first"
    );
    // Equal times are fine: many events share a timestamp.
    let row = format!("{T0},trade,buy,100,1");
    assert_eq!(csv(&rows(&[row.as_str(); 3])).len(), 3);
}

#[test]
fn bad_prices() {
    for (price, problem) in [
        ("NaN", "price is not finite (NaN)"),
        ("inf", "price is not finite (inf)"),
        ("0", "price 0 is not positive"),
        ("-1.5", "price -1.5 is not positive"),
        ("", "price is missing"),
        ("abc", "price \"abc\" is not a number"),
    ] {
        let message = csv_error(&rows(&[
            &format!("{T0},trade,buy,100,1"),
            &format!("{T1},update,bid,{price},1"),
        ]));
        assert_eq!(
            message,
            format!("row 2 (2024-01-02 00:00:01): {problem}"),
            "{price}"
        );
    }
}

#[test]
fn bad_sizes() {
    for (row, problem) in [
        ("update,bid,100,-1", "size -1 is negative"),
        ("trade,sell,100,inf", "size is not finite (inf)"),
        (
            "trade,sell,100,0",
            "trade size is 0; a trade must have a positive size",
        ),
        ("snapshot,ask,100,", "size is missing"),
    ] {
        let message = csv_error(&rows(&[&format!("{T0},{row}")]));
        assert_eq!(message, format!("row 1 (2024-01-02): {problem}"), "{row}");
    }
    // Size 0 on a book row removes the level.
    assert_eq!(csv(&rows(&[&format!("{T0},update,ask,100,0")])).size, [0.0]);
}

#[test]
fn bad_types_and_sides() {
    for (row, problem) in [
        (
            "quote,bid,100,1",
            "type \"quote\" is not trade, update or snapshot",
        ),
        (",bid,100,1", "type is missing"),
        (
            "update,buy,100,1",
            "side \"buy\" of a book row (update) is not bid or ask",
        ),
        (
            "snapshot,,100,1",
            "side is missing; a book row (snapshot) needs bid or ask",
        ),
        (
            "trade,ask,100,1",
            "side \"ask\" of a trade is not buy, sell or empty",
        ),
    ] {
        let message = csv_error(&rows(&[
            &format!("{T0},trade,,100,1"),
            &format!("{T1},{row}"),
        ]));
        assert_eq!(
            message,
            format!("row 2 (2024-01-02 00:00:01): {problem}"),
            "{row}"
        );
    }
    // A type column without a side column: trades are fine, book rows are not.
    assert_eq!(csv("time,type,price,size\n2024-01-02,trade,1,1\n").len(), 1);
    let message = csv_error("time,type,price,size\n2024-01-02,update,1,1\n");
    assert_eq!(
        message,
        "row 1 (2024-01-02): side is missing; a book row (update) needs bid or ask"
    );
}

#[test]
fn the_first_problem_in_a_row_is_reported() {
    // Backwards time and a bad price in the same row: the time comes first.
    let message = csv_error(&rows(&[
        &format!("{T1},trade,buy,100,1"),
        &format!("{T0},trade,buy,-1,0"),
    ]));
    assert!(
        message.contains("timestamp is earlier than row 1"),
        "{message}"
    );
    // A missing size after a bad price in the same row: the price comes first.
    let message = csv_error(&rows(&[&format!("{T0},trade,buy,0,")]));
    assert_eq!(message, "row 1 (2024-01-02): price 0 is not positive");
    // A missing size in a later row than a bad type: the earlier row is reported.
    let message = csv_error(&rows(&[
        &format!("{T0},oops,buy,1,1"),
        &format!("{T1},trade,buy,1,"),
    ]));
    assert_eq!(
        message,
        "row 1 (2024-01-02): type \"oops\" is not trade, update or snapshot"
    );
}

#[test]
fn bad_and_missing_times() {
    let message = csv_error(&rows(&[
        &format!("{T0},trade,buy,100,1"),
        "yesterday,trade,buy,100,1",
    ]));
    assert!(
        message.starts_with("row 2: cannot parse timestamp \"yesterday\": expected a date"),
        "{message}"
    );
    let message = csv_error(&rows(&[
        &format!("{T0},trade,buy,100,1"),
        ",trade,buy,100,1",
    ]));
    assert_eq!(message, "row 2: time is missing");
}

#[test]
fn missing_columns_empty_files_and_unknown_formats() {
    let message = csv_error("time,type,side\n2024-01-02,trade,buy\n");
    assert_eq!(
        message,
        "missing columns price, size (or qty, quantity, amount, volume); \
         found: \"time\", \"type\", \"side\""
    );
    let message = csv_error("when,price,size\n2024-01-02,1,1\n");
    assert_eq!(
        message,
        "missing column time (or timestamp, ts, datetime, date); found: \"when\", \"price\", \"size\""
    );
    assert_eq!(csv_error(""), "the file is empty (no data rows)");
    assert_eq!(csv_error(HEADER), "the file is empty (no data rows)");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.parquet");
    TickData::default().write(&path).unwrap();
    let message = load(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!("{}: the file is empty (no data rows)", path.display())
    );

    let message = load(Path::new("ticks.txt"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "ticks.txt: unsupported file type; expected a .csv, .parquet or .pq file"
    );
    assert!(matches!(
        load(Path::new("/nonexistent/ticks.csv"), &LoadOptions::default()),
        Err(DataError::Io { .. })
    ));
    assert!(matches!(
        load(
            Path::new("/nonexistent/ticks.parquet"),
            &LoadOptions::default()
        ),
        Err(DataError::Io { .. })
    ));
}

#[test]
fn large_files_parse_times_in_parallel_with_the_rows_of_the_file() {
    // Large enough for the time column to be parsed in parts.
    let data = datagen::trades(300_000, 4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trades.csv");
    data.write(&path).unwrap();
    assert_eq!(all(&path), data);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();

    // Integer epochs: one unit for the whole column.
    let epochs: String = std::iter::once("time,type,side,price,size".to_owned())
        .chain((0..data.len()).map(|i| {
            let (_, rest) = lines[i + 1].split_once(',').unwrap();
            format!("{},{rest}", data.time[i])
        }))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, epochs).unwrap();
    assert_eq!(all(&path), data);

    // A bad date, and an epoch among dates, deep into the file.
    for (row, cell, reason) in [
        (250_000, "2024-13-01T00:00:00Z", "month 13 is out of range"),
        (
            200_000,
            "1704153600",
            "an integer among dates; use one format for the column",
        ),
    ] {
        let good = lines[row].clone();
        let (_, rest) = good.split_once(',').unwrap();
        lines[row] = format!("{cell},{rest}");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let message = load(&path, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            format!(
                "{}: row {row}: cannot parse timestamp \"{cell}\": {reason}",
                path.display()
            )
        );
        lines[row] = good;
    }
}

// --- Speed (run with `cargo test --release -p engine --lib tick::data -- --ignored --nocapture`)

#[test]
#[ignore = "timing; run explicitly in release"]
fn ten_million_events_load_fast() {
    let started = std::time::Instant::now();
    let data = datagen::book(10_000_000, 20, 1);
    println!("generate: {} events in {:?}", data.len(), started.elapsed());
    let dir = tempfile::tempdir().unwrap();
    for name in ["ticks.csv", "ticks.parquet"] {
        let path = dir.path().join(name);
        let started = std::time::Instant::now();
        data.write(&path).unwrap();
        let written = started.elapsed();
        let bytes = std::fs::metadata(&path).unwrap().len();
        // The best of three, so that other work on the machine does not count.
        let mut best = std::time::Duration::MAX;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let loaded = all(&path);
            best = best.min(started.elapsed());
            assert_eq!(loaded, data);
        }
        println!(
            "{name}: {:.0} MB, written in {written:?}, loaded in {best:?}",
            bytes as f64 / 1e6
        );
    }
}

#[test]
fn a_book_side_beyond_the_level_limit_is_refused_at_its_row() {
    use crate::limits::MAX_BOOK_LEVELS;
    let level = |price: usize| format!("{T0},update,bid,{price},1");
    // As many levels as a book holds load; removing one makes room for another.
    let mut lines: Vec<String> = (1..=MAX_BOOK_LEVELS).map(level).collect();
    lines.push(format!("{T1},update,bid,1,0"));
    lines.push(format!("{T1},update,bid,{},1", MAX_BOOK_LEVELS + 1));
    // A snapshot replaces the whole book, so it starts counting again.
    lines.push(format!("{T2},snapshot,bid,7,1"));
    lines.push(format!("{T2},snapshot,ask,8,1"));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(csv(&rows(&refs)).len(), MAX_BOOK_LEVELS + 5);
    // One level more is an error naming the row.
    let mut lines: Vec<String> = (1..=MAX_BOOK_LEVELS + 1).map(level).collect();
    lines.push(format!("{T1},trade,buy,100,1"));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(
        csv_error(&rows(&refs)),
        format!(
            "row {} (2024-01-02): this bid level would be price level {} of the bid \
             side; a book holds at most {MAX_BOOK_LEVELS}",
            MAX_BOOK_LEVELS + 1,
            MAX_BOOK_LEVELS + 1
        )
    );
}
