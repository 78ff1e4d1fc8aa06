//! `POST /v1/sweeps`: a backtest spec plus a parameter grid, validated, then queued.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use engine::spec::SpecErrors;
use engine::sweep::SetCount;
use strata_core::job::{parse_sweep, JobKind};

use super::jobs::{json_body, submit, Validated};
use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::request_id::RequestId;

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new().route("/v1/sweeps", post(create))
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
    let value = json_body(&headers, &body)?;
    let (spec, sweep) = parse_sweep(&value)?;
    crate::quota::check_precision(&ctx, &user, spec.precision)?;
    let limit = ctx.config.tiers.quota(user.tier).sweep_sets;
    // A grid can hold millions of sets: counting and expanding them is CPU work, kept off the
    // threads that serve requests.
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
    crate::quota::check_sweep_sets(&ctx, &user, count)?;
    let dataset = spec.data.dataset.clone().unwrap_or_default();
    let job = Validated {
        kind: JobKind::Sweep,
        spec: value,
        dataset,
        load: plan.load,
        precision: plan.precision,
    };
    submit(&ctx, &user, request_id, &headers, job).await
}
