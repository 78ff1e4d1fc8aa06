//! Running one job: claim it, run it on the engine pool while a heartbeat reports progress and
//! listens for cancellation, then record the outcome.

pub(crate) mod backtest;
pub(crate) mod sweep;
pub(crate) mod walk_forward;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use engine::data::{Bars, LoadOptions};
use engine::tick::TickData;
use serde_json::Value;
use strata_core::job::{JobKind, JobMessage};
use strata_core::store::{ChildJob, Claimed, Retry};
use tracing::{debug, error, info, info_span, warn, Instrument, Span};
use uuid::Uuid;

use crate::bars::BarsCache;
use crate::Worker;

/// How often a running job's monitor looks at its progress.
const MONITOR_TICK: Duration = Duration::from_millis(250);
/// Progress is written at most this often (the heartbeat carries it).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How long a worker keeps trying to claim a job or write its outcome while PostgreSQL is
/// unreachable, before leaving the job to the reconciler: about a default lease, so a short
/// outage costs no attempt and a long one ends in a re-run after the lease.
const WRITE_PATIENCE: Duration = Duration::from_secs(30);
/// The longest pause between two tries of a write.
const WRITE_PAUSE_MAX: Duration = Duration::from_secs(2);

/// Why a running job was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stop {
    /// Its owner cancelled it.
    Owner = 1,
    /// The worker is shutting down and hands it back to the queue.
    Shutdown = 2,
    /// It is no longer this worker's: the reconciler took it back after a stale heartbeat.
    Lost = 3,
}

/// A job running on this worker: its cancellation flag and its progress, shared with the
/// engine thread running it.
#[derive(Default)]
pub(crate) struct RunningJob {
    /// Checked by the engine between parameter sets (and by the job between phases).
    cancel: AtomicBool,
    /// Why it was stopped (a [`Stop`]; 0 while it runs): the first reason wins.
    stop: AtomicU8,
    /// Fraction done, as `f64` bits.
    progress: AtomicU64,
}

impl RunningJob {
    /// Tells the job to stop; `true` unless it had been told already.
    pub(crate) fn stop(&self, reason: Stop) -> bool {
        let first = self
            .stop
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.cancel.store(true, Ordering::Release);
        first
    }

    fn stopped(&self) -> Option<Stop> {
        match self.stop.load(Ordering::Acquire) {
            1 => Some(Stop::Owner),
            2 => Some(Stop::Shutdown),
            3 => Some(Stop::Lost),
            _ => None,
        }
    }

    /// The flag the engine checks.
    pub(crate) fn cancel_flag(&self) -> &AtomicBool {
        &self.cancel
    }

    /// Fails with [`JobError::Cancelled`] once the job was told to stop.
    pub(crate) fn check(&self) -> Result<(), JobError> {
        if self.cancel.load(Ordering::Acquire) {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub(crate) fn set_progress(&self, fraction: f64) {
        self.progress.store(fraction.to_bits(), Ordering::Relaxed);
    }

    fn progress(&self) -> f64 {
        f64::from_bits(self.progress.load(Ordering::Relaxed))
    }
}

/// The jobs running on this worker, by id.
#[derive(Default)]
pub(crate) struct Running(Mutex<HashMap<Uuid, Arc<RunningJob>>>);

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<RunningJob>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, id: Uuid) -> Arc<RunningJob> {
        let job = Arc::new(RunningJob::default());
        self.lock().insert(id, Arc::clone(&job));
        job
    }

