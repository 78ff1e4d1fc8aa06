//! A poison job from the built binaries: `strata api` and two `strata worker` processes (built
//! with the `test-hooks` feature), restarted whenever one dies, as compose's `restart:
//! unless-stopped` would. One job kills the worker process that starts it
//! (`STRATA_TEST_ABORT_ON`, as a job that runs its worker out of memory would); sweeps run
//! beside it.
//!
//! The job must fail as poison after exactly two worker deaths, never a third; its second run
//! goes alone, so the second death takes no other job with it; and the jobs that died with
//! its first worker run again (alone) and succeed.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strata_core::testing::{TestEnv, TEST_SECRET};
use strata_core::Tier;
use support::{log_lines, submit, token, DumpLogsOnPanic, LogDir, Submitted, WorkerProcess};

/// What the poison job's spec carries, and the workers abort on.
const MARKER: &str = "close > 987654.321";
const WORKERS: usize = 2;
const CONCURRENCY: usize = 3;
/// Sweeps submitted first: more than one worker's slots, so both run some.
const SWEEPS: usize = 6;
const LEASE_SECS: u64 = 3;

/// Bars of the data set the sweeps run on.
const LONG_BARS: usize = 300_000;

/// A sweep of several seconds on one engine thread (1,200 sets over [`LONG_BARS`] bars), quick
/// for the api to check: long enough that the jobs a worker runs when it dies are still
/// running, not just finished, when the test looks.
fn sweep(i: usize) -> Value {
    json!({
        "data": {"dataset": "long"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": format!("{}:{}:1", 2 + i, 81 + i), "slow": "100:1500:100"},
        "objective": "sharpe",
        "top": 5,
    })
}

/// Uploads [`LONG_BARS`] synthetic bars as the data set `long` of `user`.
async fn upload_long_data(client: &reqwest::Client, base: &str, user: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.parquet");
    engine::data::synthetic::random_walk(LONG_BARS, 7)
        .write_parquet(&path)
        .unwrap();
    let response = client
        .post(format!("{base}/v1/datasets?name=long"))
        .bearer_auth(user)
        .header("content-type", "application/vnd.apache.parquet")
        .body(std::fs::read(&path).unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, 201, "{text}");
}

fn poison() -> Value {
    json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"entry": MARKER, "exit": "close < 1"},
    })
}

fn backtest() -> Value {
    json!({
        "data": {"dataset": "GOOG", "start": "2010-01-01"},
        "strategy": {"template": "sma_cross", "params": {"fast": 5, "slow": 30}},
    })
}

/// A job row as the checks read it.
type Row = (
    String,
    String,
    i32,
    i32,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// The job rows: `(id, status, attempts, worker_deaths, error, last_worker_death_at)`.
async fn jobs(env: &TestEnv) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id::text, status, attempts, worker_deaths, error, last_worker_death_at
         FROM jobs ORDER BY id",
    )
    .fetch_all(&env.store.pool)
    .await
    .expect("the jobs")
}

