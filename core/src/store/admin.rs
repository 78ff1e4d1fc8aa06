//! What operators see and do across every user: queue depth per queue, running jobs, workers,
//! and sending a finished job back to the queue.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::jobs::JOB_COLUMNS;
use super::{Store, StoreError};
use crate::job::{Job, JobKind};
use crate::queue::Queue;
use crate::tier::Tier;

/// One queue's jobs in PostgreSQL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueLoad {
    /// Queued jobs not handed to Redis yet (including retries waiting for their backoff).
    pub backlog: i64,
    /// Every queued job: the backlog plus those handed to Redis that no worker started.
    pub queued: i64,
    /// When the oldest queued job was submitted.
    pub oldest_queued_at: Option<DateTime<Utc>>,
    /// How long ago that was, in seconds (by the database's clock).
    pub oldest_wait_secs: Option<f64>,
    /// Jobs a worker is running.
    pub running: i64,
}

/// A job some worker is running, as an operator sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RunningJob {
    /// The job's id.
    pub id: Uuid,
    /// The user who submitted it.
    pub owner: String,
    /// Their tier.
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    /// What it computes.
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// The worker running it.
    pub worker_id: Option<String>,
    /// How many times a worker started it, this time included.
    pub attempts: i32,
    /// Fraction done, 0..1.
    pub progress: f64,
    /// When this attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// Its worker's last heartbeat for it.
    pub heartbeat_at: Option<DateTime<Utc>>,
}

/// A worker process as it last recorded itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WorkerSeen {
    /// The worker's id (the `worker_id` of the jobs it runs).
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: i32,
    /// Jobs it runs at once.
    pub concurrency: i32,
    /// Engine threads.
    pub threads: i32,
    /// Jobs it was running when last seen.
    pub running: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last recorded itself.
    pub seen_at: DateTime<Utc>,
    /// When it shut down cleanly; null while it runs (or if it died).
    pub stopped_at: Option<DateTime<Utc>>,
    /// Seen within the lease and not stopped: it is taken to be running.
    pub alive: bool,
}

/// A job failed as poison: its runs stopped their worker process (abort, OOM kill, crash) as
/// many times as `worker.max_worker_deaths` allows.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PoisonedJob {
    /// The job's id.
    pub id: Uuid,
    /// The user who submitted it.
    pub owner: String,
    /// Their tier.
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    /// What it computes.
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// Runs of it that ended with their worker process dying.
    pub worker_deaths: i32,
    /// When the last of them was found dead: when the job failed.
    pub last_worker_death_at: Option<DateTime<Utc>>,
    /// The error its owner reads.
    pub error: Option<String>,
}

/// What an operator's retry did.
#[derive(Debug, Clone)]
pub enum RetryOutcome {
    /// The job is queued again.
    Queued(Job),
    /// The job is queued, running or succeeded: only failed and cancelled jobs run again.
    NotRetryable(Job),
    /// No such job.
    NotFound,
}

/// Workers seen longer ago than this are left out of the admin view.
const WORKERS_SEEN_WITHIN_SECS: f64 = 3600.0;

impl Store {
    /// Queued and running jobs per queue, every queue present.
    pub async fn queue_load(&self) -> Result<Vec<(Queue, QueueLoad)>, StoreError> {
        type Row = (String, i64, i64, Option<DateTime<Utc>>, Option<f64>, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT queue, backlog, queued, oldest,
                    extract(epoch FROM now() - oldest)::float8, running
             FROM (SELECT queue,
                          count(*) FILTER (WHERE status = 'queued' AND dispatched_at IS NULL)
                              AS backlog,
                          count(*) FILTER (WHERE status = 'queued') AS queued,
                          min(created_at) FILTER (WHERE status = 'queued') AS oldest,
                          count(*) FILTER (WHERE status = 'running') AS running
                   FROM jobs WHERE status IN ('queued', 'running')
                   GROUP BY queue) AS load",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Queue::ALL
            .into_iter()
            .map(|queue| {
                let load = rows
                    .iter()
                    .find(|row| row.0 == queue.as_str())
                    .map(|(_, backlog, queued, oldest, wait, running)| QueueLoad {
                        backlog: *backlog,
                        queued: *queued,
                        oldest_queued_at: *oldest,
                        oldest_wait_secs: *wait,
                        running: *running,
                    })
                    .unwrap_or_default();
                (queue, load)
            })
            .collect())
    }

    /// Running jobs of every user, longest running first, at most `limit`.
    pub async fn running_jobs(&self, limit: i64) -> Result<Vec<RunningJob>, StoreError> {
        sqlx::query_as(
            "SELECT id, owner, tier, kind, worker_id, attempts, progress, started_at, heartbeat_at
             FROM jobs WHERE status = 'running'
             ORDER BY started_at NULLS LAST, id
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Workers seen in the last hour, most recently seen first, at most `limit`; `alive` when
    /// seen within `lease_secs` and not stopped.
    pub async fn workers_seen(
        &self,
        lease_secs: u64,
        limit: i64,
    ) -> Result<Vec<WorkerSeen>, StoreError> {
        sqlx::query_as(
            "SELECT id, host, pid, concurrency, threads, running, started_at, seen_at, stopped_at,
                    stopped_at IS NULL AND seen_at > now() - make_interval(secs => $1) AS alive
             FROM workers
             WHERE seen_at > now() - make_interval(secs => $2)
             ORDER BY seen_at DESC, id
             LIMIT $3",
        )
        .bind(lease_secs as f64)
        .bind(WORKERS_SEEN_WITHIN_SECS)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Failed jobs whose runs stopped their worker `deaths` times or more (poison), the
    /// latest first, at most `limit`.
    pub async fn poisoned_jobs(
        &self,
        deaths: i32,
        limit: i64,
    ) -> Result<Vec<PoisonedJob>, StoreError> {
        sqlx::query_as(
            "SELECT id, owner, tier, kind, worker_deaths, last_worker_death_at, error
             FROM jobs WHERE status = 'failed' AND worker_deaths > 0 AND worker_deaths >= $1
             ORDER BY last_worker_death_at DESC, id
             LIMIT $2",
        )
        .bind(deaths)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Any user's job, for operators.
    pub async fn any_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Sends a failed or cancelled job of any user back to the queue as if just submitted:
    /// attempts, error, progress and every trace of its last run are cleared. Clearing
    /// `dispatched_at` fires the `jobs_queued` trigger, which wakes the dispatcher.
    ///
    /// A job that stopped a worker process before keeps one death: it runs alone, and fails
    /// as poison if it stops that worker too (with the default `max_worker_deaths` of 2).
    pub async fn retry(&self, id: Uuid) -> Result<RetryOutcome, StoreError> {
        let queued: Option<Job> = sqlx::query_as(&format!(
            "UPDATE jobs SET
                 status = 'queued', attempts = 0, progress = 0, error = NULL,
                 worker_id = NULL, started_at = NULL, heartbeat_at = NULL, finished_at = NULL,
                 dispatched_at = NULL, run_after = NULL, cancel_requested = false,
                 worker_deaths = least(worker_deaths, 1)
             WHERE id = $1 AND status IN ('failed', 'cancelled')
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match queued {
            Some(job) => RetryOutcome::Queued(job),
            None => match self.any_job(id).await? {
                Some(job) => RetryOutcome::NotRetryable(job),
                None => RetryOutcome::NotFound,
            },
        })
    }
}
