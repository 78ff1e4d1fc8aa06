//! The admin view: queues, running jobs and workers across every user, and retrying a failed
//! or cancelled job. Only tokens with the admin claim get in.

mod common;

use std::time::Duration;

use common::{goog_spec, problem, spawn_app, TestApp};
use serde_json::{json, Value};
use strata_core::job::JobMessage;
use strata_core::Tier;
use uuid::Uuid;

fn pool(app: &TestApp) -> &sqlx::PgPool {
    &app.env.as_ref().unwrap().store.pool
}

async fn submit(app: &TestApp, user: &str, tier: Tier) -> String {
    let response = app
        .client
        .post(app.url("/v1/backtests"))
        .bearer_auth(app.token(user, tier))
        .json(&goog_spec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

async fn admin_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(app.admin_token("ops"))
        .send()
        .await
        .unwrap()
}

async fn retry(app: &TestApp, id: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/admin/jobs/{id}/retry")))
        .bearer_auth(app.admin_token("ops"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_routes_need_the_admin_claim() {
    let app = spawn_app().await;
    let id = submit(&app, "ann", Tier::Pro).await;
    let queues = app.url("/v1/admin/queues");
    let retry_url = app.url(&format!("/v1/admin/jobs/{id}/retry"));

    let response = app.client.get(&queues).send().await.unwrap();
    problem(response, 401, "unauthorized").await;
    // An elite token without the claim is still no operator's.
    let response = app
        .client
        .get(&queues)
        .bearer_auth(app.token("ann", Tier::Elite))
        .send()
        .await
        .unwrap();
    let body = problem(response, 403, "admin_only").await;
    assert!(body["detail"].as_str().unwrap().contains("admin"));
    let response = app
        .client
        .post(&retry_url)
        .bearer_auth(app.token("ann", Tier::Pro))
        .send()
        .await
        .unwrap();
    problem(response, 403, "admin_only").await;

    assert_eq!(admin_get(&app, "/v1/admin/queues").await.status(), 200);
    let doc: Value = app.get_json("/openapi.json", "ann").await;
    for path in [
        "/v1/admin/queues",
        "/v1/admin/poisoned",
        "/v1/admin/jobs/{id}/retry",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_queues_view_shows_each_tier_the_running_jobs_and_the_workers() {
    let app = spawn_app().await;
    let elite_sent = submit(&app, "eve", Tier::Elite).await;
    let _elite_waiting = submit(&app, "eve", Tier::Elite).await;
    let _basic = submit(&app, "bob", Tier::Basic).await;
    let pro_running = submit(&app, "ann", Tier::Pro).await;
    let db = pool(&app);

    // One elite job handed to Redis, one pro job running on a worker (no worker runs here: the
    // rows are set as a dispatcher and a worker would set them).
    sqlx::query("UPDATE jobs SET dispatched_at = now() WHERE id = $1")
        .bind(Uuid::parse_str(&elite_sent).unwrap())
        .execute(db)
        .await
        .unwrap();
    let queues = strata_core::queue::Queues::connect(
        app.config.redis_url.expose(),
        &app.config.queue_prefix,
    )
    .await
    .unwrap();
    queues
        .push(
            strata_core::queue::Queue::Elite,
            &[JobMessage {
                id: Uuid::parse_str(&elite_sent).unwrap(),
                request_id: None,
                alone: false,
            }],
        )
        .await
        .unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'running', worker_id = 'w-alive', attempts = 1,
                progress = 0.5, started_at = now(), heartbeat_at = now()
         WHERE id = $1",
    )
    .bind(Uuid::parse_str(&pro_running).unwrap())
    .execute(db)
    .await
    .unwrap();
    for (id, seen_secs_ago, stopped) in [
        ("w-stale", 600, false),
        ("w-alive", 0, false),
        ("w-stopped", 1, true),
        ("w-gone", 7200, true),
    ] {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, concurrency, threads, running, started_at,
                                  seen_at, stopped_at)
             VALUES ($1, 'box-1', 4242, 8, 2, 1, now() - interval '3 hours',
                     now() - make_interval(secs => $2),
                     CASE WHEN $3 THEN now() - make_interval(secs => $2) END)",
        )
        .bind(id)
        .bind(f64::from(seen_secs_ago))
        .bind(stopped)
        .execute(db)
        .await
        .unwrap();
    }

    let response = admin_get(&app, "/v1/admin/queues").await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    let queues: Vec<&str> = view["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["elite", "pro", "basic", "ai"]);
    let [elite, pro, basic] = [0usize, 1, 2].map(|i| &view["queues"][i]);
    assert_eq!(
        (
            &elite["backlog"],
            &elite["ready"],
            &elite["queued"],
            &elite["running"]
        ),
        (&json!(1), &json!(1), &json!(2), &json!(0)),
        "{view}"
    );
    assert!(elite["oldest_queued_at"].is_string(), "{view}");
    assert!(elite["oldest_wait_secs"].as_f64().unwrap() >= 0.0, "{view}");
    assert_eq!(
        (
            &pro["backlog"],
            &pro["ready"],
            &pro["queued"],
            &pro["running"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!(1)),
        "{view}"
    );
    assert!(pro["oldest_queued_at"].is_null(), "{view}");
    assert_eq!(
        (&basic["backlog"], &basic["queued"]),
        (&json!(1), &json!(1))
    );

    assert_eq!(view["running"]["total"], 1);
    let running = &view["running"]["jobs"][0];
    assert_eq!(running["id"], pro_running.as_str());
    assert_eq!(running["owner"], "ann");
    assert_eq!(running["tier"], "pro");
    assert_eq!(running["kind"], "backtest");
    assert_eq!(running["worker_id"], "w-alive");
    assert_eq!(running["attempts"], 1);
    assert_eq!(running["progress"], 0.5);
    assert!(running["started_at"].is_string() && running["heartbeat_at"].is_string());

    // Most recently seen first; alive means seen within the lease and not stopped; a worker
    // not seen for hours is left out.
    let workers: Vec<(&str, bool)> = view["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_str().unwrap(), w["alive"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        workers,
        [("w-alive", true), ("w-stopped", false), ("w-stale", false)]
    );
    let alive = &view["workers"][0];
    assert_eq!(
        (
            &alive["host"],
            &alive["pid"],
            &alive["concurrency"],
            &alive["threads"]
        ),
        (&json!("box-1"), &json!(4242), &json!(8), &json!(2))
    );
    assert!(alive["stopped_at"].is_null() && view["workers"][1]["stopped_at"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn only_failed_and_cancelled_jobs_can_be_retried() {
    let app = spawn_app().await;
    let id = submit(&app, "ann", Tier::Pro).await;

    let body = problem(retry(&app, &id).await, 409, "not_retryable").await;
    assert!(
        body["detail"].as_str().unwrap().contains("queued"),
        "{body}"
    );
    problem(
        retry(&app, &Uuid::new_v4().to_string()).await,
        404,
        "not_found",
    )
    .await;
    problem(retry(&app, "not-a-job").await, 404, "not_found").await;

    // Cancelled by its owner, then sent back by an operator: the dispatcher is woken.
    let cancelled = app
        .post(&format!("/v1/jobs/{id}/cancel"), "ann")
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 202);
    let mut listener = sqlx::postgres::PgListener::connect_with(pool(&app))
        .await
        .unwrap();
    listener.listen("strata_jobs_queued").await.unwrap();
    let response = retry(&app, &id).await;
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"], 0);
    assert!(
        job["finished_at"].is_null() && job["error"].is_null(),
        "{job}"
    );
    assert_eq!(job["links"]["self"], format!("/v1/jobs/{id}"));
    let woken = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("the dispatcher is notified")
        .unwrap();
    assert_eq!(woken.payload(), "pro");
    assert_eq!(app.job("ann", &id).await["status"], "queued");

    // Succeeded and running jobs stay as they are.
    for status in ["succeeded", "running"] {
        sqlx::query("UPDATE jobs SET status = $2 WHERE id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .bind(status)
            .execute(pool(&app))
            .await
            .unwrap();
        let body = problem(retry(&app, &id).await, 409, "not_retryable").await;
        assert!(body["detail"].as_str().unwrap().contains(status), "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_failed_job_retried_by_an_admin_runs_again_from_attempt_one() {
    let mut app = spawn_app().await;
    // An upload, a job on it, and the file gone before a worker gets to it.
    let csv = std::fs::read_to_string(app.config.bundled_dir.join("GOOG.csv")).unwrap();
    let uploaded = app
        .post("/v1/datasets?name=mine", "ann")
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let dataset: Value = uploaded.json().await.unwrap();
    let file = app.config.data_dir.join(strata_core::datasets::upload_path(
        "ann",
        Uuid::parse_str(dataset["id"].as_str().unwrap()).unwrap(),
    ));
    let aside = file.with_extension("aside");
    let mut spec = goog_spec();
    spec["data"] = json!({"dataset": "mine"});
    let response = app.post_backtest("ann", &spec).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::rename(&file, &aside).unwrap();

    app.start_worker();
    let failed = app.wait_finished("ann", &id, 30).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 1);
    assert!(
        failed["error"].as_str().unwrap().contains("gone"),
        "{failed}"
    );

    // The file is back: an operator retries the job and it runs to a result.
    std::fs::rename(&aside, &file).unwrap();
    let response = retry(&app, &id).await;
    assert_eq!(response.status(), 202);
    let done = app.wait_finished("ann", &id, 30).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1, "attempts start again from zero");
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["progress"], 1.0);
    let result = app
        .get(&format!("/v1/jobs/{id}/result"), "ann")
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    let result: Value = result.json().await.unwrap();
    assert!(result["metrics"]["bars"].as_i64().unwrap() > 1_900);
    app.stop().await;
}

#[tokio::test]
async fn jobs_that_stopped_their_workers_twice_are_listed_for_operators() {
    let app = spawn_app().await;
    let poisoned = submit(&app, "ann", Tier::Basic).await;
    let once = submit(&app, "bob", Tier::Pro).await;
    let db = pool(&app);
    // As the reconciler leaves them: one job failed after its second worker died, another
    // queued to run alone after its first.
    sqlx::query(
        "UPDATE jobs SET status = 'failed', attempts = 2, worker_deaths = 2,
                last_worker_death_at = now(), finished_at = now(), error = $2
         WHERE id = $1",
    )
    .bind(Uuid::parse_str(&poisoned).unwrap())
    .bind(strata_core::store::poison_error(2))
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET attempts = 1, worker_deaths = 1, last_worker_death_at = now()
         WHERE id = $1",
    )
    .bind(Uuid::parse_str(&once).unwrap())
    .execute(db)
    .await
    .unwrap();

    let response = app
        .client
        .get(app.url("/v1/admin/poisoned"))
        .bearer_auth(app.token("ann", Tier::Elite))
        .send()
        .await
        .unwrap();
    problem(response, 403, "admin_only").await;
    let response = admin_get(&app, "/v1/admin/poisoned").await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["max_worker_deaths"], 2);
    let jobs = view["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{view}");
    assert_eq!(jobs[0]["id"], poisoned.as_str());
    assert_eq!(jobs[0]["owner"], "ann");
    assert_eq!(jobs[0]["kind"], "backtest");
    assert_eq!(jobs[0]["worker_deaths"], 2);
    assert!(jobs[0]["last_worker_death_at"].is_string(), "{view}");
    assert!(
        jobs[0]["error"]
            .as_str()
            .unwrap()
            .contains("the job stopped its worker twice"),
        "{view}"
    );

    // Retried by an operator, it keeps one death: it runs alone, and a second death fails it.
    assert_eq!(retry(&app, &poisoned).await.status(), 202);
    let (deaths,): (i32,) = sqlx::query_as("SELECT worker_deaths FROM jobs WHERE id = $1")
        .bind(Uuid::parse_str(&poisoned).unwrap())
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(deaths, 1);
    let view: Value = admin_get(&app, "/v1/admin/poisoned")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["jobs"].as_array().unwrap().len(), 0, "{view}");
    app.stop().await;
}
