//! Queries the workers run: claiming, progress, results, dispatching, reconciling.
//!
//! Every write after the claim says `WHERE status = 'running' AND worker_id = $2`: a worker
//! that lost its job (the reconciler took it back after its heartbeat went stale) changes
//! nothing.

use std::time::Duration;

use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::job::{JobKind, JobMessage};
use crate::queue::Queue;
use crate::tier::Tier;

/// A job a worker has just claimed: everything it needs to run it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// The job's id.
    pub id: Uuid,
    /// The submitting user.
    pub owner: String,
    /// The submitter's tier.
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    /// What it computes.
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// The request body as submitted.
    #[sqlx(json)]
    pub spec: Value,
    /// The data file, as [`crate::datasets::locate`] takes it.
    pub data_path: String,
    /// The submitting request's id.
    pub request_id: Option<String>,
    /// How many times a worker has started it, this time included.
    pub attempts: i32,
}

/// A dispatch in progress: holds the queue's dispatch lock and the rows it took until
/// [`Dispatch::commit`]; dropping it rolls back, so the jobs are dispatched again later.
pub struct Dispatch {
    tx: Transaction<'static, Postgres>,
    queue: Queue,
    taken: Vec<Uuid>,
}

/// What the reconciler did to a job whose worker stopped sending heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The job.
    pub id: Uuid,
    /// The request that submitted it, for the log line.
    pub request_id: Option<String>,
    /// Its new status: `queued` (to run again), `failed` (out of attempts) or `cancelled`
    /// (its owner had asked to cancel it).
    pub status: String,
    /// The worker that stopped responding.
    pub worker_id: Option<String>,
}

/// A worker process, as the admin view lists it.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// `host-pid-xxxx`, as in `jobs.worker_id`.
    pub id: String,
    /// The machine.
    pub host: String,
    /// The process.
    pub pid: i32,
    /// Jobs it runs at once.
    pub concurrency: i32,
    /// Its engine threads.
    pub threads: i32,
}

/// What [`Store::retry_later`] did with a job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Queued again, to be dispatched after this wait.
    After(Duration),
    /// Out of attempts: failed for good.
    GaveUp,
}

/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// SQL for the wait before the next attempt of a job that has had `attempts`: `seconds` (a
/// parameter), doubled per attempt after the first, at most [`MAX_BACKOFF`].
fn backoff_sql(seconds: &str) -> String {
    format!(
        "make_interval(secs => least({seconds} * power(2, greatest(attempts - 1, 0)), {}))",
        MAX_BACKOFF.as_secs()
    )
}

/// What one reconciler pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Queued jobs handed to Redis long ago that no worker started: handed over again.
    pub redispatched: u64,
    /// Running jobs whose worker stopped sending heartbeats.
    pub recovered: Vec<Recovered>,
}

/// A job a finished job queues in its place: an AI strategy's backtest. It inherits the
/// parent's owner, tier, data file and request id.
#[derive(Debug, Clone)]
pub struct ChildJob {
    /// What it computes.
    pub kind: JobKind,
    /// Its spec.
    pub spec: Value,
}

/// Marks a running job (`$1`, on worker `$2`) succeeded and stores its result (`$3`): a
/// data-modifying CTE runs whether or not the INSERT inserts anything, and the RETURNING of the
/// outer statement tells whether the status changed.
const SUCCEED: &str = "WITH done AS (
         UPDATE jobs SET status = 'succeeded', progress = 1, finished_at = now(), error = NULL
         WHERE id = $1 AND status = 'running' AND worker_id = $2
         RETURNING id
     )
     INSERT INTO job_results (job_id, result)
     SELECT id, $3::text::json FROM done
     ON CONFLICT (job_id) DO NOTHING
     RETURNING job_id";

/// Key of the transaction-level advisory lock that lets one dispatcher at a time fill a queue
/// (first half of the two-int key; the second is the queue's place in [`Queue::ALL`]).
const DISPATCH_LOCK: i32 = 0x5354_5241; // "STRA"

