//! An upload's conversion to Parquet, in a child process of its own.
//!
//! Decoding a file someone sent is the riskiest thing the api does: a crafted Parquet page can
//! make polars ask for 2^61 bytes, and a failed allocation aborts the process rather than
//! panicking. So the api never decodes an upload itself. It starts its own executable as
//! `strata convert-upload`, which caps its address space at `api.upload_memory_mb`, reads the
//! [`Conversion`] as JSON from standard input, and answers one [`Outcome`] as JSON on standard
//! output. A file that aborts, exhausts or crashes the child costs that child only: the api
//! answers 413 or 422 and serves on. A request that goes away kills its child first, then its
//! staged files go.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};

use chrono::{DateTime, Utc};
use engine::data::{self, Bars, DataError, Limits, LoadOptions};
use serde::{Deserialize, Serialize};
use strata_core::store::DatasetKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::error::{ApiError, ApiResult};

/// The subcommand of the strata executable that runs [`child_main`].
pub const SUBCOMMAND: &str = "convert-upload";

/// Threads of a converter child's polars pool.
const CHILD_THREADS: usize = 2;

/// Most bytes read of a child's answer, or kept of what it wrote to standard error.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// One upload to convert: what the api asks of its child.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversion {
    pub kind: DatasetKind,
    /// The upload as received.
    pub input: PathBuf,
    /// Where the Parquet file goes.
    pub output: PathBuf,
    /// How error messages name the file (the uploaded file's name, or "the upload").
    pub shown_as: String,
    /// Most rows the upload may hold (`api.upload_max_rows`).
    pub max_rows: u64,
}

/// What the bars (or events) say about themselves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub bars: i64,
    pub first_time: DateTime<Utc>,
    pub last_time: DateTime<Utc>,
    pub spacing_seconds: Option<i64>,
}

impl Summary {
    /// Count, first and last of non-empty `time`; `spacing` in nanoseconds.
    pub fn of(time: &[i64], spacing: Option<i64>) -> Summary {
        let at = |nanos: i64| DateTime::<Utc>::from_timestamp_nanos(nanos);
        Summary {
            bars: time.len() as i64,
            first_time: at(time[0]),
            last_time: at(time[time.len() - 1]),
            spacing_seconds: spacing.map(|ns| ns / 1_000_000_000),
        }
    }

    pub fn of_bars(bars: &Bars) -> Summary {
        Summary::of(&bars.time, bars.spacing())
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Converted {
    pub summary: Summary,
    /// Size of the Parquet file.
    pub bytes: u64,
}

/// A conversion's answer, as the child writes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Converted(Converted),
    /// Over a limit (413 `dataset_too_large`).
    TooLarge(String),
    /// Not valid bars or events (422 on `file`).
    Invalid(String),
    /// The server's problem (500), such as a full disk.
    Failed(String),
}

impl Outcome {
    fn into_result(self) -> ApiResult<Converted> {
        match self {
            Outcome::Converted(converted) => Ok(converted),
            Outcome::TooLarge(detail) => Err(ApiError::TooLarge {
                code: "dataset_too_large",
                detail,
            }),
            Outcome::Invalid(message) => Err(ApiError::field("file", message)),
            Outcome::Failed(message) => Err(ApiError::Internal(message)),
        }
    }
}

impl Conversion {
    /// Checks the file against the limits, reads and validates it, writes it as Parquet. This is
    /// the child's work; the api calls [`Converter::run`].
    pub fn run(&self) -> Outcome {
        let limits = Limits {
            max_rows: self.max_rows,
            ..Limits::default()
        };
        let summary = match self.kind {
            DatasetKind::Bars => {
                let bars = match data::load_limited(&self.input, &LoadOptions::default(), &limits) {
                    Ok(bars) => bars,
                    Err(e) => return self.refusal(e),
                };
                if bars.is_empty() {
                    return Outcome::Invalid(format!("{}: no bars", self.shown_as));
                }
                if let Err(e) = bars.write_parquet(&self.output) {
                    return self.write_error(e);
                }
                Summary::of_bars(&bars)
            }
            DatasetKind::Ticks => {
                let ticks =
                    match engine::tick::load_limited(&self.input, &LoadOptions::default(), &limits)
                    {
                        Ok(ticks) => ticks,
                        Err(e) => return self.refusal(e),
                    };
                if ticks.is_empty() {
                    return Outcome::Invalid(format!("{}: no events", self.shown_as));
                }
                if let Err(e) = ticks.write(&self.output) {
                    return self.write_error(e);
                }
                Summary::of(&ticks.time, None)
            }
        };
        match std::fs::metadata(&self.output) {
            Ok(metadata) => Outcome::Converted(Converted {
                summary,
                bytes: metadata.len(),
            }),
            Err(e) => Outcome::Failed(format!("storing a data set: {e}")),
        }
    }