    fn remove(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    /// Stops the job if it runs here, for `reason`; `true` if it does.
    pub(crate) fn stop(&self, id: Uuid, reason: Stop) -> bool {
        let job = self.lock().get(&id).cloned();
        job.is_some_and(|job| job.stop(reason))
    }

    /// Stops every running job for `reason`; returns how many.
    pub(crate) fn stop_all(&self, reason: Stop) -> usize {
        let jobs: Vec<Arc<RunningJob>> = self.lock().values().cloned().collect();
        jobs.iter().filter(|job| job.stop(reason)).count()
    }

    /// How many jobs run here now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Why a job produced no result.
#[derive(Debug)]
pub(crate) enum JobError {
    /// The spec or the data cannot be run; the message is for the job's owner.
    Failed(String),
    /// It stopped because it was told to (see [`Stop`]).
    Cancelled,
    /// Engine code panicked.
    Panicked(String),
    /// Something outside the job failed for now (the data file could not be read); it runs
    /// again after a backoff.
    Transient(String),
}

impl JobError {
    /// A spec that no longer validates (the api checked it at submission).
    pub(crate) fn invalid_spec(errors: impl std::fmt::Display) -> JobError {
        JobError::Failed(format!("invalid spec: {errors}"))
    }
}

/// What a job hands back: its result document and how many bars it ran through.
pub(crate) struct Output {
    /// The result as JSON text, exactly what `strata backtest|sweep --format json` prints.
    pub(crate) document: String,
    /// Bars run through the engine (a sweep counts them once per parameter set).
    pub(crate) bars: u64,
    /// A job to queue in the same transaction as this result (an AI strategy's backtest), with
    /// the id the document names it by.
    pub(crate) child: Option<(Uuid, ChildJob)>,
}

impl Output {
    /// The output of an engine job: `result` as the document, `bars` the work it did.
    pub(crate) fn of(result: &impl serde::Serialize, bars: usize) -> Result<Output, JobError> {
        let document = serde_json::to_string(result)
            .map_err(|e| JobError::Failed(format!("cannot write the result: {e}")))?;
        Ok(Output {
            document,
            bars: bars as u64,
            child: None,
        })
    }
}

/// What a job's code gets on the engine thread.
pub(crate) struct Input<'a> {
    /// The stored request body.
    pub(crate) spec: &'a Value,
    /// The data file on this machine.
    pub(crate) path: &'a Path,
    /// The data file as stored with the job, for messages to its owner.
    pub(crate) data_path: &'a str,
    pub(crate) bars: &'a BarsCache,
    /// The engine pool, for work that fans out.
    pub(crate) pool: &'a rayon::ThreadPool,
    pub(crate) job: &'a RunningJob,
}

impl Input<'_> {
    /// The job's bars, from the cache or the file, with errors that name the data set rather
    /// than the server's directories.
    pub(crate) fn load(&self, options: &LoadOptions) -> Result<Arc<Bars>, JobError> {
        self.check_exists()?;
        self.bars
            .load(self.path, options)
            .map_err(|e| self.data_error(e))
    }

    /// The job's trades and book events, read from the file (tick data sets are read once per
    /// job: they are large and rarely shared by jobs in a row).
    pub(crate) fn load_ticks(&self, options: &LoadOptions) -> Result<TickData, JobError> {
        self.check_exists()?;
        engine::tick::load(self.path, options).map_err(|e| self.data_error(e))
    }

    /// Runs `work` with a [`Control`](engine::sweep::Control) that reports the engine's runs
    /// done as the job's progress and stops it once the job is told to stop.
    pub(crate) fn with_control<T>(&self, work: impl FnOnce(&engine::sweep::Control) -> T) -> T {
        let progress = |done: usize, total: usize| {
            if total > 0 {
                self.job.set_progress(done as f64 / total as f64);
            }
        };
        work(&engine::sweep::Control {
            progress: Some(&progress),
            cancel: Some(self.job.cancel_flag()),
        })
    }

    fn check_exists(&self) -> Result<(), JobError> {
        if self.path.exists() {
            return Ok(());
        }
        Err(JobError::Failed(format!(
            "the data file {} is gone: the data set was deleted after the job was submitted",
            self.data_path
        )))
    }

    /// A data error, naming the data set rather than the server's directories.
    fn data_error(&self, e: engine::data::DataError) -> JobError {
        let full = self.path.display().to_string();
        let message = e.to_string().replace(&full, self.data_path);
        if is_passing(&e) {
            JobError::Transient(message)
        } else {
            JobError::Failed(message)
        }
    }
}

/// Whether reading the data failed for a reason that may pass (the disk or network file system
/// hiccuped) rather than because of the file itself (gone, malformed, wrong columns).
fn is_passing(error: &engine::data::DataError) -> bool {
    use std::io::ErrorKind;
    match error {
        engine::data::DataError::Io { source, .. } => !matches!(
            source.kind(),
            ErrorKind::NotFound | ErrorKind::InvalidData | ErrorKind::InvalidInput
        ),
        _ => false,
    }
}

/// Runs one delivered message: every log line about it carries its job id and request id.
pub(crate) async fn process(worker: &Arc<Worker>, message: JobMessage) {
    let span = info_span!(
        "job",
        job_id = %message.id,
        request_id = message.request_id.as_deref().unwrap_or("-"),
    );
    run_message(worker, message).instrument(span).await;
}