impl Store {
    /// Marks a queued job running for `worker_id`; `None` when it is not queued any more (a
    /// duplicate delivery, a cancelled or finished job): the message is then skipped.
    pub async fn claim(&self, id: Uuid, worker_id: &str) -> Result<Option<Claimed>, StoreError> {
        sqlx::query_as(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_id = $2,
                    started_at = now(), heartbeat_at = now(), progress = 0
             WHERE id = $1 AND status = 'queued'
             RETURNING id, owner, tier, kind, spec, data_path, request_id, attempts",
        )
        .bind(id)
        .bind(worker_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records that the job is alive and how far it got; returns whether its owner asked to
    /// cancel it, or `None` when the job is no longer running on this worker.
    pub async fn heartbeat(
        &self,
        id: Uuid,
        worker_id: &str,
        progress: f64,
    ) -> Result<Option<bool>, StoreError> {
        let progress = if progress.is_finite() {
            progress.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let row: Option<(bool,)> = sqlx::query_as(
            "UPDATE jobs SET heartbeat_at = now(), progress = $3
             WHERE id = $1 AND status = 'running' AND worker_id = $2
             RETURNING cancel_requested",
        )
        .bind(id)
        .bind(worker_id)
        .bind(progress)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(cancel,)| cancel))
    }

    /// Stores the result document (`result`, JSON text, kept byte for byte) and marks the job
    /// succeeded, in one statement; `false` when the job was no longer running on this worker
    /// (nothing written).
    pub async fn succeed(
        &self,
        id: Uuid,
        worker_id: &str,
        result: &str,
    ) -> Result<bool, StoreError> {
        let row: Option<(Uuid,)> = sqlx::query_as(SUCCEED)
            .bind(id)
            .bind(worker_id)
            .bind(result)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Succeeds the job as [`Store::succeed`] does and, in the same transaction, queues `child`
    /// (its id `child_id`, which the result names) as a job of the same owner and tier made by
    /// this one: a redelivered job can never queue it twice. The child announces its end to the
    /// same webhook as its parent.
    pub async fn succeed_with_child(
        &self,
        id: Uuid,
        worker_id: &str,
        result: &str,
        child_id: Uuid,
        child: &ChildJob,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done: Option<(Uuid,)> = sqlx::query_as(SUCCEED)
            .bind(id)
            .bind(worker_id)
            .bind(result)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO jobs (id, owner, tier, kind, spec, data_path, request_id, parent_id,
                               webhook_url)
             SELECT $1, owner, tier, $2, $3, data_path, request_id, id, webhook_url
             FROM jobs WHERE id = $4",
        )
        .bind(child_id)
        .bind(child.kind.as_str())
        .bind(sqlx::types::Json(&child.spec))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks the job failed with `error`; `false` when it was no longer running on this worker.
    pub async fn fail(&self, id: Uuid, worker_id: &str, error: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', error = $3, finished_at = now()
             WHERE id = $1 AND status = 'running' AND worker_id = $2",
        )
        .bind(id)
        .bind(worker_id)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// After a failure for a passing reason (`error`): queues the job again, to be dispatched
    /// no sooner than the backoff for its attempts (`backoff`, doubled per attempt after the
    /// first, at most [`MAX_BACKOFF`]); or, once it has had `max_attempts`, fails it for good
    /// with the last error. `None` when it was no longer running on this worker.
    pub async fn retry_later(
        &self,
        id: Uuid,
        worker_id: &str,
        error: &str,
        backoff: Duration,
        max_attempts: i32,
    ) -> Result<Option<Retry>, StoreError> {
        let row: Option<(String, Option<f64>)> = sqlx::query_as(&format!(
            "UPDATE jobs SET
                 status = CASE WHEN attempts >= $4 THEN 'failed' ELSE 'queued' END,
                 error = CASE WHEN attempts >= $4
                     THEN format('gave up after %s attempts; the last: %s', attempts, $3::text)
                     ELSE format('attempt %s: %s', attempts, $3::text) END,
                 finished_at = CASE WHEN attempts >= $4 THEN now() END,
                 run_after = CASE WHEN attempts < $4 THEN now() + {} END,
                 worker_id = NULL, heartbeat_at = NULL, dispatched_at = NULL,
                 progress = CASE WHEN attempts >= $4 THEN progress ELSE 0 END
             WHERE id = $1 AND status = 'running' AND worker_id = $2
             RETURNING status, extract(epoch FROM run_after - now())::float8",
            backoff_sql("$5")
        ))
        .bind(id)
        .bind(worker_id)
        .bind(error)
        .bind(max_attempts)
        .bind(backoff.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(status, wait)| match (status.as_str(), wait) {
            ("queued", Some(secs)) => Retry::After(Duration::from_secs_f64(secs.max(0.0))),
            _ => Retry::GaveUp,
        }))
    }

    /// Marks the job cancelled (it stopped at its owner's request); `false` when it was no
    /// longer running on this worker.
    pub async fn cancelled(&self, id: Uuid, worker_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = now()
             WHERE id = $1 AND status = 'running' AND worker_id = $2",
        )
        .bind(id)
        .bind(worker_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hands a running job back to the queue (a worker shutting down); the dispatcher sends it
    /// to Redis again. `false` when it was no longer running on this worker.
    pub async fn release(&self, id: Uuid, worker_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', dispatched_at = NULL, worker_id = NULL,
                    heartbeat_at = NULL, progress = 0
             WHERE id = $1 AND status = 'running' AND worker_id = $2",
        )
        .bind(id)
        .bind(worker_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a worker process as started (the admin view lists workers).
    pub async fn register_worker(&self, worker: &WorkerInfo) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, concurrency, threads)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET seen_at = now(), stopped_at = NULL",
        )
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(worker.pid)
        .bind(worker.concurrency)
        .bind(worker.threads)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that the worker is alive with `running` jobs (each reconciler pass); a clean
    /// shutdown passes `stopped`.
    pub async fn worker_seen(
        &self,
        id: &str,
        running: usize,
        stopped: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE workers SET seen_at = now(), running = $2,
                    stopped_at = CASE WHEN $3 THEN now() END
             WHERE id = $1",
        )
        .bind(id)
        .bind(running as i32)
        .bind(stopped)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts filling a queue: `None` when another dispatcher is at it right now.
    pub async fn begin_dispatch(&self, queue: Queue) -> Result<Option<Dispatch>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(DISPATCH_LOCK)
            .bind(queue.index() as i32)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(Dispatch {
            tx,
            queue,
            taken: Vec::new(),
        }))
    }

    /// One reconciler pass: re-dispatches queued jobs handed to Redis more than
    /// `redispatch_after` ago that no worker started (Redis lost them, or a worker died holding
    /// them), and takes back running jobs whose heartbeat is older than `lease` (their worker
    /// died): queued again after the backoff for their attempts (`backoff`, doubled per
    /// attempt), or failed once they have had `max_attempts` attempts.
    pub async fn reconcile(
        &self,
        redispatch_after: Duration,
        lease: Duration,
        max_attempts: i32,
        backoff: Duration,
    ) -> Result<Reconciled, StoreError> {
        let redispatched = sqlx::query(
            "UPDATE jobs SET dispatched_at = NULL
             WHERE status = 'queued' AND dispatched_at IS NOT NULL
               AND dispatched_at < now() - make_interval(secs => $1)",
        )
        .bind(redispatch_after.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected();
        // Every right-hand side sees the row as it was before this update.
        let recovered: Vec<(Uuid, Option<String>, String, Option<String>)> =
            sqlx::query_as(&format!(
                "WITH stale AS (
                     SELECT id, worker_id FROM jobs
                     WHERE status = 'running'
                       AND heartbeat_at < now() - make_interval(secs => $1)
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE jobs SET
                     status = CASE
                         WHEN jobs.cancel_requested THEN 'cancelled'
                         WHEN jobs.attempts >= $2 THEN 'failed'
                         ELSE 'queued' END,
                     error = CASE
                         WHEN jobs.cancel_requested THEN jobs.error
                         WHEN jobs.attempts >= $2 THEN format(
                             'gave up after %s attempts: the worker running it (%s) stopped '
                             'sending heartbeats each time', jobs.attempts, jobs.worker_id)
                         ELSE format('attempt %s: the worker running it (%s) stopped sending '
                             'heartbeats', jobs.attempts, jobs.worker_id) END,
                     finished_at = CASE
                         WHEN jobs.cancel_requested OR jobs.attempts >= $2 THEN now()
                         ELSE NULL END,
                     run_after = CASE
                         WHEN jobs.cancel_requested OR jobs.attempts >= $2 THEN NULL
                         ELSE now() + {} END,
                     worker_id = NULL,
                     heartbeat_at = NULL,
                     dispatched_at = NULL,
                     progress = CASE
                         WHEN jobs.cancel_requested OR jobs.attempts >= $2 THEN jobs.progress
                         ELSE 0 END
                 FROM stale
                 WHERE jobs.id = stale.id
                 RETURNING jobs.id, jobs.request_id, jobs.status, stale.worker_id",
                backoff_sql("$3")
            ))
            .bind(lease.as_secs_f64())
            .bind(max_attempts)
            .bind(backoff.as_secs_f64())
            .fetch_all(&self.pool)
            .await?;
        Ok(Reconciled {
            redispatched,
            recovered: recovered
                .into_iter()
                .map(|(id, request_id, status, worker_id)| Recovered {
                    id,
                    request_id,
                    status,
                    worker_id,
                })
                .collect(),
        })
    }
}

