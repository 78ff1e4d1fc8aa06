//! Tier quotas: each refusal names the limit, its value and the tier that would allow more.

mod common;

use common::{goog_spec, problem, spawn_app_with};
use serde_json::json;
use strata_core::config::Quota;
use strata_core::Tier;

fn limits(config: &mut strata_core::Config) {
    config.tiers.basic = Quota {
        active_jobs: Some(2),
        sweep_sets: Some(4),
        submissions_per_minute: Some(3),
        requests_per_minute: None,
    };
    config.tiers.pro = Quota {
        active_jobs: Some(10),
        sweep_sets: Some(100),
        submissions_per_minute: Some(30),
        requests_per_minute: Some(600),
    };
    config.tiers.elite = Quota::default();
}

async fn submit_as(app: &common::TestApp, user: &str, tier: Tier) -> reqwest::Response {
    app.client
        .post(app.url("/v1/backtests"))
        .bearer_auth(app.token(user, tier))
        .json(&goog_spec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn active_jobs_beyond_the_tier_are_a_429_with_retry_after() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.submissions_per_minute = None;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(submit_as(&app, "ann", Tier::Basic).await.status(), 202);
    }
    let response = submit_as(&app, "ann", Tier::Basic).await;
    assert!(response.headers().get("retry-after").is_some());
    let body = problem(response, 429, "too_many_active_jobs").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("active_jobs: at most 2"), "{detail}");
    assert!(detail.contains("basic tier; pro allows 10"), "{detail}");

    // Cancelling one frees a place; another user is not affected.
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
    let id = listed["jobs"][0]["id"].as_str().unwrap();
    app.client
        .post(app.url(&format!("/v1/jobs/{id}/cancel")))
        .bearer_auth(app.token("ann", Tier::Basic))
        .send()
        .await
        .unwrap();
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
    for _ in 0..3 {
        assert_eq!(submit_as(&app, "ann", Tier::Basic).await.status(), 202);
    }
    let response = submit_as(&app, "ann", Tier::Basic).await;
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
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
    let (count, _) = second.queues.count("submissions:ann", 60).await.unwrap();
    assert!(count >= 5, "{count}");
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
        detail.contains("at most 5 requests per minute on the basic tier; pro allows 600"),
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
