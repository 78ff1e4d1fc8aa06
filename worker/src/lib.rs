//! Strata's workers: apalis consumers of the tier queues in Redis, running backtests and sweeps
//! on a rayon pool, with results in PostgreSQL.
//!
//! One [`run`] is one worker process's work:
//! - a **dispatcher** moves queued jobs from PostgreSQL (the backlog) to Redis, never more than
//!   `worker.window` per tier queue, woken by `LISTEN strata_jobs_queued`;
//! - **consumers**, one apalis worker per tier, fetch job ids and run at most
//!   `worker.concurrency` jobs at once; engine work runs on a rayon pool of `worker.threads`,
//!   never on the tokio threads;
//! - each running job **heartbeats** its progress and learns of cancel requests (at once through
//!   `LISTEN strata_jobs_cancel`, or at its next heartbeat);
//! - a **reconciler** re-dispatches jobs Redis lost and re-runs jobs whose worker died; a job
//!   whose worker process died under it runs alone next time, and fails as poison once it has
//!   stopped `worker.max_worker_deaths` workers;
//! - each run stops at its tier's `max_runtime_secs`;
//! - a **webhook sender** POSTs the signed events announcing finished jobs, retrying with
//!   backoff; deliveries are rows in PostgreSQL, so any worker takes over another's;
//! - an optional HTTP server serves `/metrics`, `/health/live` and `/health/ready`.
//!
//! Delivery is at least once: a job is claimed (`queued -> running`) before it runs, so a
//! repeated message for a running or finished job is skipped; every write of the run is fenced
//! by its claim's number, so a run that lost its job writes nothing; result and final status
//! are written in one statement.

mod ai;
mod bars;
mod consumer;
mod dispatcher;
mod engine_pool;
mod http;
mod jobs;
mod reconciler;
mod slots;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use strata_core::metrics::JobMetrics;
use strata_core::queue::{Queue, QueueError, Queues};
use strata_core::store::WorkerInfo;
use strata_core::{Config, Store};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::bars::BarsCache;
use crate::engine_pool::EnginePool;
use crate::jobs::{Running, Stop};

