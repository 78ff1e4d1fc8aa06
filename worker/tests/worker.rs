//! The worker against real PostgreSQL and Redis: jobs submitted as the api submits them, a
//! worker running in-process, outcomes read back from the job rows.

use std::sync::Once;
use std::time::{Duration, Instant};

use engine::sweep::{run_sweep, Control};
use serde_json::{json, Value};
use strata_core::job::{parse_backtest, parse_sweep, Job, JobKind, JobMessage, JobStatus};
use strata_core::queue::{Queue, Queues};
use strata_core::store::{Claim, ClaimToken, NewJob, Submitted};
use strata_core::testing::TestEnv;
use strata_core::{Config, Store, Tier};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

const OWNER: &str = "alice";

fn init_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "off".to_owned());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A test's database, Redis prefix and data directory.
struct Setup {
    env: TestEnv,
    _data: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        init_logs();
        let data = tempfile::tempdir().unwrap();
        let env = TestEnv::new(data.path()).await;
        Setup { env, _data: data }
    }

    fn config(&self) -> Config {
        self.env.config.clone()
    }

    fn store(&self) -> &Store {
        &self.env.store
    }

    async fn queues(&self) -> Queues {
        let config = &self.env.config;
        Queues::connect(config.redis_url.expose(), &config.queue_prefix)
            .await
            .unwrap()
    }

    fn goog(&self) -> String {
        strata_core::datasets::bundled(&self.env.config, "GOOG").unwrap()
    }

    /// A data set of two million one-minute bars, for jobs that must run for a while.
    fn long_data(&self) -> String {
        let relative = "datasets/long.parquet";
        let path = self.env.config.data_dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        engine::data::synthetic::random_walk(2_000_000, 1)
            .write_parquet(&path)
            .unwrap();
        relative.to_owned()
    }

    /// Whether the stored result is byte for byte the document `want`; on a difference, says
    /// where.
    async fn assert_result(&self, id: Uuid, want: &str) {
        let (got,): (String,) =
            sqlx::query_as("SELECT result::text FROM job_results WHERE job_id = $1")
                .bind(id)
                .fetch_one(&self.store().pool)
                .await
                .unwrap();
        if got != want {
            assert_same_json(
                &serde_json::from_str(&got).unwrap(),
                &serde_json::from_str(want).unwrap(),
            );
            panic!("the documents differ in their text");
        }
    }

    /// Stores a job the way the api does (it is then `queued`, not yet in Redis).
    async fn submit(&self, kind: JobKind, spec: Value, data_path: &str) -> Uuid {
        self.submit_as(OWNER, Tier::Pro, kind, spec, data_path)
            .await
    }

    /// [`Setup::submit`] for another user or tier.
    async fn submit_as(
        &self,
        owner: &str,
        tier: Tier,
        kind: JobKind,
        spec: Value,
        data_path: &str,
    ) -> Uuid {
        let submitted = self
            .store()
            .submit(NewJob {
                owner: owner.to_owned(),
                tier,
                kind,
                spec,
                data_path: data_path.to_owned(),
                request_id: Some(format!("req-{}", Uuid::new_v4().simple())),
                idempotency_key: None,
                webhook: strata_core::store::Webhook::None,
            })
            .await
            .unwrap();
        match submitted {
            Submitted::Created(job) => job.id,
            other => panic!("not created: {other:?}"),
        }
    }

    async fn job(&self, id: Uuid) -> Job {
        self.store().job(OWNER, id).await.unwrap().unwrap()
    }

    /// Waits until the job satisfies `done`, failing the test after `limit`.
    async fn wait_for(&self, id: Uuid, limit: Duration, done: impl Fn(&Job) -> bool) -> Job {
        let started = Instant::now();
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                started.elapsed() < limit,
                "job {id} still {:?} (progress {}, error {:?}) after {limit:?}",
                job.status,
                job.progress,
                job.error
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_finished(&self, id: Uuid, limit: Duration) -> Job {
        self.wait_for(id, limit, |job| job.status.is_finished())
            .await
    }

    /// Starts a worker with one engine thread and a sweep that runs for a while, and returns
    /// once the sweep has started (and, with `progressed`, reported some progress).
    async fn long_sweep_running(&self, progressed: bool) -> (Running, Uuid, Job) {
        let mut config = self.config();
        config.worker.threads = 1;
        let worker = start(config);
        let id = self
            .submit(JobKind::Sweep, long_sweep_spec(), &self.long_data())
            .await;
        let job = self
            .wait_for(id, Duration::from_secs(30), |job| {
                job.status == JobStatus::Running && (!progressed || job.progress > 0.0)
            })
            .await;
        (worker, id, job)
    }

    async fn cleanup(self) {
        self.env.cleanup().await;
    }
}

/// Fails with the path of the first difference between two JSON documents.
fn assert_same_json(got: &Value, want: &Value) {
    fn first_difference(got: &Value, want: &Value, path: &str) -> Option<String> {
        match (got, want) {
            (Value::Object(g), Value::Object(w)) => {
                let keys: std::collections::BTreeSet<&String> = g.keys().chain(w.keys()).collect();
                keys.into_iter().find_map(|k| match (g.get(k), w.get(k)) {
                    (Some(a), Some(b)) => first_difference(a, b, &format!("{path}.{k}")),
                    (a, b) => Some(format!("{path}.{k}: {a:?} != {b:?}")),
                })
            }
            (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
                .iter()
                .zip(w)
                .enumerate()
                .find_map(|(i, (a, b))| first_difference(a, b, &format!("{path}[{i}]"))),
            (a, b) if a == b => None,
            (a, b) => Some(format!("{path}: {a:?} != {b:?}")),
        }
    }
    if let Some(difference) = first_difference(got, want, "") {
        panic!("the documents differ at {difference}");
    }
}

/// A worker running in this process until [`Running::stop`].
struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), strata_worker::WorkerError>>,
}

