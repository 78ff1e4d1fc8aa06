//! Tier quotas: each refusal names the limit, its value and the tier that would allow more.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{goog_spec, problem, spawn_app_with};
use engine::spec::Precision;
use serde_json::json;
use strata_core::config::Quota;
use strata_core::Tier;

fn limits(config: &mut strata_core::Config) {
    config.tiers.basic = Quota {
        active_jobs: Some(2),
        sweep_sets: Some(4),
        submissions_per_minute: Some(3),
        requests_per_minute: None,
        bars_per_job: None,
        precision: Some(vec![Precision::Bar]),
        weight: 1,
        ..Quota::default()
    };
    config.tiers.pro = Quota {
        active_jobs: Some(10),
        sweep_sets: Some(100),
        submissions_per_minute: Some(30),
        requests_per_minute: Some(600),
        bars_per_job: None,
        precision: Some(vec![Precision::Bar, Precision::Hybrid]),
        weight: 3,
        ..Quota::default()
    };
    config.tiers.elite = Quota::default();
}

const MINUTE: Duration = Duration::from_secs(60);

async fn submit_as(app: &common::TestApp, user: &str, tier: Tier) -> reqwest::Response {
    app.client
        .post(app.url("/v1/backtests"))
        .bearer_auth(app.token(user, tier))
        .json(&goog_spec())
        .send()
        .await
        .unwrap()
}

/// Submits `accepted` jobs as `user`, each a 202, and returns the answer to one more.
async fn one_too_many(
    app: &common::TestApp,
    user: &str,
    tier: Tier,
    accepted: usize,
) -> reqwest::Response {
    for _ in 0..accepted {
        assert_eq!(submit_as(app, user, tier).await.status(), 202);
    }
    submit_as(app, user, tier).await
}

#[tokio::test]
async fn active_jobs_beyond_the_tier_are_a_429_with_retry_after() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.submissions_per_minute = None;
    })
    .await;
    let response = one_too_many(&app, "ann", Tier::Basic, 2).await;
    assert!(response.headers().get("retry-after").is_some());
    let body = problem(response, 429, "too_many_active_jobs").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("active_jobs: at most 2"), "{detail}");
    assert!(detail.contains("basic tier; pro allows 10"), "{detail}");

    // Cancelling one frees a place; another user is not affected.
    let listed: serde_json::Value = app.get_json("/v1/jobs", "ann").await;
    let id = listed["jobs"][0]["id"].as_str().unwrap();
    let cancel = format!("/v1/jobs/{id}/cancel");
    app.post(&cancel, "ann").send().await.unwrap();
    assert_eq!(submit_as(&app, "ann", Tier::Basic).await.status(), 202);
    assert_eq!(submit_as(&app, "bob", Tier::Basic).await.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn submissions_per_minute_are_counted_in_redis() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.active_jobs = None;
    })
    .await;
    let response = one_too_many(&app, "ann", Tier::Basic, 3).await;
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The oldest of the three leaves the window a minute after it came, a moment ago.
    assert!((59..=60).contains(&retry), "{retry}");
    let body = problem(response, 429, "submission_rate_exceeded").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("at most 3 job submissions per minute"),
        "{detail}"
    );
    assert!(detail.contains("pro allows 30"), "{detail}");

    // The count is kept in Redis: a second api on the same Redis and prefix sees it.
    let second = strata_api::ApiContext::connect(app.config.clone())
        .await
        .unwrap();
    let seen = second
        .queues
        .admit("submissions:ann", 3, MINUTE)
        .await
        .unwrap();
    assert!(!seen.admitted && seen.count == 3, "{seen:?}");
    // Elite has no limit here.
    for _ in 0..5 {
        assert_eq!(submit_as(&app, "eve", Tier::Elite).await.status(), 202);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_sweep_larger_than_the_tier_allows_is_a_422_on_grid() {
    let app = spawn_app_with(limits).await;
    let spec = json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": [5, 10, 15], "slow": [20, 50]}
    });
    let response = app
        .client
        .post(app.url("/v1/sweeps"))
        .bearer_auth(app.token("ann", Tier::Basic))
        .json(&spec)
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "grid");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("6 parameter sets; the basic tier allows 4; pro allows 100"),
        "{message}"
    );
    let response = app
        .client
        .post(app.url("/v1/sweeps"))
        .bearer_auth(app.token("ann", Tier::Pro))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn a_grid_of_millions_is_refused_by_counting_not_by_building_it() {
    let app = spawn_app_with(limits).await;
    let sweep_over = |range: &str, constraint: Option<&str>| {
        let mut spec = json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"template": "sma_cross"},
            "grid": {"fast": range, "slow": range}
        });
        if let Some(constraint) = constraint {
            spec["constraint"] = json!(constraint);
        }
        spec
    };
    let sweep = |constraint: Option<&str>| sweep_over("1:2000:1", constraint);
    let post = |spec: serde_json::Value| {
        app.client
            .post(app.url("/v1/sweeps"))
            .bearer_auth(app.token("ann", Tier::Basic))
            .json(&spec)
            .send()
    };
    let body = problem(post(sweep(None)).await.unwrap(), 422, "validation_failed").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("the grid has 4000000 parameter sets; the basic tier allows 4"),
        "{message}"
    );
    // A constrained grid over 100 times the limit is refused without evaluating the constraint.
    let body = problem(
        post(sweep(Some("fast < slow"))).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "the grid has 4000000 parameter sets before its constraint, more than the 400"
        ),
        "{message}"
    );
    // A smaller one is counted until more than the limit pass.
    let body = problem(
        post(sweep_over("1:20:1", Some("fast < slow")))
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("more than 4 parameter sets pass the constraint; the basic tier allows 4"),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test]
async fn requests_per_minute_are_limited_with_ratelimit_headers() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.requests_per_minute = Some(5);
    })
    .await;
    let get = || {
        app.client
            .get(app.url("/v1/jobs"))
            .bearer_auth(app.token("ann", Tier::Basic))
            .send()
    };
    for remaining in (0..5).rev() {
        let response = get().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "5");
        assert_eq!(
            response.headers()["ratelimit-remaining"],
            remaining.to_string().as_str()
        );
        assert!(response.headers().get("ratelimit-reset").is_some());
    }
    let response = get().await.unwrap();
    assert!(response.headers().get("retry-after").is_some());
    let body = problem(response, 429, "request_rate_exceeded").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "at most 5 requests per minute (any 60 seconds) on the basic tier; pro allows 600"
        ),
        "{detail}"
    );
    // Health and metrics are not counted; another user has their own count.
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let bob = app
        .client
        .get(app.url("/v1/jobs"))
        .bearer_auth(app.token("bob", Tier::Basic))
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status(), 200);
    app.stop().await;
}