/// The workers running at least one job each, by pid.
async fn busy_workers(env: &TestEnv, workers: &[WorkerProcess]) -> usize {
    let running = support::running_jobs(env).await;
    workers
        .iter()
        .filter(|w| running.iter().any(|(id, _, _)| w.is(id)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_worker_fails_after_two_deaths_and_takes_nothing_else_along() {
    let logs = LogDir::from_env("POISON_LOGS");
    let data = tempfile::tempdir().unwrap();
    let env = TestEnv::new(data.path()).await;
    let mut extra = support::restart_env(LEASE_SECS, 2);
    extra.push(("STRATA_TEST_ABORT_ON".to_owned(), MARKER.to_owned()));
    extra.push((
        "STRATA_WORKER__MAX_WORKER_DEATHS".to_owned(),
        "2".to_owned(),
    ));
    let (mut api, base) = env.start_api(support::binary(), &support::env_refs(&extra));
    let mut workers: Vec<WorkerProcess> = (0..WORKERS)
        .map(|w| WorkerProcess::start(&env, &extra, logs.path(), &format!("w{w}"), CONCURRENCY, 1))
        .collect();
    let _dump = DumpLogsOnPanic(logs.path());
    let client = reqwest::Client::new();
    let mut submitted = Submitted::default();
    let user = token("pat", Tier::Pro);
    upload_long_data(&client, &base, &user).await;

    // Sweeps first, until both workers run one, so that the poison job finds its first
    // worker busy, whichever it is.
    let started = Instant::now();
    for i in 0..SWEEPS {
        submit(
            &client,
            &base,
            "/v1/sweeps",
            &user,
            &sweep(i),
            &mut submitted,
        )
        .await;
    }
    while busy_workers(&env, &workers).await < WORKERS {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sweeps did not start on both workers"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let poisoned = submit(
        &client,
        &base,
        "/v1/backtests",
        &user,
        &poison(),
        &mut submitted,
    )
    .await;

    // Watch over the workers: a dead one is counted (with the jobs it was last seen running,
    // for the report) and replaced.
    let mut deaths: Vec<(String, Vec<String>)> = Vec::new();
    let mut restarts = 0;
    let mut holding: Vec<Vec<String>> = vec![Vec::new(); WORKERS];
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let running = support::running_jobs(&env).await;
        for (w, worker) in workers.iter_mut().enumerate() {
            if worker.alive() {
                holding[w] = running
                    .iter()
                    .filter(|(worker_id, _, _)| worker.is(worker_id))
                    .map(|(_, id, _)| id.clone())
                    .collect();
                continue;
            }
            let status = worker.child.wait().expect("the dead worker's status");
            eprintln!(
                "{:5.1} s: worker {} (pid {}) died ({status}) holding {:?}",
                started.elapsed().as_secs_f64(),
                worker.name,
                worker.pid(),
                holding[w]
            );
            assert!(!status.success(), "worker {} exited by itself", worker.name);
            deaths.push((worker.name.clone(), std::mem::take(&mut holding[w])));
            restarts += 1;
            *worker = WorkerProcess::start(
                &env,
                &extra,
                logs.path(),
                &format!("w{w}-restart{restarts}"),
                CONCURRENCY,
                1,
            );
        }
        let (open,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
                .fetch_one(&env.store.pool)
                .await
                .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs still open after 150 s: {:#?}",
            jobs(&env).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Time enough for a third death, were the job handed out again.
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 2)).await;
    for worker in &mut workers {
        assert!(
            worker.alive(),
            "worker {} died after the job failed",
            worker.name
        );
    }

    let rows = jobs(&env).await;
    eprintln!("jobs (id, status, attempts, worker deaths, error, last death): {rows:#?}");
    assert_eq!(deaths.len(), 2, "worker deaths: {deaths:?}");
    let job = rows.iter().find(|r| r.0 == poisoned).unwrap();
    assert_eq!((job.1.as_str(), job.2, job.3), ("failed", 2, 2), "{job:?}");
    let error = job.4.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("the job stopped its worker twice"),
        "{error}"
    );
    let second_death = job.5.expect("when its second worker was found dead");
    // Every other job succeeded, those that died with the first worker among them; none died
    // with the second, as the poison job's second run was alone.
    let mut bystanders = 0;
    for (id, status, _, worker_deaths, error, died_at) in &rows {
        if *id == poisoned {
            continue;
        }
        assert_eq!(status, "succeeded", "{id}: {error:?}");
        assert!(*worker_deaths <= 1, "{id} died {worker_deaths} times");
        if let Some(died_at) = died_at {
            assert!(
                *died_at < second_death,
                "{id} died with the poison job's second worker"
            );
            bystanders += 1;
        }
    }
    assert!(
        bystanders > 0,
        "the first worker held nothing but the poison job: {:?}",
        deaths[0]
    );

    // The operator sees it.
    let admin = strata_core::auth::issue_token(TEST_SECRET, "ops", Tier::Elite, 3600, true)
        .expect("an admin token");
    let view: Value = client
        .get(format!("{base}/v1/admin/poisoned"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["jobs"].as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(view["jobs"][0]["id"], poisoned.as_str(), "{view}");
    assert_eq!(view["jobs"][0]["worker_deaths"], 2, "{view}");

    // And the service goes on: a job submitted last succeeds.
    let last = submit(
        &client,
        &base,
        "/v1/backtests",
        &user,
        &backtest(),
        &mut submitted,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status,): (String,) = sqlx::query_as("SELECT status FROM jobs WHERE id::text = $1")
            .bind(&last)
            .fetch_one(&env.store.pool)
            .await
            .unwrap();
        if status == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "the last job is still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let aborts = log_lines(logs.path())
        .iter()
        .filter(|l| l.message.starts_with("test hook: aborting"))
        .count();
    assert_eq!(aborts, 2, "test-hook aborts in the worker logs");
    assert!(
        matches!(api.0.try_wait(), Ok(None)),
        "the api process exited"
    );

    drop(workers);
    drop(api);
    env.cleanup().await;
}