fn start(config: Config) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(strata_worker::run(config, async move {
        let _ = stopped.await;
    }));
    Running {
        stop: Some(stop),
        handle,
    }
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the worker stops")
            .unwrap()
            .expect("the worker ends cleanly");
    }
}

/// Claims a queued, due job as worker `worker_id` would: the run's token.
async fn claim(store: &Store, id: Uuid, worker_id: &str) -> ClaimToken {
    match store.claim(id, worker_id, false).await.unwrap() {
        Claim::Claimed(claimed) => claimed.token(),
        other => panic!("not claimed: {other:?}"),
    }
}

fn backtest_spec() -> Value {
    json!({
        "data": {"dataset": "GOOG", "start": "2008-01-01", "end": "2012-12-31"},
        "strategy": {"template": "sma_cross", "params": {"fast": 10, "slow": 30}},
        "direction": "long",
        "execution": {"fill": "next_open", "fees": 0.001, "initial_cash": 10000, "size": 1.0}
    })
}

/// A backtest small enough that the queue, not the engine, sets the pace.
fn tiny_spec() -> Value {
    json!({
        "data": {"dataset": "GOOG", "start": "2012-01-01", "end": "2012-03-31"},
        "strategy": {"template": "sma_cross", "params": {"fast": 3, "slow": 8}}
    })
}

