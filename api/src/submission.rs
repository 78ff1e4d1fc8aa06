//! Submitting a job: the one path every kind of job takes from its request body to a stored,
//! queued job. The route of each kind parses and checks its own spec into a [`Validated`]
//! job; everything else happens here, in this order: the body (JSON, text PostgreSQL can
//! store, `webhook_url` taken out), `Idempotency-Key`, the submission's rate, the data set the
//! spec names (resolved for the caller, its kind matching the precision), the tier's bar and
//! memory budgets, the webhook, and the store's active-jobs limit as the job is inserted.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::data::{DataError, LoadOptions};
use engine::spec::{BacktestSpec, Plan, Precision};
use engine::sweep::WalkForwardSpec;
use engine::tick::BarClock;
use serde_json::Value;
use strata_core::job::JobKind;
use strata_core::store::{DatasetKind, NewJob, Submitted, Webhook};

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::request_id::RequestId;
use crate::routes::jobs::JobView;

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
    /// The data set it runs on; `None` for a job that reads no data file (an analysis reads
    /// its subject's result from PostgreSQL).
    pub data: Option<DataNeed>,
    /// What the job will hold in memory besides its data, for the tier's `job_memory_mb`;
    /// `None` for a job the engine does not run here (an AI job).
    pub demand: Option<Demand>,
}

/// The data a job runs on, as its spec names it.
pub struct DataNeed {
    /// The data set's name as the spec gives it.
    pub dataset: String,
    /// The spec's range and timeframe, to count the bars the job runs on.
    pub load: LoadOptions,
    /// Bar, hybrid or tick: which kind of data set the job needs.
    pub precision: Precision,
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
            data: Some(DataNeed {
                dataset: spec.data.dataset.clone().unwrap_or_default(),
                load: plan.load,
                precision: plan.precision,
            }),
            demand,
        }
    }

    /// A submission of `kind` that runs on no data set.
    pub fn without_data(kind: JobKind, body: Submission) -> Validated {
        Validated {
            kind,
            body,
            data: None,
            demand: None,
        }
    }
}

/// Reads a JSON request body, refusing other content types and naming where the JSON breaks,
/// and text PostgreSQL cannot store (a 422 naming the field; see [`crate::storable`]).
pub fn json_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "this body is JSON: send Content-Type: application/json, not '{ct}'"
            )));
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
    let url = crate::routes::webhooks::check_url(ctx, "webhook_url", &url).await?;
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
    // An analysis reads its subject's result from PostgreSQL, not a data file.
    let data_path = match &job.data {
        Some(need) => check_data(ctx, user, need, job.demand.as_ref()).await?,
        None => String::new(),
    };
    store_job(
        ctx, user, request_id, headers, job.kind, job.body, data_path,
    )
    .await
}

/// Resolves the data set a job names for its caller, checks that its kind suits the job's
/// precision and that the job fits the tier's bar and memory budgets on it; returns its path.
async fn check_data(
    ctx: &ApiContext,
    user: &AuthUser,
    need: &DataNeed,
    demand: Option<&Demand>,
) -> ApiResult<String> {
    let data = crate::routes::datasets::resolve(ctx, &user.sub, &need.dataset).await?;
    match (need.precision, data.kind) {
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
                    need.precision.as_str()
                ),
            ))
        }
        _ => {}
    }
    // What the run is sure to fail on, found from the data set's description: a range that
    // misses the data, a timeframe its bars cannot make; in the words the run would use.
    if let Some(coverage) = data.coverage() {
        let checked = match data.kind {
            DatasetKind::Bars => need.load.check_bars(&coverage),
            DatasetKind::Ticks => need.load.check_events(&coverage),
        };
        checked.map_err(|e| {
            let field = match e {
                DataError::TimeframeTooFine { .. } | DataError::TimeframeNotMultiple { .. } => {
                    "data.timeframe"
                }
                _ => "data",
            };
            ApiError::field(field, format!("{}: {e}", data.name))
        })?;
    }
    let bars = crate::quota::check_bars(ctx, user, &data, &need.load).await?;
    if let Some(demand) = demand {
        crate::quota::check_job_memory(ctx, user, &data, &need.load, bars, demand).await?;
    }
    Ok(data.data_path)
}

/// Stores a job whose content is checked (its rate and active-jobs quotas are checked here) and
/// answers 202 with its status and `Location`. An `Idempotency-Key` replays the first job.
async fn store_job(
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
