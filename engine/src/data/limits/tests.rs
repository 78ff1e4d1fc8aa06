//! Every limit of [`check_file`], on files built here the way a hostile uploader would build
//! them: a Parquet file of many constant rows, a header of five million columns, a 250 MB line,
//! text that is not UTF-8, a quote never closed.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use polars::prelude::*;
use tempfile::TempDir;

use super::super::synthetic::constant_bars_parquet;
use super::super::{DataError, LoadOptions, RowProblem};
use super::{check_file, load_limited, Count, Extent, Limits, Measure};

/// Writes `content` to `name` in a fresh temporary directory.
fn file(name: &str, content: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

/// Limits with every bound as the defaults, but `max_rows` rows.
fn rows_at_most(max_rows: u64) -> Limits {
    Limits {
        max_rows,
        ..Limits::default()
    }
}

/// The message without the temporary path.
fn message(e: &DataError, path: &Path) -> String {
    e.to_string().replace(&format!("{}: ", path.display()), "")
}

#[test]
fn a_parquet_file_declaring_too_many_rows_is_refused_from_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.parquet");
    constant_bars_parquet(&path, 1_000_000, 8).unwrap();
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert!(
        on_disk < 8_000_000,
        "8M constant rows compress to a small file: {on_disk} bytes"
    );

    let started = Instant::now();
    let e = check_file(&path, &rows_at_most(1_000_000)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "only the footer is read: {:?}",
        started.elapsed()
    );
    match &e {
        DataError::TooLarge {
            what: Measure::Rows,
            limit: 1_000_000,
            found: Count::Exactly(8_000_000),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        message(&e, &path),
        "too large: 8000000 rows; the limit is 1000000"
    );
    // The loader behind the check is never reached.
    let e = load_limited(&path, &LoadOptions::default(), &rows_at_most(1_000_000)).unwrap_err();
    assert!(matches!(e, DataError::TooLarge { .. }), "{e}");

    // Within every limit, the check says what it found.
    let extent = check_file(&path, &rows_at_most(8_000_000)).unwrap();
    assert_eq!(extent.rows, 8_000_000);
    assert_eq!(extent.columns, 6);
}

/// A Parquet file of `groups` row groups of `per_group` bars with prices all different, so
/// they take their full size before compression.
fn rising_bars_parquet(path: &Path, per_group: usize, groups: usize) {
    let time: Vec<i64> = (0..per_group as i64)
        .map(|i| 1_700_000_000 + i * 60)
        .collect();
    let price = |name: &str| {
        let values: Vec<f64> = (0..per_group).map(|i| 100.0 + i as f64 / 8.0).collect();
        Float64Chunked::from_vec(name.into(), values).into_column()
    };
    let df = DataFrame::new(
        per_group,
        vec![
            Int64Chunked::from_vec("time".into(), time).into_column(),
            price("open"),
            price("high"),
            price("low"),
            price("close"),
        ],
    )
    .unwrap();
    let mut writer = ParquetWriter::new(std::fs::File::create(path).unwrap())
        .batched(df.schema())
        .unwrap();
    for _ in 0..groups {
        writer.write_batch(&df).unwrap();
    }
    writer.finish().unwrap();
}

#[test]
fn parquet_row_groups_columns_and_uncompressed_bytes_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("groups.parquet");
    rising_bars_parquet(&path, 1_000, 4);
    let measure = |limits: Limits| match check_file(&path, &limits) {
        Err(DataError::TooLarge { what, found, .. }) => (what, found),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        measure(Limits {
            max_row_groups: 3,
            ..Limits::default()
        }),
        (Measure::RowGroups, Count::Exactly(4))
    );
    assert_eq!(
        measure(Limits {
            max_columns: 4,
            ..Limits::default()
        }),
        (Measure::Columns, Count::Exactly(5))
    );
    // 4,000 rows x 5 columns of 8 bytes, before compression.
    let (what, found) = measure(Limits {
        max_bytes: 10_000,
        ..Limits::default()
    });
    assert_eq!(what, Measure::Bytes);
    assert!(
        matches!(found, Count::Exactly(n) if n >= 4_000 * 5 * 8),
        "{found:?}"
    );
}

