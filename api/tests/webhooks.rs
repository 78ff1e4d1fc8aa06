//! Webhooks: signed events when jobs end, retried across a worker restart, the default URL and
//! secret rotation, the delivery log, and the guard against internal addresses.

mod common;

use std::time::Duration;

use common::receiver::{Receiver, Reply};
use common::{goog_spec, problem, spawn_app, spawn_app_and_worker_with, spawn_app_with, TestApp};
use serde_json::{json, Value};

/// Lets webhooks reach the test receiver on 127.0.0.1 (internal addresses are refused
/// otherwise) and retries quickly.
fn local_webhooks(config: &mut strata_core::Config) {
    config.webhooks.allow = strata_core::webhooks::guard::Allow::parse(["127.0.0.1/32"]).unwrap();
    config.webhooks.retry_backoff_ms = 1000;
}

async fn new_secret(app: &TestApp, user: &str) -> String {
    let response = app.post("/v1/webhooks/secret", user).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["secret"].as_str().unwrap().to_owned()
}

async fn submit(app: &TestApp, user: &str, spec: &Value) -> String {
    let response = app.post_backtest(user, spec).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let job: Value = response.json().await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

fn with_webhook(url: &str) -> Value {
    let mut spec = goog_spec();
    spec["webhook_url"] = json!(url);
    spec
}

async fn deliveries(app: &TestApp, user: &str, job: &str) -> Vec<Value> {
    let body: Value = app
        .get_json(&format!("/v1/jobs/{job}/deliveries"), user)
        .await;
    body["deliveries"].as_array().unwrap().clone()
}

/// Polls the job's deliveries until `done` holds, for at most `secs`.
async fn wait_deliveries(
    app: &TestApp,
    user: &str,
    job: &str,
    secs: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let deliveries = deliveries(app, user, job).await;
        if done(&deliveries) {
            return deliveries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries of {job} after {secs} s: {deliveries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_finished_job_is_announced_once_signed_with_its_metrics() {
    let app = spawn_app_and_worker_with(local_webhooks).await;
    let receiver = Receiver::start(vec![]).await;

    // Events are signed: no secret, no webhook.
    let response = app.post_backtest("ada", &with_webhook(&receiver.url)).await;
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "webhook_url");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/webhooks/secret"),
        "{body}"
    );

    let secret = new_secret(&app, "ada").await;
    let id = submit(&app, "ada", &with_webhook(&receiver.url)).await;
    let job = app.wait_finished("ada", &id, 60).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["webhook_url"], receiver.url);

    let received = receiver.wait_for(1, 20).await;
    let request = &received[0];
    assert!(request.signed_with(&secret), "{:?}", request.headers);
    assert!(!request.signed_with("whsec_someone_else"));
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("strata-delivery-attempt"), "1");
    let event = request.json();
    assert_eq!(event["id"], request.header("strata-event-id"));
    assert_eq!(event["type"], "job.succeeded");
    assert_eq!(event["data"]["job_id"], id);
    assert_eq!(event["data"]["kind"], "backtest");
    assert_eq!(event["data"]["status"], "succeeded");
    let result: Value = app.get_json(&format!("/v1/jobs/{id}/result"), "ada").await;
    assert_eq!(event["data"]["summary"]["metrics"], result["metrics"]);
    assert!(event["data"]["summary"]["metrics"]["sharpe"].is_number());
    assert_eq!(event["links"]["result"], format!("/v1/jobs/{id}/result"));

    let log = wait_deliveries(&app, "ada", &id, 10, |d| d[0]["status"] == "delivered").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["id"], event["id"]);
    assert_eq!(log[0]["attempts"], 1);
    assert_eq!(log[0]["log"][0]["response_status"], 200);
    assert_eq!(log[0]["log"][0]["response_body"], "thanks");
    // Delivered once: nothing more comes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 1);

    // Someone else's job's deliveries are not found.
    let response = app
        .get(&format!("/v1/jobs/{id}/deliveries"), "bob")
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_three_attempts_across_a_worker_restart() {
    let mut app = spawn_app_and_worker_with(|config| {
        local_webhooks(config);
        config.webhooks.timeout_secs = 1;
    })
    .await;
    // A timeout, a 500, then a 200 with an answer far beyond what is kept.
    let receiver = Receiver::start(vec![
        Reply::Hang,
        Reply::Status(500),
        Reply::Big(200, 5 << 20),
    ])
    .await;
    let secret = new_secret(&app, "ada").await;
    let id = submit(&app, "ada", &with_webhook(&receiver.url)).await;
    app.wait_finished("ada", &id, 60).await;

    receiver.wait_for(1, 20).await;
    // The worker that made the first attempt stops (as on SIGTERM); another starts.
    app.stop_worker().await;
    let pending = deliveries(&app, "ada", &id).await;
    assert_eq!(pending[0]["status"], "pending", "{pending:#?}");
    app.start_worker();

    let received = receiver.wait_for(3, 30).await;
    let log = wait_deliveries(&app, "ada", &id, 10, |d| d[0]["status"] == "delivered").await;
    assert_eq!(received.len(), 3);
    let first = &received[0];
    for (n, request) in received.iter().enumerate() {
        assert_eq!(
            request.header("strata-event-id"),
            first.header("strata-event-id")
        );
        assert_eq!(
            request.body, first.body,
            "every attempt sends the same bytes"
        );
        assert_eq!(
            request.header("strata-delivery-attempt"),
            (n + 1).to_string()
        );
        assert!(request.signed_with(&secret));
    }
    let delivery = &log[0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_error"], Value::Null);
    let attempts = delivery["log"].as_array().unwrap();
    let statuses: Vec<&Value> = attempts.iter().map(|a| &a["response_status"]).collect();
    assert_eq!(statuses, [&Value::Null, &json!(500), &json!(200)]);
    assert_eq!(attempts[0]["error"], "no answer within 1 s");
    assert!(attempts[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("HTTP 500"));
    assert_eq!(attempts[2]["response_body"].as_str().unwrap().len(), 1024);
    // Backoff: the second attempt came at least half the first wait (1 s) after the first.
    let at = |n: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[n]["started_at"].as_str().unwrap()).unwrap()
    };
    assert!(
        at(1) - at(0) >= chrono::Duration::milliseconds(1500),
        "{attempts:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_default_url_applies_rotation_signs_with_both_and_a_cancel_is_announced() {
    let mut app = spawn_app_with(local_webhooks).await;
    let receiver = Receiver::start(vec![]).await;

    let response = app
        .client
        .put(app.url("/v1/webhooks"))
        .bearer_auth(app.token("ada", strata_core::Tier::Pro))
        .json(&json!({"url": receiver.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let settings: Value = response.json().await.unwrap();
    assert_eq!(settings["url"], receiver.url);
    let old = settings["secret"].as_str().unwrap().to_owned();
    assert!(old.starts_with("whsec_"));
    // Shown once: reading the settings never shows it.
    let settings: Value = app.get_json("/v1/webhooks", "ada").await;
    assert_eq!(settings["url"], receiver.url);
    assert!(settings.get("secret").is_none(), "{settings}");

    // Jobs without webhook_url take the default; `null` opts out.
    let announced = submit(&app, "ada", &goog_spec()).await;
    let mut quiet_spec = goog_spec();
    quiet_spec["webhook_url"] = Value::Null;
    let quiet = submit(&app, "ada", &quiet_spec).await;
    assert_eq!(
        app.job("ada", &announced).await["webhook_url"],
        receiver.url
    );
    assert_eq!(app.job("ada", &quiet).await["webhook_url"], Value::Null);

    let new = new_secret(&app, "ada").await;
    assert_ne!(new, old);
    for job in [&announced, &quiet] {
        let response = app
            .post(&format!("/v1/jobs/{job}/cancel"), "ada")
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    // Workers send webhooks; none ran until now.
    app.start_worker();
    let received = receiver.wait_for(1, 20).await;
    let event = received[0].json();
    assert_eq!(event["type"], "job.cancelled");
    assert_eq!(event["data"]["job_id"], announced);
    assert_eq!(event["data"]["summary"], Value::Null);
    // For a day after the rotation both secrets sign.
    assert!(received[0].signed_with(&new) && received[0].signed_with(&old));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "the opted-out job is not announced"
    );
    assert!(deliveries(&app, "ada", &quiet).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_event_not_delivered_in_time_is_given_up_and_redirects_are_not_followed() {
    let app = spawn_app_and_worker_with(|config| {
        local_webhooks(config);
        config.webhooks.retry_backoff_ms = 300;
        config.webhooks.retry_for_secs = 2;
    })
    .await;
    let mut script = vec![Reply::Redirect];
    script.extend(vec![Reply::Status(503); 100]);
    let receiver = Receiver::start(script).await;
    new_secret(&app, "ada").await;
    let id = submit(&app, "ada", &with_webhook(&receiver.url)).await;
    let log = wait_deliveries(&app, "ada", &id, 60, |d| {
        d.first().is_some_and(|d| d["status"] == "failed")
    })
    .await;
    let delivery = &log[0];
    assert!(delivery["attempts"].as_i64().unwrap() >= 2, "{delivery:#?}");
    assert!(delivery["last_error"]
        .as_str()
        .unwrap()
        .starts_with("HTTP 503"));
    let first = &delivery["log"][0];
    assert_eq!(first["response_status"], 307);
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed (to /hook)"),
        "{first}"
    );
    assert!(delivery["finished_at"].is_string());
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    // Each attempt reached the receiver once: the redirect was not followed.
    let attempts = delivery["attempts"].as_u64().unwrap() as usize;
    assert_eq!(receiver.received().len(), attempts);
    app.stop().await;
}

#[tokio::test]
async fn internal_addresses_are_refused_at_submission() {
    let app = spawn_app().await;
    new_secret(&app, "ada").await;
    for (url, why) in [
        ("http://127.0.0.1:9000/hook", "loopback"),
        ("http://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("ftp://example.com/hook", "http"),
        ("not a url", "URL"),
        ("https://user:password@example.com/hook", "password"),
    ] {
        let response = app.post_backtest("ada", &with_webhook(url)).await;
        let body = problem(response, 422, "validation_failed").await;
        let error = &body["errors"][0];
        assert_eq!(error["field"], "webhook_url", "{url}: {body}");
        assert!(
            error["message"].as_str().unwrap().contains(why),
            "{url}: expected '{why}' in {body}"
        );
    }
    let response = app
        .post_backtest("ada", &{
            let mut spec = goog_spec();
            spec["webhook_url"] = json!(42);
            spec
        })
        .await;
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "webhook_url");

    // The default URL is checked the same way.
    let response = app
        .client
        .put(app.url("/v1/webhooks"))
        .bearer_auth(app.token("ada", strata_core::Tier::Pro))
        .json(&json!({"url": "http://10.1.2.3/hook"}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "url");
    // Nothing was queued.
    let jobs: Value = app.get_json("/v1/jobs", "ada").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "{jobs}");
    app.stop().await;
}