/// A sweep that runs for many seconds on one thread (on [`Setup::long_data`]).
fn long_sweep_spec() -> Value {
    json!({
        "data": {"dataset": "long"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": "2:250:1", "slow": [300, 350, 400, 450, 500, 550, 600]},
        "objective": "sharpe"
    })
}

/// What the engine itself produces for a backtest spec: the JSON the CLI prints.
fn engine_backtest(config: &Config, spec: &Value, data_path: &str) -> String {
    let plan = parse_backtest(spec).unwrap().plan().unwrap();
    let path = strata_core::datasets::locate(config, data_path);
    let bars = engine::data::load(&path, &plan.load).unwrap();
    let result = engine::run_backtest(
        &bars,
        &plan.compiled,
        &plan.execution,
        plan.periods_per_year,
    );
    serde_json::to_string(&result).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_succeeds_with_the_engines_own_result() {
    let setup = Setup::new().await;
    let worker = start(setup.config());
    let goog = setup.goog();
    let id = setup
        .submit(JobKind::Backtest, backtest_spec(), &goog)
        .await;

    let job = setup.wait_finished(id, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    assert_eq!(job.progress, 1.0);
    assert_eq!(job.attempts, 1);
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    let expected = engine_backtest(&setup.env.config, &backtest_spec(), &goog);
    assert!(expected.contains("\"trades\":[{"), "the backtest trades");
    setup.assert_result(id, &expected).await;

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_succeeds_ranked_as_the_engine_ranks_it() {
    let setup = Setup::new().await;
    let worker = start(setup.config());
    let spec = json!({
        "data": {"dataset": "GOOG", "start": "2006-01-01"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": "5:20:5", "slow": [30, 50]},
        "constraint": "fast < slow",
        "objective": "sortino",
        "top": 2
    });
    let goog = setup.goog();
    let id = setup.submit(JobKind::Sweep, spec.clone(), &goog).await;

    let job = setup.wait_finished(id, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let (backtest, sweep) = parse_sweep(&spec).unwrap();
    let plan = backtest.plan().unwrap();
    let sets = sweep.parameter_sets(&plan.strategy).unwrap();
    let bars = engine::data::load(
        &strata_core::datasets::locate(&setup.env.config, &goog),
        &plan.load,
    )
    .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let expected = run_sweep(
        &bars,
        &plan.strategy,
        &sets,
        &plan.execution,
        plan.periods_per_year,
        &sweep,
        &pool,
        &Control::default(),
    )
    .unwrap();
    setup
        .assert_result(id, &serde_json::to_string(&expected).unwrap())
        .await;
    let stored = setup.store().result(id).await.unwrap().expect("a result");
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["results"].as_array().unwrap().len(), 8);
    assert!(stored["results"][1]["equity"].is_array() && stored["results"][2]["equity"].is_null());

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_sweep_stops_it_within_a_second() {
    let setup = Setup::new().await;
    let (worker, id, _) = setup.long_sweep_running(false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    setup.store().cancel(OWNER, id).await.unwrap();
    let job = setup.wait_finished(id, Duration::from_secs(5)).await;
    let took = asked.elapsed();
    assert_eq!(job.status, JobStatus::Cancelled, "{:?}", job.error);
    assert!(
        took < Duration::from_millis(1500),
        "cancelled after {took:?}"
    );
    assert!(setup.store().result(id).await.unwrap().is_none());

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_reported_while_a_sweep_runs() {
    let setup = Setup::new().await;
    let (worker, id, job) = setup.long_sweep_running(true).await;
    assert!(job.progress < 1.0);
    setup.store().cancel(OWNER, id).await.unwrap();
    setup.wait_finished(id, Duration::from_secs(5)).await;

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_delivered_twice_runs_once() {
    let setup = Setup::new().await;
    let id = setup
        .submit(JobKind::Backtest, backtest_spec(), &setup.goog())
        .await;
    let queues = setup.queues().await;
    let message = JobMessage {
        id,
        request_id: Some("req-twice".to_owned()),
        alone: false,
    };
    // Two deliveries besides the one the dispatcher makes.
    queues
        .push(Queue::Pro, &[message.clone(), message])
        .await
        .unwrap();
    let worker = start(setup.config());

    let job = setup.wait_finished(id, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let started = Instant::now();
    while queues.ready(Queue::Pro).await.unwrap() > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "messages left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = setup.job(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempts, 1, "the job ran more than once");

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_keeps_at_most_window_jobs_in_redis() {
    let setup = Setup::new().await;
    let mut config = setup.config();
    config.worker.window = 50;
    let goog = setup.goog();
    let mut ids = Vec::new();
    for _ in 0..500 {
        ids.push(setup.submit(JobKind::Backtest, tiny_spec(), &goog).await);
    }
    let queues = setup.queues().await;
    let worker = start(config);

    let started = Instant::now();
    let mut most = 0;
    loop {
        most = most.max(queues.ready(Queue::Pro).await.unwrap());
        let (left,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_one(&setup.store().pool)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{left} jobs left"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(most <= 50, "{most} jobs waited in Redis at once");
    assert!(most > 0, "the queue was never seen holding a job");
    let (succeeded, once): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE attempts = 1)
         FROM jobs",
    )
    .fetch_one(&setup.store().pool)
    .await
    .unwrap();
    assert_eq!((succeeded, once), (500, 500));

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_is_run_again() {
    let setup = Setup::new().await;
    let mut config = setup.config();
    config.worker.lease_secs = 2;
    config.worker.threads = 1;
    let spec = json!({
        "data": {"dataset": "long"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": "5:40:5", "slow": [100, 200]}
    });
    let id = setup.submit(JobKind::Sweep, spec, &setup.long_data()).await;

    // The first worker runs in a runtime of its own, which is then dropped mid-job: its tasks
    // (heartbeats included) die as with a killed process.
    let first_config = config.clone();
    let (runtime_tx, runtime_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.spawn(strata_worker::run(first_config, std::future::pending()));
        runtime_tx.send(runtime).unwrap();
    });
    let runtime = runtime_rx.recv().unwrap();
    let running = setup
        .wait_for(id, Duration::from_secs(30), |job| {
            job.status == JobStatus::Running
        })
        .await;
    assert_eq!(running.attempts, 1);
    std::thread::spawn(move || runtime.shutdown_background())
        .join()
        .unwrap();

    let worker = start(config);
    let job = setup.wait_finished(id, Duration::from_secs(60)).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    assert_eq!(job.attempts, 2);
    assert!(setup.store().result(id).await.unwrap().is_some());

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_workers_keep_dying_fails_after_its_attempts() {
    let setup = Setup::new().await;
    let mut config = setup.config();
    config.worker.lease_secs = 1;
    config.worker.max_attempts = 3;
    let id = setup
        .submit(JobKind::Backtest, backtest_spec(), &setup.goog())
        .await;
    // As a third worker left it: running, silent for a minute.
    sqlx::query(
        "UPDATE jobs SET status = 'running', attempts = 3, worker_id = 'host-1-dead',
                dispatched_at = now() - interval '1 minute',
                started_at = now() - interval '1 minute', heartbeat_at = now() - interval '1 minute'
         WHERE id = $1",
    )
    .bind(id)
    .execute(&setup.store().pool)
    .await
    .unwrap();
    let worker = start(config);

    let job = setup.wait_finished(id, Duration::from_secs(20)).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap_or_default();
    assert!(
        error.contains("3 attempts") && error.contains("heartbeats"),
        "{error}"
    );
    // The owner is not told the machines: the log names the worker.
    assert!(!error.contains("host-1-dead"), "{error}");

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_broken_data_file_fails_the_job_with_a_clear_error() {
    let setup = Setup::new().await;
    let worker = start(setup.config());
    let gone = setup
        .submit(
            JobKind::Backtest,
            backtest_spec(),
            "datasets/0000000000000000/deleted.parquet",
        )
        .await;
    std::fs::create_dir_all(setup.env.config.data_dir.join("datasets")).unwrap();
    std::fs::write(
        setup.env.config.data_dir.join("datasets/broken.csv"),
        "time,open,high,low,close\n2020-01-01,10,9,11,10\n",
    )
    .unwrap();
    let broken = setup
        .submit(
            JobKind::Sweep,
            json!({
                "data": {"dataset": "broken"},
                "strategy": {"template": "sma_cross"},
                "grid": {"fast": [5, 10]}
            }),
            "datasets/broken.csv",
        )
        .await;

    let job = setup.wait_finished(gone, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap_or_default();
    assert!(
        error.contains("datasets/0000000000000000/deleted.parquet") && error.contains("deleted"),
        "{error}"
    );

    let job = setup.wait_finished(broken, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap_or_default();
    assert!(
        error.contains("datasets/broken.csv") && error.contains("row 1"),
        "{error}"
    );
    let data_dir = setup.env.config.data_dir.display().to_string();
    assert!(
        !error.contains(&data_dir),
        "the server's directories leak: {error}"
    );

    // The worker goes on with the next job.
    let ok = setup
        .submit(JobKind::Backtest, tiny_spec(), &setup.goog())
        .await;
    let job = setup.wait_finished(ok, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Succeeded);

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_queued_job_is_skipped() {
    let setup = Setup::new().await;
    let id = setup
        .submit(JobKind::Backtest, backtest_spec(), &setup.goog())
        .await;
    setup.store().cancel(OWNER, id).await.unwrap();
    let after = setup
        .submit(JobKind::Backtest, tiny_spec(), &setup.goog())
        .await;
    let queues = setup.queues().await;
    queues
        .push(
            Queue::Pro,
            &[JobMessage {
                id,
                request_id: None,
                alone: false,
            }],
        )
        .await
        .unwrap();
    let worker = start(setup.config());

    let job = setup.wait_finished(after, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    let job = setup.job(id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Cancelled, 0));

    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_a_long_job_back_to_the_queue() {
    let setup = Setup::new().await;
    let (worker, id, _) = setup.long_sweep_running(false).await;

    let stopping = Instant::now();
    worker.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(16),
        "{:?}",
        stopping.elapsed()
    );
    let job = setup.job(id).await;
    assert_eq!(job.status, JobStatus::Queued);
    let (worker_id, progress): (Option<String>, f64) =
        sqlx::query_as("SELECT worker_id, progress FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&setup.store().pool)
            .await
            .unwrap();
    assert_eq!(
        (worker_id, progress),
        (None, 0.0),
        "a released job starts afresh"
    );

    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served() {
    let setup = Setup::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = setup.config();
    config.worker.metrics_bind = Some(([127, 0, 0, 1], port).into());
    let worker = start(config);
    let id = setup
        .submit(JobKind::Backtest, tiny_spec(), &setup.goog())
        .await;
    setup.wait_finished(id, Duration::from_secs(30)).await;

    let (status, body) = get(port, "/health/ready").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(port, "/health/live").await;
    assert_eq!(status, 200);
    let started = Instant::now();
    loop {
        let (status, body) = get(port, "/metrics").await;
        assert_eq!(status, 200);
        if body.contains(
            r#"strata_jobs_finished_total{kind="backtest",outcome="succeeded",tier="pro"} 1"#,
        ) && body.contains("strata_bars_processed_total")
            && body.contains(r#"strata_queue_depth{place="backlog",queue="pro"} 0"#)
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    worker.stop().await;
    setup.cleanup().await;
}

/// A plain HTTP/1.0 GET: status and body.
async fn get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Jobs per second through one worker, end to end: `cargo test --release -p strata-worker
/// --test worker -- --ignored --nocapture throughput`. `STRATA_BENCH_JOBS` (default 3000) tiny
/// backtests are queued first, then one worker drains them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput_of_tiny_backtests() {
    let setup = Setup::new().await;
    let jobs: usize = std::env::var("STRATA_BENCH_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let spec = match std::env::var("STRATA_BENCH_SPEC") {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(_) => tiny_spec(),
    };
    sqlx::query(
        "INSERT INTO jobs (id, owner, tier, kind, spec, data_path)
         SELECT gen_random_uuid(), $1, 'pro', 'backtest', $2, $3 FROM generate_series(1, $4)",
    )
    .bind(OWNER)
    .bind(&spec)
    .bind(setup.goog())
    .bind(jobs as i32)
    .execute(&setup.store().pool)
    .await
    .unwrap();
    let mut config = setup.config();
    if let Some(n) = std::env::var("STRATA_BENCH_CONCURRENCY")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        config.worker.concurrency = n;
    }
    let started = Instant::now();
    let worker = start(config);
    loop {
        let (left,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
                .fetch_one(&setup.store().pool)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let (succeeded,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
            .fetch_one(&setup.store().pool)
            .await
            .unwrap();
    println!(
        "{succeeded} of {jobs} jobs succeeded in {took:.2?}: {:.0} jobs/s",
        jobs as f64 / took.as_secs_f64()
    );
    assert_eq!(succeeded as usize, jobs);
    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_20000_jobs_drains_through_two_workers() {
    let setup = Setup::new().await;
    sqlx::query(
        "INSERT INTO jobs (id, owner, tier, kind, spec, data_path)
         SELECT gen_random_uuid(), $1, (ARRAY['basic', 'pro', 'elite'])[1 + g % 3], 'backtest', $2, $3
         FROM generate_series(1, 20000) g",
    )
    .bind(OWNER)
    .bind(tiny_spec())
    .bind(setup.goog())
    .execute(&setup.store().pool)
    .await
    .unwrap();
    let queues = setup.queues().await;
    let first = start(setup.config());
    let second = start(setup.config());

    let started = Instant::now();
    let mut most = 0;
    loop {
        for tier in Tier::ALL {
            most = most.max(queues.ready(tier.into()).await.unwrap());
        }
        let (left,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
                .fetch_one(&setup.store().pool)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            !first.handle.is_finished() && !second.handle.is_finished(),
            "a worker ended"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{left} jobs left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let window = setup.env.config.worker.window as u64;
    assert!(most <= window, "{most} jobs waited in one queue");
    let (succeeded, once, workers): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'),
                count(*) FILTER (WHERE attempts = 1),
                count(DISTINCT worker_id)
         FROM jobs",
    )
    .fetch_one(&setup.store().pool)
    .await
    .unwrap();
    assert_eq!((succeeded, once), (20000, 20000));
    assert_eq!(workers, 2, "both workers ran jobs");

    first.stop().await;
    second.stop().await;
    setup.cleanup().await;
}

/// The jobs started so far, in the order workers started them: (tier, owner) of each.
async fn start_order(setup: &Setup) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT tier, owner FROM jobs WHERE started_at IS NOT NULL ORDER BY started_at, id",
    )
    .fetch_all(&setup.store().pool)
    .await
    .unwrap()
}

async fn wait_all_finished(setup: &Setup, limit: Duration) {
    let started = Instant::now();
    loop {
        let (open,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
                .fetch_one(&setup.store().pool)
                .await
                .unwrap();
        if open == 0 {
            return;
        }
        assert!(started.elapsed() < limit, "{open} jobs still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_tier_waiting_starts_follow_the_weights() {
    let setup = Setup::new().await;
    let goog = setup.goog();
    // Every tier has more waiting than the starts counted below can take.
    for tier in [Tier::Basic, Tier::Pro, Tier::Elite] {
        for _ in 0..150 {
            setup
                .submit_as(
                    tier.as_str(),
                    tier,
                    JobKind::Sweep,
                    small_sweep_spec(),
                    &goog,
                )
                .await;
        }
    }
    let mut config = setup.config();
    config.worker.concurrency = 2;
    config.worker.threads = 1;
    let worker = start(config);
    wait_all_finished(&setup, Duration::from_secs(120)).await;
    worker.stop().await;

    let order = start_order(&setup).await;
    // Counted from when every tier's consumer has found its queue: before that, whoever
    // polls first runs.
    let warm = ["elite", "pro", "basic"]
        .iter()
        .map(|tier| order.iter().position(|(t, _)| t == tier).unwrap())
        .max()
        .unwrap();
    let counted: Vec<&str> = order[warm..warm + 100]
        .iter()
        .map(|(t, _)| t.as_str())
        .collect();
    let count = |tier: &str| counted.iter().filter(|t| **t == tier).count();
    let (elite, pro, basic) = (count("elite"), count("pro"), count("basic"));
    eprintln!("100 starts from start {warm}: elite {elite}, pro {pro}, basic {basic}");
    // 6 : 3 : 1 would be 60, 30, 10.
    assert!(
        (50..=70).contains(&elite),
        "elite {elite}, pro {pro}, basic {basic}"
    );
    assert!(
        (20..=40).contains(&pro),
        "elite {elite}, pro {pro}, basic {basic}"
    );
    assert!(
        (4..=16).contains(&basic),
        "elite {elite}, pro {pro}, basic {basic}"
    );
    setup.cleanup().await;
}

/// A sweep of 20 sets on GOOG: a few milliseconds.
fn small_sweep_spec() -> Value {
    json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": "2:21:1", "slow": [50]},
        "objective": "sharpe"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_flood_does_not_hold_back_another_users_first_job() {
    let setup = Setup::new().await;
    let goog = setup.goog();
    let mut config = setup.config();
    config.worker.concurrency = 1;
    config.worker.threads = 1;
    config.worker.window = 10;
    for _ in 0..300 {
        setup
            .submit_as(
                "flood",
                Tier::Basic,
                JobKind::Sweep,
                small_sweep_spec(),
                &goog,
            )
            .await;
    }
    let worker = start(config);
    // The flood is under way when the second user's job arrives.
    while start_order(&setup).await.len() < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = setup
        .submit_as("bob", Tier::Basic, JobKind::Backtest, tiny_spec(), &goog)
        .await;
    let before: Vec<(String, String)> = start_order(&setup).await;
    let flood_done_before = before.iter().filter(|(_, owner)| owner == "flood").count();
    wait_all_finished(&setup, Duration::from_secs(120)).await;
    worker.stop().await;

    let order = start_order(&setup).await;
    let position = order.iter().position(|(_, owner)| owner == "bob").unwrap();
    eprintln!("bob's job started {position}th; {flood_done_before} flood jobs had started");
    // Ahead of bob's job: what had started when he submitted, plus at most the window (jobs
    // already in Redis) and what the worker holds (its fetched batch, a message waiting for a
    // slot, the running job); without per-user turns it would start after all 300.
    assert!(
        position <= flood_done_before + 2 * 10,
        "bob's job started {position}th; {flood_done_before} flood jobs had started when he submitted"
    );
    assert!(
        flood_done_before < 250,
        "the flood ran too fast for the check: {flood_done_before} of 300 had started"
    );
    let job = setup.store().job("bob", id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_failure_runs_again_after_a_backoff_then_gives_up_with_the_last_error() {
    use strata_core::store::Retry;
    let setup = Setup::new().await;
    let store = setup.store();
    let goog = setup.goog();
    let backoff = Duration::from_secs(1);

    // A first attempt that hit a disk hiccup: queued again, not before the backoff.
    let id = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    let run = claim(store, id, "host-1-a").await;
    let retry = store
        .retry_later(run, "cannot read the file: timed out", backoff, 3)
        .await
        .unwrap();
    let Some(Retry::After(wait)) = retry else {
        panic!("not retried: {retry:?}")
    };
    assert!(
        wait > Duration::from_millis(800) && wait <= backoff,
        "{wait:?}"
    );
    let job = setup.job(id).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(
        job.error.as_deref(),
        Some("attempt 1: cannot read the file: timed out")
    );
    // A worker does not start it before its time, then runs it to success.
    let worker = start(setup.config());
    let job = setup.wait_finished(id, Duration::from_secs(20)).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.error, None);
    let (waited,): (bool,) =
        sqlx::query_as("SELECT started_at >= run_after FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(waited, "the job started before its backoff was over");
    worker.stop().await;

    // The second wait doubles; the third failure of three attempts is final.
    let id = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    for attempt in 1..=3 {
        sqlx::query("UPDATE jobs SET run_after = NULL WHERE id = $1")
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
        let run = claim(store, id, "host-1-a").await;
        let retry = store
            .retry_later(run, &format!("hiccup {attempt}"), backoff, 3)
            .await
            .unwrap()
            .unwrap();
        match (attempt, retry) {
            (1, Retry::After(wait)) => assert!(wait <= backoff, "{wait:?}"),
            (2, Retry::After(wait)) => assert!(wait > backoff, "{wait:?}"),
            (3, Retry::GaveUp) => {}
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    let job = setup.job(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("gave up after 3 attempts; the last: hiccup 3")
    );
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_jobs_child_is_queued_once_with_its_result() {
    use strata_core::store::ChildJob;

    let setup = Setup::new().await;
    let request = json!({"prompt": "a trend follower", "data": {"dataset": "GOOG"}, "run": true});
    let id = setup
        .submit(JobKind::AiStrategy, request, &setup.goog())
        .await;
    let store = setup.store();
    let run = claim(store, id, "w1").await;
    let child = ChildJob {
        kind: JobKind::Backtest,
        spec: backtest_spec(),
    };
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(store
        .succeed_with_child(run, r#"{"n": 1}"#, first, &child)
        .await
        .unwrap());
    // A second delivery of the same job, or a run that lost it, queues nothing more.
    assert!(!store
        .succeed_with_child(run, r#"{"n": 2}"#, second, &child)
        .await
        .unwrap());
    let stale = strata_core::store::ClaimToken {
        id,
        claim: run.claim - 1,
    };
    assert!(!store
        .succeed_with_child(stale, r#"{"n": 3}"#, second, &child)
        .await
        .unwrap());
    let children: Vec<(Uuid, String, String, String)> =
        sqlx::query_as("SELECT id, kind, tier, status FROM jobs WHERE parent_id = $1")
            .bind(id)
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(
        children,
        [(first, "backtest".into(), "pro".into(), "queued".into())]
    );
    assert_eq!(
        store.result(id).await.unwrap().as_deref(),
        Some(r#"{"n": 1}"#)
    );
    let child_job = store.job(OWNER, first).await.unwrap().unwrap();
    assert_eq!(child_job.parent_id, Some(id));
    setup.cleanup().await;
}

/// Takes back every running job whose heartbeat is older than `lease`, as a reconciler pass
/// does.
async fn recover(store: &Store, lease: Duration) -> Vec<strata_core::store::Recovered> {
    store
        .recover_stale(&strata_core::store::Recovery {
            lease,
            max_attempts: 5,
            backoff: Duration::ZERO,
            max_worker_deaths: 2,
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_job_writes_nothing_even_on_the_same_worker() {
    use strata_core::store::ChildJob;

    let setup = Setup::new().await;
    let store = setup.store();
    let id = setup
        .submit(JobKind::Backtest, tiny_spec(), &setup.goog())
        .await;
    // A first run, whose lease runs out (as through a PostgreSQL outage longer than the lease);
    // the same worker claims the job again: the worker id cannot tell the runs apart.
    let stale = claim(store, id, "host-1-a").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let recovered = recover(store, Duration::from_millis(10)).await;
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].status, "queued");
    assert!(
        !recovered[0].worker_died,
        "a worker with no row is not taken for dead"
    );
    let current = claim(store, id, "host-1-a").await;
    assert_eq!(current.claim, stale.claim + 1);

    // Nothing the first run writes counts.
    assert_eq!(store.heartbeat(stale, 0.9).await.unwrap(), None);
    assert!(!store.succeed(stale, r#"{"stale": true}"#).await.unwrap());
    let child = ChildJob {
        kind: JobKind::Backtest,
        spec: backtest_spec(),
    };
    assert!(!store
        .succeed_with_child(stale, r#"{"stale": true}"#, Uuid::now_v7(), &child)
        .await
        .unwrap());
    assert!(!store.fail(stale, "stale failure").await.unwrap());
    let retried = store
        .retry_later(stale, "stale hiccup", Duration::ZERO, 5)
        .await
        .unwrap();
    assert_eq!(retried, None);
    assert!(!store.cancelled(stale).await.unwrap());
    assert!(!store.release(stale).await.unwrap());
    let job = setup.job(id).await;
    assert_eq!((job.status, job.progress), (JobStatus::Running, 0.0));

    // The second run's do.
    assert_eq!(store.heartbeat(current, 0.5).await.unwrap(), Some(false));
    assert!(store
        .succeed(current, r#"{"current": true}"#)
        .await
        .unwrap());
    let job = setup.job(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempts, 2);
    assert_eq!(
        store.result(id).await.unwrap().as_deref(),
        Some(r#"{"current": true}"#)
    );
    let (children,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs WHERE parent_id = $1")
        .bind(id)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(children, 0);
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_says_why_it_did_not_claim() {
    let setup = Setup::new().await;
    let store = setup.store();
    let goog = setup.goog();
    let id = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;

    // Waiting out a retry's backoff: a stale duplicate message does not start it early.
    sqlx::query("UPDATE jobs SET run_after = now() + interval '1 hour' WHERE id = $1")
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
    let claim_of = |alone| store.claim(id, "host-1-a", alone);
    assert!(matches!(claim_of(false).await.unwrap(), Claim::NotDue));
    let job = setup.job(id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Queued, 0));

    // Due, but it stopped a worker before: only a message that says "alone" claims it.
    sqlx::query("UPDATE jobs SET run_after = now(), worker_deaths = 1 WHERE id = $1")
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(matches!(claim_of(false).await.unwrap(), Claim::NotAlone));
    let Claim::Claimed(claimed) = claim_of(true).await.unwrap() else {
        panic!("an alone message claims it")
    };
    assert_eq!((claimed.attempts, claimed.worker_deaths), (1, 1));
    // Running now: any further message is a duplicate.
    assert!(matches!(claim_of(true).await.unwrap(), Claim::NotQueued));
    assert!(matches!(
        store
            .claim(Uuid::now_v7(), "host-1-a", false)
            .await
            .unwrap(),
        Claim::NotQueued
    ));
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_message_does_not_cut_a_retrys_backoff_short() {
    let setup = Setup::new().await;
    let store = setup.store();
    let id = setup
        .submit(JobKind::Backtest, tiny_spec(), &setup.goog())
        .await;
    let run = claim(store, id, "host-1-a").await;
    let retry = store
        .retry_later(
            run,
            "cannot read the file: timed out",
            Duration::from_secs(2),
            3,
        )
        .await
        .unwrap();
    assert!(matches!(retry, Some(strata_core::store::Retry::After(_))));
    // The message of its first attempt, delivered again (it was pushed twice).
    setup
        .queues()
        .await
        .push(
            Queue::Pro,
            &[JobMessage {
                id,
                request_id: None,
                alone: false,
            }],
        )
        .await
        .unwrap();
    let worker = start(setup.config());
    let job = setup.wait_finished(id, Duration::from_secs(20)).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    assert_eq!(job.attempts, 2);
    let (waited,): (bool,) =
        sqlx::query_as("SELECT started_at >= run_after FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(
        waited,
        "the duplicate message started the job before its backoff was over"
    );
    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_process_died_runs_alone_then_fails_as_poison() {
    let setup = Setup::new().await;
    let store = setup.store();
    let goog = setup.goog();
    let id = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    let bystander = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    let released = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    // Three worker processes, as they recorded themselves: two died a minute ago, one shut
    // down cleanly then (its unfinished job was not what stopped it).
    for (worker, stopped) in [
        ("w-dead-1", false),
        ("w-dead-2", false),
        ("w-stopped", true),
    ] {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, concurrency, threads, seen_at, stopped_at)
             VALUES ($1, 'box', 1, 4, 1, now() - interval '1 minute',
                     CASE WHEN $2 THEN now() - interval '1 minute' END)",
        )
        .bind(worker)
        .bind(stopped)
        .execute(&store.pool)
        .await
        .unwrap();
    }
    let silent = "UPDATE jobs SET heartbeat_at = now() - interval '1 minute' WHERE id = $1";
    for (job, worker) in [
        (id, "w-dead-1"),
        (bystander, "w-dead-1"),
        (released, "w-stopped"),
    ] {
        claim(store, job, worker).await;
        sqlx::query(silent)
            .bind(job)
            .execute(&store.pool)
            .await
            .unwrap();
    }

    let recovered = recover(store, Duration::from_secs(5)).await;
    let died = |job| recovered.iter().find(|r| r.id == job).unwrap().worker_died;
    assert!(
        died(id) && died(bystander) && !died(released),
        "{recovered:?}"
    );
    let job = setup.job(id).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(
        job.error.as_deref(),
        Some("attempt 1: the worker process running it died")
    );
    // Dispatched again, it goes alone; a duplicate of its first message claims nothing.
    let mut dispatch = store.begin_dispatch(Queue::Pro).await.unwrap().unwrap();
    let messages = dispatch.take(10).await.unwrap();
    dispatch.commit().await.unwrap();
    let alone = |job| messages.iter().find(|m| m.id == job).unwrap().alone;
    assert!(
        alone(id) && alone(bystander) && !alone(released),
        "{messages:?}"
    );
    assert!(matches!(
        store.claim(id, "w-dead-2", false).await.unwrap(),
        Claim::NotAlone
    ));

    // Its second worker dies under it too: it fails as poison, for good.
    let Claim::Claimed(claimed) = store.claim(id, "w-dead-2", true).await.unwrap() else {
        panic!("not claimed")
    };
    assert_eq!(claimed.worker_deaths, 1);
    sqlx::query(silent)
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
    let recovered = recover(store, Duration::from_secs(5)).await;
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        (recovered[0].status.as_str(), recovered[0].worker_deaths),
        ("failed", 2)
    );
    let job = setup.job(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap_or_default();
    assert!(
        error.starts_with("the job stopped its worker twice"),
        "{error}"
    );
    assert!(!error.contains("w-dead"), "{error}");
    let poisoned = store.poisoned_jobs(2, 10).await.unwrap();
    assert_eq!(poisoned.len(), 1);
    assert_eq!((poisoned[0].id, poisoned[0].worker_deaths), (id, 2));
    let (dead,): (i64,) = sqlx::query_as("SELECT count(*) FROM workers WHERE died_at IS NOT NULL")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(dead, 2, "w-dead-1 and w-dead-2 are recorded dead");
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_tiers_run_time_limit_fails_with_a_clear_error() {
    let setup = Setup::new().await;
    let mut config = setup.config();
    config.worker.threads = 1;
    config.tiers.pro.max_runtime_secs = Some(1);
    let worker = start(config);
    let id = setup
        .submit(JobKind::Sweep, long_sweep_spec(), &setup.long_data())
        .await;
    let running = setup
        .wait_for(id, Duration::from_secs(30), |job| {
            job.status == JobStatus::Running
        })
        .await;
    let started = running.started_at.unwrap();
    let job = setup.wait_finished(id, Duration::from_secs(10)).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("the job ran longer than the pro tier's 1 s limit")
    );
    let ran = (job.finished_at.unwrap() - started).to_std().unwrap();
    assert!(
        ran >= Duration::from_secs(1) && ran < Duration::from_secs(4),
        "stopped after {ran:?}"
    );
    assert!(setup.store().result(id).await.unwrap().is_none());

    // The slot is free again: the next job runs.
    let next = setup
        .submit(JobKind::Backtest, tiny_spec(), &setup.goog())
        .await;
    let job = setup.wait_finished(next, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    worker.stop().await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_cannot_be_stored_fails_the_job_at_once_with_the_reason() {
    let setup = Setup::new().await;
    let goog = setup.goog();
    let mut config = setup.config();
    config.worker.max_result_mb = 1;
    let worker = start(config);

    // Over worker.max_result_mb: every set ranked, each with its equity curve.
    let large = setup
        .submit(
            JobKind::Sweep,
            json!({
                "data": {"dataset": "GOOG"},
                "strategy": {"template": "sma_cross"},
                "grid": {"fast": "2:61:1", "slow": [100]},
                "top": 60
            }),
            &goog,
        )
        .await;
    let job = setup.wait_finished(large, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap_or_default();
    assert!(
        error.starts_with("the result is ") && error.contains("more than the 1 MB a job may store"),
        "{error}"
    );

    // Refused by PostgreSQL for good (here a rule every result breaks): failed at once with the
    // reason, not retried for half a minute and left running.
    sqlx::query("ALTER TABLE job_results ADD CONSTRAINT refuse_all CHECK (job_id IS NULL)")
        .execute(&setup.store().pool)
        .await
        .unwrap();
    let refused = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    let started = Instant::now();
    let job = setup.wait_finished(refused, Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("the result could not be stored: it breaks a rule of the database (a constraint)")
    );
    assert_eq!(job.attempts, 1);

    // An error text with a NUL byte is stored, the NUL replaced.
    sqlx::query("ALTER TABLE job_results DROP CONSTRAINT refuse_all")
        .execute(&setup.store().pool)
        .await
        .unwrap();
    worker.stop().await;
    let id = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    let run = claim(setup.store(), id, "host-1-a").await;
    assert!(setup
        .store()
        .fail(run, "bad byte \0 in the data")
        .await
        .unwrap());
    let job = setup.job(id).await;
    assert_eq!(job.error.as_deref(), Some("bad byte \u{FFFD} in the data"));
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_jobs_whose_messages_redis_lost_are_dispatched_again() {
    let setup = Setup::new().await;
    let store = setup.store();
    let goog = setup.goog();
    let queues = setup.queues().await;
    // Both handed to Redis a minute ago: one's message is still waiting there, the other's was
    // lost (Redis restarted empty).
    let waiting = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    let lost = setup.submit(JobKind::Backtest, tiny_spec(), &goog).await;
    queues
        .push(
            Queue::Pro,
            &[JobMessage {
                id: waiting,
                request_id: None,
                alone: false,
            }],
        )
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET dispatched_at = now() - interval '1 minute'")
        .execute(&store.pool)
        .await
        .unwrap();

    let after = Duration::from_secs(30);
    let candidates = store.dispatched_long_ago(after, 100).await.unwrap();
    assert_eq!(candidates.len(), 1, "{candidates:?}");
    let (queue, ids) = &candidates[0];
    assert_eq!((*queue, ids.len()), (Queue::Pro, 2));
    let missing = queues.missing(Queue::Pro, ids, &[]).await.unwrap();
    assert_eq!(missing, [lost], "only the lost message is missing");
    assert_eq!(store.redispatch(&missing, after).await.unwrap(), 1);

    // A worker runs both, each once.
    let worker = start(setup.config());
    for id in [waiting, lost] {
        let job = setup.wait_finished(id, Duration::from_secs(30)).await;
        assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1));
    }
    worker.stop().await;
    setup.cleanup().await;
}