/// Bars of the bundled GOOG the spec's range and timeframe keep, as the worker will read them.
fn goog_bars(spec: &serde_json::Value, app: &common::TestApp) -> usize {
    let plan = strata_core::job::parse_backtest(spec)
        .unwrap()
        .plan()
        .unwrap();
    engine::data::load(&app.config.bundled_dir.join("GOOG.csv"), &plan.load)
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_job_on_more_bars_than_the_tier_allows_is_a_422_on_data() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.submissions_per_minute = None;
        config.tiers.basic.active_jobs = None;
        config.tiers.basic.bars_per_job = Some(500);
        config.tiers.pro.bars_per_job = Some(5_000);
    })
    .await;
    let post = |path: &'static str, tier: Tier, spec: serde_json::Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(app.token("ann", tier))
            .json(&spec)
            .send()
    };

    // GOOG from 2005 to 2012: about 2,000 daily bars.
    let spec = goog_spec();
    let bars = goog_bars(&spec, &app);
    assert!(bars > 1_900, "{bars}");
    let response = post("/v1/backtests", Tier::Basic, spec.clone())
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "data", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "bars_per_job: the job runs on {bars} bars of 'GOOG'; the basic tier allows 500; \
             pro allows 5000"
        )
    );
    // Pro allows it; nothing of the refused one was stored.
    assert_eq!(
        post("/v1/backtests", Tier::Pro, spec)
            .await
            .unwrap()
            .status(),
        202
    );
    let listed: serde_json::Value = app.get_json("/v1/jobs", "ann").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);

    // The range is what counts: one year of GOOG fits, and so does all of it in weekly bars.
    let mut one_year = goog_spec();
    one_year["data"] = json!({"dataset": "GOOG", "start": "2010-01-01", "end": "2010-12-31"});
    assert!(goog_bars(&one_year, &app) < 500);
    assert_eq!(
        post("/v1/backtests", Tier::Basic, one_year)
            .await
            .unwrap()
            .status(),
        202
    );
    let mut weekly = goog_spec();
    weekly["data"] = json!({"dataset": "GOOG", "timeframe": "1w"});
    let weeks = goog_bars(&weekly, &app);
    assert!((400..500).contains(&weeks), "{weeks}");
    assert_eq!(
        post("/v1/backtests", Tier::Basic, weekly)
            .await
            .unwrap()
            .status(),
        202
    );

    // A sweep runs every set on the same bars: the same limit applies.
    let sweep = json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": [5, 10], "slow": [20]}
    });
    let response = post("/v1/sweeps", Tier::Basic, sweep).await.unwrap();
    let body = problem(response, 422, "validation_failed").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("bars_per_job: the job runs on 2148 bars of 'GOOG'"),
        "{message}"
    );

    // A range with no bars at all is refused at once, without the server's paths.
    let mut empty = goog_spec();
    empty["data"] = json!({"dataset": "GOOG", "start": "2030-01-01"});
    let response = post("/v1/backtests", Tier::Basic, empty).await.unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "data");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        !message.contains(app.config.bundled_dir.to_str().unwrap()),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_uploaded_data_set_counts_its_bars_too() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.bars_per_job = Some(1_000);
        config.tiers.pro.bars_per_job = None;
    })
    .await;
    let csv = std::fs::read_to_string(app.config.bundled_dir.join("GOOG.csv")).unwrap();
    let uploaded = app
        .client
        .post(app.url("/v1/datasets?name=mine"))
        .bearer_auth(app.token("ann", Tier::Basic))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let spec = json!({"data": {"dataset": "mine"}, "strategy": {"template": "sma_cross"}});
    let response = app
        .client
        .post(app.url("/v1/backtests"))
        .bearer_auth(app.token("ann", Tier::Basic))
        .json(&spec)
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "bars_per_job: the job runs on 2148 bars of 'mine'; the basic tier allows 1000; \
         pro has no limit"
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_submissions_never_exceed_active_jobs() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.active_jobs = Some(3);
        config.tiers.basic.submissions_per_minute = None;
    })
    .await;
    let submissions: Vec<_> = (0..20)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/v1/backtests"))
                .bearer_auth(app.token("ann", Tier::Basic))
                .json(&goog_spec());
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for submission in submissions {
        let response = submission.await.unwrap();
        if response.status() == 202 {
            accepted += 1;
        } else {
            assert!(response.headers().get("retry-after").is_some());
            problem(response, 429, "too_many_active_jobs").await;
        }
    }
    assert_eq!(accepted, 3);
    let listed: serde_json::Value = app
        .client
        .get(app.url("/v1/jobs"))
        .bearer_auth(app.token("ann", Tier::Basic))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 3, "{listed}");
    app.stop().await;
}

