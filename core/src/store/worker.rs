//! Queries the workers run: claiming, progress, results, dispatching, reconciling.
//!
//! Every write of a run says `WHERE id = $1 AND claim = $2 AND status = 'running'`, with the
//! [`ClaimToken`] its claim returned: a run that lost its job (the reconciler took it back after
//! its heartbeat went stale, and maybe the same worker claimed it again since) changes nothing.

use std::time::Duration;

use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{storable, Store, StoreError};
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
    /// This claim's number: the fence of every write of this run.
    pub claim: i32,
    /// Earlier runs that ended with their worker process dying.
    pub worker_deaths: i32,
}

impl Claimed {
    /// What this run's writes are fenced by.
    pub fn token(&self) -> ClaimToken {
        ClaimToken {
            id: self.id,
            claim: self.claim,
        }
    }
}

/// One run of a job: its id and the number of the claim that started the run. Only the latest
/// claim of a job can write to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimToken {
    /// The job.
    pub id: Uuid,
    /// `jobs.claim` as this run's claim left it.
    pub claim: i32,
}

/// What [`Store::claim`] did with a delivered message.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The job is this worker's to run.
    Claimed(Box<Claimed>),
    /// The job is not queued (a repeated delivery; cancelled, finished or running elsewhere):
    /// the message is dropped.
    NotQueued,
    /// The job waits out a retry's backoff: the message is a stale duplicate, dropped; the
    /// dispatcher hands the job over again once it is due.
    NotDue,
    /// The job has stopped a worker before and must run alone, but the message does not say
    /// so (a duplicate sent before the death): dropped; the message the dispatcher sent after
    /// the death says so.
    NotAlone,
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
    /// Whether that worker process is taken for dead (not seen for a lease, not stopped
    /// cleanly), the death then counted against the job.
    pub worker_died: bool,
    /// Runs of the job that ended with their worker dying, this one included.
    pub worker_deaths: i32,
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

/// What a stale run's job becomes, besides the lease and backoff.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    /// A running job whose heartbeat is older than this is taken back.
    pub lease: Duration,
    /// A job that has had this many attempts fails rather than runs again.
    pub max_attempts: i32,
    /// The first wait before the next attempt, doubled per attempt.
    pub backoff: Duration,
    /// A job whose runs have ended with their worker dying this many times fails as poison.
    pub max_worker_deaths: i32,
}