#[test]
fn a_parquet_footer_is_measured_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bars.parquet");
    constant_bars_parquet(&path, 10, 1).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let footer = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let e = check_file(
        &path,
        &Limits {
            max_metadata_bytes: u64::from(footer) - 1,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DataError::TooLarge {
                what: Measure::MetadataBytes,
                ..
            }
        ),
        "{e}"
    );

    // A footer declared longer than the file, and a file that is not Parquet at all.
    let mut lying = bytes.clone();
    let at = lying.len() - 8;
    lying[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (_dir, lying) = file("lying.parquet", &lying);
    let e = check_file(&lying, &Limits::default()).unwrap_err();
    assert_eq!(
        message(&e, &lying),
        "not a Parquet file: its footer is longer than the file"
    );
    let (_dir, text) = file("text.parquet", b"time,open,high,low,close\n");
    let e = check_file(&text, &Limits::default()).unwrap_err();
    assert_eq!(
        message(&e, &text),
        "not a Parquet file: it does not end with PAR1"
    );
}

#[test]
fn a_csv_header_of_five_million_columns_is_refused_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.csv");
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(b"time,open,high,low,close").unwrap();
    for _ in 0..5_000_000 {
        out.write_all(b",x").unwrap();
    }
    out.write_all(b"\n2024-01-01,1,1,1,1\n").unwrap();
    out.flush().unwrap();
    drop(out);

    let started = Instant::now();
    let e = check_file(&path, &Limits::default()).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        message(&e, &path),
        "too large: more than 1000 columns; the limit is 1000"
    );
}

