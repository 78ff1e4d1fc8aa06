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
    // Anyone sees each dependency's status, nothing more.
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
            health["components"][component]["latency_ms"].is_null(),
            "{health}"
        );
    }
    // A user's token is not enough for the latencies; an operator's is.
    for (token, detailed) in [
        (app.token("ann", strata_core::Tier::Elite), false),
        (app.admin_token("ops"), true),
    ] {
        let health: Value = app
            .client
            .get(app.url("/health"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for component in ["postgres", "redis"] {
            let latency = &health["components"][component]["latency_ms"];
            assert_eq!(
                latency.as_f64().is_some_and(|ms| ms >= 0.0),
                detailed,
                "{health}"
            );
        }
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
        "/v1/walk-forwards",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/result",
        "/v1/datasets",
        "/v1/ai/strategies",
        "/v1/ai/analyses",
        "/v1/ai/usage",
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

    // Far over the limit, again and again: every one is answered, none is a reset connection.
    let huge = "x".repeat(8 << 20);
    for _ in 0..10 {
        let response = app
            .post("/v1/backtests", "ann")
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .expect("an answer, not a reset connection");
        problem(response, 413, "payload_too_large").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_that_is_not_a_plain_token_is_replaced_before_it_is_logged_or_stored() {
    let app = spawn_app().await;
    let long = "a".repeat(65);
    let hostile: [&[u8]; 5] = [
        long.as_bytes(),
        b"forged\" level=error msg=\"pwned",
        b"<script>alert(1)</script>",
        b"caf\xc3\xa9",
        b"\xff\xfe",
    ];
    for sent in hostile {
        let response = app
            .post("/v1/backtests", "ann")
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(sent).unwrap(),
            )
            .json(&goog_spec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "made up: {echoed}");
        let job: Value = response.json().await.unwrap();
        assert_eq!(job["request_id"], echoed.as_str(), "stored: {job}");
    }
    // A plain one is kept, and sent twice only its first value counts.
    let response = app
        .post("/v1/backtests", "ann")
        .header("x-request-id", "lb-7f3a.9_x")
        .header("x-request-id", "second")
        .json(&goog_spec())
        .send()
        .await
        .unwrap();
    let echoed: Vec<_> = response.headers().get_all("x-request-id").iter().collect();
    assert_eq!(echoed, ["lb-7f3a.9_x"]);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["request_id"], "lb-7f3a.9_x");
    app.stop().await;
}

#[tokio::test]
async fn a_browser_may_use_every_method_and_read_the_headers_clients_need() {
    let app = common::spawn_app_with(|config| {
        config.api.cors_origins = vec!["https://dash.example.com".into()];
    })
    .await;
    // A browser asks before PUT /v1/webhooks.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/webhooks"))
        .header("origin", "https://dash.example.com")
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    for method in ["GET", "POST", "PUT", "DELETE"] {
        assert!(allowed.contains(method), "{allowed}");
    }
    let response = app
        .post("/v1/backtests", "ann")
        .header("origin", "https://dash.example.com")
        .json(&goog_spec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in [
        "location",
        "x-request-id",
        "retry-after",
        "idempotent-replayed",
    ] {
        assert!(exposed.contains(header), "{exposed}");
    }
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

#[tokio::test]
async fn while_postgres_is_down_the_api_answers_503_and_recovers_by_itself() {
    use std::time::{Duration, Instant};
    use strata_core::testing::{postgres_addr, TcpProxy};

    let proxy = TcpProxy::start(postgres_addr()).await;
    let app = common::spawn_app_with(|config| {
        let through = proxy.url_through(config.database_url.expose());
        config.database_url = strata_core::config::Secret::new(through);
    })
    .await;
    let first = app.post_backtest("ann", &goog_spec()).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap().to_owned();

    proxy.cut().await;
    // Each answer comes within seconds, as a 503 with Retry-After, never a 500.
    let timed = |response: reqwest::Response, started: Instant| {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered after {:?}",
            started.elapsed()
        );
        assert!(response.headers().get("retry-after").is_some());
        response
    };
    let started = Instant::now();
    let response = timed(app.post_backtest("ann", &goog_spec()).await, started);
    let body = problem(response, 503, "database_unavailable").await;
    assert!(body["detail"].as_str().unwrap().contains("database"));

    let started = Instant::now();
    let response = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    let body = problem(timed(response, started), 503, "not_ready").await;
    assert_eq!(body["components"]["postgres"]["status"], "down", "{body}");
    assert_eq!(body["components"]["redis"]["status"], "up", "{body}");
    // Why it is down (the driver's text, with the address it tried) is for operators only.
    assert!(body["components"]["postgres"]["error"].is_null(), "{body}");
    let started = Instant::now();
    let response = app
        .client
        .get(app.url("/health"))
        .bearer_auth(app.admin_token("ops"))
        .send()
        .await
        .unwrap();
    let body = problem(timed(response, started), 503, "not_ready").await;
    assert!(
        body["components"]["postgres"]["error"].is_string(),
        "{body}"
    );

    let started = Instant::now();
    let response = app
        .get(&format!("/v1/jobs/{id}"), "ann")
        .send()
        .await
        .unwrap();
    problem(timed(response, started), 503, "database_unavailable").await;
    let started = Instant::now();
    let response = app
        .post(&format!("/v1/jobs/{id}/cancel"), "ann")
        .send()
        .await
        .unwrap();
    problem(timed(response, started), 503, "database_unavailable").await;
    let started = Instant::now();
    let response = app
        .post("/v1/datasets?name=later", "ann")
        .header("content-type", "text/csv")
        .body("time,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n")
        .send()
        .await
        .unwrap();
    problem(timed(response, started), 503, "database_unavailable").await;
    let started = Instant::now();
    let response = app
        .client
        .delete(app.url(&format!("/v1/datasets/{}", uuid::Uuid::new_v4())))
        .bearer_auth(app.token("ann", strata_core::Tier::Pro))
        .send()
        .await
        .unwrap();
    problem(timed(response, started), 503, "database_unavailable").await;

    // PostgreSQL is back: the same api serves again, without a restart.
    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        let response = app.post_backtest("ann", &goog_spec()).await;
        if response.status() == 202 {
            break response.json::<Value>().await.unwrap();
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "the api did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // Nothing stored before the outage was lost, and nothing was stored during it.
    assert_eq!(app.job("ann", &id).await["status"], "queued");
    let listed: Value = app.get_json("/v1/jobs", "ann").await;
    let ids: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second["id"].as_str().unwrap(), id.as_str()]);
    let datasets: Value = app.get_json("/v1/datasets", "ann").await;
    assert!(datasets
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["name"] != "later"));
    app.stop().await;
}

#[tokio::test]
async fn on_shutdown_the_api_finishes_in_flight_requests_and_refuses_new_ones() {
    use futures::StreamExt;
    use std::time::Duration;

    let data_dir = tempfile::tempdir().unwrap();
    let env = strata_core::testing::TestEnv::new(data_dir.path()).await;
    let ctx = strata_api::ApiContext::connect(env.config.clone())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, shutting_down) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(strata_api::serve(ctx, listener, async {
        let _ = shutting_down.await;
    }));

    // An upload whose body arrives in ten pieces over about a second.
    let csv = std::fs::read_to_string(env.config.bundled_dir.join("GOOG.csv")).unwrap();
    let lines: Vec<String> = csv.lines().map(|l| format!("{l}\n")).collect();
    let pieces: Vec<String> = lines
        .chunks(lines.len() / 10 + 1)
        .map(|c| c.concat())
        .collect();
    let body = futures::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(piece)
    });
    let token = strata_core::auth::issue_token(
        strata_core::testing::TEST_SECRET,
        "ann",
        strata_core::Tier::Pro,
        3600,
        false,
    )
    .unwrap();
    let upload = tokio::spawn(
        reqwest::Client::new()
            .post(format!("http://{addr}/v1/datasets?name=slow"))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );

    // Shut down while the upload is still arriving.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!upload.is_finished());
    shutdown.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a new connection was accepted after shutdown began"
    );
    assert!(!upload.is_finished());

    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["bars"], 2148);
    // The server stops once its last request is answered.
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops after draining")
        .unwrap()
        .unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn while_redis_is_down_the_api_still_takes_jobs_within_seconds() {
    use std::time::{Duration, Instant};
    use strata_core::testing::{redis_url, TcpProxy};

    let redis = redis_url();
    let target = redis
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .expect("STRATA_TEST_REDIS_URL as redis://HOST:PORT");
    let proxy = TcpProxy::start(target).await;
    let app = common::spawn_app_with(|config| {
        config.redis_url = strata_core::config::Secret::new(proxy.url_through(&redis));
        // Rates are counted in Redis on every request and submission.
        config.tiers.pro.requests_per_minute = Some(1000);
        config.tiers.pro.submissions_per_minute = Some(1000);
    })
    .await;
    let counted = app.post_backtest("ann", &goog_spec()).await;
    assert_eq!(counted.status(), 202);
    assert!(counted.headers().get("ratelimit-remaining").is_some());

    proxy.cut().await;
    // Each Redis call gives up within seconds (not the client's default of about ten per
    // call): the job is taken, uncounted, to wait in PostgreSQL.
    let started = Instant::now();
    let response = app.post_backtest("ann", &goog_spec()).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 202);
    assert!(response.headers().get("ratelimit-remaining").is_none());
    let started = Instant::now();
    let response = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(8));
    let body = problem(response, 503, "not_ready").await;
    assert_eq!(body["components"]["redis"]["status"], "down", "{body}");

    // Redis is back: requests are counted again, without a restart.
    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = app.post_backtest("ann", &goog_spec()).await;
        assert_eq!(response.status(), 202);
        if response.headers().get("ratelimit-remaining").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still uncounted after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}
