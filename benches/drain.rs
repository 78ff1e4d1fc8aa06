//! Scale to zero and back: with no worker running, 50,000 tiny backtests are submitted over
//! HTTP (equal thirds per tier, several users per tier) and wait in PostgreSQL; then three
//! `strata worker` processes start. Measures how long they take to drain it all, that none of
//! them fails, and in what order the tiers are served: while every tier still has a backlog,
//! elite should get about 6/10 of the slots, pro 3/10 and basic 1/10 (the default weights).
//!
//! `cargo bench --bench drain` (needs the machine's PostgreSQL and Redis; uses a fresh database
//! and key prefix). Options through the environment: `DRAIN_JOBS` (default 50000),
//! `DRAIN_WORKERS` (3), `DRAIN_CONCURRENCY` (jobs at once per worker, 8), `DRAIN_THREADS`
//! (engine threads per worker, 1), `DRAIN_USERS` (users per tier, 4), `DRAIN_CLIENTS`
//! (concurrent HTTP submitters, 16), `DRAIN_FIRST_PERCENT` (the share of first finishes whose
//! tier mix is reported, 10), `DRAIN_TIMEOUT_SECS` (1200).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use strata_core::testing::TestEnv;
use strata_core::Tier;
use support::{status_counts, submit, token, Submitted, WorkerProcess};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Job `i`: a tiny backtest (31 daily GOOG bars) of tier `i % 3`, by one of `users` users.
fn job(i: usize, users: usize) -> (Tier, String, serde_json::Value) {
    let tier = Tier::ALL[i % 3];
    let user = format!("drain-{}-{}", tier.as_str(), (i / 3) % users);
    let spec = json!({
        "data": {"dataset": "GOOG", "start": "2012-01-01", "end": "2012-02-15"},
        "strategy": {"template": "sma_cross", "params": {"fast": 2 + i % 5, "slow": 10}},
    });
    (tier, user, spec)
}

/// Thousands separators: 50000 -> "50,000".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The tiers in the order the report lists them; counts per tier are indexed alike.
const TIERS: [Tier; 3] = [Tier::Elite, Tier::Pro, Tier::Basic];

/// Index in [`TIERS`] of the tier called `name`.
fn tier_index(name: &str) -> usize {
    TIERS
        .iter()
        .position(|t| t.as_str() == name)
        .expect("a known tier")
}

/// How many of `tiers` (indices in [`TIERS`]) are of each tier.
fn counts(tiers: &[usize]) -> [usize; 3] {
    let mut n = [0; 3];
    for &t in tiers {
        n[t] += 1;
    }
    n
}

