//! Health, metrics, OpenAPI, docs, request ids, and problem+json for every error.

mod common;

use common::{goog_spec, problem, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn health_endpoints_report_each_component() {
    let app = spawn_app().await;
    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let health: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    for component in ["postgres", "redis"] {
        assert_eq!(health["components"][component]["status"], "up", "{health}");
        assert!(
            health["components"][component]["latency_ms"]
                .as_f64()
                .unwrap()
                >= 0.0
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_api_refuses_to_start_without_redis() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = strata_core::testing::TestEnv::new(data_dir.path()).await;
    let mut config = env.config.clone();
    // Nothing listens on port 1.
    config.redis_url = strata_core::config::Secret::new("redis://127.0.0.1:1");
    // The api refuses to start without Redis rather than serving half a service.
    let started = strata_api::ApiContext::connect(config).await;
    let message = started.err().expect("no Redis, no api").to_string();
    assert!(message.contains("REDIS_URL"), "{message}");
    env.cleanup().await;
}

#[tokio::test]
async fn metrics_count_requests_and_submissions() {
    let app = spawn_app().await;
    assert_eq!(app.post_backtest("ann", &goog_spec()).await.status(), 202);
    let _ = app.get("/v1/jobs", "ann").send().await.unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "strata_http_requests_total{method=\"POST\",route=\"/v1/backtests\",status=\"202\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("strata_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("strata_jobs_submitted_total{kind=\"backtest\",tier=\"pro\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("strata_queue_depth{place=\"backlog\",queue=\"pro\"} 1"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn openapi_and_offline_docs_are_served() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/backtests",
        "/v1/sweeps",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/result",
        "/v1/datasets",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "{html:.300}");
    assert!(
        !html.contains("https://"),
        "the docs page must not load from a CDN"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_response_has_a_request_id_and_errors_are_problems() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert!(response.headers().get("x-request-id").is_some());
    problem(response, 404, "not_found").await;

    let response = app
        .client
        .delete(app.url("/v1/backtests"))
        .send()
        .await
        .unwrap();
    problem(response, 405, "method_not_allowed").await;

    let mine = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.headers()["x-request-id"], "trace-me-123");
    assert_eq!(mine.headers()["x-content-type-options"], "nosniff");

    let big = "x".repeat(app.config.api.json_limit_bytes + 10);
    let response = app
        .post("/v1/backtests", "ann")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    problem(response, 413, "payload_too_large").await;
    app.stop().await;
}

#[tokio::test]
async fn responses_are_gzipped_when_asked() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    app.stop().await;
}
