//! Bounds on what a data file may make the loaders hold, checked before anything is decoded.
//!
//! The loaders read every row into memory before validating (so errors can name any row), and
//! a small file can declare a great deal: a 5 MB Parquet file of 200M constant rows decodes to
//! gigabytes, a CSV header of five million columns makes polars build five million columns, a
//! 250 MB line is parsed as one record. [`check_file`] looks at what a file declares first:
//!
//! - **Parquet**: the footer alone (its length is checked before it is read), giving the row
//!   count, the row groups, the columns and the uncompressed size of the column data. Nothing
//!   is decompressed.
//! - **CSV**: one streaming pass in a fixed buffer that counts the header's columns, measures
//!   every record and counts rows, stopping at the first limit passed. It also refuses what
//!   polars would misread or report badly: UTF-16 (by its byte order mark, or NUL bytes in the
//!   header), bytes that are not UTF-8, and a quote that is never closed.
//!
//! [`load_limited`] (bars) and [`crate::tick::load_limited`] (trades and book events) run the
//! check, then the loader; what an upload accepts is bounded by the check.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use polars::prelude::*;

use super::error::DataError;
use super::write::FileFormat;
use super::{load, Bars, LoadOptions};

/// The most a file may hold for [`check_file`] to let a loader read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Data rows (bars, or trades and book events).
    pub max_rows: u64,
    /// Bytes to decode: a CSV file's size, a Parquet file's uncompressed column data as its
    /// metadata declares it.
    pub max_bytes: u64,
    /// Columns of the header (CSV) or leaf columns of the schema (Parquet).
    pub max_columns: u64,
    /// Bytes of one CSV record (a line, or several when a quoted field holds line breaks).
    pub max_line_bytes: u64,
    /// Row groups of a Parquet file.
    pub max_row_groups: u64,
    /// Bytes of a Parquet file's footer (its metadata), read before anything else.
    pub max_metadata_bytes: u64,
}

impl Default for Limits {
    /// Generous for market data, small enough that a server survives the worst file: 10M rows
    /// (about 500 MB of bars in memory), 1 GiB to decode, 1,000 columns, 1 MiB per record,
    /// 100,000 row groups and a 16 MiB Parquet footer.
    fn default() -> Limits {
        Limits {
            max_rows: 10_000_000,
            max_bytes: 1 << 30,
            max_columns: 1_000,
            max_line_bytes: 1 << 20,
            max_row_groups: 100_000,
            max_metadata_bytes: 16 << 20,
        }
    }
}

/// What a file was measured against a limit for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Data rows.
    Rows,
    /// Bytes to decode (the file, or Parquet's uncompressed column data).
    Bytes,
    /// Columns; for CSV, those of the header.
    Columns,
    /// Bytes of the CSV record starting on this 1-based line.
    LineBytes {
        /// 1-based line of the file where the record starts (the header is line 1).
        line: u64,
    },
    /// Parquet row groups.
    RowGroups,
    /// Bytes of the Parquet footer.
    MetadataBytes,
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measure::Rows => f.write_str("rows"),
            Measure::Bytes => f.write_str("bytes of data"),
            Measure::Columns => f.write_str("columns"),
            Measure::LineBytes { line: 1 } => f.write_str("bytes in line 1 (the header)"),
            Measure::LineBytes { line } => write!(f, "bytes in line {line}"),
            Measure::RowGroups => f.write_str("row groups"),
            Measure::MetadataBytes => f.write_str("bytes of Parquet metadata (the footer)"),
        }
    }
}

/// How much of a measure a file has: exactly, or more than where counting stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// The whole count.
    Exactly(u64),
    /// Counting stopped past the limit, which is this.
    MoreThan(u64),
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Exactly(n) => write!(f, "{n}"),
            Count::MoreThan(n) => write!(f, "more than {n}"),
        }
    }
}

/// What [`check_file`] found in a file within the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Data rows (for CSV, non-empty records after the header).
    pub rows: u64,
    /// Columns (of the header, or leaf columns of a Parquet schema).
    pub columns: u64,
    /// Bytes to decode, as measured against [`Limits::max_bytes`].
    pub bytes: u64,
}

/// Reads bars as [`load`] does, after [`check_file`] has found the file within `limits`.
pub fn load_limited(
    path: &Path,
    options: &LoadOptions,
    limits: &Limits,
) -> Result<Bars, DataError> {
    check_file(path, limits)?;
    load(path, options)
}

/// Checks what a `.csv` or `.parquet`/`.pq` file holds against `limits` without decoding it:
/// [`DataError::TooLarge`] names the measure, the limit and what was found,
/// [`DataError::Malformed`] what cannot be read (and where).
pub fn check_file(path: &Path, limits: &Limits) -> Result<Extent, DataError> {
    let format = FileFormat::of(path)?;
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let size = file
        .metadata()
        .map_err(|source| io_error(path, source))?
        .len();
    match format {
        FileFormat::Csv => {
            over(path, Measure::Bytes, limits.max_bytes, Count::Exactly(size))?;
            check_csv(path, file, limits)
        }
        FileFormat::Parquet => check_parquet(path, file, size, limits),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    }
}