#[test]
fn a_250_mb_line_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.csv");
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(b"time,open,high,low,close\n2024-01-01,1,1,1,1\n2024-01-02,")
        .unwrap();
    let block = vec![b'9'; 1 << 20];
    for _ in 0..250 {
        out.write_all(&block).unwrap();
    }
    out.write_all(b",1,1,1\n").unwrap();
    out.flush().unwrap();
    drop(out);

    let started = Instant::now();
    let e = check_file(&path, &Limits::default()).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stops at the limit: {:?}",
        started.elapsed()
    );
    assert_eq!(
        message(&e, &path),
        "too large: more than 1048576 bytes in line 3; the limit is 1048576"
    );
    // The whole file is over a smaller byte limit before any line is read.
    let e = check_file(
        &path,
        &Limits {
            max_bytes: 100 << 20,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DataError::TooLarge {
                what: Measure::Bytes,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn csv_rows_are_counted_until_one_past_the_limit() {
    let mut text = String::from("time,open,high,low,close\n");
    for day in 1..=10 {
        text.push_str(&format!("2024-01-{day:02},10,11,9,10\n"));
    }
    // Blank lines are not rows; a line break inside quotes does not end one.
    text.push_str("\n\r\n");
    let (_dir, path) = file("ten.csv", text.as_bytes());
    assert_eq!(
        check_file(&path, &rows_at_most(10)).unwrap(),
        Extent {
            rows: 10,
            columns: 5,
            bytes: text.len() as u64
        }
    );
    text.push_str("2024-01-11,10,11,9,\"10\n\"\n");
    let (_dir, path) = file("eleven.csv", text.as_bytes());
    let e = check_file(&path, &rows_at_most(10)).unwrap_err();
    assert_eq!(
        message(&e, &path),
        "too large: more than 10 rows; the limit is 10"
    );
    assert_eq!(check_file(&path, &rows_at_most(11)).unwrap().rows, 11);
    // A last row without a line break counts too.
    let (_dir, path) = file(
        "unterminated.csv",
        b"time,open,high,low,close\n2024-01-01,10,11,9,10\n2024-01-02,10,11,9,10",
    );
    assert_eq!(check_file(&path, &rows_at_most(2)).unwrap().rows, 2);
}

#[test]
fn non_finite_prices_pass_the_check_and_fail_validation_by_row() {
    let text = "time,open,high,low,close\n\
                2024-01-01,10,11,9,10\n\
                2024-01-02,10,inf,9,10\n\
                2024-01-03,NaN,11,9,10\n";
    let (_dir, path) = file("nan.csv", text.as_bytes());
    assert_eq!(check_file(&path, &Limits::default()).unwrap().rows, 3);
    let e = load_limited(&path, &LoadOptions::default(), &Limits::default()).unwrap_err();
    match &e {
        DataError::Row {
            row: 2,
            problem: RowProblem::NotFinite { column: "high", .. },
            ..
        } => {}
        other => panic!("{other}"),
    }
    assert_eq!(
        message(&e, &path),
        "row 2 (2024-01-02): high is not finite (inf)"
    );
}

#[test]
fn an_unterminated_quote_names_the_line_it_opens_on() {
    let text = "time,open,high,low,close\n\
                2024-01-01,10,11,9,10\n\
                2024-01-02,\"10,11,9,10\n\
                2024-01-03,10,11,9,10\n";
    let (_dir, path) = file("quote.csv", text.as_bytes());
    let e = check_file(&path, &Limits::default()).unwrap_err();
    assert_eq!(
        message(&e, &path),
        "line 3: a quote opened on this line is never closed; is a closing \" missing?"
    );
    // Past the record limit, the open quote is named rather than the length.
    let mut long = text.to_owned();
    for _ in 0..100 {
        long.push_str("2024-01-04,10,11,9,10\n");
    }
    let (_dir, path) = file("quote-long.csv", long.as_bytes());
    let e = check_file(
        &path,
        &Limits {
            max_line_bytes: 1_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, DataError::Malformed { line: Some(3), .. }),
        "{e}"
    );
}

/// `text` as UTF-16, little-endian, with or without its byte order mark.
fn utf16(text: &str, bom: bool) -> Vec<u8> {
    let mut bytes = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

#[test]
fn utf16_and_other_non_utf8_text_are_refused_by_line() {
    let text = "time,open,high,low,close\n2024-01-01,10,11,9,10\n";
    let (_dir, path) = file("bom.csv", &utf16(text, true));
    let e = check_file(&path, &Limits::default()).unwrap_err();
    assert_eq!(
        message(&e, &path),
        "line 1: the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8"
    );
    let (_dir, path) = file("nobom.csv", &utf16(text, false));
    let e = check_file(&path, &Limits::default()).unwrap_err();
    assert_eq!(
        message(&e, &path),
        "line 1: the header contains NUL bytes: is the file UTF-16? save it as UTF-8"
    );
    // Latin-1 in line 3 (the 'é' of a comment column).
    let mut latin1 = b"time,open,high,low,close,note\n2024-01-01,10,11,9,10,ok\n".to_vec();
    latin1.extend_from_slice(b"2024-01-02,10,11,9,10,caf\xe9\n");
    let (_dir, path) = file("latin1.csv", &latin1);
    let e = check_file(&path, &Limits::default()).unwrap_err();
    assert_eq!(
        message(&e, &path),
        "line 3: not UTF-8 text (at byte 26 of the line); save the file as UTF-8"
    );
}

#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(b"time,open,high,low,close\n2024-01-01,10,11,9,10\n");
    let (_dir, path) = file("bom8.csv", &bytes);
    assert_eq!(check_file(&path, &Limits::default()).unwrap().rows, 1);
    let bars = load_limited(&path, &LoadOptions::default(), &Limits::default()).unwrap();
    assert_eq!(bars.close, vec![10.0]);
}

#[test]
fn tick_files_are_checked_before_they_are_loaded() {
    let text = "time,type,side,price,size\n\
                2024-01-02T00:00:00Z,trade,buy,100,1\n\
                2024-01-02T00:00:01Z,trade,sell,100.5,2\n\
                2024-01-02T00:00:02Z,trade,buy,101,1\n";
    let (_dir, path) = file("ticks.csv", text.as_bytes());
    let e =
        crate::tick::load_limited(&path, &LoadOptions::default(), &rows_at_most(2)).unwrap_err();
    assert_eq!(
        message(&e, &path),
        "too large: more than 2 rows; the limit is 2"
    );
    let ticks =
        crate::tick::load_limited(&path, &LoadOptions::default(), &rows_at_most(3)).unwrap();
    assert_eq!(ticks.len(), 3);
}
