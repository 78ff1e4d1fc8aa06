//! Writing bars to CSV (and choosing CSV or Parquet by a file's extension), in the layout
//! [`load`](super::load) reads back.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::error::DataError;
use super::time::Rfc3339;
use super::Bars;

/// The two file formats Strata reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    /// Comma-separated text with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// The format of `path` from its extension (`.csv`, `.parquet` or `.pq`, in any case).
    pub(crate) fn of(path: &Path) -> Result<FileFormat, DataError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(FileFormat::Csv),
            Some("parquet" | "pq") => Ok(FileFormat::Parquet),
            _ => Err(DataError::UnsupportedFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A buffered file for writing, with errors that name it.
pub(crate) fn create(path: &Path) -> Result<BufWriter<std::fs::File>, DataError> {
    std::fs::File::create(path)
        .map(|file| BufWriter::with_capacity(1 << 20, file))
        .map_err(|source| write_error(path, source))
}

/// An I/O error while writing `path`.
pub(crate) fn write_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    }
}

impl Bars {
    /// Writes the bars to a `.csv` or `.parquet`/`.pq` file, chosen by the extension.
    pub fn write(&self, path: &Path) -> Result<(), DataError> {
        match FileFormat::of(path)? {
            FileFormat::Csv => self.write_csv(path),
            FileFormat::Parquet => self.write_parquet(path),
        }
    }

    /// Writes the bars to a CSV file: `time` (RFC 3339), open, high, low, close, volume (empty
    /// where NaN, as [`load`](super::load) reads a missing volume).
    pub fn write_csv(&self, path: &Path) -> Result<(), DataError> {
        let mut out = create(path)?;
        let rows = (|| {
            out.write_all(b"time,open,high,low,close,volume\n")?;
            for i in 0..self.len() {
                write!(
                    out,
                    "{},{},{},{},{},",
                    Rfc3339(self.time[i]),
                    self.open[i],
                    self.high[i],
                    self.low[i],
                    self.close[i]
                )?;
                if !self.volume[i].is_nan() {
                    write!(out, "{}", self.volume[i])?;
                }
                out.write_all(b"\n")?;
            }
            out.flush()
        })();
        rows.map_err(|source| write_error(path, source))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load, synthetic, LoadOptions};

    #[test]
    fn csv_and_parquet_round_trip_through_load() {
        let bars = synthetic::random_walk(500, 3);
        let dir = tempfile::tempdir().unwrap();
        for name in ["bars.csv", "bars.parquet", "bars.PQ"] {
            let path = dir.path().join(name);
            bars.write(&path).unwrap();
            assert_eq!(
                load(&path, &LoadOptions::default()).unwrap(),
                bars,
                "{name}"
            );
        }
        let message = bars
            .write(&dir.path().join("bars.xlsx"))
            .unwrap_err()
            .to_string();
        assert!(message.ends_with("unsupported file type; expected a .csv, .parquet or .pq file"));
    }

    #[test]
    fn missing_volume_is_written_empty() {
        let mut bars = synthetic::random_walk(3, 1);
        bars.volume = vec![f64::NAN; 3];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.csv");
        bars.write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().nth(1).unwrap().ends_with(','), "{text}");
        let loaded = load(&path, &LoadOptions::default()).unwrap();
        assert!(loaded.volume.iter().all(|v| v.is_nan()));
        assert_eq!(loaded.close, bars.close);
    }
}