/// How long stopped jobs get to hand themselves back.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// PostgreSQL is unreachable or refused the connection.
    #[error("cannot connect to PostgreSQL (DATABASE_URL)")]
    Database(#[source] sqlx::Error),
    /// Redis is unreachable.
    #[error("cannot connect to Redis (REDIS_URL)")]
    Queue(#[from] QueueError),
    /// The engine's thread pool could not be created.
    #[error("cannot start the engine threads")]
    Threads(#[from] rayon::ThreadPoolBuildError),
    /// The metrics could not be registered.
    #[error("cannot register the metrics")]
    Metrics(#[from] prometheus::Error),
    /// The metrics and health server could not listen.
    #[error("cannot listen on {addr} for metrics and health")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// What the worker's tasks share.
pub(crate) struct Worker {
    config: Config,
    /// This process's name in `jobs.worker_id`: host, pid and a random suffix.
    id: String,
    store: Store,
    queues: Queues,
    registry: Registry,
    metrics: JobMetrics,
    engine: EnginePool,
    bars: BarsCache,
    /// The language model for AI jobs; `None` when none is configured (the `ai` queue is then
    /// left to workers that have one).
    ai: Option<ai::provider::Provider>,
    running: Running,
    /// Every job holds a read guard while it runs; a job that stopped a worker before holds
    /// the write guard, so it runs alone (see `JobMessage::alone`).
    turns: tokio::sync::RwLock<()>,
    /// Set once the worker shuts down: a job still waiting for its turn is not claimed.
    shutting_down: AtomicBool,
    /// Per queue (in [`Queue::ALL`] order): a job may wait in PostgreSQL.
    backlog_hints: [AtomicBool; 4],
    dispatch_wake: Notify,
}

impl Worker {
    /// Tells the dispatcher to look at `queue` (every queue for `None`).
    fn wake_dispatcher(&self, queue: Option<Queue>) {
        for (q, hint) in Queue::ALL.iter().zip(&self.backlog_hints) {
            if queue.is_none_or(|queue| queue == *q) {
                hint.store(true, Ordering::Release);
            }
        }
        self.dispatch_wake.notify_one();
    }
}

/// Runs a worker until `shutdown` completes: then it stops fetching jobs, lets running jobs
/// finish for a grace period (`worker.grace_secs`), hands the rest back to the queue and
/// returns.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    let store = Store::connect(config.database_url.expose(), config.worker.db_connections)
        .await
        .map_err(WorkerError::Database)?;
    let queues = Queues::connect(config.redis_url.expose(), &config.queue_prefix).await?;
    queues.ping().await?;
    let registry = Registry::new();
    let metrics = JobMetrics::register(&registry)?;
    let engine = EnginePool::new(config.worker.threads)?;
    let host = host_name();
    let id = format!(
        "{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..4]
    );
    let info = WorkerInfo {
        id: id.clone(),
        host,
        pid: std::process::id() as i32,
        concurrency: config.worker.concurrency as i32,
        threads: engine.threads() as i32,
    };
    // The admin view lists workers; a worker that cannot say so still runs jobs.
    if let Err(e) = store.register_worker(&info).await {
        warn!(error = %e, "cannot record this worker in the workers table");
    }
    let ai = ai::provider::Provider::from_config(&config.ai);
    match &ai {
        Some(provider) => info!(
            provider = provider.name(),
            model = provider.model(),
            concurrency = config.ai.concurrency,
            "AI jobs: consuming the ai queue"
        ),
        None => info!("AI jobs: no language model configured (ai.provider); the ai queue is left to other workers"),
    }
    let worker = Arc::new(Worker {
        id,
        ai,
        store,
        queues,
        registry,
        metrics,
        bars: BarsCache::default(),
        running: Running::default(),
        turns: tokio::sync::RwLock::new(()),
        shutting_down: AtomicBool::new(false),
        backlog_hints: Default::default(),
        dispatch_wake: Notify::new(),
        engine,
        config,
    });
    info!(
        worker_id = %worker.id,
        concurrency = worker.config.worker.concurrency,
        threads = worker.engine.threads(),
        window = worker.config.worker.window,
        queue_prefix = %worker.config.queue_prefix,
        "worker started"
    );

    let (stop, stopped) = watch::channel(false);
    let server = match worker.config.worker.metrics_bind {
        Some(addr) => Some(
            http::serve(Arc::clone(&worker), addr, stopped.clone())
                .await?
                .1,
        ),
        None => None,
    };
    let dispatcher = tokio::spawn(dispatcher::run(Arc::clone(&worker), stopped.clone()));
    let webhooks = tokio::spawn(webhooks::run(Arc::clone(&worker), stopped.clone()));
    let reconciler = tokio::spawn(reconciler::run(Arc::clone(&worker), stopped));
    let consumers = consumer::start(&worker);

    shutdown.await;
    let grace = Duration::from_secs(worker.config.worker.grace_secs);
    info!(
        running = worker.running.len(),
        "shutting down: no new jobs; running jobs have {} s to finish",
        grace.as_secs()
    );
    worker.shutting_down.store(true, Ordering::Release);
    consumers.stop().await;
    if !consumers.wait(grace).await {
        let stopping = worker.running.stop_all(Stop::Shutdown);
        warn!(
            jobs = stopping,
            "grace period over: stopping the running jobs and handing them back to the queue"
        );
        if !consumers.wait(RELEASE_WAIT).await {
            warn!("some jobs did not stop in time; the reconciler will run them again");
            consumers.abort();
        }
    }
    let _ = stop.send(true);
    for task in [Some(dispatcher), Some(reconciler), Some(webhooks), server]
        .into_iter()
        .flatten()
    {
        let _ = task.await;
    }
    if let Err(e) = worker.store.worker_seen(&worker.id, 0, true).await {
        warn!(error = %e, "cannot record this worker's stop in the workers table");
    }
    worker.store.pool.close().await;
    info!(worker_id = %worker.id, "worker stopped");
    Ok(())
}

/// An error and its causes, "outer: inner: innermost" (reqwest's own text says only "error
/// sending request").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The machine's name, for worker ids (`host-pid-xxxx`) that tell an operator which machine
/// and process ran a job.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}
