//! The dispatcher: moves queued jobs from PostgreSQL to Redis, keeping at most `window` jobs
//! waiting in each queue (each tier's, and `ai`); and the listener that wakes it (a job was queued) or stops a
//! running job (its owner cancelled it).
//!
//! Several worker processes may run a dispatcher; a transaction-level advisory lock per queue
//! lets one at a time count a queue and fill it, so together they never overfill it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use strata_core::queue::Queue;
use tokio::sync::watch;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::jobs::Stop;
use crate::Worker;

/// Channel the `jobs_queued` trigger notifies, with the queue as payload.
const QUEUED: &str = "strata_jobs_queued";
/// Channel the `jobs_cancel` trigger notifies, with the job id as payload.
const CANCEL: &str = "strata_jobs_cancel";
/// While a queue has a backlog but no room, how often its queue is counted again.
const REFILL_EVERY: Duration = Duration::from_millis(50);
/// With no sign of a backlog, how often every queue is looked at anyway.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// After a failure (PostgreSQL or Redis unreachable), how long until the next try.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Most jobs moved in one transaction.
const MAX_BATCH: u64 = 500;

/// What one look at a queue found.
enum Fill {
    /// Another dispatcher holds the queue's lock.
    Busy,
    /// The queue is full enough; the backlog (if any) waits.
    NoRoom,
    /// Moved this many; `more` when the backlog was not exhausted.
    Moved { count: usize, more: bool },
}

/// Keeps the queues filled until `stop` turns true.
pub(crate) async fn run(worker: Arc<Worker>, mut stop: watch::Receiver<bool>) {
    let listener = tokio::spawn(listen(Arc::clone(&worker), stop.clone()));
    // A backlog may be waiting from before this worker started.
    worker.wake_dispatcher(None);
    let mut pending = [false; 4];
    loop {
        for (slot, flag) in pending.iter_mut().zip(&worker.backlog_hints) {
            *slot |= flag.swap(false, Ordering::AcqRel);
        }
        let (mut again, mut failing) = (false, false);
        for (i, queue) in Queue::ALL.into_iter().enumerate() {
            if !pending[i] {
                continue;
            }
            match fill(&worker, queue).await {
                Ok(Fill::Moved { count, more }) => {
                    if count > 0 {
                        debug!(queue = queue.as_str(), count, "dispatched");
                    }
                    pending[i] = more;
                    again |= more;
                }
                Ok(Fill::NoRoom | Fill::Busy) => {}
                Err(e) => {
                    failing = true;
                    warn!(queue = queue.as_str(), error = %e, "dispatching failed; trying again in 1 s");
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        if again {
            continue;
        }
        if failing {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_AFTER) => continue,
                _ = stop.changed() => break,
            }
        }
        // A backlog without room waits for the workers to make some; otherwise wait for a
        // notification, or look anyway now and then (a notification can be lost).
        let wait = if pending.iter().any(|&p| p) {
            REFILL_EVERY
        } else {
            IDLE_TICK
        };
        tokio::select! {
            _ = worker.dispatch_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {
                if !pending.iter().any(|&p| p) {
                    pending = [true; 4];
                }
            }
            _ = stop.changed() => break,
        }
    }
    listener.abort();
}

/// Moves as many of the queue's jobs to Redis as its window has room for.
async fn fill(
    worker: &Worker,
    queue: Queue,
) -> Result<Fill, Box<dyn std::error::Error + Send + Sync>> {
    let window = worker.config.worker.window as u64;
    // Refill in steps worth a transaction, not one job at a time.
    let step = (window / 10).max(1);
    if window.saturating_sub(worker.queues.ready(queue).await?) < step {
        return Ok(Fill::NoRoom);
    }
    let Some(mut dispatch) = worker.store.begin_dispatch(queue).await? else {
        return Ok(Fill::Busy);
    };
    // Counted again under the lock: another dispatcher may have just filled it.
    let room = window.saturating_sub(worker.queues.ready(queue).await?);
    if room < step {
        dispatch.commit().await?;
        return Ok(Fill::NoRoom);
    }
    let wanted = room.min(MAX_BATCH);
    let jobs = dispatch.take(wanted as i64).await?;
    if !jobs.is_empty() {
        // Pushed before the commit: a crash in between delivers twice, never loses.
        worker.queues.push(queue, &jobs).await?;
    }
    dispatch.commit().await?;
    Ok(Fill::Moved {
        count: jobs.len(),
        more: jobs.len() as u64 == wanted,
    })
}

/// Listens for queued jobs (wakes the dispatcher) and cancel requests (stops the job if it
/// runs here) until `stop` turns true, reconnecting when the connection drops.
async fn listen(worker: Arc<Worker>, mut stop: watch::Receiver<bool>) {
    loop {
        let mut listener = match PgListener::connect(worker.config.database_url.expose()).await {
            Ok(listener) => listener,
            Err(e) => {
                warn!(error = %e, "cannot listen for job notifications; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        if let Err(e) = listener.listen_all([QUEUED, CANCEL]).await {
            warn!(error = %e, "cannot listen for job notifications; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Whatever was notified while not listening is picked up by the next look.
        worker.wake_dispatcher(None);
        loop {
            let notification = tokio::select! {
                n = listener.recv() => n,
                _ = stop.changed() => return,
            };
            match notification {
                Ok(n) if n.channel() == QUEUED => {
                    worker.wake_dispatcher(n.payload().parse::<Queue>().ok());
                }
                Ok(n) if n.channel() == CANCEL => {
                    // The job logs its end, in its own span.
                    if let Ok(id) = n.payload().parse::<Uuid>() {
                        worker.running.stop(id, Stop::Owner);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "lost the notification connection; reconnecting");
                    break;
                }
            }
        }
    }
}
