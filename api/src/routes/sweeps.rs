//! `POST /v1/sweeps`: a backtest spec plus a parameter grid, validated, then queued; and
//! `POST /v1/walk-forwards`: the same plus the windows that walk it forward through the data.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use engine::spec::{BacktestSpec, SpecErrors};
use engine::sweep::{SetCount, SweepSpec};
use strata_core::job::{parse_sweep, parse_walk_forward, JobKind};

use super::jobs::{submission_body, submit, Submission, Validated};
use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::request_id::RequestId;

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/sweeps", post(create))
        .route("/v1/walk-forwards", post(walk_forward))
}

/// Submits a sweep: the backtest spec's keys, plus `grid` (ranges `"5:50:5"` or lists), an
/// optional `constraint` on parameters and the `objective` metric that ranks the sets.
#[utoipa::path(post, path = "/v1/sweeps", tag = "jobs",
    request_body(content = Object, description = "A backtest spec plus grid, constraint and objective",
        example = json!({"data": {"dataset": "GOOG"},
                         "strategy": {"template": "sma_cross"},
                         "grid": {"fast": "5:50:5", "slow": [20, 50, 100]},
                         "constraint": "fast < slow",
                         "objective": "sharpe"})),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a submission safely: the first job is returned")),
    responses((status = 202, description = "Queued; `Location` is the job", body = super::jobs::JobView),
              (status = 422, description = "Invalid spec or grid", body = crate::error::Problem),
              (status = 403, description = "A precision the caller's tier does not include", body = crate::error::Problem),
              (status = 401, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body = submission_body(&headers, &body)?;
    let (spec, sweep) = parse_sweep(&body.spec)?;
    let job = check_grid(&ctx, &user, JobKind::Sweep, body, spec, sweep).await?;
    submit(&ctx, &user, request_id, &headers, job).await
}

/// Submits a walk-forward analysis: a sweep's keys plus `walk_forward` with `in_sample` and
/// `out_of_sample` lengths (bars, `500`, or a duration, `365d`, `12w`, `36h`), an optional
/// `step` and `anchored`. Each in-sample window is swept, its best set (by the objective) runs on
/// the out-of-sample window after it, and the out-of-sample runs are stitched into one equity
/// curve: the document `strata walk-forward --format json` prints.
#[utoipa::path(post, path = "/v1/walk-forwards", tag = "jobs",
    request_body(content = Object, description = "A sweep plus walk_forward windows",
        example = json!({"data": {"dataset": "GOOG"},
                         "strategy": {"template": "sma_cross"},
                         "grid": {"fast": "5:20:5", "slow": [30, 50]},
                         "objective": "sharpe",
                         "walk_forward": {"in_sample": "500", "out_of_sample": "250"}})),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a submission safely: the first job is returned")),
    responses((status = 202, description = "Queued; `Location` is the job", body = super::jobs::JobView),
              (status = 422, description = "Invalid spec, grid or windows", body = crate::error::Problem),
              (status = 403, description = "A precision the caller's tier does not include", body = crate::error::Problem),
              (status = 401, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn walk_forward(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body = submission_body(&headers, &body)?;
    let (spec, sweep, _) = parse_walk_forward(&body.spec)?;
    let job = check_grid(&ctx, &user, JobKind::WalkForward, body, spec, sweep).await?;
    submit(&ctx, &user, request_id, &headers, job).await
}

/// Checks a sweep's precision and grid against the caller's tier: the grid is counted before it
/// is built, and both happen off the threads that serve requests (a grid can hold millions of
/// sets).
async fn check_grid(
    ctx: &ApiContext,
    user: &AuthUser,
    kind: JobKind,
    body: Submission,
    spec: BacktestSpec,
    sweep: SweepSpec,
) -> ApiResult<Validated> {
    crate::quota::check_precision(ctx, user, spec.precision)?;
    let limit = ctx.config.tiers.quota(user.tier).sweep_sets;
    let (spec, plan, count) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        let plan = spec.plan_sweep()?;
        // Counted first, so a grid far beyond the quota is refused without being built.
        let counted = sweep
            .count_sets(&plan.strategy, limit.unwrap_or(u64::MAX))
            .map_err(SpecErrors)?;
        if let SetCount::MoreThan(_) = counted {
            return Ok((spec, plan, counted));
        }
        // Expanding the grid checks that every set binds (integer periods, say).
        let sets = sweep.parameter_sets(&plan.strategy).map_err(SpecErrors)?;
        Ok((spec, plan, SetCount::Exactly(sets.len() as u64)))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("sweep validation: {e}")))??;
    crate::quota::check_sweep_sets(ctx, user, count)?;
    Ok(Validated::new(kind, body, &spec, plan))
}
