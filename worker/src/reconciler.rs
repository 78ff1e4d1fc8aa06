//! The reconciler: repairs what crashes leave behind, every few seconds, and refreshes the
//! queue-depth gauges.
//!
//! - A queued job handed to Redis long ago that no worker started, and whose message no longer
//!   reaches a worker (Redis was flushed or restarted, or the worker that fetched it is gone),
//!   is handed over again. A message still waiting in Redis, or held by a live worker, is left
//!   alone: pushing it again would only put a duplicate in the window.
//! - A running job whose heartbeat is older than its lease is queued again after a backoff, or
//!   failed once it has used its attempts. If its worker process is gone too (not seen for a
//!   lease, not stopped cleanly), the job may be what killed it (a job that runs it out of
//!   memory or crashes it): it runs alone next time, and fails as poison once it has stopped
//!   `worker.max_worker_deaths` workers.
//! - This worker's row in `workers` is marked seen, for the admin view and for the other
//!   workers' reconcilers, which take a worker not seen for a lease for dead.
//!
//! After PostgreSQL has been out of this worker's reach, every heartbeat is stale, its own and
//! the other workers' alike: running jobs are taken back only once this worker has reached
//! PostgreSQL for a whole lease, by which time the live workers have written theirs again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::queue::Queue;
use strata_core::store::Recovery;
use tokio::sync::watch;
use tracing::{debug, error, info, info_span, warn};

use crate::Worker;

/// How long job events are kept for streams to resume from (`Last-Event-ID`).
const EVENTS_KEPT: Duration = Duration::from_secs(24 * 3600);
/// Most jobs whose Redis messages one pass looks for.
const LOST_CHECKED: i64 = 2000;

/// Runs a pass now and then until `stop` turns true.
pub(crate) async fn run(worker: Arc<Worker>, mut stop: watch::Receiver<bool>) {
    let w = &worker.config.worker;
    let shortest = w.lease_secs.min(w.redispatch_after_secs).max(1);
    let every = (Duration::from_secs(shortest) / 2)
        .clamp(Duration::from_millis(500), Duration::from_secs(5));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reached_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        pass(&worker, &mut reached_since).await;
    }
}

/// One pass; `reached_since` is when this worker's passes last started reaching PostgreSQL
/// without a failure (`None` after a failure).
async fn pass(worker: &Worker, reached_since: &mut Option<Instant>) {
    let w = &worker.config.worker;
    // First, so a pass that finds the others' jobs stale has said this worker lives.
    match worker
        .store
        .worker_seen(&worker.id, worker.running.len(), false)
        .await
    {
        Ok(()) => {
            reached_since.get_or_insert_with(Instant::now);
        }
        Err(e) => {
            debug!(error = %e, "cannot mark this worker seen");
            *reached_since = None;
        }
    }
    redispatch_lost(worker).await;
    let lease = Duration::from_secs(w.lease_secs);
    if reached_since.is_some_and(|since| since.elapsed() >= lease) {
        let rule = Recovery {
            lease,
            max_attempts: w.max_attempts,
            backoff: Duration::from_secs(w.retry_backoff_secs),
            max_worker_deaths: w.max_worker_deaths,
        };
        match worker.store.recover_stale(&rule).await {
            Ok(recovered) => report(recovered),
            Err(e) => {
                warn!(error = %e, "cannot take back stale jobs; trying again shortly");
                *reached_since = None;
            }
        }
    }
    worker
        .metrics
        .refresh_queue_depth(&worker.store, &worker.queues)
        .await;
    // Streams resume from events up to a day old.
    if let Err(e) = worker.store.prune_job_events(EVENTS_KEPT).await {
        debug!(error = %e, "cannot forget old job events");
    }
    for queue in Queue::ALL {
        match worker.queues.vacuum(queue).await {
            Ok(0) => {}
            Ok(n) => debug!(
                queue = queue.as_str(),
                messages = n,
                "forgot finished messages"
            ),
            Err(e) => debug!(queue = queue.as_str(), error = %e, "vacuum failed"),
        }
    }
}

/// Hands over again the jobs dispatched long ago whose messages no longer reach a worker.
async fn redispatch_lost(worker: &Worker) {
    let w = &worker.config.worker;
    let after = Duration::from_secs(w.redispatch_after_secs);
    let candidates = match worker.store.dispatched_long_ago(after, LOST_CHECKED).await {
        Ok(candidates) if candidates.is_empty() => return,
        Ok(candidates) => candidates,
        Err(e) => {
            warn!(error = %e, "cannot read the jobs waiting in Redis; trying again shortly");
            return;
        }
    };
    let gone = match worker
        .store
        .gone_workers(Duration::from_secs(w.lease_secs))
        .await
    {
        Ok(gone) => gone,
        Err(e) => {
            warn!(error = %e, "cannot read the workers; trying again shortly");
            return;
        }
    };
    for (queue, ids) in candidates {
        let lost = match worker.queues.missing(queue, &ids, &gone).await {
            Ok(lost) => lost,
            // Redis is down: nothing can be pushed anyway.
            Err(e) => {
                debug!(queue = queue.as_str(), error = %e, "cannot look for lost messages");
                continue;
            }
        };
        if lost.is_empty() {
            continue;
        }
        match worker.store.redispatch(&lost, after).await {
            Ok(0) => {}
            Ok(n) => {
                info!(
                    queue = queue.as_str(),
                    jobs = n,
                    waiting = ids.len(),
                    "dispatching again jobs whose messages no longer reach a worker"
                );
                worker.wake_dispatcher(Some(queue));
            }
            Err(e) => warn!(error = %e, "cannot dispatch lost jobs again"),
        }
    }
}

/// One log line per job taken back; the worker's name is here, not in the job's error.
fn report(recovered: Vec<strata_core::store::Recovered>) {
    for job in recovered {
        let request_id = job.request_id.as_deref().unwrap_or("-");
        let span = info_span!("job", job_id = %job.id, request_id);
        let _entered = span.enter();
        let worker = job.worker_id.as_deref().unwrap_or("?");
        let deaths = job.worker_deaths;
        match (job.status.as_str(), job.worker_died) {
            ("queued", true) => warn!(
                worker,
                worker_deaths = deaths,
                "its worker process died while running it: queued to run again, alone, after a backoff"
            ),
            ("queued", false) => warn!(
                worker,
                "its worker stopped sending heartbeats for it: queued to run again after a backoff"
            ),
            ("failed", true) => error!(
                worker,
                worker_deaths = deaths,
                "its worker process died while running it, again: failed (poison, or out of attempts)"
            ),
            ("failed", false) => warn!(
                worker,
                "its worker stopped sending heartbeats for it, again: out of attempts, failed"
            ),
            _ => info!(
                worker,
                "its worker stopped sending heartbeats after a cancel request: cancelled"
            ),
        }
    }
}
