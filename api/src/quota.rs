//! The tier quotas: requests per minute (every `/v1` request), open event streams, and before
//! a job is stored, submissions per minute, active jobs, sweep size, ranked sets kept, bars and
//! memory per job. Each refusal says which limit, its value, and the tier that would allow more.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use engine::budget::{JobShape, MemoryEstimate};
use engine::data::LoadOptions;
use engine::spec::Precision;
use engine::spec::SpecErrors;
use engine::sweep::{SetCount, EXAMINED_PER_ALLOWED_SET};
use engine::tick::BarClock;
use strata_core::config::Quota;
use strata_core::Tier;

use tracing::warn;

use crate::auth::{authenticate, AuthUser};
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::routes::datasets::{bars_for_job, Resolved};
use crate::submission::Demand;

/// "; pro allows 30" or "; elite has no limit", or nothing at the top.
fn upgrade(ctx: &ApiContext, user: &AuthUser, limit: impl Fn(&Quota) -> Option<u64>) -> String {
    match ctx.config.tiers.next_allowing_more(user.tier, limit) {
        Some((tier, Some(n))) => format!("; {tier} allows {n}"),
        Some((tier, None)) => format!("; {tier} has no limit"),
        None => String::new(),
    }
}

/// The window of every per-minute quota: any 60 seconds, not a calendar minute.
const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whole seconds to wait for `wait` to pass (rounded up, at least 1), for `Retry-After`.
fn seconds_until(wait: std::time::Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

/// Counts this submission against `submissions_per_minute` (an AI job against
/// `ai_requests_per_minute` instead). `active_jobs` is checked by the store as it inserts the
/// job (see [`too_many_active_jobs`]), so that concurrent submissions cannot both take the last
/// place.
///
/// The counters live in Redis; while Redis is unreachable, submissions are not counted rather
/// than refused: PostgreSQL holds accepted jobs, and they run once Redis is back.
pub async fn check_submission(ctx: &ApiContext, user: &AuthUser, ai: bool) -> ApiResult<()> {
    let (name, counter, code, what): (_, _, _, fn(&Quota) -> Option<u64>) = if ai {
        ("ai_requests_per_minute", "ai", "ai_rate_exceeded", |q| {
            q.ai_requests_per_minute
        })
    } else {
        (
            "submissions_per_minute",
            "submissions",
            "submission_rate_exceeded",
            |q| q.submissions_per_minute,
        )
    };
    let Some(limit) = what(ctx.config.tiers.quota(user.tier)) else {
        return Ok(());
    };
    let admission = match ctx
        .queues
        .admit(&format!("{counter}:{}", user.sub), limit, MINUTE)
        .await
    {
        Ok(admission) => admission,
        Err(e) => {
            warn!(error = %e, "Redis unreachable: submission not counted against its rate");
            return Ok(());
        }
    };
    if !admission.admitted {
        let jobs = if ai { "AI jobs" } else { "job submissions" };
        return Err(ApiError::Limited {
            code,
            detail: format!(
                "{name}: at most {limit} {jobs} per minute (any 60 seconds) on the {} tier{}",
                user.tier,
                upgrade(ctx, user, what)
            ),
            retry_after: seconds_until(admission.frees_in),
        });
    }
    Ok(())
}

/// Refuses an AI job once its owner's model tokens for the UTC day (`ai_tokens_per_day`) are
/// spent: a 429 until midnight UTC.
pub async fn check_ai_tokens(ctx: &ApiContext, user: &AuthUser) -> ApiResult<()> {
    let Some(limit) = ctx.config.tiers.quota(user.tier).ai_tokens_per_day else {
        return Ok(());
    };
    let spent = ctx.store.ai_tokens_today(&user.sub).await?.total();
    if spent < limit {
        return Ok(());
    }
    let now = chrono::Utc::now();
    let (_, midnight) = strata_core::store::utc_day(now);
    Err(ApiError::Limited {
        code: "ai_tokens_exhausted",
        detail: format!(
            "ai_tokens_per_day: {spent} of the {limit} model tokens a day on the {} tier are \
             spent; more at midnight UTC{}",
            user.tier,
            upgrade(ctx, user, |q| q.ai_tokens_per_day)
        ),
        retry_after: (midnight - now).num_seconds().max(1) as u64,
    })
}

/// The refusal of a submission beyond `active_jobs` (`limit`).
pub fn too_many_active_jobs(ctx: &ApiContext, user: &AuthUser, limit: u64) -> ApiError {
    ApiError::Limited {
        code: "too_many_active_jobs",
        detail: format!(
            "active_jobs: at most {limit} jobs queued or running at once on the {} tier{}; \
             wait for one to finish or cancel one",
            user.tier,
            upgrade(ctx, user, |q| q.active_jobs)
        ),
        // Tiny jobs finish in milliseconds; a few seconds is a fair first wait.
        retry_after: 5,
    }
}

/// The refusal of an event stream beyond `event_streams` (`limit`) open at once.
pub fn too_many_event_streams(ctx: &ApiContext, user: &AuthUser, limit: u64) -> ApiError {
    ApiError::Limited {
        code: "too_many_event_streams",
        detail: format!(
            "event_streams: at most {limit} event streams open at once on the {} tier{}; \
             close one first (GET /v1/events follows every job in one stream)",
            user.tier,
            upgrade(ctx, user, |q| q.event_streams)
        ),
        // A place frees as soon as a stream closes; that is the client's doing.
        retry_after: 5,
    }
}

/// Checks the job's precision against the tier's `precision` list (a 403).
pub fn check_precision(ctx: &ApiContext, user: &AuthUser, precision: Precision) -> ApiResult<()> {
    let tiers = &ctx.config.tiers;
    if tiers.quota(user.tier).allows(precision) {
        return Ok(());
    }
    let name = precision.as_str();
    let allowed = tiers
        .quota(user.tier)
        .precision
        .as_deref()
        .unwrap_or_default();
    let allowed = allowed
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let upgrade = [Tier::Basic, Tier::Pro, Tier::Elite]
        .into_iter()
        .filter(|&tier| tier > user.tier)
        .find(|&tier| tiers.quota(tier).allows(precision))
        .map(|tier| format!("; {tier} allows it"))
        .unwrap_or_default();
    Err(ApiError::Forbidden {
        code: "precision_not_allowed",
        detail: format!(
            "precision: '{name}' is not available on the {} tier, which allows {}{upgrade}",
            user.tier,
            if allowed.is_empty() { "none" } else { &allowed }
        ),
    })
}

/// Checks a sweep's number of parameter sets against `sweep_sets` (a 422 on `grid`).
pub fn check_sweep_sets(ctx: &ApiContext, user: &AuthUser, sets: SetCount) -> ApiResult<()> {
    let Some(limit) = ctx.config.tiers.quota(user.tier).sweep_sets else {
        return Ok(());
    };
    let has = match sets {
        SetCount::Exactly(sets) | SetCount::AtMost(sets) if sets <= limit => return Ok(()),
        SetCount::Exactly(sets) | SetCount::AtMost(sets) => {
            format!("the grid has {sets} parameter sets")
        }
        SetCount::MoreThan(counted) => {
            format!("more than {counted} parameter sets pass the constraint")
        }
        SetCount::TooManyToCount(grid) => format!(
            "the grid has {grid} parameter sets before its constraint, more than the {} \
             ({EXAMINED_PER_ALLOWED_SET} x {limit}) whose constraint is evaluated to count them; \
             narrow the ranges or draw some with samples",
            limit.saturating_mul(EXAMINED_PER_ALLOWED_SET)
        ),
    };
    Err(ApiError::field(
        "grid",
        format!(
            "sweep_sets: {has}; the {} tier allows {limit}{}",
            user.tier,
            upgrade(ctx, user, |q| q.sweep_sets)
        ),
    ))
}

/// Checks a sweep's `top` (ranked sets whose equity curves the result keeps) against
/// `sweep_top` (a 422 on `top`). The engine keeps at most one curve per set whatever `top` is.
pub fn check_sweep_top(ctx: &ApiContext, user: &AuthUser, top: Option<usize>) -> ApiResult<()> {
    let (Some(limit), Some(top)) = (ctx.config.tiers.quota(user.tier).sweep_top, top) else {
        return Ok(());
    };
    if top as u64 <= limit {
        return Ok(());
    }
    Err(ApiError::field(
        "top",
        format!(
            "sweep_top: top asks for the equity curves of {top} ranked sets; the {} tier keeps \
             at most {limit}{}",
            user.tier,
            upgrade(ctx, user, |q| q.sweep_top)
        ),
    ))
}

/// Checks the bars a job on `data` runs on (after its `start`/`end` and timeframe, `load`)
/// against `bars_per_job` (a 422 on `data`). Returns that many bars, or more: without a limit,
/// or with the data set within it, the data set's own count stands for the job's (a range
/// only takes bars away), so that nothing is read.
pub async fn check_bars(
    ctx: &ApiContext,
    user: &AuthUser,
    data: &Resolved,
    load: &LoadOptions,
) -> ApiResult<u64> {
    let Some(limit) = ctx.config.tiers.quota(user.tier).bars_per_job else {
        return match data.extent {
            Some((bars, _, _)) => Ok(u64::try_from(bars).unwrap_or(0)),
            None => bars_for_job(ctx, data, load, 0).await,
        };
    };
    let bars = bars_for_job(ctx, data, load, limit).await?;
    if bars <= limit {
        return Ok(bars);
    }
    Err(ApiError::field(
        "data",
        format!(
            "bars_per_job: the job runs on {bars} bars of '{}'; the {} tier allows {limit}{}",
            data.name,
            user.tier,
            upgrade(ctx, user, |q| q.bars_per_job)
        ),
    ))
}

/// Checks what the job will hold in memory against `job_memory_mb` (a 422
/// `job_memory_exceeded` on the field that makes it large), and a walk-forward's windows
/// against the engine's limit. `bars` may be more than the job runs on (see [`check_bars`]):
/// an estimate over the budget is made again with the exact count before it is refused.
pub async fn check_job_memory(
    ctx: &ApiContext,
    user: &AuthUser,
    data: &Resolved,
    load: &LoadOptions,
    bars: u64,
    demand: &Demand,
) -> ApiResult<()> {
    if let (Some(walk), Some(coverage)) = (&demand.walk_forward, data.coverage()) {
        let first = load.start.unwrap_or(i64::MIN).max(coverage.first);
        let last = load.end.unwrap_or(i64::MAX).min(coverage.last);
        let spacing = coverage.spacing;
        if walk.check_windows(bars, first, last, spacing).is_err() {
            // `bars` may be the whole data set's: count the range's exactly before refusing.
            let exact = bars_for_job(ctx, data, load, 0).await?;
            walk.check_windows(exact, first, last, spacing)
                .map_err(|e| SpecErrors(vec![e]))?;
        }
    }
    let Some(limit) = ctx.config.tiers.quota(user.tier).job_memory_mb else {
        return Ok(());
    };
    let mut bars = bars;
    let mut estimate = memory_estimate(ctx, data, bars, demand);
    if estimate.mib() > limit {
        let exact = bars_for_job(ctx, data, load, 0).await?;
        if exact < bars {
            bars = exact;
            estimate = memory_estimate(ctx, data, bars, demand);
        }
    }
    if estimate.mib() <= limit {
        return Ok(());
    }
    let field = match estimate {
        e if e.indicators >= e.bars.max(e.working).max(e.kept_curves).max(e.tick_events) => {
            if demand.sets > 1 {
                "grid"
            } else {
                "strategy"
            }
        }
        e if demand.sets > 1 && e.kept_curves >= e.bars.max(e.working).max(e.tick_events) => "top",
        _ => "data",
    };
    let detail = format!(
        "job_memory_mb: the job would hold about {} MiB ({}) on {bars} bars of '{}'; the {} \
         tier allows {limit} MiB{}",
        estimate.mib(),
        estimate.describe(),
        data.name,
        user.tier,
        upgrade(ctx, user, |q| q.job_memory_mb)
    );
    Err(ApiError::OverBudget {
        code: "job_memory_exceeded",
        detail: format!("{field}: {detail}"),
        errors: vec![FieldError {
            field: field.to_owned(),
            message: detail,
            column: None,
            expression: None,
        }],
    })
}

/// The memory estimate of a job on `bars` bars (or events, at tick precision) of `data`.
fn memory_estimate(
    ctx: &ApiContext,
    data: &Resolved,
    bars: u64,
    demand: &Demand,
) -> MemoryEstimate {
    // At tick precision `bars` counts events; the strategy's bars are cut from them by time.
    let (bars, tick_events) = match demand.clock {
        None => (bars, 0),
        Some(BarClock::Event) => (bars, bars),
        Some(BarClock::Every(nanos)) => {
            let span = data.extent.map_or(i64::MAX, |(_, first, last)| {
                (last - first).num_nanoseconds().unwrap_or(i64::MAX)
            });
            let cut = u64::try_from(span / nanos.max(1)).unwrap_or(u64::MAX);
            (bars.min(cut.saturating_add(1)), bars)
        }
    };
    let threads = match ctx.config.worker.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads => threads,
    };
    JobShape {
        bars,
        tick_events,
        indicator_columns: demand.indicator_columns,
        sets: demand.sets,
        threads: threads as u64,
        kept_curves: demand.kept_curves,
        walk_forward: demand.walk_forward.is_some(),
    }
    .estimate()
}

