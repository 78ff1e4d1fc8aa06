//! `/v1/jobs`: status, listing, cancellation and results of every kind of job (submitting one
//! is [`crate::submission`]'s).

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use strata_core::job::{Job, JobKind, JobStatus};
use strata_core::store::{CancelOutcome, JobFilter};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/jobs", get(list))
        .route("/v1/jobs/{id}", get(status))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/result", get(result))
}

/// A job and where to find its result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    job: Job,
    /// Links to this job's resources.
    links: Links,
}

/// Where a job's status and result live.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Links {
    /// `GET` for the status.
    #[serde(rename = "self")]
    status: String,
    /// `GET` for the result once finished.
    result: String,
    /// `POST` to cancel.
    cancel: String,
    /// `GET` for its server-sent events.
    events: String,
    /// `GET` for its webhook deliveries.
    deliveries: String,
}

impl From<Job> for JobView {
    fn from(job: Job) -> JobView {
        let base = format!("/v1/jobs/{}", job.id);
        JobView {
            links: Links {
                result: format!("{base}/result"),
                cancel: format!("{base}/cancel"),
                events: format!("{base}/events"),
                deliveries: format!("{base}/deliveries"),
                status: base,
            },
            job,
        }
    }
}

/// A job id from the path; a malformed one is simply not found.
fn job_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::NotFound("job"))
}