/// The error of a job failed as poison after `deaths` worker deaths: what its owner reads.
pub fn poison_error(deaths: i32) -> String {
    let times = match deaths {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    };
    format!(
        "the job stopped its worker {times}: each time the worker process running it died \
         (out of memory, or a crash), so it is not run again"
    )
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

/// Marks a running job (`$1`, claim `$2`) succeeded and stores its result (`$3`): a
/// data-modifying CTE runs whether or not the INSERT inserts anything, and the RETURNING of the
/// outer statement tells whether the status changed.
const SUCCEED: &str = "WITH done AS (
         UPDATE jobs SET status = 'succeeded', progress = 1, finished_at = now(), error = NULL
         WHERE id = $1 AND claim = $2 AND status = 'running'
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
    /// Marks a queued, due job running for `worker_id` under a new claim. `alone` says the
    /// message asks for the job to run alone (see [`JobMessage::alone`]); a job that has
    /// stopped a worker before is claimed only from such a message.
    pub async fn claim(&self, id: Uuid, worker_id: &str, alone: bool) -> Result<Claim, StoreError> {
        let claimed: Option<Claimed> = sqlx::query_as(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, claim = claim + 1,
                    worker_id = $2, started_at = now(), heartbeat_at = now(), progress = 0
             WHERE id = $1 AND status = 'queued'
               AND (run_after IS NULL OR run_after <= now())
               AND (worker_deaths = 0 OR $3)
             RETURNING id, owner, tier, kind, spec, data_path, request_id, attempts, claim,
                       worker_deaths",
        )
        .bind(id)
        .bind(worker_id)
        .bind(alone)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(claimed) = claimed {
            return Ok(Claim::Claimed(Box::new(claimed)));
        }
        // Why not: read after the fact, on the rare path only.
        let row: Option<(String, bool, i32)> = sqlx::query_as(
            "SELECT status, run_after IS NOT NULL AND run_after > now(), worker_deaths
             FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((status, true, _)) if status == "queued" => Claim::NotDue,
            Some((status, false, deaths)) if status == "queued" && deaths > 0 && !alone => {
                Claim::NotAlone
            }
            _ => Claim::NotQueued,
        })
    }

    /// Records that the run is alive and how far it got; returns whether its owner asked to
    /// cancel it, or `None` when the run no longer holds the job.
    pub async fn heartbeat(
        &self,
        run: ClaimToken,
        progress: f64,
    ) -> Result<Option<bool>, StoreError> {
        let progress = if progress.is_finite() {
            progress.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let row: Option<(bool,)> = sqlx::query_as(
            "UPDATE jobs SET heartbeat_at = now(), progress = $3
             WHERE id = $1 AND claim = $2 AND status = 'running'
             RETURNING cancel_requested",
        )
        .bind(run.id)
        .bind(run.claim)
        .bind(progress)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(cancel,)| cancel))
    }

    /// Stores the result document (`result`, JSON text, kept byte for byte) and marks the job
    /// succeeded, in one statement; `false` when the run no longer holds the job (nothing
    /// written).
    pub async fn succeed(&self, run: ClaimToken, result: &str) -> Result<bool, StoreError> {
        let row: Option<(Uuid,)> = sqlx::query_as(SUCCEED)
            .bind(run.id)
            .bind(run.claim)
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
        run: ClaimToken,
        result: &str,
        child_id: Uuid,
        child: &ChildJob,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done: Option<(Uuid,)> = sqlx::query_as(SUCCEED)
            .bind(run.id)
            .bind(run.claim)
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
        .bind(run.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks the job failed with `error` (a NUL in it stored as U+FFFD); `false` when the run no
    /// longer holds the job.
    pub async fn fail(&self, run: ClaimToken, error: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', error = $3, finished_at = now()
             WHERE id = $1 AND claim = $2 AND status = 'running'",
        )
        .bind(run.id)
        .bind(run.claim)
        .bind(storable(error).as_ref())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// After a failure for a passing reason (`error`): queues the job again, to be dispatched
    /// no sooner than the backoff for its attempts (`backoff`, doubled per attempt after the
    /// first, at most [`MAX_BACKOFF`]); or, once it has had `max_attempts`, fails it for good
    /// with the last error. `None` when the run no longer holds the job.
    pub async fn retry_later(
        &self,
        run: ClaimToken,
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
             WHERE id = $1 AND claim = $2 AND status = 'running'
             RETURNING status, extract(epoch FROM run_after - now())::float8",
            backoff_sql("$5")
        ))
        .bind(run.id)
        .bind(run.claim)
        .bind(storable(error).as_ref())
        .bind(max_attempts)
        .bind(backoff.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(status, wait)| match (status.as_str(), wait) {
            ("queued", Some(secs)) => Retry::After(Duration::from_secs_f64(secs.max(0.0))),
            _ => Retry::GaveUp,
        }))
    }

    /// Marks the job cancelled (it stopped at its owner's request); `false` when the run no
    /// longer holds the job.
    pub async fn cancelled(&self, run: ClaimToken) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = now()
             WHERE id = $1 AND claim = $2 AND status = 'running'",
        )
        .bind(run.id)
        .bind(run.claim)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hands a running job back to the queue (a worker shutting down); the dispatcher sends it
    /// to Redis again. `false` when the run no longer holds the job.
    pub async fn release(&self, run: ClaimToken) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', dispatched_at = NULL, worker_id = NULL,
                    heartbeat_at = NULL, progress = 0
             WHERE id = $1 AND claim = $2 AND status = 'running'",
        )
        .bind(run.id)
        .bind(run.claim)
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

    /// Queued jobs handed to Redis more than `after` ago that no worker has started, by queue
    /// (at most `limit`, oldest first): the candidates for [`Store::redispatch`], once Redis has
    /// been asked which of them it still holds.
    pub async fn dispatched_long_ago(
        &self,
        after: Duration,
        limit: i64,
    ) -> Result<Vec<(Queue, Vec<Uuid>)>, StoreError> {
        let rows: Vec<(String, Uuid)> = sqlx::query_as(
            "SELECT queue, id FROM jobs
             WHERE status = 'queued' AND dispatched_at IS NOT NULL
               AND dispatched_at < now() - make_interval(secs => $1)
             ORDER BY dispatched_at
             LIMIT $2",
        )
        .bind(after.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(Queue::ALL
            .into_iter()
            .map(|queue| {
                let ids = rows
                    .iter()
                    .filter(|(q, _)| q == queue.as_str())
                    .map(|(_, id)| *id)
                    .collect();
                (queue, ids)
            })
            .filter(|(_, ids): &(Queue, Vec<Uuid>)| !ids.is_empty())
            .collect())
    }

    /// Worker processes seen in the last day that are gone: stopped cleanly, or not seen for
    /// `lease` (dead). What their consumers fetched from Redis reaches no worker.
    pub async fn gone_workers(&self, lease: Duration) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM workers
             WHERE seen_at > now() - interval '1 day'
               AND (stopped_at IS NOT NULL OR seen_at < now() - make_interval(secs => $1))",
        )
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await
    }

    /// Hands `lost` over to the dispatcher again (jobs Redis no longer holds: it was flushed or
    /// restarted), those still queued and dispatched more than `after` ago; returns how many.
    pub async fn redispatch(&self, lost: &[Uuid], after: Duration) -> Result<u64, StoreError> {
        if lost.is_empty() {
            return Ok(0);
        }
        Ok(sqlx::query(
            "UPDATE jobs SET dispatched_at = NULL
             WHERE id = ANY($1) AND status = 'queued' AND dispatched_at IS NOT NULL
               AND dispatched_at < now() - make_interval(secs => $2)",
        )
        .bind(lost)
        .bind(after.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Takes back running jobs whose heartbeat is older than the lease: queued again after the
    /// backoff for their attempts, or failed once they have had their attempts; cancelled if
    /// their owner asked.
    ///
    /// When the worker holding one is dead too (its row in `workers` not seen for a lease and
    /// not stopped cleanly), the run counts as a worker death of the job: a job that has
    /// stopped `max_worker_deaths` workers fails as poison, and one that has stopped fewer
    /// runs alone next time (see [`JobMessage::alone`]). The error texts name no worker: the
    /// reconciler's log does.
    ///
    /// A job's heartbeat and its worker's row are written at different moments, so a dead
    /// worker's jobs may go stale before the worker does: a job whose worker still looks alive
    /// is left for a second lease, by which time a dead worker looks dead (and its death
    /// counts). A job a live worker stopped heartbeating for is taken back after that second
    /// lease, without a death.
    pub async fn recover_stale(&self, rule: &Recovery) -> Result<Vec<Recovered>, StoreError> {
        type Row = (Uuid, Option<String>, String, Option<String>, bool, i32);
        // Every right-hand side sees the row as it was before this update.
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "WITH stale AS (
                 SELECT jobs.id, jobs.worker_id,
                        coalesce(workers.id IS NOT NULL AND workers.stopped_at IS NULL
                                 AND workers.seen_at < now() - make_interval(secs => $1),
                                 false) AS died
                 FROM jobs LEFT JOIN workers ON workers.id = jobs.worker_id
                 WHERE jobs.status = 'running'
                   AND jobs.heartbeat_at < now() - make_interval(secs => $1)
                   AND (workers.id IS NULL OR workers.stopped_at IS NOT NULL
                        OR workers.seen_at < now() - make_interval(secs => $1)
                        OR jobs.heartbeat_at < now() - make_interval(secs => 2 * $1))
                 FOR UPDATE OF jobs SKIP LOCKED
             ),
             dead AS (
                 UPDATE workers SET died_at = coalesce(died_at, now())
                 WHERE id IN (SELECT worker_id FROM stale WHERE died)
             ),
             judged AS (
                 SELECT stale.*, jobs.worker_deaths + stale.died::int AS deaths,
                        jobs.cancel_requested AS cancelling,
                        jobs.worker_deaths + stale.died::int >= $4 AND stale.died AS poisoned,
                        jobs.attempts >= $2 AS spent
                 FROM stale JOIN jobs ON jobs.id = stale.id
             )
             UPDATE jobs SET
                 worker_deaths = judged.deaths,
                 last_worker_death_at = CASE
                     WHEN judged.died THEN now() ELSE jobs.last_worker_death_at END,
                 status = CASE
                     WHEN judged.cancelling THEN 'cancelled'
                     WHEN judged.poisoned OR judged.spent THEN 'failed'
                     ELSE 'queued' END,
                 error = CASE
                     WHEN judged.cancelling THEN jobs.error
                     WHEN judged.poisoned THEN $5
                     WHEN judged.spent AND judged.died THEN format(
                         'gave up after %s attempts; the last ended with its worker process '
                         'dying', jobs.attempts)
                     WHEN judged.spent THEN format(
                         'gave up after %s attempts: the worker running it stopped sending '
                         'heartbeats each time', jobs.attempts)
                     WHEN judged.died THEN format(
                         'attempt %s: the worker process running it died', jobs.attempts)
                     ELSE format('attempt %s: the worker running it stopped sending heartbeats',
                         jobs.attempts) END,
                 finished_at = CASE
                     WHEN judged.cancelling OR judged.poisoned OR judged.spent THEN now()
                     ELSE NULL END,
                 run_after = CASE
                     WHEN judged.cancelling OR judged.poisoned OR judged.spent THEN NULL
                     ELSE now() + {} END,
                 worker_id = NULL,
                 heartbeat_at = NULL,
                 dispatched_at = NULL,
                 progress = CASE
                     WHEN judged.cancelling OR judged.poisoned OR judged.spent THEN jobs.progress
                     ELSE 0 END
             FROM judged
             WHERE jobs.id = judged.id
             RETURNING jobs.id, jobs.request_id, jobs.status, judged.worker_id, judged.died,
                       judged.deaths",
            backoff_sql("$3")
        ))
        .bind(rule.lease.as_secs_f64())
        .bind(rule.max_attempts)
        .bind(rule.backoff.as_secs_f64())
        .bind(rule.max_worker_deaths)
        .bind(poison_error(rule.max_worker_deaths))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, request_id, status, worker_id, worker_died, worker_deaths)| Recovered {
                    id,
                    request_id,
                    status,
                    worker_id,
                    worker_died,
                    worker_deaths,
                },
            )
            .collect())
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
        let rows: Vec<(Uuid, Option<String>, bool)> = sqlx::query_as(
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
             SELECT head.id, head.request_id, head.alone FROM owners
             CROSS JOIN LATERAL (
                 SELECT id, request_id, worker_deaths > 0 AS alone,
                        row_number() OVER (ORDER BY id) AS turn
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
        self.taken.extend(rows.iter().map(|(id, _, _)| *id));
        Ok(rows
            .into_iter()
            .map(|(id, request_id, alone)| JobMessage {
                id,
                request_id,
                alone,
            })
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