/// Counts every `/v1` request of a signed-in user against `requests_per_minute` over any 60
/// seconds (in Redis, so all api replicas share it) and answers `RateLimit-Limit/Remaining/Reset`
/// on each response (`Reset`: seconds until the oldest counted request leaves the window).
/// A request without a valid token passes through to be refused by its handler.
pub async fn rate_limit(
    State(ctx): State<ApiContext>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let Ok(user) = authenticate(request.headers(), &ctx.verifier) else {
        return next.run(request).await;
    };
    // Handed to the `AuthUser` extractor, so the token is checked once per request.
    request.extensions_mut().insert(user.clone());
    let Some(limit) = ctx.config.tiers.quota(user.tier).requests_per_minute else {
        return next.run(request).await;
    };
    let admission = match ctx
        .queues
        .admit(&format!("requests:{}", user.sub), limit, MINUTE)
        .await
    {
        Ok(admission) => admission,
        // Redis is down: let the request through uncounted (and without RateLimit headers)
        // rather than refuse everything; a job submitted now waits in PostgreSQL.
        Err(e) => {
            warn!(error = %e, "Redis unreachable: request not counted against its rate");
            return next.run(request).await;
        }
    };
    let reset = seconds_until(admission.frees_in);
    let mut response = if !admission.admitted {
        ApiError::Limited {
            code: "request_rate_exceeded",
            detail: format!(
                "requests_per_minute: at most {limit} requests per minute (any 60 seconds) on \
                 the {} tier{}",
                user.tier,
                upgrade(&ctx, &user, |q| q.requests_per_minute)
            ),
            retry_after: reset,
        }
        .into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", limit),
        ("ratelimit-remaining", limit.saturating_sub(admission.count)),
        ("ratelimit-reset", reset),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
    response
}