/// "elite 60.1 %, pro 29.9 %, basic 10.0 %" of a count per tier.
fn shares(n: [usize; 3]) -> String {
    let total = n.iter().sum::<usize>().max(1) as f64;
    TIERS
        .iter()
        .zip(n)
        .map(|(tier, n)| format!("{} {:.1} %", tier.as_str(), 100.0 * n as f64 / total))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() {
    let jobs = env_or("DRAIN_JOBS", 50_000);
    let worker_count = env_or("DRAIN_WORKERS", 3);
    let concurrency = env_or("DRAIN_CONCURRENCY", 8);
    let threads = env_or("DRAIN_THREADS", 1);
    let users = env_or("DRAIN_USERS", 4).max(1);
    let clients = env_or("DRAIN_CLIENTS", 16).max(1);
    let first_percent = env_or("DRAIN_FIRST_PERCENT", 10).clamp(1, 100);
    let timeout = Duration::from_secs(env_or("DRAIN_TIMEOUT_SECS", 1200) as u64);

    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let env = TestEnv::new(data.path()).await;
    let mut extra = support::unlimited_quotas();
    extra.push(("STRATA_WORKER__METRICS_BIND".into(), "127.0.0.1:0".into()));
    let (mut api, base) = env.start_api(support::binary(), &support::env_refs(&extra));

    // Scale to zero: every job accepted and stored while no worker runs.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let submitting = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, base, next) = (client.clone(), base.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut submitted = Submitted::default();
            let tokens: Vec<(String, String)> = Tier::ALL
                .iter()
                .flat_map(|&tier| {
                    (0..users).map(move |u| {
                        let user = format!("drain-{}-{u}", tier.as_str());
                        (user.clone(), token(&user, tier))
                    })
                })
                .collect();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    return submitted;
                }
                let (_, user, spec) = job(i, users);
                let token = &tokens.iter().find(|(u, _)| *u == user).expect("a token").1;
                submit(
                    &client,
                    &base,
                    "/v1/backtests",
                    token,
                    &spec,
                    &mut submitted,
                )
                .await;
            }
        }));
    }
    let mut accepted = 0;
    let mut repeated = Vec::new();
    for task in tasks {
        let submitted = task.await.expect("a submitter");
        accepted += submitted.ids.len();
        repeated.extend(submitted.repeated);
    }
    let submit_secs = submitting.elapsed().as_secs_f64();
    let stored = status_counts(&env).await;
    assert_eq!(accepted, jobs, "jobs accepted");
    assert_eq!(
        stored,
        vec![("queued".to_owned(), jobs as i64)],
        "every job stored as queued"
    );
    eprintln!(
        "{} jobs accepted and stored queued in {submit_secs:.1} s; starting {worker_count} workers",
        thousands(jobs)
    );

    // And back: the workers start, the clock starts (PostgreSQL's, which stamps the jobs).
    let t0: f64 = sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
        .fetch_one(&env.store.pool)
        .await
        .unwrap();
    let draining = Instant::now();
    let mut workers: Vec<WorkerProcess> = (0..worker_count)
        .map(|w| {
            WorkerProcess::start(
                &env,
                &extra,
                logs.path(),
                &format!("w{w}"),
                concurrency,
                threads,
            )
        })
        .collect();
    let mut last_report = Instant::now();
    loop {
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_one(&env.store.pool)
        .await
        .unwrap();
        if finished as usize == jobs {
            break;
        }
        for worker in &mut workers {
            assert!(
                worker.alive(),
                "worker {} exited while draining",
                worker.name
            );
        }
        assert!(
            draining.elapsed() < timeout,
            "{finished} of {jobs} jobs finished after {timeout:?}"
        );
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  {:.0} s: {} finished",
                draining.elapsed().as_secs_f64(),
                thousands(finished as usize)
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = draining.elapsed().as_secs_f64();
    let exited = workers
        .iter_mut()
        .map(|w| !w.alive())
        .filter(|&gone| gone)
        .count();
    let api_alive = matches!(api.0.try_wait(), Ok(None));

    // The order the tiers were served in.
    let rows: Vec<(String, f64, f64, i32, String)> = sqlx::query_as(
        "SELECT tier, extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8,
                attempts, status
         FROM jobs ORDER BY finished_at, id",
    )
    .fetch_all(&env.store.pool)
    .await
    .unwrap();
    let succeeded = rows.iter().filter(|r| r.4 == "succeeded").count();
    let retried = rows.iter().filter(|r| r.3 > 1).count();
    let by_finish: Vec<usize> = rows.iter().map(|r| tier_index(&r.0)).collect();
    let mut by_start: Vec<(f64, usize)> = rows.iter().map(|r| (r.1, tier_index(&r.0))).collect();
    by_start.sort_by(|a, b| a.0.total_cmp(&b.0));
    let by_start: Vec<usize> = by_start.into_iter().map(|(_, t)| t).collect();
    let mut last_finish = [0.0f64; 3];
    for r in &rows {
        let t = tier_index(&r.0);
        last_finish[t] = last_finish[t].max(r.2 - t0);
    }
    let first = jobs * first_percent / 100;
    // Until the first tier ran out of jobs, every tier had a backlog.
    let first_done = last_finish.iter().copied().fold(f64::INFINITY, f64::min);
    let while_all: Vec<usize> = rows
        .iter()
        .filter(|r| r.2 - t0 <= first_done)
        .map(|r| tier_index(&r.0))
        .collect();
    let log_errors = support::log_lines(logs.path())
        .iter()
        .filter(|l| l.level == "ERROR" || l.raw.contains("panicked"))
        .count();

    let total = thousands(jobs);
    let per_tier = counts(&by_finish);
    println!();
    println!(
        "drain: {total} tiny backtests ({} elite, {} pro, {} basic; {users} users per tier), \
         {worker_count} workers (--concurrency {concurrency} --threads {threads})",
        thousands(per_tier[0]),
        thousands(per_tier[1]),
        thousands(per_tier[2]),
    );
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| submitted over HTTP, no worker running ({clients} clients) | {total} accepted in {submit_secs:.1} s = {} jobs/s; {total} stored queued; {} answers repeated after 503/429 |",
        thousands((jobs as f64 / submit_secs).round() as usize),
        repeated.len()
    );
    println!(
        "| drained by {worker_count} workers | {} of {total} succeeded in {drain_secs:.1} s = **{} jobs/s**; {retried} needed more than one attempt |",
        thousands(succeeded),
        thousands((jobs as f64 / drain_secs).round() as usize)
    );
    println!(
        "| processes that exited | {exited} of {worker_count} workers; api {}; {log_errors} ERROR or panic lines in the worker logs |",
        if api_alive { "running" } else { "EXITED" }
    );
    println!(
        "| first {first_percent} % of finishes ({}) | {} (weights: elite 60 %, pro 30 %, basic 10 %) |",
        thousands(first),
        shares(counts(&by_finish[..first]))
    );
    println!(
        "| first {first_percent} % of starts ({}) | {} |",
        thousands(first),
        shares(counts(&by_start[..first]))
    );
    println!(
        "| all finishes while every tier had a backlog (first {:.1} s, {} jobs) | {} |",
        first_done,
        thousands(while_all.len()),
        shares(counts(&while_all))
    );
    println!(
        "| last job finished, after the workers started | elite {:.1} s, pro {:.1} s, basic {:.1} s |",
        last_finish[0], last_finish[1], last_finish[2]
    );
    println!();
    println!("finishes per tenth of the run (by count):");
    println!("| finishes | elite | pro | basic |");
    println!("|---|---|---|---|");
    for d in 0..10 {
        let (from, to) = (jobs * d / 10, jobs * (d + 1) / 10);
        let n = counts(&by_finish[from..to]);
        let size = (to - from).max(1) as f64;
        println!(
            "| {}..{} | {:.1} % | {:.1} % | {:.1} % |",
            thousands(from + 1),
            thousands(to),
            100.0 * n[0] as f64 / size,
            100.0 * n[1] as f64 / size,
            100.0 * n[2] as f64 / size,
        );
    }

    drop(workers);
    drop(api);
    env.cleanup().await;
    assert_eq!(succeeded, jobs, "every job succeeded");
    assert_eq!(exited, 0, "no worker exited");
}
