//! The service end to end, from the built binary: `strata api` and two `strata worker`
//! processes against the machine's PostgreSQL and Redis (a fresh database and key prefix).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strata_core::testing::{ServiceProcess, TestEnv, TEST_SECRET};
use strata_core::Tier;

/// The built binary under test.
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_strata"))
}

/// What these tests add to the test environment of every process.
const EXTRA_ENV: &[(&str, &str)] = &[
    ("STRATA_WORKER__METRICS_BIND", "127.0.0.1:0"),
    ("STRATA_WORKER__HEARTBEAT_SECS", "1"),
    // The burst submits 20,000 jobs as one elite user in seconds.
    ("STRATA_TIERS__ELITE__ACTIVE_JOBS", "1000000"),
    ("STRATA_TIERS__ELITE__REQUESTS_PER_MINUTE", "1000000"),
    ("STRATA_TIERS__ELITE__SUBMISSIONS_PER_MINUTE", "1000000"),
];

fn start_api(env: &TestEnv) -> (ServiceProcess, String) {
    env.start_api(binary(), EXTRA_ENV)
}

fn start_worker(env: &TestEnv) -> ServiceProcess {
    ServiceProcess(
        env.command(
            binary(),
            &["worker", "--concurrency", "8", "--threads", "1"],
            EXTRA_ENV,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start strata worker"),
    )
}

fn token(user: &str) -> String {
    strata_core::auth::issue_token(TEST_SECRET, user, Tier::Elite, 3600, false).unwrap()
}

async fn submit(client: &reqwest::Client, base: &str, path: &str, spec: &Value) -> String {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(token("e2e"))
        .json(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let job: Value = response.json().await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

/// A finished job's result document.
async fn result(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let response = client
        .get(format!("{base}/v1/jobs/{id}/result"))
        .bearer_auth(token("e2e"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits until no job of `e2e` is queued or running.
async fn wait_all_finished(env: &TestEnv, total: i64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_one(&env.store.pool)
        .await
        .unwrap();
        if finished == total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{finished} of {total} jobs finished after {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cli_json(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_two_workers_run_50_backtests_and_5_sweeps_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let env = TestEnv::new(data.path()).await;
    let (api, base) = start_api(&env);
    let workers = [start_worker(&env), start_worker(&env)];
    let client = reqwest::Client::new();
    let goog = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/GOOG.csv");

    let mut backtests = Vec::new();
    for i in 0..50 {
        let (fast, slow) = (3 + i % 10, 20 + 5 * (i / 10));
        let spec = json!({
            "data": {"dataset": "GOOG", "start": "2005-01-01"},
            "strategy": {"template": "sma_cross", "params": {"fast": fast, "slow": slow}},
            "execution": {"fees": 0.001},
        });
        let id = submit(&client, &base, "/v1/backtests", &spec).await;
        backtests.push((id, fast, slow));
    }
    let mut sweeps = Vec::new();
    for i in 0..5 {
        let top = 20 + 10 * i;
        let spec = json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"template": "sma_cross"},
            "grid": {"fast": "5:15:5", "slow": format!("20:{top}:10")},
            "constraint": "fast < slow",
            "objective": "sharpe",
        });
        let id = submit(&client, &base, "/v1/sweeps", &spec).await;
        sweeps.push((id, top));
    }
    wait_all_finished(&env, 55, 300).await;

    let rows: Vec<(String, i32)> = sqlx::query_as("SELECT status, attempts FROM jobs")
        .fetch_all(&env.store.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 55);
    for (status, attempts) in &rows {
        assert_eq!(status, "succeeded");
        assert_eq!(*attempts, 1, "every job ran exactly once");
    }
    let worker_ids: i64 = sqlx::query_scalar("SELECT count(DISTINCT worker_id) FROM jobs")
        .fetch_one(&env.store.pool)
        .await
        .unwrap();
    assert_eq!(worker_ids, 2, "both workers took jobs");

    for (id, fast, slow) in backtests.iter().step_by(7) {
        let served = result(&client, &base, id).await;
        let local = cli_json(&[
            "backtest",
            "--data",
            goog.to_str().unwrap(),
            "--start",
            "2005-01-01",
            "--param",
            &format!("fast={fast}"),
            "--param",
            &format!("slow={slow}"),
            "--fees",
            "0.001",
        ]);
        assert_eq!(
            served, local,
            "backtest fast={fast} slow={slow} differs from the CLI"
        );
    }
    for (id, top) in &sweeps {
        let served = result(&client, &base, id).await;
        let local = cli_json(&[
            "sweep",
            "--data",
            goog.to_str().unwrap(),
            "--grid",
            "fast=5:15:5",
            "--grid",
            &format!("slow=20:{top}:10"),
            "--constraint",
            "fast < slow",
        ]);
        assert_eq!(served, local, "sweep up to slow={top} differs from the CLI");
    }
    // Stop the processes first, so none writes to Redis after the cleanup.
    drop(workers);
    drop(api);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_20000_jobs_waits_in_postgres_and_drains_through_two_workers() {
    let data = tempfile::tempdir().unwrap();
    let env = TestEnv::new(data.path()).await;
    let (api, base) = start_api(&env);
    let client = reqwest::Client::new();
    const JOBS: usize = 20_000;
    // Tiny backtests (a month of daily bars), submitted over HTTP by 8 concurrent clients.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_no in 0..8 {
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            for i in (client_no..JOBS).step_by(8) {
                let spec = json!({
                    "data": {"dataset": "GOOG", "start": "2012-01-01", "end": "2012-02-15"},
                    "strategy": {"template": "sma_cross", "params": {"fast": 2 + i % 5, "slow": 10}},
                });
                submit(&client, &base, "/v1/backtests", &spec).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!("submitted {JOBS} jobs in {:.1?}", started.elapsed());

    let mut workers = [start_worker(&env), start_worker(&env)];
    let drained = Instant::now();
    wait_all_finished(&env, JOBS as i64, 600).await;
    eprintln!("drained {JOBS} jobs in {:.1?}", drained.elapsed());
    for worker in &mut workers {
        assert!(
            worker.0.try_wait().unwrap().is_none(),
            "a worker process exited during the burst"
        );
    }
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
        .fetch_one(&env.store.pool)
        .await
        .unwrap();
    assert_eq!(failed, 0);
    let results: i64 = sqlx::query_scalar("SELECT count(*) FROM job_results")
        .fetch_one(&env.store.pool)
        .await
        .unwrap();
    assert_eq!(results, JOBS as i64);
    drop(workers);
    drop(api);
    env.cleanup().await;
}

/// The three precisions through the service: tick data uploaded with `kind=ticks`, a tick and a
/// hybrid backtest run by a worker, each result the same document as the CLI's; a spec whose
/// precision does not fit its data set is refused before anything is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_and_hybrid_backtests_run_through_the_service_as_on_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let env = TestEnv::new(data.path()).await;
    let (api, base) = start_api(&env);
    let worker = start_worker(&env);
    let client = reqwest::Client::new();
    let book = data.path().join("book.csv");
    let made = Command::new(binary())
        .args([
            "datagen", "--kind", "book", "--events", "30000", "--levels", "10",
        ])
        .args(["--seed", "5", "--out", book.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let uploaded = client
        .post(format!("{base}/v1/datasets?name=book&kind=ticks"))
        .bearer_auth(token("e2e"))
        .header("content-type", "text/csv")
        .body(std::fs::read(&book).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201, "{}", uploaded.text().await.unwrap());
    let dataset: Value = uploaded.json().await.unwrap();
    assert_eq!(dataset["kind"], "ticks");
    assert_eq!(
        dataset["bars"], 30_000,
        "events (the snapshot's clear is one)"
    );

    let tick = json!({
        "data": {"dataset": "book", "timeframe": "500ms"},
        "strategy": {"template": "sma_cross", "params": {"fast": 3, "slow": 8}},
        "direction": "long_short",
        "execution": {"latency_ms": 2, "fees": 0.0002},
        "precision": "tick",
    });
    let hybrid = json!({
        "data": {"dataset": "GOOG", "start": "2005-01-01"},
        "strategy": {"template": "sma_cross", "params": {"fast": 5, "slow": 20}},
        "execution": {"stop_loss": 0.02, "take_profit": 0.03, "seed": 7, "intrabar_threshold": 1.2},
        "precision": "hybrid",
    });
    let tick_id = submit(&client, &base, "/v1/backtests", &tick).await;
    let hybrid_id = submit(&client, &base, "/v1/backtests", &hybrid).await;

    // The wrong kind of data for the precision is a 422 on data.dataset.
    for (dataset, precision, says) in [
        (
            "GOOG",
            "tick",
            "'GOOG' holds bars; precision 'tick' runs on tick data",
        ),
        (
            "book",
            "bar",
            "'book' holds tick data, which runs at precision 'tick'",
        ),
    ] {
        let mut spec = json!({
            "data": {"dataset": dataset},
            "strategy": {"template": "sma_cross"},
            "precision": precision,
        });
        if precision == "tick" {
            spec["data"]["timeframe"] = json!("1s");
        }
        let response = client
            .post(format!("{base}/v1/backtests"))
            .bearer_auth(token("e2e"))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], "data.dataset");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }

    wait_all_finished(&env, 2, 120).await;
    let served = result(&client, &base, &tick_id).await;
    assert_eq!(served["precision"]["mode"], "tick");
    assert!(
        served["metrics"]["trades"].as_u64().unwrap() > 0,
        "{}",
        served["metrics"]
    );
    let local = cli_json(&[
        "backtest",
        "--data",
        book.to_str().unwrap(),
        "--timeframe",
        "500ms",
        "--param",
        "fast=3",
        "--param",
        "slow=8",
        "--direction",
        "long_short",
        "--fees",
        "0.0002",
        "--precision",
        "tick",
        "--latency-ms",
        "2",
    ]);
    assert_eq!(served, local, "the tick backtest differs from the CLI");

    let served = result(&client, &base, &hybrid_id).await;
    assert_eq!(served["precision"]["mode"], "hybrid");
    let goog = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/GOOG.csv");
    let local = cli_json(&[
        "backtest",
        "--data",
        goog.to_str().unwrap(),
        "--start",
        "2005-01-01",
        "--param",
        "fast=5",
        "--param",
        "slow=20",
        "--stop-loss",
        "0.02",
        "--take-profit",
        "0.03",
        "--precision",
        "hybrid",
        "--intrabar-seed",
        "7",
        "--intrabar-threshold",
        "1.2",
    ]);
    assert_eq!(served, local, "the hybrid backtest differs from the CLI");
    drop(worker);
    drop(api);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_jobs_run_through_the_binaries_configured_by_the_fixed_environment_names() {
    use strata_core::config::AiProvider;
    use strata_core::testing::mock_llm::{MockLlm, MockReply};

    const KEY: &str = "sk-e2e-never-in-a-log";
    let mock = MockLlm::start().await;
    mock.reply([MockReply::text(
        json!({
            "strategy": {"template": "sma_cross", "params": {"fast": 5, "slow": 20}},
            "direction": "long",
            "explanation": "A plain trend follower."
        })
        .to_string(),
    )]);
    let data = tempfile::tempdir().unwrap();
    let env = TestEnv::new(data.path()).await;
    let base_url = mock.base_url(AiProvider::OpenAi);
    let ai = [
        ("STRATA_AI_PROVIDER", "openai"),
        ("STRATA_AI_BASE_URL", base_url.as_str()),
        ("STRATA_AI_MODEL", "local-llm"),
        ("STRATA_AI_API_KEY", KEY),
    ];
    let extra: Vec<(&str, &str)> = EXTRA_ENV.iter().copied().chain(ai).collect();
    let (api, base) = env.start_api(binary(), &extra);
    let log = data.path().join("worker.log");
    let worker = ServiceProcess(
        env.command(binary(), &["worker", "--concurrency", "2"], &extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start strata worker"),
    );
    let client = reqwest::Client::new();
    let request = json!({
        "prompt": "A simple moving-average trend follower on Google.",
        "data": {"dataset": "GOOG", "start": "2005-01-01", "end": "2012-12-31"},
        "run": true
    });
    let id = submit(&client, &base, "/v1/ai/strategies", &request).await;
    // The AI job and its child backtest.
    wait_all_finished(&env, 2, 60).await;
    let found = result(&client, &base, &id).await;
    assert_eq!(
        found["model"],
        json!({"provider": "openai", "name": "local-llm"})
    );
    let child = found["backtest"]["job_id"].as_str().unwrap();
    let backtest = result(&client, &base, child).await;
    let local = cli_json(&[
        "backtest",
        "--data",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/data/GOOG.csv")
            .to_str()
            .unwrap(),
        "--start",
        "2005-01-01",
        "--end",
        "2012-12-31",
        "--param",
        "fast=5",
        "--param",
        "slow=20",
    ]);
    assert_eq!(
        backtest, local,
        "the AI strategy's backtest differs from the CLI"
    );
    let sent = mock.requests();
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].body["model"], "local-llm");
    drop(worker);
    drop(api);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("consuming the ai queue"), "{log}");
    assert!(!log.contains(KEY), "the API key reached the worker's log");
    env.cleanup().await;
}

#[tokio::test]
async fn the_api_refuses_an_unmigrated_database_and_migrate_says_what_it_applied() {
    let dir = tempfile::tempdir().unwrap();
    let env = TestEnv::unmigrated(dir.path()).await;
    let known = strata_core::store::MIGRATOR.iter().count();
    let newest = format!(
        "{:04}",
        strata_core::store::MIGRATOR.iter().last().unwrap().version
    );
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let output = env
            .command(binary(), args, extra)
            .stdin(Stdio::null())
            .output()
            .expect("run strata");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    // A database never migrated: the api does not start (rather than answer 500s).
    let (ok, _, stderr) = run(&["api", "--bind", "127.0.0.1:0"], &[]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "the database is not migrated (0 of {known} migrations applied): run `strata migrate`"
        )),
        "{stderr}"
    );
    // One an older release migrated: the same, with its count.
    env.migrate_first(known - 2).await;
    let (ok, _, stderr) = run(&["api", "--bind", "127.0.0.1:0"], &[]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "the database is not migrated ({} of {known} migrations applied)",
            known - 2
        )),
        "{stderr}"
    );

    // `strata migrate` says what it applied, then that there was nothing to do.
    let (ok, stdout, stderr) = run(&["migrate"], &[]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("applied 2 migrations (now at {newest})\n"));
    let (ok, stdout, stderr) = run(&["migrate"], &[]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("the database is up to date ({newest})\n"));
    let (api, base) = start_api(&env);
    let ready = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    drop(api);
    env.cleanup().await;

    // An api configured to migrate itself starts on a fresh database.
    let dir = tempfile::tempdir().unwrap();
    let env = TestEnv::unmigrated(dir.path()).await;
    let (api, base) = env.start_api(binary(), &[("STRATA_API__MIGRATE_ON_START", "true")]);
    let jobs = reqwest::Client::new()
        .get(format!("{base}/v1/jobs"))
        .bearer_auth(token("fresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), 200);
    assert!(env.store.schema().await.unwrap().is_current());
    drop(api);
    env.cleanup().await;
}
