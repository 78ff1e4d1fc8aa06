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
use strata_core::store::{ChildJob, Claim, ClaimToken, Claimed, Retry, StoreError};
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
/// A job told to stop at its tier's run-time limit that is still running this much later (its
/// engine work does not look at the cancel flag) is failed by its monitor all the same; the
/// work runs on until it ends, and its result is then dropped.
const OVERRUN_GRACE: Duration = Duration::from_secs(5);

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
    /// It ran longer than its tier's `max_runtime_secs`.
    Overran = 4,
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
            4 => Some(Stop::Overran),
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

/// The jobs running on this worker, by id, each with the claim of its run.
#[derive(Default)]
pub(crate) struct Running(Mutex<HashMap<Uuid, (i32, Arc<RunningJob>)>>);

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (i32, Arc<RunningJob>)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A run starts. An older run of the same job on this worker (claimed again after its
    /// lease ran out, as after a long PostgreSQL outage) has lost the job: it is stopped.
    fn insert(&self, run: ClaimToken) -> Arc<RunningJob> {
        let job = Arc::new(RunningJob::default());
        let older = self.lock().insert(run.id, (run.claim, Arc::clone(&job)));
        if let Some((_, older)) = older {
            older.stop(Stop::Lost);
        }
        job
    }

    /// A run ended; a newer run of the same job stays.
    fn remove(&self, run: ClaimToken) {
        let mut jobs = self.lock();
        if jobs
            .get(&run.id)
            .is_some_and(|(claim, _)| *claim == run.claim)
        {
            jobs.remove(&run.id);
        }
    }

    /// Stops the job if it runs here, for `reason`; `true` if it does.
    pub(crate) fn stop(&self, id: Uuid, reason: Stop) -> bool {
        let job = self.lock().get(&id).map(|(_, job)| Arc::clone(job));
        job.is_some_and(|job| job.stop(reason))
    }

    /// Stops every running job for `reason`; returns how many.
    pub(crate) fn stop_all(&self, reason: Stop) -> usize {
        let jobs: Vec<Arc<RunningJob>> = self.lock().values().map(|(_, j)| Arc::clone(j)).collect();
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
    // A job that stopped a worker before runs with nothing beside it: it waits for the jobs
    // running here to end, and the jobs after it wait for it. Taken before the claim, so the
    // job's heartbeat starts only when it does.
    let _turn = if message.alone {
        info!("the job stopped a worker before: waiting to run it alone");
        Turn::Alone(worker.turns.write().await)
    } else {
        Turn::Shared(worker.turns.read().await)
    };
    if worker.shutting_down.load(Ordering::Acquire) {
        // Its turn came as the worker stops: not started, and handed back to the dispatcher
        // (its message is used up by this delivery).
        info!("not started: the worker is shutting down; handed back to the queue");
        let ids = [message.id];
        if let Err(e) = persist(|| worker.store.redispatch(&ids, Duration::ZERO)).await {
            warn!(error = %e, "cannot hand the job back; the reconciler will");
        }
        return;
    }
    let claim = persist(|| worker.store.claim(message.id, &worker.id, message.alone)).await;
    let claimed = match claim {
        Ok(Claim::Claimed(claimed)) => *claimed,
        Ok(Claim::NotQueued) => {
            debug!(
                "skipped: the job is not queued (a repeated delivery, or cancelled or finished)"
            );
            return;
        }
        Ok(Claim::NotDue) => {
            debug!("skipped: the job waits out a retry's backoff; the dispatcher sends it again when it is due");
            return;
        }
        Ok(Claim::NotAlone) => {
            debug!("skipped: the job must run alone and this message (sent before it stopped a worker) does not say so");
            return;
        }
        // Still queued: the reconciler dispatches it again if this message is lost.
        Err(e) => {
            error!(error = %e, "cannot claim the job");
            return;
        }
    };
    let run = claimed.token();
    let kind = claimed.kind.as_str();
    let tier = claimed.tier.as_str();
    worker
        .metrics
        .started
        .with_label_values(&[kind, tier])
        .inc();
    info!(
        kind,
        tier,
        attempt = claimed.attempts,
        claim = claimed.claim,
        alone = message.alone,
        "job started"
    );
    #[cfg(feature = "test-hooks")]
    crate::test_hooks::on_start(&claimed);

    let job = worker.running.insert(run);
    let limit = worker
        .config
        .tiers
        .quota(claimed.tier)
        .max_runtime_secs
        .map(|secs| RuntimeLimit {
            secs,
            tier: claimed.tier,
        });
    let started = Instant::now();
    let monitor = tokio::spawn(
        monitor(Arc::clone(worker), run, Arc::clone(&job), started, limit)
            .instrument(Span::current()),
    );
    let running = RunningGuard {
        worker,
        run,
        monitor,
    };
    let outcome = execute(worker, &claimed, &job).await;
    let elapsed = started.elapsed();
    drop(running);

    let label = record(worker, &claimed, &job, outcome, elapsed, limit).await;
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

/// A job's turn on this worker: shared with the other jobs, or alone.
enum Turn<'a> {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'a, ()>),
    Alone(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'a, ()>),
}

/// A tier's limit on the wall-clock time of one run.
#[derive(Debug, Clone, Copy)]
struct RuntimeLimit {
    secs: u64,
    tier: strata_core::Tier,
}

impl RuntimeLimit {
    fn duration(self) -> Duration {
        Duration::from_secs(self.secs)
    }

    /// The error of a job stopped at the limit.
    fn error(self) -> String {
        format!(
            "the job ran longer than the {} tier's {} s limit",
            self.tier, self.secs
        )
    }
}

/// While a job runs: its heartbeat and its entry among the running jobs, both ended when it
/// ends, however it ends (its heartbeat must stop for the reconciler to see a lost job).
struct RunningGuard<'a> {
    worker: &'a Worker,
    run: ClaimToken,
    monitor: tokio::task::JoinHandle<()>,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.monitor.abort();
        self.worker.running.remove(self.run);
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
    limit: Option<RuntimeLimit>,
) -> &'static str {
    let run = claimed.token();
    let store = &worker.store;
    let elapsed_ms = elapsed.as_millis() as u64;
    match outcome {
        Ok(output) => {
            worker.metrics.bars.inc_by(output.bars);
            let most = worker.config.worker.max_result_mb.saturating_mul(1 << 20);
            if output.document.len() as u64 > most {
                let error = format!(
                    "the result is {} MB, more than the {} MB a job may store: ask for less \
                     (a smaller `top` for a sweep, a shorter period)",
                    output.document.len().div_ceil(1 << 20),
                    worker.config.worker.max_result_mb
                );
                fail(worker, run, &error, elapsed_ms).await;
                return "failed";
            }
            // A result that is ready is kept even if a cancel arrived meanwhile.
            let written = match &output.child {
                None => persist(|| store.succeed(run, &output.document)).await,
                Some((child_id, child)) => {
                    persist(|| store.succeed_with_child(run, &output.document, *child_id, child))
                        .await
                }
            };
            match written {
                Ok(true) => {
                    info!(elapsed_ms, bars = output.bars, "job succeeded");
                    "succeeded"
                }
                Ok(false) => {
                    warn!(
                        "job finished, but it is no longer running on this worker: result dropped"
                    );
                    "lost"
                }
                Err(WriteError::Refused(e)) => {
                    error!(error = %e, bytes = output.document.len(), "PostgreSQL refused the result");
                    let error = format!(
                        "the result could not be stored: {}",
                        strata_core::store::refusal(&e)
                    );
                    fail(worker, run, &error, elapsed_ms).await;
                    "failed"
                }
                Err(WriteError::Unavailable(_)) => "error",
            }
        }
        Err(JobError::Cancelled) => match job.stopped() {
            Some(Stop::Shutdown) => {
                if persist(|| store.release(run)).await.is_ok_and(|done| done) {
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
            Some(Stop::Overran) => {
                let error = limit.map_or_else(
                    || "the job ran longer than its tier allows".to_owned(),
                    RuntimeLimit::error,
                );
                fail(worker, run, &error, elapsed_ms).await;
                "failed"
            }
            Some(Stop::Owner) | None => {
                if persist(|| store.cancelled(run))
                    .await
                    .is_ok_and(|done| done)
                {
                    info!(elapsed_ms, "job cancelled");
                }
                "cancelled"
            }
        },
        Err(JobError::Failed(message)) => {
            fail(worker, run, &message, elapsed_ms).await;
            "failed"
        }
        Err(JobError::Transient(message)) => {
            let w = &worker.config.worker;
            let retry = persist(|| {
                store.retry_later(
                    run,
                    &message,
                    Duration::from_secs(w.retry_backoff_secs),
                    w.max_attempts,
                )
            })
            .await;
            match retry {
                Ok(Some(Retry::After(wait))) => {
                    warn!(elapsed_ms, error = %message, retry_in_ms = wait.as_millis() as u64,
                        "job failed for a passing reason: it runs again after a backoff");
                    "retried"
                }
                Ok(Some(Retry::GaveUp)) => {
                    warn!(elapsed_ms, error = %message, "job failed again, out of attempts: failed");
                    "failed"
                }
                Ok(None) => "lost",
                Err(WriteError::Refused(e)) => {
                    error!(error = %e, "PostgreSQL refused the retry");
                    fail(worker, run, &message, elapsed_ms).await;
                    "failed"
                }
                Err(WriteError::Unavailable(_)) => "error",
            }
        }
        Err(JobError::Panicked(message)) => {
            error!(elapsed_ms, panic = %message, "engine code panicked; the job failed");
            let text = format!("internal error: the engine stopped unexpectedly ({message})");
            fail(worker, run, &text, elapsed_ms).await;
            "failed"
        }
    }
}

/// Fails the run's job with `error`. If PostgreSQL refuses that text, the job still fails,
/// with a plain one: it must not stay `running` until its lease says its worker died.
async fn fail(worker: &Worker, run: ClaimToken, error: &str, elapsed_ms: u64) {
    let store = &worker.store;
    match persist(|| store.fail(run, error)).await {
        Ok(true) => info!(elapsed_ms, error, "job failed"),
        Ok(false) => warn!(
            error,
            "job failed, but it is no longer running on this worker"
        ),
        Err(WriteError::Unavailable(_)) => {}
        Err(WriteError::Refused(e)) => {
            error!(error = %e, text = error, "PostgreSQL refused the job's error text");
            let plain = "the job failed, and its error could not be stored";
            if persist(|| store.fail(run, plain))
                .await
                .is_ok_and(|done| done)
            {
                info!(elapsed_ms, "job failed");
            }
        }
    }
}

/// Why a write of a job's run did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// PostgreSQL stayed unreachable or busy for [`WRITE_PATIENCE`]: the reconciler takes
    /// over (dispatches the job again, or runs it again after its lease).
    #[error("PostgreSQL unavailable: {0}")]
    Unavailable(#[source] StoreError),
    /// PostgreSQL refused the statement for good (a value too large, text it cannot store, a
    /// constraint): trying again cannot help.
    #[error("refused by PostgreSQL: {0}")]
    Refused(#[source] StoreError),
}

/// Whether a failed statement may succeed if tried again: PostgreSQL unreachable or not
/// accepting work, or the statement lost a race (serialization failure, deadlock).
fn is_passing_write_error(error: &StoreError) -> bool {
    if strata_core::store::is_unavailable(error) {
        return true;
    }
    match error {
        sqlx::Error::Database(e) => e.code().is_some_and(|c| matches!(&*c, "40001" | "40P01")),
        _ => false,
    }
}

/// Runs a claim or a write of a run, retrying with backoff while PostgreSQL is unreachable or
/// busy, for up to [`WRITE_PATIENCE`]; a refusal for good is returned at once.
pub(crate) async fn persist<T, F, Fut>(write: F) -> Result<T, WriteError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut attempt = 1u32;
    loop {
        match write().await {
            Ok(done) => return Ok(done),
            Err(e) if !is_passing_write_error(&e) => return Err(WriteError::Refused(e)),
            Err(e) if started.elapsed() + pause > WRITE_PATIENCE => {
                error!(error = %e, attempt, "cannot update the job; leaving it to the reconciler");
                return Err(WriteError::Unavailable(e));
            }
            Err(e) => {
                warn!(error = %e, attempt, "cannot update the job yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(WRITE_PAUSE_MAX);
                attempt += 1;
            }
        }
    }
}

/// While the job runs: heartbeats (with progress, at most a few times a second) that also
/// bring back the owner's cancel request; and its tier's run-time limit, past which the job is
/// told to stop (and failed here if it does not stop within [`OVERRUN_GRACE`]).
async fn monitor(
    worker: Arc<Worker>,
    run: ClaimToken,
    job: Arc<RunningJob>,
    started: Instant,
    limit: Option<RuntimeLimit>,
) {
    let heartbeat_every = Duration::from_secs(worker.config.worker.heartbeat_secs.max(1));
    let mut last_write = Instant::now();
    let mut written = job.progress();
    let mut ticks = tokio::time::interval(MONITOR_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Some(limit) = limit {
            let ran = started.elapsed();
            if ran > limit.duration() && job.stop(Stop::Overran) {
                warn!(
                    limit_secs = limit.secs,
                    "the job ran past its tier's run-time limit: stopping it"
                );
            }
            if ran > limit.duration() + OVERRUN_GRACE && job.stopped() == Some(Stop::Overran) {
                // Its engine work does not stop: fail the job now, and stop heartbeating so
                // nothing this run writes later counts.
                warn!("the job does not stop; failing it while its work runs to its end");
                fail(&worker, run, &limit.error(), ran.as_millis() as u64).await;
                return;
            }
        }
        let progress = job.progress();
        let since = last_write.elapsed();
        let moved = progress != written && since >= PROGRESS_EVERY;
        if since < heartbeat_every && !moved {
            continue;
        }
        match worker.store.heartbeat(run, progress).await {
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

    #[tokio::test]
    async fn a_write_is_tried_again_through_an_outage_but_not_after_a_refusal() {
        use std::sync::atomic::{AtomicU32, Ordering};

        let calls = AtomicU32::new(0);
        let written = super::persist(|| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if call < 2 {
                    Err(sqlx::Error::PoolTimedOut)
                } else {
                    Ok(call)
                }
            }
        })
        .await;
        assert_eq!(written.unwrap(), 2, "written at the third try");

        let calls = AtomicU32::new(0);
        let refused = super::persist(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(sqlx::Error::Protocol("the value is too large".into())) }
        })
        .await;
        assert!(
            matches!(refused, Err(super::WriteError::Refused(_))),
            "{refused:?}"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a refusal is not tried again"
        );
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
