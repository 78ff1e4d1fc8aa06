//! Crash safety from the built binaries: `strata api` and three `strata worker` processes on a
//! Redis of the test's own, 200 jobs submitted over HTTP, and meanwhile a worker killed with
//! SIGKILL three times (each time while it runs a job) and restarted, and Redis killed and
//! started again empty once (one of the jobs is submitted while it is down). Every job must
//! still succeed, with exactly one result row.
//!
//! The moments and victims are random; the seed is printed, and `CHAOS_SEED=N` repeats a run.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use strata_core::testing::TestEnv;
use strata_core::Tier;
use support::{
    assert_all_succeeded_once, attempts_histogram, log_lines, running_jobs, submit, token,
    wait_until_idle, DumpLogsOnPanic, LogDir, PrivateRedis, Submitted, SweepGrid, WorkerProcess,
    XorShift,
};

const JOBS: usize = 200;
/// Submitted at once; the rest trickle in during the chaos.
const FIRST_BATCH: usize = 100;
const WORKERS: usize = 3;
const CONCURRENCY: usize = 4;
const LEASE_SECS: u64 = 3;

/// Every sixth job is a sweep (34 of them) of 0.3 to 0.5 s on an idle core, so the kills find
/// jobs running.
const GRID: SweepGrid = SweepGrid {
    fast_to: 70,
    fast_spread: 30,
    slow_to: 300,
};

fn job(i: usize) -> (&'static str, Value, String, Tier) {
    support::mixed_job("chaos", i, &GRID)
}

/// Submits all jobs but the last (which is submitted while Redis is down): `FIRST_BATCH` at
/// once, the rest one every 100 ms.
async fn submit_all(base: String) -> Submitted {
    let client = reqwest::Client::new();
    let mut submitted = Submitted::default();
    for i in 0..JOBS - 1 {
        if i >= FIRST_BATCH {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (path, body, user, tier) = job(i);
        submit(
            &client,
            &base,
            path,
            &token(&user, tier),
            &body,
            &mut submitted,
        )
        .await;
    }
    submitted
}

/// What the test did to the system, for the report.
enum Event {
    Killed {
        at: Duration,
        worker: String,
        pid: u32,
        /// The jobs running on it when it was killed: `(id, kind)`.
        running: Vec<(String, String)>,
    },
    RedisRestarted {
        at: Duration,
        down_for: Duration,
        /// How long the api took to accept the job submitted as it went down.
        accepted_in: Duration,
        /// How long after it was back a worker started a job (`None`: none was waiting).
        resumed: Option<Duration>,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Killed {
                at,
                worker,
                pid,
                running,
            } => write!(
                f,
                "{:5.1} s: SIGKILL to worker {worker} (pid {pid}), running {running:?}",
                at.as_secs_f64()
            ),
            Event::RedisRestarted {
                at,
                down_for,
                accepted_in,
                resumed,
            } => write!(
                f,
                "{:5.1} s: Redis killed, started again (empty) {:.1} s later; a job \
                 submitted as it went down was accepted in {:.1} s; the next job started {}",
                at.as_secs_f64(),
                down_for.as_secs_f64(),
                accepted_in.as_secs_f64(),
                match resumed {
                    Some(after) => format!("{:.1} s after that", after.as_secs_f64()),
                    None => "never: none was waiting".to_owned(),
                }
            ),
        }
    }
}

/// How long until a worker starts a job from now (within 30 s), or `None` when no job waits.
async fn first_start_after_now(env: &TestEnv) -> Option<Duration> {
    let since = Instant::now();
    let (now,): (chrono::DateTime<chrono::Utc>,) = sqlx::query_as("SELECT clock_timestamp()")
        .fetch_one(&env.store.pool)
        .await
        .expect("the database's clock");
    while since.elapsed() < Duration::from_secs(30) {
        let (started, waiting): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE started_at > $1),
                    EXISTS (SELECT 1 FROM jobs WHERE status = 'queued')",
        )
        .bind(now)
        .fetch_one(&env.store.pool)
        .await
        .expect("job starts");
        if started {
            return Some(since.elapsed());
        }
        if !waiting {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(since.elapsed())
}

