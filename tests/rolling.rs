//! A rolling restart from the built binaries: `strata api`, 300 jobs of which 50 are sweeps of
//! 0.8 to 3 s, then three `strata worker` processes, and SIGTERM to each worker in turn while
//! they run (each replaced once it has exited). Every worker must exit cleanly within its grace
//! period; every job must succeed once: one result row, one logged success, and the jobs a
//! stopping worker handed back must have run again.
//!
//! The grace period (1 s) is shorter than a worker's queue of running sweeps, so some jobs are
//! finished within it and others handed back: both paths of the shutdown run.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_core::testing::TestEnv;
use strata_core::Tier;
use support::{
    assert_all_succeeded_once, attempts_histogram, log_lines, submit, token, wait_until_idle,
    DumpLogsOnPanic, LogDir, Submitted, SweepGrid, WorkerProcess, XorShift,
};

const JOBS: usize = 300;
/// Every sixth job is a sweep (50 of them, 0.8 to 3 s each on an idle core), the rest
/// backtests of a few milliseconds.
const SUBMITTERS: usize = 4;
const WORKERS: usize = 3;
const CONCURRENCY: usize = 4;
const GRACE_SECS: u64 = 1;
/// A worker hands back what did not finish within the grace period and exits; allow it this
/// much more (the worker waits up to 5 s for stopped jobs to hand themselves back).
const EXIT_SLACK: Duration = Duration::from_secs(8);

/// The sweeps: about a second or more each, so that two of them on one engine thread outlast
/// the grace period even on a fast machine (at half this size a faster VM finished every
/// sweep within the grace now and then, and the release path went untested).
const GRID: SweepGrid = SweepGrid {
    fast_to: 90,
    fast_spread: 80,
    slow_to: 800,
};

/// A sweep that started less than this many seconds ago has most of its work ahead of it.
const FRESH_SECS: f64 = 0.25;

/// Every running job: its worker, id, kind and seconds since it started.
async fn running_jobs_with_age(env: &TestEnv) -> Vec<(String, String, String, f64)> {
    sqlx::query_as(
        "SELECT worker_id, id::text, kind,
                extract(epoch FROM clock_timestamp() - started_at)::float8
         FROM jobs WHERE status = 'running' AND worker_id IS NOT NULL",
    )
    .fetch_all(&env.store.pool)
    .await
    .expect("running jobs")
}

fn job(i: usize) -> (&'static str, Value, String, Tier) {
    support::mixed_job("rolling", i, &GRID)
}