/// [`DataError::TooLarge`] when `found` is beyond `limit`.
fn over(path: &Path, what: Measure, limit: u64, found: Count) -> Result<(), DataError> {
    let beyond = match found {
        Count::Exactly(n) => n > limit,
        Count::MoreThan(_) => true,
    };
    if beyond {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            what,
            limit,
            found,
        });
    }
    Ok(())
}

fn malformed(path: &Path, line: Option<u64>, reason: impl Into<String>) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Parquet

/// Bytes at the end of every Parquet file: the footer's length (u32, little-endian), `PAR1`.
const PARQUET_TAIL: u64 = 8;

fn check_parquet(
    path: &Path,
    mut file: File,
    size: u64,
    limits: &Limits,
) -> Result<Extent, DataError> {
    let not_parquet = |reason: &str| malformed(path, None, format!("not a Parquet file: {reason}"));
    if size < 4 + PARQUET_TAIL {
        return Err(not_parquet("too short"));
    }
    // The footer's length first: polars reads the whole footer into memory and parses it, and a
    // file of a few hundred MB can be all footer.
    let mut tail = [0u8; PARQUET_TAIL as usize];
    file.seek(SeekFrom::End(-(PARQUET_TAIL as i64)))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|source| io_error(path, source))?;
    if &tail[4..] != b"PAR1" {
        return Err(not_parquet("it does not end with PAR1"));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer + PARQUET_TAIL > size {
        return Err(not_parquet("its footer is longer than the file"));
    }
    over(
        path,
        Measure::MetadataBytes,
        limits.max_metadata_bytes,
        Count::Exactly(footer),
    )?;
    file.seek(SeekFrom::Start(0))
        .map_err(|source| io_error(path, source))?;
    let metadata = super::load::unpanicked(path, || {
        ParquetReader::new(file)
            .get_metadata()
            .cloned()
            .map_err(|e| DataError::read(path, e))
    })?;

    let row_groups = metadata.row_groups.len() as u64;
    over(
        path,
        Measure::RowGroups,
        limits.max_row_groups,
        Count::Exactly(row_groups),
    )?;
    let columns = metadata.schema_descr.columns().len() as u64;
    over(
        path,
        Measure::Columns,
        limits.max_columns,
        Count::Exactly(columns),
    )?;
    // The file's count and the row groups' sum should agree; a file that lies gets the larger.
    let in_groups: u64 = metadata
        .row_groups
        .iter()
        .map(|g| g.num_rows() as u64)
        .fold(0, u64::saturating_add);
    let rows = in_groups.max(metadata.num_rows as u64);
    over(path, Measure::Rows, limits.max_rows, Count::Exactly(rows))?;
    let bytes: u64 = metadata
        .row_groups
        .iter()
        .flat_map(|g| g.parquet_columns())
        .map(|c| u64::try_from(c.uncompressed_size()).unwrap_or(u64::MAX))
        .fold(0, u64::saturating_add);
    over(
        path,
        Measure::Bytes,
        limits.max_bytes,
        Count::Exactly(bytes),
    )?;
    Ok(Extent {
        rows,
        columns,
        bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Bytes read at a time by the CSV pass; its memory does not grow with the file.
const CHUNK: usize = 1 << 16;

/// Where the CSV pass is within the file.
struct CsvPass<'a> {
    path: &'a Path,
    limits: &'a Limits,
    /// 1-based line being read.
    line: u64,
    /// Line where the current record started.
    record_line: u64,
    /// Bytes of the current record so far.
    record_bytes: u64,
    /// True inside a quoted field.
    quoted: bool,
    /// Line where the open quote was opened.
    quote_line: u64,
    /// Columns of the header so far (counted while in the header).
    header_columns: u64,
    /// Non-empty data records completed.
    rows: u64,
    /// The current record has a byte other than a line break.
    record_has_content: bool,
    /// Bytes of the current line from earlier chunks, kept for the UTF-8 check (at most
    /// `max_line_bytes`).
    line_bytes: Vec<u8>,
    /// The header contained a NUL byte (a sign of UTF-16 without a byte order mark).
    header_nul: bool,
}

fn check_csv(path: &Path, mut file: File, limits: &Limits) -> Result<Extent, DataError> {
    let mut buffer = vec![0u8; CHUNK];
    let mut pass = CsvPass {
        path,
        limits,
        line: 1,
        record_line: 1,
        record_bytes: 0,
        quoted: false,
        quote_line: 1,
        header_columns: 1,
        rows: 0,
        record_has_content: false,
        line_bytes: Vec::new(),
        header_nul: false,
    };
    let mut first = true;
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(io_error(path, source)),
        };
        let mut chunk = &buffer[..n];
        if first {
            first = false;
            if chunk.starts_with(&[0xFF, 0xFE]) || chunk.starts_with(&[0xFE, 0xFF]) {
                return Err(malformed(
                    path,
                    Some(1),
                    "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8",
                ));
            }
            // A UTF-8 byte order mark is allowed (polars skips it); it is not part of the header.
            if let Some(rest) = chunk.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
                chunk = rest;
            }
        }
        size += chunk.len() as u64;
        pass.feed(chunk)?;
    }
    pass.finish(size)
}