/// Kills a worker with SIGKILL while it runs a job (a sweep if any runs), then starts its
/// replacement. Picks at random among the workers running something; waits up to 5 s for one.
async fn kill_a_busy_worker(
    env: &TestEnv,
    extra: &[(String, String)],
    logs: &std::path::Path,
    workers: &mut [WorkerProcess],
    rng: &mut XorShift,
    started: Instant,
    restarts: &mut usize,
) -> Event {
    // Only the test's kills may end a worker: one that ended by itself would hide here.
    for worker in workers.iter_mut() {
        assert!(worker.alive(), "worker {} exited by itself", worker.name);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let (victim, running) = loop {
        let running = running_jobs(env).await;
        let busy: Vec<usize> = (0..workers.len())
            .filter(|&w| running.iter().any(|(id, _, _)| workers[w].is(id)))
            .collect();
        let on_sweeps: Vec<usize> = busy
            .iter()
            .copied()
            .filter(|&w| {
                running
                    .iter()
                    .any(|(id, _, kind)| workers[w].is(id) && kind == "sweep")
            })
            .collect();
        let choice = if !on_sweeps.is_empty() {
            Some(on_sweeps[rng.below(on_sweeps.len())])
        } else if !busy.is_empty() {
            Some(busy[rng.below(busy.len())])
        } else if Instant::now() > deadline {
            Some(rng.below(workers.len()))
        } else {
            None
        };
        if let Some(w) = choice {
            let jobs = running
                .into_iter()
                .filter(|(id, _, _)| workers[w].is(id))
                .map(|(_, job, kind)| (job, kind))
                .collect::<Vec<_>>();
            break (w, jobs);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let at = started.elapsed();
    let pid = workers[victim].pid();
    workers[victim].kill();
    let name = workers[victim].name.clone();
    *restarts += 1;
    workers[victim] = WorkerProcess::start(
        env,
        extra,
        logs,
        &format!("w{victim}-restart{restarts}"),
        CONCURRENCY,
        1,
    );
    Event::Killed {
        at,
        worker: name,
        pid,
        running,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_survive_three_worker_kills_and_a_redis_restart() {
    let (mut rng, seed) = XorShift::from_env("CHAOS_SEED");
    eprintln!("chaos seed {seed} (CHAOS_SEED={seed} repeats the moments and victims)");
    let logs = LogDir::from_env("CHAOS_LOGS");
    let data = tempfile::tempdir().unwrap();
    let mut redis = PrivateRedis::start();
    let env = TestEnv::new(data.path()).await;
    let mut extra = support::restart_env(LEASE_SECS, 2);
    extra.push(("REDIS_URL".to_owned(), redis.url()));
    // A SIGKILL looks like a job that killed its worker. The kills here are the test's, not the
    // jobs': a job hit twice must still run to success, not fail as poison (tests/poison.rs
    // checks that). It still runs alone after each hit.
    extra.push((
        "STRATA_WORKER__MAX_WORKER_DEATHS".to_owned(),
        (WORKERS * 10).to_string(),
    ));
    let (mut api, base) = env.start_api(support::binary(), &support::env_refs(&extra));
    let mut workers: Vec<WorkerProcess> = (0..WORKERS)
        .map(|w| WorkerProcess::start(&env, &extra, logs.path(), &format!("w{w}"), CONCURRENCY, 1))
        .collect();
    let _dump = DumpLogsOnPanic(logs.path());

    let started = Instant::now();
    let submitter = tokio::spawn(submit_all(base.clone()));

    // Three kills and a Redis restart, in random order, 1.5 to 3.5 s apart.
    let redis_turn = rng.below(4);
    let mut events = Vec::new();
    let mut restarts = 0;
    let mut next = rng.secs(1.5, 3.0);
    for turn in 0..4 {
        tokio::time::sleep(next.saturating_sub(started.elapsed())).await;
        if turn == redis_turn {
            let at = started.elapsed();
            redis.kill();
            // A job submitted now must be accepted (PostgreSQL keeps it; Redis is only the
            // transport) and run once Redis is back.
            let (path, body, user, tier) = job(JOBS - 1);
            let post = reqwest::Client::new()
                .post(format!("{base}{path}"))
                .bearer_auth(token(&user, tier))
                .json(&body)
                .send();
            let posting = tokio::spawn(async move {
                let posted = Instant::now();
                let response = post.await.expect("POST while Redis is down");
                let status = response.status();
                let answer = response.text().await.unwrap_or_default();
                assert_eq!(status, 202, "a job submitted while Redis is down: {answer}");
                posted.elapsed()
            });
            tokio::time::sleep(rng.secs(0.5, 1.5)).await;
            redis.restart();
            let down_for = started.elapsed() - at;
            let accepted_in = posting.await.expect("the submission during the outage");
            let resumed = first_start_after_now(&env).await;
            events.push(Event::RedisRestarted {
                at,
                down_for,
                accepted_in,
                resumed,
            });
        } else {
            events.push(
                kill_a_busy_worker(
                    &env,
                    &extra,
                    logs.path(),
                    &mut workers,
                    &mut rng,
                    started,
                    &mut restarts,
                )
                .await,
            );
        }
        next = started.elapsed() + rng.secs(1.5, 3.5);
    }
    let submitted = submitter.await.expect("the submitter");
    let drained = wait_until_idle(&env, 120).await;

    if std::env::var_os("CHAOS_LOGS").is_some() {
        let _ = std::fs::write(logs.path().join("redis-server.txt"), redis.log());
    }
    let histogram = attempts_histogram(&env).await;
    for event in &events {
        eprintln!("{event}");
    }
    eprintln!(
        "all {JOBS} jobs done {:.1} s after the first submission (idle wait {:.1} s); \
         attempts -> jobs: {histogram:?}; submissions repeated after 503/429: {:?}",
        started.elapsed().as_secs_f64(),
        drained.as_secs_f64(),
        submitted.repeated,
    );
    assert_eq!(submitted.ids.len(), JOBS - 1);
    assert_all_succeeded_once(&env, JOBS).await;

    // The kills hit running jobs. Each of them finished in a later attempt, or, when its result
    // was already on its way to PostgreSQL as its worker died, on that worker in its only one.
    let hits: Vec<(String, u32)> = events
        .iter()
        .flat_map(|e| match e {
            Event::Killed { running, pid, .. } => {
                running.iter().map(|(id, _)| (id.clone(), *pid)).collect()
            }
            Event::RedisRestarted { .. } => Vec::new(),
        })
        .collect();
    let ids: Vec<&str> = hits.iter().map(|(id, _)| id.as_str()).collect();
    let outcomes: std::collections::HashMap<String, (i32, Option<String>)> =
        sqlx::query_as::<_, (String, i32, Option<String>)>(
            "SELECT id::text, attempts, worker_id FROM jobs WHERE id::text = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&env.store.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, attempts, worker)| (id, (attempts, worker)))
        .collect();
    let (mut rerun, mut finished_dying, mut impossible) = (Vec::new(), Vec::new(), Vec::new());
    for (id, pid) in &hits {
        let (attempts, worker) = &outcomes[id];
        let by_victim = worker
            .as_deref()
            .is_some_and(|w| w.contains(&format!("-{pid}-")));
        if *attempts > 1 {
            rerun.push((id, *attempts));
        } else if by_victim {
            finished_dying.push(id);
        } else {
            impossible.push((id, *attempts, worker));
        }
    }
    eprintln!(
        "jobs running on killed workers: {}; run again: {rerun:?}; finished by the dying \
         worker: {finished_dying:?}",
        hits.len()
    );
    assert!(
        !rerun.is_empty(),
        "no job running on a killed worker ran again"
    );
    assert!(
        impossible.is_empty(),
        "jobs running on a killed worker that finished elsewhere without a new attempt \
         (id, attempts, worker): {impossible:?}"
    );

    // No process failed but those the test killed.
    assert!(
        matches!(api.0.try_wait(), Ok(None)),
        "the api process exited"
    );
    for worker in &mut workers {
        assert!(worker.alive(), "worker {} exited", worker.name);
    }
    let lines = log_lines(logs.path());
    let panics: Vec<&str> = lines
        .iter()
        .filter(|l| l.raw.contains("panicked"))
        .map(|l| l.raw.as_str())
        .collect();
    assert!(panics.is_empty(), "panics in the worker logs: {panics:#?}");
    // A success is logged only after it was written, so a job can have no such line (its
    // worker was killed in between) but never two.
    let mut successes = std::collections::HashMap::<&str, usize>::new();
    for line in &lines {
        if line.message == "job succeeded" {
            if let Some(id) = &line.job_id {
                *successes.entry(id.as_str()).or_default() += 1;
            }
        }
    }
    let twice: Vec<_> = successes.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "jobs that succeeded twice: {twice:?}");
    let dropped = lines
        .iter()
        .filter(|l| l.message.contains("result dropped"))
        .count();
    let redispatches = lines
        .iter()
        .filter(|l| l.message.starts_with("dispatching again"))
        .count();
    eprintln!(
        "{} jobs logged a success; {dropped} finished runs were dropped (their lease had gone); \
         {redispatches} reconciler passes dispatched lost messages again",
        successes.len()
    );

    // Stop the processes first, so none writes to the database after the cleanup.
    drop(workers);
    drop(api);
    env.cleanup().await;
    drop(redis);
}