#[tokio::test]
async fn requests_per_minute_are_shared_by_two_api_instances() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.requests_per_minute = Some(6);
    })
    .await;
    // A second replica on the same database and Redis prefix.
    let (second, _stop_second) = common::serve_api(app.config.clone()).await;
    let get = |base: &str| {
        app.client
            .get(format!("{base}/v1/jobs"))
            .bearer_auth(app.token("ann", Tier::Basic))
            .send()
    };
    for (i, base) in [&app.address, &second]
        .into_iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        let response = get(base.as_str()).await.unwrap();
        assert_eq!(response.status(), 200, "request {i} to {base}");
        assert_eq!(
            response.headers()["ratelimit-remaining"],
            (5 - i).to_string().as_str(),
            "request {i} to {base}"
        );
    }
    // Three requests went to each: both refuse the seventh.
    for base in [&app.address, &second] {
        let response = get(base.as_str()).await.unwrap();
        let body = problem(response, 429, "request_rate_exceeded").await;
        assert!(body["detail"]
            .as_str()
            .unwrap()
            .contains("at most 6 requests per minute"));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_precision_above_the_tier_is_a_403_naming_the_tier_that_allows_it() {
    let app = spawn_app_with(limits).await;
    let submit = |path: &'static str, tier: Tier, precision: &str| {
        let mut spec = goog_spec();
        spec["precision"] = json!(precision);
        spec["execution"] = json!({"stop_loss": 0.02, "take_profit": 0.04});
        if path == "/v1/sweeps" {
            spec["grid"] = json!({"fast": [5, 10]});
        }
        app.client
            .post(app.url(path))
            .bearer_auth(app.token("ann", tier))
            .json(&spec)
            .send()
    };
    let cases = [
        (
            "/v1/backtests",
            Tier::Basic,
            "hybrid",
            "which allows bar; pro allows it",
        ),
        (
            "/v1/backtests",
            Tier::Basic,
            "tick",
            "which allows bar; elite allows it",
        ),
        (
            "/v1/backtests",
            Tier::Pro,
            "tick",
            "which allows bar, hybrid; elite allows it",
        ),
        (
            "/v1/sweeps",
            Tier::Basic,
            "hybrid",
            "which allows bar; pro allows it",
        ),
    ];
    for (path, tier, precision, allows) in cases {
        let response = submit(path, tier, precision).await.unwrap();
        let body = problem(response, 403, "precision_not_allowed").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!(
                "precision: '{precision}' is not available on the {tier} tier, {allows}"
            )),
            "{detail}"
        );
    }
    // The tiers that include it are served.
    let response = submit("/v1/backtests", Tier::Pro, "hybrid").await.unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let response = submit("/v1/sweeps", Tier::Elite, "hybrid").await.unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    app.stop().await;
}

