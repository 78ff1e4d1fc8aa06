//! `/v1/admin`: what operators see and do across every user (tokens with the `admin` claim):
//! the queues, the running jobs and the workers; the jobs failed as poison; sending a failed or
//! cancelled job back to the queue.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use strata_core::store::{PoisonedJob, RetryOutcome, RunningJob, WorkerSeen};
use uuid::Uuid;

use super::jobs::JobView;
use crate::auth::AdminUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/admin/queues", get(queues))
        .route("/v1/admin/poisoned", get(poisoned))
        .route("/v1/admin/jobs/{id}/retry", post(retry))
}

/// At most this many running jobs and workers are listed.
const LISTED: i64 = 100;

/// One queue: a tier's engine jobs, or `ai`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueView {
    /// `elite`, `pro`, `basic` (each tier's backtests and sweeps) or `ai` (every tier's AI
    /// jobs).
    queue: &'static str,
    /// Queued in PostgreSQL, not handed to Redis yet (including retries waiting for their
    /// backoff).
    backlog: i64,
    /// Waiting in the Redis queue for a worker to fetch them; null when Redis cannot be
    /// read.
    ready: Option<u64>,
    /// Every queued job in PostgreSQL: the backlog plus those handed to Redis.
    queued: i64,
    /// When the oldest queued job was submitted.
    oldest_queued_at: Option<DateTime<Utc>>,
    /// How long it has waited, in seconds.
    oldest_wait_secs: Option<f64>,
    /// Jobs of this queue a worker is running.
    running: i64,
}

/// Running jobs, longest running first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunningView {
    /// How many jobs are running in all.
    total: i64,
    /// The first 100 of them.
    jobs: Vec<RunningJob>,
}

/// The whole picture for an operator.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuesView {
    /// Each tier's queue, elite first (the order workers favour them in), then `ai`.
    queues: Vec<QueueView>,
    /// The jobs workers are running.
    running: RunningView,
    /// Workers seen in the last hour (at most 100), most recently seen first; `alive` when
    /// seen within `worker.lease_secs` and not stopped.
    workers: Vec<WorkerSeen>,
}

/// Per queue: jobs waiting in PostgreSQL and in Redis, the oldest one and the running
/// ones; the running jobs of every user; the workers seen with their last heartbeat.
#[utoipa::path(get, path = "/v1/admin/queues", tag = "admin",
    responses((status = 200, body = QueuesView),
              (status = 401, body = crate::error::Problem),
              (status = 403, description = "the token has no admin claim", body = crate::error::Problem),
              (status = 503, description = "PostgreSQL is down", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn queues(
    State(ctx): State<ApiContext>,
    _admin: AdminUser,
) -> ApiResult<Json<QueuesView>> {
    let (load, running, workers) = tokio::try_join!(
        ctx.store.queue_load(),
        ctx.store.running_jobs(LISTED),
        ctx.store.workers_seen(ctx.config.worker.lease_secs, LISTED),
    )?;
    let mut queues = Vec::with_capacity(load.len());
    for (queue, load) in load {
        // PostgreSQL is the truth; Redis being down only leaves its column empty.
        let ready = match ctx.queues.ready(queue).await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, %queue, "cannot read the Redis queue");
                None
            }
        };
        queues.push(QueueView {
            queue: queue.as_str(),
            backlog: load.backlog,
            ready,
            queued: load.queued,
            oldest_queued_at: load.oldest_queued_at,
            oldest_wait_secs: load.oldest_wait_secs,
            running: load.running,
        });
    }
    let total = queues.iter().map(|q| q.running).sum();
    Ok(Json(QueuesView {
        queues,
        running: RunningView {
            total,
            jobs: running,
        },
        workers,
    }))
}

/// Jobs failed as poison, the latest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoisonedView {
    /// Worker deaths that fail a job (`worker.max_worker_deaths`).
    max_worker_deaths: i32,
    /// The latest 100 such jobs.
    jobs: Vec<PoisonedJob>,
}

/// Jobs failed as poison: each of their runs ended with its worker process dying (abort, out
/// of memory, crash), `worker.max_worker_deaths` times. An operator looks at their specs
/// before retrying one (a retried one runs alone, once).
#[utoipa::path(get, path = "/v1/admin/poisoned", tag = "admin",
    responses((status = 200, body = PoisonedView),
              (status = 401, body = crate::error::Problem),
              (status = 403, description = "the token has no admin claim", body = crate::error::Problem),
              (status = 503, description = "PostgreSQL is down", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn poisoned(
    State(ctx): State<ApiContext>,
    _admin: AdminUser,
) -> ApiResult<Json<PoisonedView>> {
    let max_worker_deaths = ctx.config.worker.max_worker_deaths;
    let jobs = ctx.store.poisoned_jobs(max_worker_deaths, LISTED).await?;
    Ok(Json(PoisonedView {
        max_worker_deaths,
        jobs,
    }))
}

/// Sends any user's failed or cancelled job back to the queue, as if just submitted: its
/// attempts, error and progress start again from zero.
#[utoipa::path(post, path = "/v1/admin/jobs/{id}/retry", tag = "admin",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202, description = "Queued again", body = JobView),
              (status = 403, description = "the token has no admin claim", body = crate::error::Problem),
              (status = 404, body = crate::error::Problem),
              (status = 409, description = "the job is queued, running or succeeded", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retry(
    State(ctx): State<ApiContext>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("job"))?;
    match ctx.store.retry(id).await? {
        RetryOutcome::Queued(job) => {
            tracing::info!(job = %id, admin = %admin.sub, "job queued again by an operator");
            Ok((StatusCode::ACCEPTED, Json(job.into())))
        }
        RetryOutcome::NotRetryable(job) => Err(ApiError::Conflict {
            code: "not_retryable",
            detail: format!(
                "the job is {}; only failed and cancelled jobs can be retried",
                job.status
            ),
        }),
        RetryOutcome::NotFound => Err(ApiError::NotFound("job")),
    }
}
