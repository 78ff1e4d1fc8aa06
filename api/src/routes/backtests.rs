//! `POST /v1/backtests`: validate a backtest spec completely, then queue it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use strata_core::job::{parse_backtest, JobKind};

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::ApiResult;
use crate::request_id::RequestId;
use crate::submission::{submission_body, submit, Validated};

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new().route("/v1/backtests", post(create))
}

/// Submits a backtest. The spec is checked field by field and its strategy compiled before
/// anything is stored: a bad spec is a 422 whose `errors` name each field (and, for an
/// expression, the column). Like every submission it may carry `webhook_url`, where the job's
/// end is announced (a signed POST; see `PUT /v1/webhooks`).
#[utoipa::path(post, path = "/v1/backtests", tag = "jobs",
    request_body(content = Object, description = "A backtest spec (see the README)",
        example = json!({"data": {"dataset": "GOOG", "start": "2005-01-01", "end": "2012-12-31"},
                         "strategy": {"template": "sma_cross", "params": {"fast": 10, "slow": 20}},
                         "direction": "long",
                         "execution": {"fill": "next_open", "fees": 0.001, "initial_cash": 10000, "size": 1.0},
                         "precision": "bar"})),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a submission safely: the first job is returned")),
    responses((status = 202, description = "Queued; `Location` is the job", body = super::jobs::JobView),
              (status = 422, description = "Invalid spec", body = crate::error::Problem),
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
    let spec = parse_backtest(&body.spec)?;
    crate::quota::check_precision(&ctx, &user, spec.precision)?;
    let plan = spec.plan()?;
    let job = Validated::new(JobKind::Backtest, body, &spec, plan);
    submit(&ctx, &user, request_id, &headers, job).await
}
