//! `POST /v1/sweeps`: a backtest spec plus a parameter grid, validated, then queued; and
//! `POST /v1/walk-forwards`: the same plus the windows that walk it forward through the data.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use engine::spec::{BacktestSpec, SpecErrors};
use engine::sweep::{SetCount, SweepSpec, WalkForwardSpec};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strata_core::job::{parse_sweep, parse_walk_forward, JobKind};

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::request_id::RequestId;
use crate::submission::{submission_body, submit, Demand, Submission, Validated};

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
    let job = check_grid(&ctx, &user, &headers, body, spec, sweep, None).await?;
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
    let (spec, sweep, walk) = parse_walk_forward(&body.spec)?;
    let job = check_grid(&ctx, &user, &headers, body, spec, sweep, Some(walk)).await?;
    submit(&ctx, &user, request_id, &headers, job).await
}

/// How long a sweep's grid may take to check (count, expand, bind every set) before the
/// request is refused: far beyond what any grid within a tier's `sweep_sets` needs here, and a
/// bound on what a hostile one can take from the api.
const VALIDATION_DEADLINE: Duration = Duration::from_secs(10);

/// Sets its flag when dropped, so the engine's checking loops stop soon after the request that
/// started them is answered, has timed out, or was dropped by its client.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Checks a sweep's precision, `top` and grid against the caller's tier. Cheap checks first,
/// then the submission is counted against its rate, then the grid is counted before it is
/// built; counting and building run off the threads that serve requests (a grid can hold
/// millions of sets), under [`VALIDATION_DEADLINE`], and stop when the request goes.
async fn check_grid(
    ctx: &ApiContext,
    user: &AuthUser,
    headers: &HeaderMap,
    mut body: Submission,
    spec: BacktestSpec,
    sweep: SweepSpec,
    walk_forward: Option<WalkForwardSpec>,
) -> ApiResult<Validated> {
    let kind = match walk_forward {
        Some(_) => JobKind::WalkForward,
        None => JobKind::Sweep,
    };
    crate::quota::check_precision(ctx, user, spec.precision)?;
    if kind == JobKind::Sweep {
        crate::quota::check_sweep_top(ctx, user, sweep.top)?;
    }
    crate::submission::count_submission(ctx, user, headers, &mut body).await?;
    let limit = ctx.config.tiers.quota(user.tier).sweep_sets;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let validation = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        let plan = spec.plan_sweep()?;
        // Counted first, so a grid far beyond the quota is refused without being built.
        let counted = sweep
            .count_sets(&plan.strategy, limit.unwrap_or(u64::MAX), &stop)
            .map_err(SpecErrors)?;
        if let SetCount::MoreThan(_) | SetCount::TooManyToCount(_) = counted {
            return Ok((spec, sweep, plan, counted, None));
        }
        if let SetCount::Exactly(sets) | SetCount::AtMost(sets) = counted {
            if limit.is_some_and(|limit| sets > limit) {
                return Ok((spec, sweep, plan, counted, None));
            }
        }
        // Expanding the grid checks that every set binds (integer periods, say) and counts the
        // indicator columns the sets need between them.
        let expanded = sweep.expand(&plan.strategy, &stop).map_err(SpecErrors)?;
        let count = SetCount::Exactly(expanded.sets.len() as u64);
        Ok((spec, sweep, plan, count, Some(expanded)))
    });
    let (spec, sweep, plan, count, expanded) =
        match tokio::time::timeout(VALIDATION_DEADLINE, validation).await {
            Ok(joined) => {
                joined.map_err(|e| ApiError::Internal(format!("sweep validation: {e}")))??
            }
            Err(_) => {
                return Err(ApiError::field(
                    "grid",
                    format!(
                        "checking the grid took longer than {} s; narrow its ranges or draw \
                         some of its sets with samples",
                        VALIDATION_DEADLINE.as_secs()
                    ),
                ))
            }
        };
    crate::quota::check_sweep_sets(ctx, user, count)?;
    let mut job = Validated::new(kind, body, &spec, plan);
    if let Some(expanded) = expanded {
        let sets = expanded.sets.len() as u64;
        job.demand = Some(Demand {
            indicator_columns: expanded.indicator_columns as u64,
            sets,
            // A walk-forward keeps its stitched out-of-sample curve; a sweep its `top` best.
            kept_curves: match walk_forward {
                Some(_) => 1,
                None => (sweep.top.unwrap_or(0) as u64).min(sets),
            },
            walk_forward,
            clock: None,
        });
    }
    Ok(job)
}