/// `Retry-After` of a 429, in seconds.
fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn per_minute_quotas_count_any_60_seconds_not_the_calendar_minute() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.active_jobs = None;
    })
    .await;
    // Time is driven by placing earlier submissions in the window, as a replica would have.
    let ctx = strata_api::ApiContext::connect(app.config.clone())
        .await
        .unwrap();
    let queues = &ctx.queues;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let ago = |secs: u64| now - Duration::from_secs(secs);

    // Three submissions 30 s ago (on either side of a minute's start) fill the basic tier's 3
    // until they are 60 s old.
    for _ in 0..3 {
        let seen = queues
            .admit_at("submissions:ann", 3, MINUTE, ago(30))
            .await
            .unwrap();
        assert!(seen.admitted, "{seen:?}");
    }
    let response = submit_as(&app, "ann", Tier::Basic).await;
    let retry = retry_after(&response);
    assert!((29..=30).contains(&retry), "{retry}");
    problem(response, 429, "submission_rate_exceeded").await;

    // Three 61 s ago have left the window.
    for _ in 0..3 {
        queues
            .admit_at("submissions:bob", 3, MINUTE, ago(61))
            .await
            .unwrap();
    }
    assert_eq!(submit_as(&app, "bob", Tier::Basic).await.status(), 202);

    // Two 50 s ago and one now: the next waits for the first of the two to leave, in 10 s.
    for _ in 0..2 {
        queues
            .admit_at("submissions:cy", 3, MINUTE, ago(50))
            .await
            .unwrap();
    }
    assert_eq!(submit_as(&app, "cy", Tier::Basic).await.status(), 202);
    let response = submit_as(&app, "cy", Tier::Basic).await;
    let retry = retry_after(&response);
    assert!((9..=10).contains(&retry), "{retry}");
    problem(response, 429, "submission_rate_exceeded").await;

    // The window slides by the millisecond: 2 in any 10 s.
    let window = Duration::from_secs(10);
    let at = |ms: u64| now + Duration::from_millis(ms);
    let admit = |ms: u64| queues.admit_at("slide", 2, window, at(ms));
    let first = admit(0).await.unwrap();
    assert!(first.admitted && first.count == 1 && first.frees_in == window);
    assert!(admit(1_000).await.unwrap().admitted);
    let refused = admit(5_000).await.unwrap();
    assert!(!refused.admitted && refused.count == 2, "{refused:?}");
    assert_eq!(refused.frees_in, Duration::from_secs(5));
    let refused = admit(9_999).await.unwrap();
    assert_eq!(
        (refused.admitted, refused.frees_in),
        (false, Duration::from_millis(1))
    );
    // At 10 s the first has left (refusals were not counted): one place.
    let again = admit(10_000).await.unwrap();
    assert!(again.admitted && again.count == 2, "{again:?}");
    assert_eq!(again.frees_in, Duration::from_secs(1));
    assert!(!admit(10_500).await.unwrap().admitted);
    // Keys honour queue_prefix.
    let mut redis = redis::Client::open(app.config.redis_url.expose())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{}:window:slide", app.config.queue_prefix);
    let members: u64 = redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(members, 2);
    app.stop().await;
}
