//! Submitting, validating, listing, cancelling and reading jobs.

mod common;

use common::{goog_spec, problem, spawn_app, spawn_app_with, spawn_app_with_worker};
use serde_json::{json, Value};

#[tokio::test]
async fn a_backtest_is_queued_with_a_location_and_runs_to_a_result() {
    let app = spawn_app_with_worker().await;
    let response = app.post_backtest("ann", &goog_spec()).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let job: Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["kind"], "backtest");
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(job["request_id"], request_id.as_str());

    let done = app.wait_finished("ann", &id, 30).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["attempts"], 1);
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());

    let result: Value = app.get_json(&format!("/v1/jobs/{id}/result"), "ann").await;
    let bars = result["metrics"]["bars"].as_u64().unwrap() as usize;
    assert!(bars > 1000, "{}", result["metrics"]);
    assert_eq!(result["equity"]["value"].as_array().unwrap().len(), bars);
    assert!(result["trades"].as_array().unwrap().len() > 10);

    let thin: Value = app
        .get_json(&format!("/v1/jobs/{id}/result?points=100"), "ann")
        .await;
    assert_eq!(thin["equity"]["value"].as_array().unwrap().len(), 100);
    assert_eq!(thin["equity"]["time"][0], result["equity"]["time"][0]);
    assert_eq!(
        thin["equity"]["time"][99],
        result["equity"]["time"][bars - 1]
    );
    assert_eq!(thin["metrics"], result["metrics"]);
    app.stop().await;
}

#[tokio::test]
async fn a_sweep_runs_and_ranks_its_sets() {
    let app = spawn_app_with_worker().await;
    let spec = json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": "5:20:5", "slow": [20, 50, 100]},
        "constraint": "fast < slow",
        "objective": "sharpe"
    });
    let response = app.post_sweep("ann", &spec).await;
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["kind"], "sweep");
    let id = job["id"].as_str().unwrap();
    let done = app.wait_finished("ann", id, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let result: Value = app.get_json(&format!("/v1/jobs/{id}/result"), "ann").await;
    let text = result.to_string();
    assert!(text.contains("sharpe"), "{text:.400}");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_spec_is_a_422_naming_the_field_and_nothing_is_stored() {
    let app = spawn_app().await;
    let mut spec = goog_spec();
    spec["execution"]["fees"] = json!(2.0);
    let body = problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "execution.fees");

    // A size above 1 borrows: it needs the leverage for it.
    let mut spec = goog_spec();
    spec["execution"]["size"] = json!(100);
    let body = problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;
    let error = &body["errors"][0];
    assert_eq!(error["field"], "execution.size");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("set execution.leverage"), "{message}");

    let mut spec = goog_spec();
    spec["strategy"] =
        json!({"entry": "cross_above(sma(close, 10), smaa(close, 20))", "exit": "close < 1"});
    let body = problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;
    let error = &body["errors"][0];
    assert_eq!(error["field"], "strategy.entry");
    assert_eq!(error["column"], 29, "{body}");
    assert!(
        error["message"].as_str().unwrap().contains("smaa"),
        "{body}"
    );

    let mut spec = goog_spec();
    spec["data"]["dataset"] = json!("NOPE");
    let body = problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "data.dataset");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("GOOG"));

    let mut spec = goog_spec();
    spec["colour"] = json!("blue");
    problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;

    // A field of another precision is refused by name.
    let mut spec = goog_spec();
    spec["precision"] = json!("hybrid");
    spec["execution"] = json!({"latency_ms": 5});
    let body = problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "execution.latency_ms");

    let sweep = json!({"data": {"dataset": "GOOG"}, "strategy": {"template": "sma_cross"},
                       "grid": {"fastt": [1, 2]}, "objective": "sharp"});
    let body = problem(
        app.post_sweep("ann", &sweep).await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.iter().any(|f| f.contains("grid")), "{body}");
    assert!(fields.contains(&"objective"), "{body}");

    let response = app
        .post("/v1/backtests", "ann")
        .header("content-type", "application/json")
        .body("{\"data\": ")
        .send()
        .await
        .unwrap();
    let body = problem(response, 400, "invalid_json").await;
    assert!(
        body["detail"].as_str().unwrap().contains("line 1"),
        "{body}"
    );

    let listed: Value = app.get_json("/v1/jobs", "ann").await;
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
    app.stop().await;
}