async fn run_message(worker: &Arc<Worker>, message: JobMessage) {
    let claimed = match persist(|| worker.store.claim(message.id, &worker.id)).await {
        Some(Some(claimed)) => claimed,
        Some(None) => {
            debug!(
                "skipped: the job is not queued (a repeated delivery, or cancelled or finished)"
            );
            return;
        }
        // Still queued: the reconciler dispatches it again.
        None => return,
    };
    let kind = claimed.kind.as_str();
    let tier = claimed.tier.as_str();
    worker
        .metrics
        .started
        .with_label_values(&[kind, tier])
        .inc();
    info!(kind, tier, attempt = claimed.attempts, "job started");

    let job = worker.running.insert(claimed.id);
    let monitor = tokio::spawn(
        monitor(Arc::clone(worker), claimed.id, Arc::clone(&job)).instrument(Span::current()),
    );
    let running = RunningGuard {
        worker,
        id: claimed.id,
        monitor,
    };
    let started = Instant::now();
    let outcome = execute(worker, &claimed, &job).await;
    let elapsed = started.elapsed();
    drop(running);

    let label = record(worker, &claimed, &job, outcome, elapsed).await;
    worker
        .metrics
        .finished
        .with_label_values(&[kind, tier, label])
        .inc();
    worker
        .metrics
        .duration
        .with_label_values(&[kind])
        .observe(elapsed.as_secs_f64());
}

/// While a job runs: its heartbeat and its entry among the running jobs, both ended when it
/// ends, however it ends (its heartbeat must stop for the reconciler to see a lost job).
struct RunningGuard<'a> {
    worker: &'a Worker,
    id: Uuid,
    monitor: tokio::task::JoinHandle<()>,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.monitor.abort();
        self.worker.running.remove(self.id);
    }
}

/// Runs the job: engine work on the pool, AI work here, as network I/O.
async fn execute(
    worker: &Arc<Worker>,
    claimed: &Claimed,
    job: &Arc<RunningJob>,
) -> Result<Output, JobError> {
    if claimed.kind.is_ai() {
        return crate::ai::run(worker, claimed, job).await;
    }
    let path = strata_core::datasets::locate(&worker.config, &claimed.data_path);
    let data_path = claimed.data_path.clone();
    let spec = claimed.spec.clone();
    let kind = claimed.kind;
    let (shared, job) = (Arc::clone(worker), Arc::clone(job));
    let span = Span::current();
    let work = move |pool: &rayon::ThreadPool| {
        span.in_scope(|| {
            let input = Input {
                spec: &spec,
                path: &path,
                data_path: &data_path,
                bars: &shared.bars,
                pool,
                job: &job,
            };
            match kind {
                JobKind::Backtest => backtest::run(&input),
                JobKind::Sweep => sweep::run(&input),
                JobKind::WalkForward => walk_forward::run(&input),
                JobKind::AiStrategy | JobKind::AiAnalysis => Err(JobError::Failed(
                    "an AI job reached the engine threads".to_owned(),
                )),
            }
        })
    };
    worker
        .engine
        .run(work)
        .await
        .unwrap_or_else(|panic| Err(JobError::Panicked(panic.0)))
}

