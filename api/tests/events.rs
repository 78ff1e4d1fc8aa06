//! Server-sent events across api replicas: a stream on one replica follows jobs submitted
//! through another, and a client that reconnects with Last-Event-ID misses nothing.

mod common;

use std::time::Duration;

use common::{goog_spec, problem, spawn_app_with_worker, TestApp};
use futures::StreamExt;
use serde_json::Value;
use strata_core::Tier;

/// One server-sent event.
#[derive(Debug, Clone)]
struct Sent {
    id: i64,
    event: String,
    data: Value,
}

/// Reads events from `response` until `enough` says so, the stream ends, or 30 s pass.
async fn read_events(response: reqwest::Response, enough: impl Fn(&[Sent]) -> bool) -> Vec<Sent> {
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !enough(&events) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events within 30 s");
        let Some(chunk) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            // A keep-alive comment has no data.
            if let Some(data) = field("data:") {
                events.push(Sent {
                    id: field("id:").unwrap().parse().unwrap(),
                    event: field("event:").unwrap(),
                    data: serde_json::from_str(&data).unwrap(),
                });
            }
        }
    }
    events
}

fn of_job<'a>(events: &'a [Sent], id: &str) -> Vec<&'a Sent> {
    events.iter().filter(|e| e.data["job_id"] == id).collect()
}

async fn submit(app: &TestApp, base: &str) -> String {
    let response = app
        .client
        .post(format!("{base}/v1/backtests"))
        .bearer_auth(app.token("ann", Tier::Pro))
        .json(&goog_spec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_stream_on_one_replica_follows_a_job_submitted_through_another() {
    let app = spawn_app_with_worker().await;
    let (other, _stop_other) = common::serve_api(app.config.clone()).await;
    let stream = app.get("/v1/events", "ann").send().await.unwrap();
    let id = submit(&app, &other).await;
    let finished = |events: &[Sent]| {
        events
            .iter()
            .any(|e| e.data["job_id"] == id.as_str() && e.data["status"] == "succeeded")
    };
    let events = read_events(stream, finished).await;
    let mine = of_job(&events, &id);
    let statuses: Vec<&str> = mine
        .iter()
        .filter(|e| e.event == "status")
        .map(|e| e.data["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "running", "succeeded"], "{mine:?}");
    assert_eq!(mine.last().unwrap().data["progress"], 1.0);
    assert_eq!(mine[0].data["kind"], "backtest");
    assert!(mine.windows(2).all(|w| w[0].id < w[1].id));

    // A finished job's own stream, on the other replica: where it stands, then the end.
    let response = app
        .client
        .get(format!("{other}/v1/jobs/{id}/events"))
        .bearer_auth(app.token("ann", Tier::Pro))
        .send()
        .await
        .unwrap();
    let events = read_events(response, |_| false).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].data["status"], "succeeded");

    // Another user's job is not found; a Last-Event-ID that is no id is a 400.
    let response = app
        .get(&format!("/v1/jobs/{id}/events"), "bob")
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    let response = app
        .get("/v1/events", "ann")
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    problem(response, 400, "invalid_last_event_id").await;
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_misses_nothing() {
    let app = spawn_app_with_worker().await;
    let stream = app.get("/v1/events", "ann").send().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit(&app, &app.address).await);
    }
    // The client goes away after two events, while the jobs run on.
    let before = read_events(stream, |events| events.len() >= 2).await;
    for id in &ids {
        app.wait_finished("ann", id, 30).await;
    }
    let response = app
        .get("/v1/events", "ann")
        .header("last-event-id", before[1].id.to_string())
        .send()
        .await
        .unwrap();
    let all_done = |events: &[Sent]| {
        events
            .iter()
            .filter(|e| e.data["status"] == "succeeded" && e.event == "status")
            .count()
            >= ids.len()
    };
    let after = read_events(response, all_done).await;
    let seen: Vec<i64> = before[..2].iter().chain(&after).map(|e| e.id).collect();
    let store = &app.env.as_ref().unwrap().store;
    let stored: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM job_events WHERE owner = 'ann' ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(seen, stored);
    app.stop().await;
}

/// One user opening 500 streams at once: the tier's `event_streams` open, every other one is a
/// quick 429 naming the limit and the tier that allows more; a closed stream frees its place,
/// and other users are not affected.
#[tokio::test]
async fn a_user_holds_at_most_the_tiers_event_streams_open() {
    const LIMIT: u64 = 20;
    let app = common::spawn_app_with(|config| {
        config.tiers.basic.event_streams = Some(LIMIT);
        config.tiers.pro.event_streams = Some(50);
    })
    .await;
    let token = &app.token("ann", Tier::Basic);
    let client = &app.client;
    let url = &app.url("/v1/events");
    let open = move || async move {
        let started = tokio::time::Instant::now();
        let response = client.get(url).bearer_auth(token).send().await.unwrap();
        (response, started.elapsed())
    };

    let answers = futures::future::join_all((0..500).map(|_| open())).await;
    let mut streams = Vec::new();
    let mut slowest_refusal = Duration::ZERO;
    let mut refusal = None;
    for (response, took) in answers {
        match response.status().as_u16() {
            200 => streams.push(response),
            429 => {
                slowest_refusal = slowest_refusal.max(took);
                refusal = Some(response);
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!(streams.len() as u64, LIMIT);
    assert!(
        slowest_refusal < Duration::from_secs(2),
        "the slowest 429 took {slowest_refusal:?}"
    );
    let refusal = refusal.expect("refusals");
    assert!(refusal.headers().get("retry-after").is_some());
    let body = problem(refusal, 429, "too_many_event_streams").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("event_streams: at most 20") && detail.contains("basic tier"),
        "{detail}"
    );
    assert!(detail.contains("pro allows 50"), "{detail}");

    // A job's own stream counts against the same limit (refused before the job is looked up).
    let response = app
        .client
        .get(app.url(&format!("/v1/jobs/{}/events", uuid::Uuid::new_v4())))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    problem(response, 429, "too_many_event_streams").await;

    // Another user is not held back by Ann's streams.
    let bob = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(app.token("bob", Tier::Basic))
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status(), 200);

    // Closing five streams frees five places (once the api sees the connections close), and
    // no more.
    streams.truncate(streams.len() - 5);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut reopened = 0;
    while reopened < 5 {
        let (response, _) = open().await;
        match response.status().as_u16() {
            200 => {
                streams.push(response);
                reopened += 1;
            }
            429 => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{reopened} of 5 places freed after 20 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("status {other}"),
        }
    }
    let (response, _) = open().await;
    problem(response, 429, "too_many_event_streams").await;
    drop((streams, bob));
    app.stop().await;
}