/// What the data cannot give is known from its description (first and last time, spacing)
/// when the job is submitted: a 422 in the words the run would fail with, never a job that
/// fails 10 ms after its 202 (and fires its webhook, and spends quota).
#[tokio::test]
async fn a_job_the_data_cannot_serve_is_a_422_before_it_is_queued() {
    let app = spawn_app().await;
    let refused = |dataset: &str, data: Value| {
        let mut spec = goog_spec();
        spec["data"] = data;
        spec["data"]["dataset"] = json!(dataset);
        spec
    };
    let cases = [
        (
            refused("GOOG", json!({"start": "2015-01-01"})),
            "data",
            "no bars from 2015-01-01",
        ),
        (
            refused("GOOG", json!({"end": "2001-12-31"})),
            "data",
            "the data covers 2004-08-19",
        ),
        (
            refused("GOOG", json!({"timeframe": "1h"})),
            "data.timeframe",
            "timeframe 1h is finer than the data's spacing of 1d",
        ),
        (
            refused("EURUSD", json!({"timeframe": "90m"})),
            "data.timeframe",
            "timeframe 90m is not a whole multiple of the data's spacing of 1h",
        ),
    ];
    for (spec, field, words) in cases {
        let body = problem(
            app.post_backtest("ann", &spec).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
        assert!(
            message.starts_with(spec["data"]["dataset"].as_str().unwrap()),
            "{message}"
        );
    }
    // What the data can give is accepted: a range inside it, a timeframe its bars make.
    let fits = refused("EURUSD", json!({"timeframe": "4h"}));
    assert_eq!(app.post_backtest("ann", &fits).await.status(), 202);
    let listed: Value = app.get_json("/v1/jobs", "ann").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{listed}");
    app.stop().await;
}

/// PostgreSQL refuses NUL in text and in jsonb: such a body is a 422 naming the field, never a
/// 500 from the database after every other check passed.
#[tokio::test]
async fn a_nul_character_anywhere_in_a_body_is_a_422_naming_the_field() {
    let app = spawn_app_with(|config| {
        // AI jobs are accepted (and stay queued: no worker, no model is called).
        config.ai.provider = Some(strata_core::config::AiProvider::OpenAi);
        config.ai.base_url = Some("http://127.0.0.1:9".into());
        config.ai.model = Some("test-model".into());
    })
    .await;
    let named = |body: &Value| -> Vec<String> {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    };

    // A data set's name reaches a query; a NUL in it was a database error.
    let mut spec = goog_spec();
    spec["data"]["dataset"] = json!("GO\u{0}OG");
    let body = problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(named(&body), ["data.dataset"], "{body}");
    assert!(body["detail"].as_str().unwrap().contains("NUL"), "{body}");

    let mut spec = goog_spec();
    spec["strategy"] = json!({"entry": "close > open\u{0}", "exit": "close < open"});
    let body = problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(named(&body), ["strategy.entry"], "{body}");

    let mut sweep = goog_spec();
    sweep["strategy"]["params"] = json!({});
    sweep["grid"] = json!({"fast": [5, 10], "slow": [20, "3\u{0}0"]});
    let body = problem(
        app.post_sweep("ann", &sweep).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(named(&body), ["grid.slow[1]"], "{body}");

    // The webhook URL is taken out of the body before the spec is parsed; still checked.
    let mut spec = goog_spec();
    spec["webhook_url"] = json!("https://hooks.example.com/\u{0}");
    let body = problem(
        app.post_backtest("ann", &spec).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(named(&body), ["webhook_url"], "{body}");

    // A NUL in a key, sent as the JSON escape a client would write.
    let response = app
        .post("/v1/backtests", "ann")
        .header("content-type", "application/json")
        .body(r#"{"data": {"dataset": "GOOG"}, "strategy": {"template": "sma_cross"}, "x\u0000y": 1}"#)
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(named(&body), ["x\\u0000y"], "{body}");

    // An AI prompt is stored as it is sent.
    let response = app
        .post("/v1/ai/strategies", "ann")
        .json(&json!({
            "prompt": "buy the dip\u{0}",
            "data": {"dataset": "GOOG"},
        }))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(named(&body), ["prompt"], "{body}");

    // The default webhook URL of PUT /v1/webhooks.
    let response = app
        .client
        .put(app.url("/v1/webhooks"))
        .bearer_auth(app.token("ann", strata_core::Tier::Pro))
        .json(&json!({"url": "https://hooks.example.com/\u{0}"}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(named(&body), ["url"], "{body}");

    // The same bodies without the NUL are fine, and nothing was stored meanwhile.
    let listed: Value = app.get_json("/v1/jobs", "ann").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 0, "{listed}");
    let response = app
        .post("/v1/ai/strategies", "ann")
        .json(&json!({"prompt": "buy the dip", "data": {"dataset": "GOOG"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn jobs_are_listed_newest_first_with_filters_and_cursors() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for fast in 5..12 {
        let mut spec = goog_spec();
        spec["strategy"]["params"]["fast"] = json!(fast);
        let job: Value = app.post_backtest("ann", &spec).await.json().await.unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=3&cursor={c}"),
            None => "/v1/jobs?limit=3".to_owned(),
        };
        let page: Value = app.get_json(&path, "ann").await;
        seen.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let queued: Value = app
        .get_json("/v1/jobs?status=queued&kind=backtest", "ann")
        .await;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 7);
    let sweeps: Value = app.get_json("/v1/jobs?kind=sweep", "ann").await;
    assert_eq!(sweeps["jobs"].as_array().unwrap().len(), 0);
    let response = app.get("/v1/jobs?status=done", "ann").send().await.unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "status");
    let response = app.get("/v1/jobs?limit=1000", "ann").send().await.unwrap();
    problem(response, 422, "validation_failed").await;
    app.stop().await;
}

#[tokio::test]
async fn a_queued_job_cancels_at_once_and_has_no_result() {
    let app = spawn_app().await;
    let job: Value = app
        .post_backtest("ann", &goog_spec())
        .await
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap();
    let response = app
        .get(&format!("/v1/jobs/{id}/result"), "ann")
        .send()
        .await
        .unwrap();
    problem(response, 409, "job_not_succeeded").await;

    let response = app
        .post(&format!("/v1/jobs/{id}/cancel"), "ann")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job = app.job("ann", id).await;
    assert_eq!(job["status"], "cancelled");
    assert!(job["finished_at"].is_string());
    let response = app
        .post(&format!("/v1/jobs/{id}/cancel"), "ann")
        .send()
        .await
        .unwrap();
    problem(response, 409, "job_finished").await;
    app.stop().await;
}

#[tokio::test]
async fn a_running_sweep_stops_when_cancelled() {
    let app = spawn_app_with_worker().await;
    // Big enough to run for many seconds on two threads.
    let spec = json!({
        "data": {"dataset": "EURUSD"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": "2:200:1", "slow": "10:400:2"},
        "constraint": "fast < slow"
    });
    let job: Value = app.post_sweep("ann", &spec).await.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.job("ann", id).await["status"] != "running" {
        assert!(tokio::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let asked = tokio::time::Instant::now();
    let response = app
        .post(&format!("/v1/jobs/{id}/cancel"), "ann")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let done = app.wait_finished("ann", id, 10).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_job() {
    let app = spawn_app().await;
    let send = |spec: Value| {
        app.post("/v1/backtests", "ann")
            .header("idempotency-key", "run-42")
            .json(&spec)
            .send()
    };
    let first: Value = send(goog_spec()).await.unwrap().json().await.unwrap();
    let again = send(goog_spec()).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);

    let mut other = goog_spec();
    other["strategy"]["params"]["fast"] = json!(5);
    problem(send(other).await.unwrap(), 409, "idempotency_key_reused").await;

    // Another user's identical key is theirs alone.
    let bob: Value = app
        .post("/v1/backtests", "bob")
        .header("idempotency-key", "run-42")
        .json(&goog_spec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(bob["id"], first["id"]);
    let listed: Value = app.get_json("/v1/jobs", "ann").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_walk_forward_runs_its_windows_and_its_lengths_are_checked_first() {
    let app = spawn_app_with_worker().await;
    let spec = json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": [5, 10], "slow": [20, 50]},
        "objective": "sharpe",
        "walk_forward": {"in_sample": "500", "out_of_sample": "250"}
    });
    let post = |spec: Value| app.post("/v1/walk-forwards", "ann").json(&spec).send();
    let response = post(spec.clone()).await.unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["kind"], "walk_forward");
    let id = job["id"].as_str().unwrap().to_owned();
    let job = app.wait_finished("ann", &id, 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result: Value = app.get_json(&format!("/v1/jobs/{id}/result"), "ann").await;
    // 2,148 GOOG bars: six windows of 500 in-sample and 250 out-of-sample bars.
    assert_eq!(result["windows"].as_array().unwrap().len(), 6, "{result}");
    assert!(result["out_of_sample"]["metrics"]["sharpe"].is_number());

    // A length that does not read is a 422 naming it, before anything is queued.
    let mut bad = spec.clone();
    bad["walk_forward"]["in_sample"] = json!("1y");
    let body = problem(post(bad).await.unwrap(), 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "walk_forward.in_sample");
    // Windows longer than the data: refused before it is queued, in the words of the run.
    let mut long = spec;
    long["walk_forward"]["in_sample"] = json!("5000");
    let body = problem(post(long).await.unwrap(), 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "walk_forward", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("in_sample '5000' and out_of_sample '250' leave no complete window"),
        "{body}"
    );
    app.stop().await;
}
