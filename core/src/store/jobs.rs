//! Jobs as the api sees them: submit, read, list, cancel, result.

use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::job::{Job, JobKind, JobStatus};
use crate::queue::Queue;
use crate::tier::Tier;

/// The columns of [`Job`], in one place for every query that returns jobs.
pub(crate) const JOB_COLUMNS: &str = "id, kind, status, tier, progress, attempts, error, \
     request_id, created_at, started_at, finished_at, cancel_requested, parent_id, webhook_url";

/// Key of the transaction-level advisory lock under which a user's active jobs are counted and
/// their new job inserted (first half of the two-int key; the second is `hashtext(owner)`).
const ACTIVE_JOBS_LOCK: i32 = 0x5354_4a42; // "STJB"

/// A job to store, already validated.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The submitting user.
    pub owner: String,
    /// Their tier at submission.
    pub tier: Tier,
    /// What it computes.
    pub kind: JobKind,
    /// The request body as sent.
    pub spec: Value,
    /// The data file the spec's data set resolved to, relative to the data directory or absolute.
    pub data_path: String,
    /// The submitting request's id.
    pub request_id: Option<String>,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// Where to announce the job's final status.
    pub webhook: Webhook,
}

/// Where a job announces its final status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    /// The owner's default URL at submission, if they set one (`PUT /v1/webhooks`).
    Default,
    /// Nowhere.
    None,
    /// This URL (checked by the api before it is stored).
    Url(String),
}

/// The outcome of a submission.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// A new job row.
    Created(Job),
    /// The key was used before with the same request: the first job.
    Replayed(Job),
    /// The key was used before with a different request.
    KeyReused,
    /// The owner already has this many jobs queued or running: nothing was stored.
    TooManyActive(u64),
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// Only jobs older than this one (the previous page's cursor).
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: i64,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Where the next page starts, when there is one.
    pub next: Option<Uuid>,
}

/// What a cancel request did.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// The job was queued and is now cancelled, or was running and its worker was told to stop.
    Accepted(Job),
    /// The job had already finished.
    AlreadyFinished(Job),
    /// No such job for this user.
    NotFound,
}

impl Store {
    /// Stores a job as `queued` (the dispatcher hands it to Redis), honouring the idempotency key.
    pub async fn submit(&self, job: NewJob) -> Result<Submitted, StoreError> {
        self.submit_within(job, None).await
    }

    /// Stores a job as [`Store::submit`] does, unless its owner already has `active_limit` jobs
    /// queued or running. The count and the insert happen under a per-owner lock, so two
    /// submissions of one user at the same moment cannot both take the last place. A replay of
    /// an `Idempotency-Key` is not a new job and is never refused.
    pub async fn submit_within(
        &self,
        job: NewJob,
        active_limit: Option<u64>,
    ) -> Result<Submitted, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(limit) = active_limit {
            // Held until commit or rollback; other owners are not held up.
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(ACTIVE_JOBS_LOCK)
                .bind(&job.owner)
                .execute(&mut *tx)
                .await?;
            let (active, replay): (i64, bool) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs
                            WHERE owner = $1 AND status IN ('queued', 'running') LIMIT $2) AS a),
                        $3::text IS NOT NULL AND EXISTS (
                            SELECT 1 FROM jobs WHERE owner = $1 AND idempotency_key = $3)",
            )
            .bind(&job.owner)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(&job.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            if !replay && active as u64 >= limit {
                tx.rollback().await?;
                return Ok(Submitted::TooManyActive(limit));
            }
        }
        let id = Uuid::now_v7();
        let inserted: Option<Job> = sqlx::query_as(&format!(
            "INSERT INTO jobs (id, owner, tier, kind, spec, data_path, request_id, idempotency_key,
                               webhook_url)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                     CASE WHEN $10 THEN (SELECT url FROM webhook_settings WHERE owner = $2)
                          ELSE $9 END)
             ON CONFLICT (owner, idempotency_key) DO NOTHING
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(id)
        .bind(&job.owner)
        .bind(job.tier.as_str())
        .bind(job.kind.as_str())
        .bind(Json(&job.spec))
        .bind(&job.data_path)
        .bind(&job.request_id)
        .bind(&job.idempotency_key)
        .bind(match &job.webhook {
            Webhook::Url(url) => Some(url),
            Webhook::Default | Webhook::None => None,
        })
        .bind(job.webhook == Webhook::Default)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(job) = inserted {
            return Ok(Submitted::Created(job));
        }
        // The key exists: replay the first job if the request is the same one.
        let (first_id, kind, spec): (Uuid, String, Json<Value>) = sqlx::query_as(
            "SELECT id, kind, spec FROM jobs WHERE owner = $1 AND idempotency_key = $2",
        )
        .bind(&job.owner)
        .bind(&job.idempotency_key)
        .fetch_one(&self.pool)
        .await?;
        if kind != job.kind.as_str() || spec.0 != job.spec {
            return Ok(Submitted::KeyReused);
        }
        let first = self.job(&job.owner, first_id).await?;
        Ok(first.map_or(Submitted::KeyReused, Submitted::Replayed))
    }

    /// True when the user already submitted a job with this `Idempotency-Key`.
    pub async fn has_idempotency_key(&self, owner: &str, key: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE owner = $1 AND idempotency_key = $2)",
        )
        .bind(owner)
        .bind(key)
        .fetch_one(&self.pool)
        .await
    }

    /// A user's job.
    pub async fn job(&self, owner: &str, id: Uuid) -> Result<Option<Job>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND owner = $2"
        ))
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
    }

    /// A user's jobs, newest first, one page at a time.
    pub async fn jobs(&self, owner: &str, filter: &JobFilter) -> Result<Page, StoreError> {
        let mut jobs: Vec<Job> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE owner = $1
               AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR kind = $3)
               AND ($4::uuid IS NULL OR id < $4)
             ORDER BY id DESC
             LIMIT $5"
        ))
        .bind(owner)
        .bind(filter.status.map(JobStatus::as_str))
        .bind(filter.kind.map(JobKind::as_str))
        .bind(filter.before)
        .bind(filter.limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let next = if jobs.len() as i64 > filter.limit {
            jobs.truncate(filter.limit as usize);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(Page { jobs, next })
    }

    /// Cancels a queued job at once; asks the worker of a running one to stop.
    pub async fn cancel(&self, owner: &str, id: Uuid) -> Result<CancelOutcome, StoreError> {
        // Every right-hand side sees the row as it was before this update.
        let updated: Option<Job> = sqlx::query_as(&format!(
            "UPDATE jobs SET
                 status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                 finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
                 cancel_requested = cancel_requested OR status = 'running'
             WHERE id = $1 AND owner = $2 AND status IN ('queued', 'running')
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match updated {
            Some(job) => CancelOutcome::Accepted(job),
            None => match self.job(owner, id).await? {
                Some(job) => CancelOutcome::AlreadyFinished(job),
                None => CancelOutcome::NotFound,
            },
        })
    }

    /// A finished job's result document, as the worker wrote it (numbers exact to the digit).
    pub async fn result(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT result::text FROM job_results WHERE job_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Jobs waiting in PostgreSQL (not yet handed to Redis), per queue.
    pub async fn backlog(&self) -> Result<Vec<(Queue, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT queue, count(*) FROM jobs
             WHERE status = 'queued' AND dispatched_at IS NULL GROUP BY queue",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(t, n)| t.parse().ok().map(|t| (t, n)))
            .collect())
    }
}
