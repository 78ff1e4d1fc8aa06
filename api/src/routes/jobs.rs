//! `/v1/jobs`: status, listing, cancellation and results of backtests and sweeps; and the
//! submission both `POST /v1/backtests` and `POST /v1/sweeps` share.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::data::LoadOptions;
use engine::spec::{BacktestSpec, Plan, Precision};
use engine::sweep::WalkForwardSpec;
use engine::tick::BarClock;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use strata_core::job::{Job, JobKind, JobStatus};
use strata_core::store::{CancelOutcome, DatasetKind, JobFilter, NewJob, Submitted, Webhook};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::request_id::RequestId;

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/jobs", get(list))
        .route("/v1/jobs/{id}", get(status))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/result", get(result))
}

/// A submission's body: the job's spec, and where to announce the job's end.
pub struct Submission {
    /// The body as sent, without `webhook_url`: what the parsers check and the worker runs.
    pub spec: Value,
    /// `webhook_url` as sent: absent (the user's default applies), `null` (no webhook for this
    /// job) or a URL, not checked yet.
    pub webhook: Webhook,
    /// Already counted against `submissions_per_minute` (see [`count_submission`]).
    pub counted: bool,
}

/// A parsed, validated submission, ready to store.
pub struct Validated {
    /// What it computes.
    pub kind: JobKind,
    /// The body as sent.
    pub body: Submission,
    /// The data set's name as the spec gives it.
    pub dataset: String,
    /// The spec's range and timeframe, to count the bars the job runs on.
    pub load: LoadOptions,
    /// Bar, hybrid or tick: which kind of data set the job needs.
    pub precision: Precision,
    /// What the job will hold in memory besides its data, for the tier's `job_memory_mb`;
    /// `None` for a job the engine does not run here (an AI strategy).
    pub demand: Option<Demand>,
}

/// What a job asks of a worker's memory, as far as its spec says; the data set says the rest.
pub struct Demand {
    /// Distinct indicator columns of all its parameter sets together.
    pub indicator_columns: u64,
    /// Parameter sets (1 for a backtest).
    pub sets: u64,
    /// Equity curves its result keeps.
    pub kept_curves: u64,
    /// A walk-forward's windows, whose number is checked against the data.
    pub walk_forward: Option<WalkForwardSpec>,
    /// At tick precision, how bars are cut from the events.
    pub clock: Option<BarClock>,
}

impl Validated {
    /// A submission of `kind` whose body parsed into `spec` and planned into `plan`.
    pub fn new(kind: JobKind, body: Submission, spec: &BacktestSpec, plan: Plan) -> Validated {
        let demand = (kind == JobKind::Backtest).then(|| Demand {
            indicator_columns: plan.compiled.indicator_columns().values().sum::<usize>() as u64,
            sets: 1,
            kept_curves: 1,
            walk_forward: None,
            clock: plan.tick.map(|tick| tick.clock),
        });
        Validated {
            kind,
            body,
            dataset: spec.data.dataset.clone().unwrap_or_default(),
            load: plan.load,
            precision: plan.precision,
            demand,
        }
    }
}

/// Reads a JSON request body, refusing other content types and naming where the JSON breaks,
/// and text PostgreSQL cannot store (a 422 naming the field; see [`crate::storable`]).
pub fn json_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(ApiError::BadRequest {
                code: "unsupported_media_type",
                detail: format!("expected Content-Type: application/json, got '{ct}'"),
            });
        }
    }
    let value = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        code: "invalid_json",
        detail: format!(
            "the body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    crate::storable::check(&value)?;
    Ok(value)
}

/// Reads a job submission's JSON body (as [`json_body`] does) and takes `webhook_url` out of
/// it: where the job's end is announced is the service's business, not the spec's.
pub fn submission_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Submission> {
    let mut spec = json_body(headers, body)?;
    let webhook = match spec.as_object_mut().and_then(|o| o.remove("webhook_url")) {
        None => Webhook::Default,
        Some(Value::Null) => Webhook::None,
        Some(Value::String(url)) => Webhook::Url(url),
        Some(other) => {
            return Err(ApiError::field(
                "webhook_url",
                format!("must be an http(s) URL as a string, or null; got {other}"),
            ))
        }
    };
    Ok(Submission {
        spec,
        webhook,
        counted: false,
    })
}

/// Checks a job's own `webhook_url`: the guard must pass it (a 422 naming `webhook_url`
/// otherwise), and its owner must have a secret to sign the events with. The user's default
/// was checked when it was set, and is looked up as the job is stored.
async fn check_webhook(ctx: &ApiContext, user: &AuthUser, webhook: Webhook) -> ApiResult<Webhook> {
    let Webhook::Url(url) = webhook else {
        return Ok(webhook);
    };
    let url = super::webhooks::check_url(ctx, "webhook_url", &url).await?;
    if ctx.store.webhook_settings(&user.sub).await?.is_none() {
        return Err(ApiError::field(
            "webhook_url",
            "events are signed with your webhook secret, and you have none yet: create it with \
             POST /v1/webhooks/secret (it is shown once) or set a default URL with PUT \
             /v1/webhooks",
        ));
    }
    Ok(Webhook::Url(url))
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= 255 => Ok(Some(key.to_owned())),
            _ => Err(ApiError::BadRequest {
                code: "invalid_idempotency_key",
                detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            }),
        },
    }
}