/// A job's status, progress, attempts and timestamps.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn status(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = ctx
        .store
        .job(&user.sub, job_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    Ok(Json(job.into()))
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only jobs with this status.
    status: Option<String>,
    /// Only jobs of this kind: `backtest`, `sweep`, `walk_forward` (or `walk-forward`),
    /// `ai_strategy` or `ai_analysis`.
    kind: Option<String>,
    /// Page size, 1..=100 (default 20).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of jobs, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    /// The jobs, newest first.
    jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// The caller's jobs, newest first, cursor-paged.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobPage), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<JobPage>> {
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<JobStatus>()
                .map_err(|e| ApiError::field("status", e))
        })
        .transpose()?;
    let kind = query
        .kind
        .as_deref()
        .map(|s| s.parse::<JobKind>().map_err(|e| ApiError::field("kind", e)))
        .transpose()?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be 1 to 100, got {limit}"),
        ));
    }
    let before = query
        .cursor
        .as_deref()
        .map(|c| {
            Uuid::parse_str(c)
                .map_err(|_| ApiError::field("cursor", "not a cursor this API returned"))
        })
        .transpose()?;
    let page = ctx
        .store
        .jobs(
            &user.sub,
            &JobFilter {
                status,
                kind,
                before,
                limit,
            },
        )
        .await?;
    Ok(Json(JobPage {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

/// Cancels a queued job at once, or asks the worker running it to stop (within about a second).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202, body = JobView), (status = 404, body = crate::error::Problem),
              (status = 409, description = "already finished", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    match ctx.store.cancel(&user.sub, job_id(&id)?).await? {
        CancelOutcome::Accepted(job) => Ok((StatusCode::ACCEPTED, Json(job.into()))),
        CancelOutcome::AlreadyFinished(job) => Err(ApiError::Conflict {
            code: "job_finished",
            detail: format!("the job has already finished ({})", job.status),
        }),
        CancelOutcome::NotFound => Err(ApiError::NotFound("job")),
    }
}

/// Query of `GET /v1/jobs/{id}/result`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ResultQuery {
    /// Return at most this many points of each equity curve (evenly spaced, first and last kept).
    points: Option<usize>,
    /// A sweep's or walk-forward's ranked `results`: at most this many (at least 1), from
    /// `offset` on. `best` stays; `Strata-Results-Total` says how many there are in all.
    top: Option<usize>,
    /// A sweep's or walk-forward's ranked `results`: skip this many of the best first
    /// (default 0; past the end, `results` is empty).
    offset: Option<usize>,
}

/// Header of a sweep's or walk-forward's result: its ranked sets in all, however many `top`
/// and `offset` return.
pub const RESULTS_TOTAL: &str = "strata-results-total";

/// A finished job's result: metrics, trades and equity (a sweep or walk-forward: every set's
/// metrics, ranked best first, pageable with `top` and `offset`).
#[utoipa::path(get, path = "/v1/jobs/{id}/result", tag = "jobs",
    params(("id" = String, Path, description = "Job id"), ResultQuery),
    responses((status = 200, description = "The result document", body = Object, headers(
                  ("Strata-Results-Total" = u64, description = "A sweep's or walk-forward's \
                      ranked sets in all (absent for other jobs)"))),
              (status = 404, body = crate::error::Problem),
              (status = 409, description = "not finished, or finished without a result", body = crate::error::Problem),
              (status = 422, description = "`points` below 2, `top` below 1, or `top` or \
                  `offset` on a job without ranked sets", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn result(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<ResultQuery>,
) -> ApiResult<Response> {
    let job = ctx
        .store
        .job(&user.sub, job_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    if job.status != JobStatus::Succeeded {
        let detail = match job.status {
            JobStatus::Failed => format!(
                "the job failed: {}",
                job.error.as_deref().unwrap_or("no reason recorded")
            ),
            JobStatus::Cancelled => "the job was cancelled; it has no result".to_owned(),
            _ => format!(
                "the job is {}; poll /v1/jobs/{} until it finishes",
                job.status, job.id
            ),
        };
        return Err(ApiError::Conflict {
            code: "job_not_succeeded",
            detail,
        });
    }
    if query.points == Some(0) || query.points == Some(1) {
        return Err(ApiError::field("points", "must be at least 2"));
    }
    if query.top == Some(0) {
        return Err(ApiError::field("top", "must be at least 1"));
    }
    let ranked = matches!(job.kind, JobKind::Sweep | JobKind::WalkForward);
    if !ranked {
        for (field, given) in [("top", query.top), ("offset", query.offset)] {
            if given.is_some() {
                return Err(ApiError::field(
                    field,
                    format!(
                        "pages the ranked sets of a sweep or walk-forward; this job's kind is {}",
                        job.kind
                    ),
                ));
            }
        }
    }
    let result =
        ctx.store.result(job.id).await?.ok_or_else(|| {
            ApiError::Internal(format!("job {} succeeded without a result", job.id))
        })?;
    let internal =
        |e: serde_json::Error| ApiError::Internal(format!("result of job {}: {e}", job.id));
    let mut total = None;
    let mut body = result;
    if ranked {
        let (paged, count) = serde_json::from_str::<&RawValue>(&body)
            .and_then(|document| page(document, query.offset.unwrap_or(0), query.top))
            .map_err(internal)?;
        total = count;
        if query.offset.is_some() || query.top.is_some() {
            body = paged.get().to_owned();
        }
    }
    if let Some(points) = query.points {
        body = serde_json::from_str::<&RawValue>(&body)
            .and_then(|document| thin(document, points))
            .map(|thinned| thinned.get().to_owned())
            .map_err(internal)?;
    }
    // Without `points`, `top` or `offset`: the stored text as the worker wrote it, nothing
    // parsed or rounded on the way.
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(total) = total {
        response
            .headers_mut()
            .insert(RESULTS_TOTAL, header::HeaderValue::from(total));
    }
    Ok(response)
}

/// A sweep's or walk-forward's document with its ranked `results` cut to `top` of them from
/// `offset` on (every one after `offset` without `top`), and how many there were. Every other
/// field is kept; numbers are moved as their original text, never parsed.
fn page(
    document: &RawValue,
    offset: usize,
    top: Option<usize>,
) -> serde_json::Result<(Box<RawValue>, Option<u64>)> {
    if !document.get().trim_start().starts_with('{') {
        return Ok((document.to_owned(), None));
    }
    let mut fields: BTreeMap<String, &RawValue> = serde_json::from_str(document.get())?;
    let Some(&results) = fields.get("results") else {
        return Ok((document.to_owned(), None));
    };
    let results: Vec<&RawValue> = serde_json::from_str(results.get())?;
    let total = results.len() as u64;
    let kept: Vec<&RawValue> = results
        .into_iter()
        .skip(offset)
        .take(top.unwrap_or(usize::MAX))
        .collect();
    let kept = serde_json::value::to_raw_value(&kept)?;
    fields.insert("results".to_owned(), &*kept);
    Ok((serde_json::value::to_raw_value(&fields)?, Some(total)))
}

/// A JSON value with every equity curve in it (a backtest's `equity`, each sweep set's
/// `equity`) thinned to at most `points` evenly spaced points, first and last kept. Numbers are
/// moved as their original text, never parsed.
fn thin(value: &RawValue, points: usize) -> serde_json::Result<Box<RawValue>> {
    match value.get().trim_start().as_bytes().first() {
        Some(b'{') => {
            let fields: BTreeMap<String, &RawValue> = serde_json::from_str(value.get())?;
            let thinned = fields
                .into_iter()
                .map(|(key, v)| {
                    let v = if key == "equity" {
                        thin_curve(v, points)?
                    } else {
                        thin(v, points)?
                    };
                    Ok((key, v))
                })
                .collect::<serde_json::Result<BTreeMap<_, _>>>()?;
            serde_json::value::to_raw_value(&thinned)
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(value.get())?;
            let thinned = items
                .into_iter()
                .map(|v| thin(v, points))
                .collect::<serde_json::Result<Vec<_>>>()?;
            serde_json::value::to_raw_value(&thinned)
        }
        _ => Ok(value.to_owned()),
    }
}

/// A curve: an object of equally long arrays (`time`, `value`, `drawdown`), or one array.
fn thin_curve(curve: &RawValue, points: usize) -> serde_json::Result<Box<RawValue>> {
    let pick = |series: &RawValue| -> serde_json::Result<Box<RawValue>> {
        let items: Vec<&RawValue> = serde_json::from_str(series.get())?;
        let n = items.len();
        if n <= points {
            return Ok(series.to_owned());
        }
        // Evenly spaced indices from 0 to n - 1 inclusive.
        let kept: Vec<&RawValue> = (0..points)
            .map(|i| items[(i as u128 * (n as u128 - 1) / (points as u128 - 1)) as usize])
            .collect();
        serde_json::value::to_raw_value(&kept)
    };
    match curve.get().trim_start().as_bytes().first() {
        Some(b'{') => {
            let series: BTreeMap<String, &RawValue> = serde_json::from_str(curve.get())?;
            let thinned = series
                .into_iter()
                .map(|(key, s)| {
                    let s = if s.get().trim_start().starts_with('[') {
                        pick(s)?
                    } else {
                        s.to_owned()
                    };
                    Ok((key, s))
                })
                .collect::<serde_json::Result<BTreeMap<_, _>>>()?;
            serde_json::value::to_raw_value(&thinned)
        }
        Some(b'[') => pick(curve),
        _ => Ok(curve.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn thinned(doc: &str, points: usize) -> Value {
        let raw: &RawValue = serde_json::from_str(doc).unwrap();
        serde_json::from_str(thin(raw, points).unwrap().get()).unwrap()
    }

    #[test]
    fn thinning_keeps_first_and_last() {
        let doc = r#"{"metrics": {"bars": 5}, "equity": {
            "time": [0, 1, 2, 3, 4], "value": [10, 11, 12, 13, 14], "drawdown": [0, 0, 0, 0, 0]}}"#;
        let doc = thinned(doc, 3);
        assert_eq!(doc["equity"]["time"], serde_json::json!([0, 2, 4]));
        assert_eq!(doc["equity"]["value"], serde_json::json!([10, 12, 14]));
        assert_eq!(doc["metrics"]["bars"], serde_json::json!(5));
    }

    #[test]
    fn short_curves_are_left_alone() {
        let doc = thinned(r#"{"equity": {"time": [0, 1], "value": [1, 2]}}"#, 10);
        assert_eq!(doc["equity"]["time"], serde_json::json!([0, 1]));
    }

    #[test]
    fn paging_cuts_the_ranked_sets_and_keeps_the_rest_as_written() {
        let doc = r#"{"results": [{"a": 1}, {"a": 2.50}, {"a": 3}], "best": {"a": 1}}"#;
        let raw: &RawValue = serde_json::from_str(doc).unwrap();
        let (paged, total) = page(raw, 1, Some(1)).unwrap();
        assert_eq!(total, Some(3));
        assert!(paged.get().contains("2.50"), "{}", paged.get());
        let paged: Value = serde_json::from_str(paged.get()).unwrap();
        assert_eq!(paged["results"], serde_json::json!([{"a": 2.5}]));
        assert_eq!(paged["best"], serde_json::json!({"a": 1}));
        let (rest, _) = page(raw, 5, None).unwrap();
        let rest: Value = serde_json::from_str(rest.get()).unwrap();
        assert_eq!(rest["results"], serde_json::json!([]));
        // A document without ranked sets is left alone.
        let raw: &RawValue = serde_json::from_str(r#"{"metrics": {"bars": 5}}"#).unwrap();
        let (same, total) = page(raw, 0, Some(1)).unwrap();
        assert_eq!((same.get(), total), (raw.get(), None));
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let doc = r#"{"equity": {"value": [-0.042003632909865196, 1, 2]}}"#;
        let raw: &RawValue = serde_json::from_str(doc).unwrap();
        let text = thin(raw, 2).unwrap().get().to_owned();
        assert!(text.contains("-0.042003632909865196"), "{text}");
    }
}