/// Writes the outcome; returns the `outcome` label of the finished-jobs metric.
async fn record(
    worker: &Arc<Worker>,
    claimed: &Claimed,
    job: &RunningJob,
    outcome: Result<Output, JobError>,
    elapsed: Duration,
) -> &'static str {
    let (id, me) = (claimed.id, worker.id.as_str());
    let store = &worker.store;
    let elapsed_ms = elapsed.as_millis() as u64;
    match outcome {
        Ok(output) => {
            worker.metrics.bars.inc_by(output.bars);
            // A result that is ready is kept even if a cancel arrived meanwhile.
            let written = match &output.child {
                None => persist(|| store.succeed(id, me, &output.document)).await,
                Some((child_id, child)) => {
                    persist(|| store.succeed_with_child(id, me, &output.document, *child_id, child))
                        .await
                }
            };
            match written {
                Some(true) => {
                    info!(elapsed_ms, bars = output.bars, "job succeeded");
                    "succeeded"
                }
                Some(false) => {
                    warn!(
                        "job finished, but it is no longer running on this worker: result dropped"
                    );
                    "lost"
                }
                None => "error",
            }
        }
        Err(JobError::Cancelled) => match job.stopped() {
            Some(Stop::Shutdown) => {
                if persist(|| store.release(id, me)).await == Some(true) {
                    info!(
                        elapsed_ms,
                        "job stopped for the worker's shutdown: handed back to the queue"
                    );
                }
                "released"
            }
            Some(Stop::Lost) => {
                warn!("job stopped: it is no longer running on this worker");
                "lost"
            }
            Some(Stop::Owner) | None => {
                if persist(|| store.cancelled(id, me)).await == Some(true) {
                    info!(elapsed_ms, "job cancelled");
                }
                "cancelled"
            }
        },
        Err(JobError::Failed(message)) => {
            if persist(|| store.fail(id, me, &message)).await == Some(true) {
                info!(elapsed_ms, error = %message, "job failed");
            }
            "failed"
        }
        Err(JobError::Transient(message)) => {
            let w = &worker.config.worker;
            let retry = persist(|| {
                store.retry_later(
                    id,
                    me,
                    &message,
                    Duration::from_secs(w.retry_backoff_secs),
                    w.max_attempts,
                )
            })
            .await;
            match retry.flatten() {
                Some(Retry::After(wait)) => {
                    warn!(elapsed_ms, error = %message, retry_in_ms = wait.as_millis() as u64,
                        "job failed for a passing reason: it runs again after a backoff");
                    "retried"
                }
                Some(Retry::GaveUp) => {
                    warn!(elapsed_ms, error = %message, "job failed again, out of attempts: failed");
                    "failed"
                }
                None => "error",
            }
        }
        Err(JobError::Panicked(message)) => {
            error!(elapsed_ms, panic = %message, "engine code panicked; the job failed");
            let text = format!("internal error: the engine stopped unexpectedly ({message})");
            persist(|| store.fail(id, me, &text)).await;
            "failed"
        }
    }
}

/// Runs a claim or a final write, retrying with backoff while PostgreSQL is unreachable or busy;
/// `None` when it still fails after [`WRITE_PATIENCE`] (the reconciler then dispatches or runs
/// the job again).
pub(crate) async fn persist<T, F, Fut>(write: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    for attempt in 1u32.. {
        match write().await {
            Ok(done) => return Some(done),
            Err(e) if started.elapsed() + pause > WRITE_PATIENCE => {
                error!(error = %e, attempt, "cannot update the job; leaving it to the reconciler");
                return None;
            }
            Err(e) => {
                warn!(error = %e, attempt, "cannot update the job yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(WRITE_PAUSE_MAX);
            }
        }
    }
    None
}

/// While the job runs: heartbeats (with progress, at most a few times a second) that also
/// bring back the owner's cancel request.
async fn monitor(worker: Arc<Worker>, id: Uuid, job: Arc<RunningJob>) {
    let heartbeat_every = Duration::from_secs(worker.config.worker.heartbeat_secs.max(1));
    let mut last_write = Instant::now();
    let mut written = job.progress();
    let mut ticks = tokio::time::interval(MONITOR_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let progress = job.progress();
        let since = last_write.elapsed();
        let moved = progress != written && since >= PROGRESS_EVERY;
        if since < heartbeat_every && !moved {
            continue;
        }
        match worker.store.heartbeat(id, &worker.id, progress).await {
            Ok(Some(true)) => {
                if job.stop(Stop::Owner) {
                    info!("cancel requested: stopping the job");
                }
            }
            Ok(Some(false)) => {}
            Ok(None) => {
                if job.stop(Stop::Lost) {
                    warn!("the job is no longer running on this worker (its heartbeat went stale and it was taken back): stopping it");
                }
            }
            Err(e) => warn!(error = %e, "heartbeat failed"),
        }
        last_write = Instant::now();
        written = progress;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use engine::data::DataError;

    fn read_error(kind: ErrorKind) -> DataError {
        DataError::Io {
            action: "read",
            path: "data.parquet".into(),
            source: Error::new(kind, "test"),
        }
    }

    #[test]
    fn only_read_failures_that_may_pass_are_retried() {
        assert!(super::is_passing(&read_error(ErrorKind::TimedOut)));
        assert!(super::is_passing(&read_error(ErrorKind::Interrupted)));
        assert!(super::is_passing(&read_error(ErrorKind::Other)));
        assert!(!super::is_passing(&read_error(ErrorKind::NotFound)));
        assert!(!super::is_passing(&read_error(ErrorKind::InvalidData)));
        assert!(!super::is_passing(&DataError::Empty {
            path: "data.csv".into()
        }));
    }
}