/// Counts a submission against `submissions_per_minute` now, before a validation that costs
/// time (a sweep's grid): a flood of expensive requests is refused by its rate, not served.
/// A repeat of an earlier submission by its `Idempotency-Key` is not counted, as in
/// [`store_job`], which then does not count it again.
pub async fn count_submission(
    ctx: &ApiContext,
    user: &AuthUser,
    headers: &HeaderMap,
    body: &mut Submission,
) -> ApiResult<()> {
    if let Some(key) = idempotency_key(headers)? {
        if ctx.store.has_idempotency_key(&user.sub, &key).await? {
            return Ok(());
        }
    }
    crate::quota::check_submission(ctx, user, false).await?;
    body.counted = true;
    Ok(())
}

/// Stores a validated job and answers 202 with its status and `Location`.
pub async fn submit(
    ctx: &ApiContext,
    user: &AuthUser,
    request_id: RequestId,
    headers: &HeaderMap,
    job: Validated,
) -> ApiResult<Response> {
    let data = super::datasets::resolve(ctx, &user.sub, &job.dataset).await?;
    match (job.precision, data.kind) {
        (Precision::Tick, DatasetKind::Bars) => {
            return Err(ApiError::field(
                "data.dataset",
                format!(
                    "'{}' holds bars; precision 'tick' runs on tick data (trades and book \
                     events): upload some with POST /v1/datasets?kind=ticks, or ask for \
                     precision 'bar' or 'hybrid'",
                    data.name
                ),
            ))
        }
        (Precision::Bar | Precision::Hybrid, DatasetKind::Ticks) => {
            return Err(ApiError::field(
                "data.dataset",
                format!(
                    "'{}' holds tick data, which runs at precision 'tick'; this spec asks for '{}'",
                    data.name,
                    job.precision.as_str()
                ),
            ))
        }
        _ => {}
    }
    let bars = crate::quota::check_bars(ctx, user, &data, &job.load).await?;
    if let Some(demand) = &job.demand {
        crate::quota::check_job_memory(ctx, user, &data, &job.load, bars, demand).await?;
    }
    store_job(
        ctx,
        user,
        request_id,
        headers,
        job.kind,
        job.body,
        data.data_path,
    )
    .await
}

/// Stores a job whose content is checked (its rate and active-jobs quotas are checked here) and
/// answers 202 with its status and `Location`. An `Idempotency-Key` replays the first job.
pub async fn store_job(
    ctx: &ApiContext,
    user: &AuthUser,
    request_id: RequestId,
    headers: &HeaderMap,
    kind: JobKind,
    body: Submission,
    data_path: String,
) -> ApiResult<Response> {
    let webhook = check_webhook(ctx, user, body.webhook).await?;
    let idempotency_key = idempotency_key(headers)?;
    // Repeating a submission by its Idempotency-Key is not a new job: no quota applies.
    let replay = match &idempotency_key {
        Some(key) => ctx.store.has_idempotency_key(&user.sub, key).await?,
        None => false,
    };
    if !replay && !body.counted {
        crate::quota::check_submission(ctx, user, kind.is_ai()).await?;
    }
    // The store counts active jobs and inserts under one per-user lock.
    let active_limit = ctx.config.tiers.quota(user.tier).active_jobs;
    let new = NewJob {
        owner: user.sub.clone(),
        tier: user.tier,
        kind,
        spec: body.spec,
        data_path,
        request_id: Some(request_id.0),
        idempotency_key,
        webhook,
    };
    let submitted = ctx.store.submit_within(new, active_limit).await?;
    let (job, replayed) = match submitted {
        Submitted::Created(job) => {
            ctx.metrics
                .jobs
                .submitted
                .with_label_values(&[job.kind.as_str(), job.tier.as_str()])
                .inc();
            (job, false)
        }
        Submitted::Replayed(job) => (job, true),
        Submitted::KeyReused => {
            return Err(ApiError::Conflict {
                code: "idempotency_key_reused",
                detail: "this Idempotency-Key was already used for a different request".into(),
            })
        }
        Submitted::TooManyActive(limit) => {
            return Err(crate::quota::too_many_active_jobs(ctx, user, limit))
        }
    };
    let location = format!("/v1/jobs/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(JobView::from(job))).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
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
    /// Only jobs of this kind: `backtest`, `sweep`, `ai_strategy` or `ai_analysis`.
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