struct Stopped {
    worker: String,
    at: Duration,
    /// How long it took to exit after SIGTERM.
    took: Duration,
    /// The jobs running on it when it was told to stop: `(id, kind)`.
    running: Vec<(String, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_each_worker_in_turn_loses_nothing_and_runs_nothing_twice() {
    let (mut rng, seed) = XorShift::from_env("ROLLING_SEED");
    eprintln!("rolling seed {seed} (ROLLING_SEED={seed} repeats the pauses)");
    let logs = LogDir::from_env("ROLLING_LOGS");
    let data = tempfile::tempdir().unwrap();
    let env = TestEnv::new(data.path()).await;
    let extra = support::restart_env(10, GRACE_SECS);
    let (mut api, base) = env.start_api(support::binary(), &support::env_refs(&extra));
    // Four clients at once: the api expands each sweep's grid to check it, which takes a while.
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut submitters = Vec::new();
    for first in 0..SUBMITTERS {
        let (client, base) = (client.clone(), base.clone());
        submitters.push(tokio::spawn(async move {
            let mut submitted = Submitted::default();
            for i in (first..JOBS).step_by(SUBMITTERS) {
                let (path, body, user, tier) = job(i);
                let token = token(&user, tier);
                submit(&client, &base, path, &token, &body, &mut submitted).await;
            }
            submitted
        }));
    }
    let mut submitted = Submitted::default();
    for submitter in submitters {
        let mine = submitter.await.expect("a submitter");
        submitted.ids.extend(mine.ids);
        submitted.repeated.extend(mine.repeated);
    }
    eprintln!(
        "{JOBS} jobs submitted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The workers start with the whole backlog waiting, so every SIGTERM finds work running.
    let mut workers: Vec<WorkerProcess> = (0..WORKERS)
        .map(|w| WorkerProcess::start(&env, &extra, logs.path(), &format!("w{w}"), CONCURRENCY, 1))
        .collect();
    let _dump = DumpLogsOnPanic(logs.path());

    let mut stopped = Vec::new();
    for (w, worker) in workers.iter_mut().enumerate() {
        tokio::time::sleep(rng.secs(1.0, 2.0)).await;
        // Stop it while it runs at least two sweeps, one of them just started (more work than
        // its one engine thread does within the grace period, however fast the machine), or at
        // least two sweeps after 10 s, or anyhow after 20 s.
        let (deadline, give_up) = (
            Instant::now() + Duration::from_secs(10),
            Instant::now() + Duration::from_secs(20),
        );
        let running = loop {
            let mine: Vec<(String, String, f64)> = running_jobs_with_age(&env)
                .await
                .into_iter()
                .filter(|(worker_id, ..)| worker.is(worker_id))
                .map(|(_, id, kind, age)| (id, kind, age))
                .collect();
            let sweeps = mine.iter().filter(|(_, kind, _)| kind == "sweep");
            let fresh = sweeps.clone().any(|(.., age)| *age < FRESH_SECS);
            let sweeps = sweeps.count();
            let now = Instant::now();
            if (sweeps >= 2 && (fresh || now > deadline)) || now > give_up {
                break mine
                    .into_iter()
                    .map(|(id, kind, _)| (id, kind))
                    .collect::<Vec<_>>();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let at = started.elapsed();
        let within = Duration::from_secs(GRACE_SECS) + EXIT_SLACK;
        let Some((status, took)) = worker.terminate(within) else {
            panic!(
                "worker {} still runs {:.0?} after SIGTERM (grace {GRACE_SECS} s)",
                worker.name, within
            );
        };
        assert!(
            status.success(),
            "worker {} exited with {status} after SIGTERM",
            worker.name
        );
        stopped.push(Stopped {
            worker: worker.name.clone(),
            at,
            took,
            running,
        });
        *worker =
            WorkerProcess::start(&env, &extra, logs.path(), &format!("w{w}b"), CONCURRENCY, 1);
    }
    let drained = wait_until_idle(&env, 120).await;
    let histogram = attempts_histogram(&env).await;
    for s in &stopped {
        eprintln!(
            "{:5.1} s: SIGTERM to worker {}, running {:?}: exited 0 after {:.1} s",
            s.at.as_secs_f64(),
            s.worker,
            s.running,
            s.took.as_secs_f64()
        );
    }
    eprintln!(
        "all {JOBS} jobs done {:.1} s after the first submission (idle wait {:.1} s); \
         attempts -> jobs: {histogram:?}",
        started.elapsed().as_secs_f64(),
        drained.as_secs_f64()
    );
    assert!(
        submitted.repeated.is_empty(),
        "submissions refused: {:?}",
        submitted.repeated
    );
    assert_all_succeeded_once(&env, JOBS).await;

    let lines = log_lines(logs.path());
    let bad: Vec<&str> = lines
        .iter()
        .filter(|l| l.level == "ERROR" || l.raw.contains("panicked"))
        .map(|l| l.raw.as_str())
        .collect();
    assert!(bad.is_empty(), "errors in the worker logs: {bad:#?}");
    let dropped: Vec<&str> = lines
        .iter()
        .filter(|l| l.message.contains("result dropped"))
        .map(|l| l.raw.as_str())
        .collect();
    assert!(
        dropped.is_empty(),
        "runs that finished after their job was taken from them: {dropped:#?}"
    );
    // Every job ran to completion exactly once, over all the workers' lives.
    let mut successes = HashMap::<&str, usize>::new();
    for line in &lines {
        if line.message == "job succeeded" {
            if let Some(id) = &line.job_id {
                *successes.entry(id.as_str()).or_default() += 1;
            }
        }
    }
    let not_once: Vec<(&String, usize)> = submitted
        .ids
        .iter()
        .map(|id| (id, successes.get(id.as_str()).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        not_once.is_empty(),
        "jobs not logged as succeeded exactly once (id, times): {not_once:?}"
    );
    // The release path ran: jobs handed back by a stopping worker, and each ran again.
    let released: Vec<String> = lines
        .iter()
        .filter(|l| l.message.contains("handed back to the queue"))
        .filter_map(|l| l.job_id.clone())
        .collect();
    let attempts: HashMap<String, i32> =
        sqlx::query_as::<_, (String, i32)>("SELECT id::text, attempts FROM jobs")
            .fetch_all(&env.store.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    eprintln!(
        "handed back by stopping workers: {} jobs {released:?}",
        released.len()
    );
    assert!(
        !released.is_empty(),
        "no stopping worker handed a job back (grace {GRACE_SECS} s): the release path did not run"
    );
    for id in &released {
        assert!(
            attempts[id] >= 2,
            "job {id} was handed back but has {} attempt(s)",
            attempts[id]
        );
    }

    assert!(
        matches!(api.0.try_wait(), Ok(None)),
        "the api process exited"
    );
    for worker in &mut workers {
        assert!(worker.alive(), "worker {} exited", worker.name);
    }
    drop(workers);
    drop(api);
    env.cleanup().await;
}