    /// A refusal of the user's file, naming the file as its uploader named it rather than by
    /// the server's staging path.
    fn refusal(&self, e: DataError) -> Outcome {
        let mut message = e
            .to_string()
            .replace(&self.input.display().to_string(), &self.shown_as);
        if let DataError::MissingColumns { found, .. } = &e {
            if self.kind == DatasetKind::Bars && looks_like_ticks(found) {
                message.push_str(
                    "; these look like trades and book events: upload tick data with \
                     ?kind=ticks (README, \"Tick data\")",
                );
            }
        }
        match e {
            DataError::TooLarge { .. } => Outcome::TooLarge(message),
            DataError::Io { .. } => Outcome::Failed(message),
            _ => Outcome::Invalid(message),
        }
    }

    /// Writing the converted file failed: the server's problem, not the upload's.
    fn write_error(&self, e: DataError) -> Outcome {
        let _ = std::fs::remove_file(&self.output);
        Outcome::Failed(format!("storing a data set: {e}"))
    }
}

/// Whether a file's columns are those of trades and book events (`price` with `side`, `type`
/// or `size`) rather than bars: an upload of them without `kind=ticks` gets a hint.
fn looks_like_ticks(columns: &[String]) -> bool {
    let has = |name: &str| columns.iter().any(|c| c.trim().eq_ignore_ascii_case(name));
    has("price") && (has("side") || has("type") || has("size"))
}

/// `strata convert-upload --memory-mb N`: caps this process's address space at `memory_mb`
/// MiB, reads a [`Conversion`] from standard input, runs it and writes its [`Outcome`] to
/// standard output.
pub fn child_main(memory_mb: u64) -> ExitCode {
    let bytes = memory_mb.saturating_mul(1 << 20);
    if let Err(e) = rlimit::Resource::AS.set(bytes, bytes) {
        eprintln!("cannot cap the converter's memory at {memory_mb} MiB: {e}");
        return ExitCode::FAILURE;
    }
    let mut request = Vec::new();
    let read = std::io::stdin()
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut request);
    let conversion: Conversion = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&request).map_err(|e| e.to_string()))
    {
        Ok(conversion) => conversion,
        Err(e) => {
            eprintln!("a conversion is asked for as JSON on standard input: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = conversion.run();
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut stdout, &outcome)
        .map_err(std::io::Error::from)
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot answer the api: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How the api starts its converter children.
#[derive(Debug, Clone)]
pub struct Converter {
    /// The strata executable.
    pub program: PathBuf,
    /// Each child's address-space cap (`api.upload_memory_mb`).
    pub memory_mb: u64,
}

impl Converter {
    /// The converter of an api with `config`: its own executable unless
    /// `api.upload_converter` names another.
    pub fn of(config: &strata_core::Config) -> Converter {
        let program =
            config.api.upload_converter.clone().unwrap_or_else(|| {
                std::env::current_exe().unwrap_or_else(|_| PathBuf::from("strata"))
            });
        Converter {
            program,
            memory_mb: config.api.upload_memory_mb,
        }
    }

    /// Runs `conversion` in a child process. When `cancelled` fires (its sender is dropped:
    /// the request has gone) the child is killed and waited for, so nothing it writes outlives
    /// this call.
    pub async fn run(
        &self,
        conversion: &Conversion,
        cancelled: oneshot::Receiver<()>,
    ) -> ApiResult<Converted> {
        let mut child = tokio::process::Command::new(&self.program)
            .arg(SUBCOMMAND)
            .arg("--memory-mb")
            .arg(self.memory_mb.to_string())
            // The child needs nothing of the api's environment, secrets least of all. Two
            // threads: conversions share the api's machine, and each thread's stack and
            // allocator arena take address space under the cap whatever the machine's size.
            .env_clear()
            .env("POLARS_MAX_THREADS", CHILD_THREADS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ApiError::Internal(format!(
                    "cannot start the upload converter {}: {e}",
                    self.program.display()
                ))
            })?;
        let request = serde_json::to_vec(conversion)
            .map_err(|e| ApiError::Internal(format!("asking for a conversion: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = tokio::spawn(read_bounded(child.stdout.take()));
        let stderr = tokio::spawn(read_bounded(child.stderr.take()));
        let sent = stdin.write_all(&request).await;
        drop(stdin);
        enum Ended {
            Exited(std::io::Result<ExitStatus>),
            Cancelled,
        }
        let ended = tokio::select! {
            status = child.wait() => Ended::Exited(status),
            _ = cancelled => Ended::Cancelled,
        };
        let status = match ended {
            Ended::Exited(status) => status.map_err(|e| {
                ApiError::Internal(format!("waiting for the upload converter: {e}"))
            })?,
            Ended::Cancelled => {
                let _ = child.kill().await;
                return Err(ApiError::Internal(
                    "the upload's request has gone".to_owned(),
                ));
            }
        };
        let stdout = stdout.await.unwrap_or_default();
        let stderr = stderr.await.unwrap_or_default();
        if status.success() {
            if let Ok(outcome) = serde_json::from_slice::<Outcome>(&stdout) {
                return outcome.into_result();
            }
        }
        let said = String::from_utf8_lossy(&stderr);
        let said = said.trim();
        tracing::warn!(
            %status,
            converter = %self.program.display(),
            request_sent = sent.is_ok(),
            stderr = %said,
            "an upload's converter ended without an answer"
        );
        Err(self.died(conversion, status, said))
    }

    /// The error for a child that ended without an answer: out of memory (an allocation over
    /// its cap), or stopped by the file some other way (abort, crash).
    fn died(&self, conversion: &Conversion, status: ExitStatus, stderr: &str) -> ApiError {
        if stderr.contains("memory allocation of") {
            return ApiError::TooLarge {
                code: "dataset_too_large",
                detail: format!(
                    "{}: converting it needed more than the {} MiB of memory an upload may use \
                     (api.upload_memory_mb); the file holds more than an upload may, or it is \
                     damaged",
                    conversion.shown_as, self.memory_mb
                ),
            };
        }
        if status.code().is_some() && !stderr.contains("panicked") {
            // It exited on its own without answering: a misconfigured converter, not the file.
            return ApiError::Internal(format!(
                "the upload converter {} ended with {status} without an answer (is \
                 api.upload_converter a strata executable?): {stderr}",
                self.program.display()
            ));
        }
        ApiError::field(
            "file",
            format!(
                "{}: the file could not be read: its reader stopped on it ({}); the file is \
                 damaged, or not the CSV or Parquet it claims to be",
                conversion.shown_as,
                stopped_by(status)
            ),
        )
    }
}

/// How a child ended, in words.
fn stopped_by(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(6) => "it aborted".to_owned(),
        Some(11) => "it crashed".to_owned(),
        Some(signal) => format!("signal {signal}"),
        None => "it panicked".to_owned(),
    }
}

/// All of a child's pipe, up to [`MAX_ANSWER_BYTES`] (the rest is drained, so a chatty child
/// never blocks on a full pipe).
async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let _ = (&mut pipe)
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut kept)
        .await;
    let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
    kept
}

/// Removes `path` if it exists.
pub fn remove_if_present(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot remove a staged upload")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARS: &str = "time,open,high,low,close\n2024-01-01,10,11,9,10.5\n2024-01-02,10,12,9,11\n";

    fn conversion(dir: &Path) -> Conversion {
        let input = dir.join("upload.csv");
        std::fs::write(&input, BARS).unwrap();
        Conversion {
            kind: DatasetKind::Bars,
            input,
            output: dir.join("upload.converted.parquet"),
            shown_as: "the upload".to_owned(),
            max_rows: 10_000_000,
        }
    }

    #[test]
    fn a_conversion_writes_parquet_and_says_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let conversion = conversion(dir.path());
        match conversion.run() {
            Outcome::Converted(converted) => {
                assert_eq!(converted.summary.bars, 2);
                assert_eq!(converted.summary.spacing_seconds, Some(86_400));
                assert_eq!(
                    converted.bytes,
                    std::fs::metadata(&conversion.output).unwrap().len()
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_name_the_upload_not_the_staging_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut too_big = conversion(dir.path());
        too_big.max_rows = 1;
        match too_big.run() {
            Outcome::TooLarge(detail) => assert_eq!(
                detail,
                "the upload: too large: more than 1 rows; the limit is 1"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outcomes_travel_as_json() {
        let outcome = Outcome::Invalid("row 3: high below low".to_owned());
        let json = serde_json::to_string(&outcome).unwrap();
        assert_eq!(json, r#"{"invalid":"row 3: high below low"}"#);
        match serde_json::from_str::<Outcome>(&json)
            .unwrap()
            .into_result()
        {
            Err(ApiError::Validation { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
