//! `/v1/ai`: AI jobs, queued, tiered and rate-limited like any other job. `POST
//! /v1/ai/strategies` has a language model write a strategy from plain words (compiled, and
//! repaired until it compiles); `POST /v1/ai/analyses` has it write an analysis of a finished
//! job, grounded in that job's figures; `GET /v1/ai/usage` tells what the day's calls cost.
//!
//! With no model configured (`STRATA_AI_PROVIDER`), every route answers 503
//! `ai_not_configured`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Serialize;
use strata_core::job::{parse_ai_analysis, parse_ai_strategy, JobKind, JobStatus};
use strata_core::store::Tokens;

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::request_id::RequestId;
use crate::submission::{submission_body, submit, Validated};

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/ai/strategies", post(strategies))
        .route("/v1/ai/analyses", post(analyses))
        .route("/v1/ai/usage", get(usage))
}

/// 503 `ai_not_configured` unless a language model is configured.
fn check_configured(ctx: &ApiContext) -> ApiResult<()> {
    if ctx.config.ai.provider.is_some() {
        return Ok(());
    }
    Err(ApiError::NotConfigured {
        code: "ai_not_configured",
        detail: "no language model is configured on this server: an operator sets \
                 STRATA_AI_PROVIDER (anthropic or openai), STRATA_AI_MODEL, STRATA_AI_API_KEY and \
                 optionally STRATA_AI_BASE_URL"
            .to_owned(),
    })
}

/// Has the language model write a strategy from `prompt`, in Strata's expression language, for
/// the backtest that `data`, `execution` and `precision` describe (checked as a backtest's,
/// before anything is queued). The job's result is the compiled spec, the model's explanation
/// and the rounds it took; with `run: true` a backtest of it is queued as a child job, which the
/// result names (`backtest.job_id`) and whose `parent_id` is this job.
#[utoipa::path(post, path = "/v1/ai/strategies", tag = "ai",
    request_body(content = Object, description = "prompt, data, and optionally execution, precision, run",
        example = json!({"prompt": "Buy when the 14-day RSI drops below 30 and the close is above its 200-day average; sell when RSI rises above 60.",
                         "data": {"dataset": "GOOG", "start": "2005-01-01", "end": "2012-12-31"},
                         "run": true})),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a submission safely: the first job is returned")),
    responses((status = 202, description = "Queued on the `ai` queue; `Location` is the job", body = super::jobs::JobView),
              (status = 422, description = "Invalid prompt, data, execution or precision", body = crate::error::Problem),
              (status = 403, description = "A precision the caller's tier does not include", body = crate::error::Problem),
              (status = 429, description = "ai_requests_per_minute or ai_tokens_per_day used up", body = crate::error::Problem),
              (status = 503, description = "ai_not_configured: no language model on this server", body = crate::error::Problem),
              (status = 401, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn strategies(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_configured(&ctx)?;
    let body = submission_body(&headers, &body)?;
    let (_, spec) = parse_ai_strategy(&body.spec)?;
    crate::quota::check_precision(&ctx, &user, spec.precision)?;
    let plan = spec.plan()?;
    crate::quota::check_ai_tokens(&ctx, &user).await?;
    let job = Validated::new(JobKind::AiStrategy, body, &spec, plan);
    submit(&ctx, &user, request_id, &headers, job).await
}

/// Has the language model write an analysis of the caller's finished backtest, sweep or
/// walk-forward `job_id`: risk, drawdowns and trade statistics; for a sweep the spread of the
/// objective and the danger of overfitting; for a walk-forward the gap between in-sample and
/// out-of-sample. It may only cite figures Strata computed from the job's result; the
/// job's result carries the text and those figures.
#[utoipa::path(post, path = "/v1/ai/analyses", tag = "ai",
    request_body(content = Object, description = "The job to analyse",
        example = json!({"job_id": "01936f7e-8a51-7c3e-9a0e-0b6f0f6c2a11"})),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a submission safely: the first job is returned")),
    responses((status = 202, description = "Queued on the `ai` queue; `Location` is the job", body = super::jobs::JobView),
              (status = 422, description = "No such job, or an AI job", body = crate::error::Problem),
              (status = 409, description = "The job has not succeeded (yet)", body = crate::error::Problem),
              (status = 429, description = "ai_requests_per_minute or ai_tokens_per_day used up", body = crate::error::Problem),
              (status = 503, description = "ai_not_configured: no language model on this server", body = crate::error::Problem),
              (status = 401, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn analyses(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_configured(&ctx)?;
    let body = submission_body(&headers, &body)?;
    let request = parse_ai_analysis(&body.spec)?;
    let subject = ctx
        .store
        .job(&user.sub, request.job_id)
        .await?
        .ok_or_else(|| ApiError::field("job_id", "you have no job with this id"))?;
    if subject.kind.is_ai() {
        return Err(ApiError::field(
            "job_id",
            format!(
                "job {} is an {} job; only backtests, sweeps and walk-forwards can be analysed",
                subject.id, subject.kind
            ),
        ));
    }
    if subject.status != JobStatus::Succeeded {
        let when = if subject.status.is_finished() {
            "it has no result to analyse"
        } else {
            "analyse it once it has succeeded"
        };
        return Err(ApiError::Conflict {
            code: "job_not_succeeded",
            detail: format!("job {} is {}: {when}", subject.id, subject.status),
        });
    }
    crate::quota::check_ai_tokens(&ctx, &user).await?;
    let job = Validated::without_data(JobKind::AiAnalysis, body);
    submit(&ctx, &user, request_id, &headers, job).await
}

/// What the caller's AI jobs cost today, and what their tier allows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    /// The UTC day counted.
    #[schema(value_type = String, example = "2026-11-24")]
    day: NaiveDate,
    /// Tokens and calls spent today.
    #[serde(flatten)]
    spent: Tokens,
    /// The tier's `ai_tokens_per_day`; null when unlimited.
    tokens_per_day: Option<u64>,
    /// Tokens left today; null when unlimited.
    tokens_left: Option<u64>,
    /// The tier's `ai_requests_per_minute`; null when unlimited.
    requests_per_minute: Option<u64>,
}

/// The caller's model tokens and calls on the current UTC day, against their tier's limits.
#[utoipa::path(get, path = "/v1/ai/usage", tag = "ai",
    responses((status = 200, body = UsageView),
              (status = 503, description = "ai_not_configured: no language model on this server", body = crate::error::Problem),
              (status = 401, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn usage(State(ctx): State<ApiContext>, user: AuthUser) -> ApiResult<Json<UsageView>> {
    check_configured(&ctx)?;
    let spent = ctx.store.ai_tokens_today(&user.sub).await?;
    let quota = ctx.config.tiers.quota(user.tier);
    let (day, _) = strata_core::store::utc_day(chrono::Utc::now());
    Ok(Json(UsageView {
        day,
        spent,
        tokens_per_day: quota.ai_tokens_per_day,
        tokens_left: quota
            .ai_tokens_per_day
            .map(|limit| limit.saturating_sub(spent.total())),
        requests_per_minute: quota.ai_requests_per_minute,
    }))
}
