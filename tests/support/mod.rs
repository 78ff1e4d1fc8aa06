//! What the system-level tests (`tests/chaos.rs`, `tests/rolling.rs`) and the drain harness
//! (`benches/drain.rs`) share: worker processes with their logs in files, a private Redis they
//! can kill, signals, a seeded random source, submissions over HTTP and database checks.
//!
//! Each of those targets uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_core::testing::{TestEnv, TEST_SECRET};
use strata_core::Tier;

/// The built `strata` binary under test.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_strata"))
}

/// Environment variables as `TestEnv::command` takes them.
pub fn env_refs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Worker settings for tests that stop and kill workers: heartbeats every second, a lost job
/// back within `lease_secs`, fetched-but-unstarted messages back after 3 s, attempts enough
/// for several interruptions, and no quota in the way of the test's own pace.
pub fn restart_env(lease_secs: u64, grace_secs: u64) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("STRATA_WORKER__METRICS_BIND", "127.0.0.1:0".to_owned()),
        ("STRATA_WORKER__HEARTBEAT_SECS", "1".to_owned()),
        ("STRATA_WORKER__LEASE_SECS", lease_secs.to_string()),
        ("STRATA_WORKER__REDISPATCH_AFTER_SECS", "3".to_owned()),
        ("STRATA_WORKER__RETRY_BACKOFF_SECS", "1".to_owned()),
        ("STRATA_WORKER__MAX_ATTEMPTS", "10".to_owned()),
        ("STRATA_WORKER__GRACE_SECS", grace_secs.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(unlimited_quotas());
    vars
}

/// The grid of the sweeps in [`mixed_job`]: `fast` from 2 to `fast_to + i % fast_spread`,
/// `slow` from 20 to `slow_to` by 2, with `fast < slow`.
pub struct SweepGrid {
    /// Smallest upper end of `fast`.
    pub fast_to: usize,
    /// How much the upper end of `fast` varies from job to job.
    pub fast_spread: usize,
    /// Upper end of `slow`.
    pub slow_to: usize,
}

/// Job `i` of a mixed workload: its path, body, submitter and tier. Tiers take turns, two
/// users per tier (named `{who}-{tier}-{0|1}`); every sixth job is a sweep over `grid` (a few
/// hundred milliseconds), the rest are quick backtests.
pub fn mixed_job(who: &str, i: usize, grid: &SweepGrid) -> (&'static str, Value, String, Tier) {
    let tier = Tier::ALL[i % 3];
    let user = format!("{who}-{}-{}", tier.as_str(), (i / 3) % 2);
    if i % 6 == 0 {
        let spec = serde_json::json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"template": "sma_cross"},
            "grid": {
                "fast": format!("2:{}:1", grid.fast_to + i % grid.fast_spread.max(1)),
                "slow": format!("20:{}:2", grid.slow_to),
            },
            "constraint": "fast < slow",
            "objective": "sharpe",
            "top": 10,
        });
        ("/v1/sweeps", spec, user, tier)
    } else {
        let spec = serde_json::json!({
            "data": {"dataset": "GOOG", "start": "2005-01-01"},
            "strategy": {"template": "sma_cross", "params": {"fast": 3 + i % 10, "slow": 20 + i % 30}},
            "execution": {"fees": 0.001},
        });
        ("/v1/backtests", spec, user, tier)
    }
}

/// Quotas high enough that only the test's own pace limits its submissions, for every tier.
pub fn unlimited_quotas() -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for tier in ["BASIC", "PRO", "ELITE"] {
        for quota in [
            "ACTIVE_JOBS",
            "REQUESTS_PER_MINUTE",
            "SUBMISSIONS_PER_MINUTE",
            "SWEEP_SETS",
        ] {
            vars.push((
                format!("STRATA_TIERS__{tier}__{quota}"),
                "1000000000".into(),
            ));
        }
    }
    vars
}