impl Dispatch {
    /// Takes up to `limit` more of the queue's jobs not yet in Redis (and not waiting out
    /// a retry's backoff), in per-user turns: every waiting user's oldest job, then every
    /// user's second, and so on. One user's flood thus cannot hold back another user's first
    /// job by more than the jobs already in Redis.
    ///
    /// The users are found by a loose index scan (a recursive walk of the owner index, one probe
    /// per user), and only each user's first `limit` jobs are read, so a backlog of 50,000
    /// jobs costs no more than a handful of users' heads.
    pub async fn take(&mut self, limit: i64) -> Result<Vec<JobMessage>, StoreError> {
        let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as(
            "WITH RECURSIVE owners AS (
                 (SELECT owner FROM jobs
                  WHERE status = 'queued' AND dispatched_at IS NULL AND queue = $1
                  ORDER BY owner LIMIT 1)
                 UNION ALL
                 SELECT (SELECT j.owner FROM jobs j
                         WHERE j.status = 'queued' AND j.dispatched_at IS NULL AND j.queue = $1
                           AND j.owner > owners.owner
                         ORDER BY j.owner LIMIT 1)
                 FROM owners WHERE owners.owner IS NOT NULL
             )
             SELECT head.id, head.request_id FROM owners
             CROSS JOIN LATERAL (
                 SELECT id, request_id, row_number() OVER (ORDER BY id) AS turn
                 FROM jobs
                 WHERE status = 'queued' AND dispatched_at IS NULL AND queue = $1
                   AND owner = owners.owner
                   AND (run_after IS NULL OR run_after <= now())
                 ORDER BY id
                 LIMIT $2
             ) head
             WHERE owners.owner IS NOT NULL
             ORDER BY head.turn, head.id
             LIMIT $2",
        )
        .bind(self.queue.as_str())
        .bind(limit.max(0))
        .fetch_all(&mut *self.tx)
        .await?;
        self.taken.extend(rows.iter().map(|(id, _)| *id));
        Ok(rows
            .into_iter()
            .map(|(id, request_id)| JobMessage { id, request_id })
            .collect())
    }

    /// Records the taken jobs as handed to Redis and releases the lock; returns how many.
    ///
    /// Call it after pushing them: a crash in between delivers them twice, which a claim makes
    /// harmless, where the other order could lose them.
    pub async fn commit(mut self) -> Result<u64, StoreError> {
        let marked = if self.taken.is_empty() {
            0
        } else {
            sqlx::query("UPDATE jobs SET dispatched_at = now() WHERE id = ANY($1)")
                .bind(&self.taken)
                .execute(&mut *self.tx)
                .await?
                .rows_affected()
        };
        self.tx.commit().await?;
        Ok(marked)
    }
}