impl CsvPass<'_> {
    /// One chunk of the file. The loop looks at each byte once for quotes, line breaks and (in
    /// the header) commas; lines are checked for UTF-8 as whole slices.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), DataError> {
        // Where the current line's bytes begin in this chunk.
        let mut start = 0;
        for (i, &byte) in chunk.iter().enumerate() {
            match byte {
                b'"' => {
                    self.quoted = !self.quoted;
                    if self.quoted {
                        self.quote_line = self.line;
                    }
                }
                b',' if !self.quoted && self.record_line == 1 => {
                    self.header_columns += 1;
                    if self.header_columns > self.limits.max_columns {
                        // Counting stops here: a header of millions of columns is not read on.
                        return Err(DataError::TooLarge {
                            path: self.path.to_path_buf(),
                            what: Measure::Columns,
                            limit: self.limits.max_columns,
                            found: Count::MoreThan(self.limits.max_columns),
                        });
                    }
                }
                0 if self.record_line == 1 => self.header_nul = true,
                b'\n' => {
                    self.grow_record((i + 1 - start) as u64)?;
                    self.end_line(&chunk[start..i])?;
                    start = i + 1;
                    if !self.quoted {
                        self.end_record()?;
                    }
                }
                _ => {}
            }
        }
        // The rest of the chunk begins a line that the next chunk goes on with.
        let rest = &chunk[start..];
        self.grow_record(rest.len() as u64)?;
        self.line_bytes.extend_from_slice(rest);
        Ok(())
    }

    /// Adds `bytes` to the current record, which must stay within `max_line_bytes` (so the
    /// bytes kept of an unfinished line stay within it too).
    fn grow_record(&mut self, bytes: u64) -> Result<(), DataError> {
        self.record_bytes += bytes;
        if self.record_bytes > self.limits.max_line_bytes {
            return Err(self.record_too_long());
        }
        Ok(())
    }

    /// The error for a record past `max_line_bytes`: most often a quote never closed.
    fn record_too_long(&self) -> DataError {
        let limit = self.limits.max_line_bytes;
        if self.quoted && self.quote_line < self.line {
            return malformed(
                self.path,
                Some(self.quote_line),
                format!(
                    "a quote opened on this line is not closed within {limit} bytes; \
                     is a closing \" missing?"
                ),
            );
        }
        DataError::TooLarge {
            path: self.path.to_path_buf(),
            what: Measure::LineBytes {
                line: self.record_line,
            },
            limit,
            found: Count::MoreThan(limit),
        }
    }

    /// A line break: the line (its bytes kept from earlier chunks, then `tail`) must be UTF-8.
    fn end_line(&mut self, tail: &[u8]) -> Result<(), DataError> {
        if self.line == 1 && self.header_nul {
            return Err(malformed(
                self.path,
                Some(1),
                "the header contains NUL bytes: is the file UTF-16? save it as UTF-8",
            ));
        }
        let line: &[u8] = if self.line_bytes.is_empty() {
            tail
        } else {
            self.line_bytes.extend_from_slice(tail);
            &self.line_bytes
        };
        if let Err(e) = std::str::from_utf8(line) {
            return Err(malformed(
                self.path,
                Some(self.line),
                format!(
                    "not UTF-8 text (at byte {} of the line); save the file as UTF-8",
                    e.valid_up_to() + 1
                ),
            ));
        }
        if line.iter().any(|&b| b != b'\r') {
            self.record_has_content = true;
        }
        self.line_bytes.clear();
        self.line += 1;
        Ok(())
    }

    /// A line break outside quotes: one record done.
    fn end_record(&mut self) -> Result<(), DataError> {
        if self.record_line > 1 && self.record_has_content {
            self.rows += 1;
            if self.rows > self.limits.max_rows {
                return Err(DataError::TooLarge {
                    path: self.path.to_path_buf(),
                    what: Measure::Rows,
                    limit: self.limits.max_rows,
                    found: Count::MoreThan(self.limits.max_rows),
                });
            }
        }
        self.record_line = self.line;
        self.record_bytes = 0;
        self.record_has_content = false;
        Ok(())
    }

    /// The end of the file: a last record without a line break, an open quote.
    fn finish(mut self, size: u64) -> Result<Extent, DataError> {
        if self.quoted {
            return Err(malformed(
                self.path,
                Some(self.quote_line),
                "a quote opened on this line is never closed; is a closing \" missing?",
            ));
        }
        if !self.line_bytes.is_empty() || self.record_has_content {
            self.end_line(&[])?;
            self.end_record()?;
        }
        Ok(Extent {
            rows: self.rows,
            columns: self.header_columns,
            bytes: size,
        })
    }
}

#[cfg(test)]
mod tests;
