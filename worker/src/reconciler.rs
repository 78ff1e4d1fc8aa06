//! The reconciler: repairs what crashes leave behind, every few seconds, and refreshes the
//! queue-depth gauges.
//!
//! - A queued job handed to Redis long ago that no worker started (Redis was flushed, or the
//!   worker holding it died) is handed over again.
//! - A running job whose heartbeat is older than its lease (its worker died) is queued again
//!   after a backoff, or failed once it has used its attempts.
//! - This worker's row in `workers` is marked seen, for the admin view.

use std::sync::Arc;
use std::time::Duration;

use strata_core::queue::Queue;
use tokio::sync::watch;
use tracing::{debug, info, info_span, warn};

use crate::Worker;

/// How long job events are kept for streams to resume from (`Last-Event-ID`).
const EVENTS_KEPT: Duration = Duration::from_secs(24 * 3600);

/// Runs a pass now and then until `stop` turns true.
pub(crate) async fn run(worker: Arc<Worker>, mut stop: watch::Receiver<bool>) {
    let w = &worker.config.worker;
    let shortest = w.lease_secs.min(w.redispatch_after_secs).max(1);
    let every = (Duration::from_secs(shortest) / 2)
        .clamp(Duration::from_millis(500), Duration::from_secs(5));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        pass(&worker).await;
    }
}

async fn pass(worker: &Worker) {
    let w = &worker.config.worker;
    match worker
        .store
        .reconcile(
            Duration::from_secs(w.redispatch_after_secs),
            Duration::from_secs(w.lease_secs),
            w.max_attempts,
            Duration::from_secs(w.retry_backoff_secs),
        )
        .await
    {
        Ok(done) => {
            if done.redispatched > 0 {
                info!(
                    jobs = done.redispatched,
                    "dispatching again jobs that no worker started within {} s",
                    w.redispatch_after_secs
                );
                worker.wake_dispatcher(None);
            }
            for job in done.recovered {
                let request_id = job.request_id.as_deref().unwrap_or("-");
                let span = info_span!("job", job_id = %job.id, request_id);
                let _entered = span.enter();
                let dead = job.worker_id.as_deref().unwrap_or("?");
                match job.status.as_str() {
                    "queued" => warn!(
                        worker = dead,
                        "its worker stopped sending heartbeats: queued to run again after a backoff"
                    ),
                    "failed" => warn!(
                        worker = dead,
                        "its worker stopped sending heartbeats, again: out of attempts, failed"
                    ),
                    _ => info!(
                        worker = dead,
                        "its worker stopped sending heartbeats after a cancel request: cancelled"
                    ),
                }
            }
        }
        Err(e) => warn!(error = %e, "reconciling failed; trying again shortly"),
    }
    if let Err(e) = worker
        .store
        .worker_seen(&worker.id, worker.running.len(), false)
        .await
    {
        debug!(error = %e, "cannot mark this worker seen");
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