/// A `strata worker` process whose stderr (JSON logs) goes to a file; killed when dropped.
pub struct WorkerProcess {
    /// `w0`, `w1`, ... then `w0b` for its replacement, as the test names it.
    pub name: String,
    pub child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl WorkerProcess {
    /// Starts `strata worker --concurrency N --threads T` for `env`, logging to `logs/NAME.log`.
    pub fn start(
        env: &TestEnv,
        extra: &[(String, String)],
        logs: &Path,
        name: &str,
        concurrency: usize,
        threads: usize,
    ) -> WorkerProcess {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create the worker's log file");
        let (concurrency, threads) = (concurrency.to_string(), threads.to_string());
        let child = env
            .command(
                binary(),
                &[
                    "worker",
                    "--concurrency",
                    &concurrency,
                    "--threads",
                    &threads,
                ],
                &env_refs(extra),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start strata worker");
        WorkerProcess {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether `worker_id` (`jobs.worker_id`: `host-pid-xxxx`) is this process.
    pub fn is(&self, worker_id: &str) -> bool {
        worker_id.contains(&format!("-{}-", self.pid()))
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `within` for it to exit: its exit status and how long it took,
    /// or `None` (it is still running) after `within`.
    pub fn terminate(&mut self, within: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        signal(self.pid(), "TERM");
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `SIG<name>` to `pid` with the system's `kill`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// A `redis-server` of the test's own on a free port, keeping nothing on disk, so killing it
/// loses everything it held. Killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis {
            port,
            dir: tempfile::tempdir().expect("a directory for redis-server"),
            child: None,
        };
        redis.spawn();
        redis
    }

    /// Everything redis-server logged, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("redis-server's log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "notice"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers PING.
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// SIGKILL: everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where the workers' logs go: the directory named by the environment variable `var` (kept
/// after the run, for a closer look), else a temporary one.
pub struct LogDir {
    path: PathBuf,
    _temporary: Option<tempfile::TempDir>,
}

impl LogDir {
    pub fn from_env(var: &str) -> LogDir {
        match std::env::var_os(var) {
            Some(dir) => {
                let path = PathBuf::from(dir);
                std::fs::create_dir_all(&path).expect("create the log directory");
                LogDir {
                    path,
                    _temporary: None,
                }
            }
            None => {
                let temporary = tempfile::tempdir().expect("a log directory");
                LogDir {
                    path: temporary.path().to_path_buf(),
                    _temporary: Some(temporary),
                }
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Prints the end of every log in `dir` when the test fails, so a CI log shows what the
/// workers were doing.
pub struct DumpLogsOnPanic<'a>(pub &'a Path);

impl Drop for DumpLogsOnPanic<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.0) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let lines = read_lines(&path);
            eprintln!("--- last lines of {} ---", path.display());
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    match std::fs::File::open(path) {
        Ok(file) => BufReader::new(file).lines().map_while(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// One line of a worker's JSON log.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// `INFO`, `WARN`, `ERROR`, ...
    pub level: String,
    pub message: String,
    /// The job the line is about (from its span), if any.
    pub job_id: Option<String>,
    /// The line as written.
    pub raw: String,
}

/// Every line of the worker logs in `dir` (lines that are not JSON, such as a panic's message,
/// come with level `RAW`).
pub fn log_lines(dir: &Path) -> Vec<LogLine> {
    let mut all = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return all;
    };
    for entry in entries.flatten() {
        for raw in read_lines(&entry.path()) {
            let line = match serde_json::from_str::<Value>(&raw) {
                Ok(log) => LogLine {
                    level: log["level"].as_str().unwrap_or_default().to_owned(),
                    message: log["message"]
                        .as_str()
                        .or_else(|| log["fields"]["message"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    job_id: log["span"]["job_id"]
                        .as_str()
                        .or_else(|| log["job_id"].as_str())
                        .map(str::to_owned),
                    raw,
                },
                Err(_) => LogLine {
                    level: "RAW".into(),
                    message: raw.clone(),
                    job_id: None,
                    raw,
                },
            };
            all.push(line);
        }
    }
    all
}

/// A token of `user` on `tier`, valid for an hour.
pub fn token(user: &str, tier: Tier) -> String {
    strata_core::auth::issue_token(TEST_SECRET, user, tier, 3600, false).expect("a token")
}

/// What a submission that had to be repeated was first answered.
#[derive(Debug, Default, Clone)]
pub struct Submitted {
    /// The job ids, in submission order.
    pub ids: Vec<String>,
    /// Submissions answered 503 or 429 before they were accepted, with the status.
    pub repeated: Vec<u16>,
}

/// POSTs `body` to `base` + `path` as `token`; repeats it after 503 (Redis, which counts the
/// rate limits, is away) and 429 for up to 30 s. Panics on any other answer but 202.
pub async fn submit(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: &Value,
    submitted: &mut Submitted,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => panic!("POST {path}: {e}"),
        };
        let status = response.status().as_u16();
        if status == 202 {
            let job: Value = response.json().await.expect("a job");
            let id = job["id"].as_str().expect("the job's id").to_owned();
            submitted.ids.push(id.clone());
            return id;
        }
        let text = response.text().await.unwrap_or_default();
        assert!(
            (status == 503 || status == 429) && Instant::now() < deadline,
            "POST {path} answered {status}: {text}"
        );
        submitted.repeated.push(status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Jobs by status.
pub async fn status_counts(env: &TestEnv) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY status ORDER BY status")
        .fetch_all(&env.store.pool)
        .await
        .expect("count jobs by status")
}

/// Waits until no job is queued or running; panics after `secs` with what is left.
pub async fn wait_until_idle(env: &TestEnv, secs: u64) -> Duration {
    let started = Instant::now();
    loop {
        let active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
                .fetch_one(&env.store.pool)
                .await
                .expect("count active jobs");
        if active == 0 {
            return started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(secs) {
            let stuck: Vec<(String, String, i32, Option<String>, bool)> = sqlx::query_as(
                "SELECT id::text, status, attempts, worker_id, dispatched_at IS NOT NULL
                 FROM jobs WHERE status IN ('queued', 'running') ORDER BY id LIMIT 20",
            )
            .fetch_all(&env.store.pool)
            .await
            .unwrap_or_default();
            panic!(
                "{active} jobs still queued or running after {secs} s ({:?}); the first \
                 (id, status, attempts, worker, dispatched): {stuck:#?}",
                status_counts(env).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The checks every run ends with: `expected` jobs, all succeeded, each with exactly one
/// result row.
pub async fn assert_all_succeeded_once(env: &TestEnv, expected: usize) {
    let pool = &env.store.pool;
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(jobs, expected as i64, "jobs stored");
    let not_succeeded: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT id::text, status, attempts, error FROM jobs WHERE status <> 'succeeded' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        not_succeeded.is_empty(),
        "{} jobs did not succeed (id, status, attempts, error): {not_succeeded:#?}",
        not_succeeded.len()
    );
    let results: i64 = sqlx::query_scalar("SELECT count(*) FROM job_results")
        .fetch_one(pool)
        .await
        .unwrap();
    let without: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM jobs j
         WHERE NOT EXISTS (SELECT 1 FROM job_results r WHERE r.job_id = j.id)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        without.is_empty(),
        "succeeded jobs without a result: {without:?}"
    );
    assert_eq!(results, expected as i64, "one result row per job");
}

/// How many jobs needed how many attempts: `(attempts, jobs)`.
pub async fn attempts_histogram(env: &TestEnv) -> Vec<(i32, i64)> {
    sqlx::query_as("SELECT attempts, count(*) FROM jobs GROUP BY attempts ORDER BY attempts")
        .fetch_all(&env.store.pool)
        .await
        .expect("attempts")
}

/// The running jobs: `(worker_id, job id, kind)`.
pub async fn running_jobs(env: &TestEnv) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT worker_id, id::text, kind FROM jobs
         WHERE status = 'running' AND worker_id IS NOT NULL",
    )
    .fetch_all(&env.store.pool)
    .await
    .expect("running jobs")
}

/// A small seeded random source (xorshift64*): enough to pick moments and victims, and a
/// printed seed repeats a run.
pub struct XorShift(u64);

impl XorShift {
    /// Seeded from `var` if set, else from the clock; returns the seed to print.
    pub fn from_env(var: &str) -> (XorShift, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x5eed)
            });
        (XorShift(seed.max(1)), seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A duration uniform in `[from, to)` seconds.
    pub fn secs(&mut self, from: f64, to: f64) -> Duration {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(from + (to - from) * unit)
    }
}
