//! Whole-system load harness: jobs per second through one worker, and the latency of
//! `GET /v1/jobs/{id}` under a fixed request rate.
//!
//! `cargo bench --bench load` (needs the machine's PostgreSQL and Redis; uses a fresh database
//! and key prefix). Options through the environment: `LOAD_JOBS` (default 5000),
//! `LOAD_RATE` (status polls per second, default 2000), `LOAD_SECS` (default 10),
//! `LOAD_CONCURRENCY` (worker concurrency, default 16).

use std::time::{Duration, Instant};

use serde_json::json;
use strata_core::auth::issue_token;
use strata_core::store::NewJob;
use strata_core::testing::{TestEnv, TEST_SECRET};
use strata_core::Tier;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A tiny backtest: a month and a half of daily GOOG bars.
fn tiny_spec(i: usize) -> serde_json::Value {
    json!({
        "data": {"dataset": "GOOG", "start": "2012-01-01", "end": "2012-02-15"},
        "strategy": {"template": "sma_cross", "params": {"fast": 2 + i % 5, "slow": 10}},
    })
}

async fn jobs_per_second(env: &TestEnv, jobs: usize, concurrency: usize) {
    let data_path = strata_core::datasets::bundled(&env.config, "GOOG").expect("bundled GOOG");
    for i in 0..jobs {
        env.store
            .submit(NewJob {
                owner: "load".into(),
                tier: Tier::Pro,
                kind: strata_core::job::JobKind::Backtest,
                spec: tiny_spec(i),
                data_path: data_path.clone(),
                request_id: None,
                idempotency_key: None,
                webhook: strata_core::store::Webhook::None,
            })
            .await
            .expect("submit");
    }
    let mut config = env.config.clone();
    config.worker.concurrency = concurrency;
    config.worker.threads = 0;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let worker = tokio::spawn(strata_worker::run(config, async {
        let _ = stopped.await;
    }));
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
            .fetch_one(&env.store.pool)
            .await
            .unwrap();
        if done as usize >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = worker.await;
    println!(
        "jobs end to end: {jobs} tiny backtests through one worker (concurrency {concurrency}) in {:.2} s = {:.0} jobs/s",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64()
    );
}

async fn status_latency(env: &TestEnv, rate: u64, secs: u64) {
    // `strata api` as its own process, as it runs in production. The harness is one user
    // polling far above a tier's requests_per_minute.
    let (_api, base) = env.start_api(
        std::path::Path::new(env!("CARGO_BIN_EXE_strata")),
        &[("STRATA_TIERS__PRO__REQUESTS_PER_MINUTE", "100000000")],
    );
    let token = issue_token(TEST_SECRET, "load", Tier::Pro, 3600, false).unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let submitted: serde_json::Value = client
        .post(format!("{base}/v1/backtests"))
        .bearer_auth(&token)
        .json(&tiny_spec(0))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{base}/v1/jobs/{}", submitted["id"].as_str().unwrap());
    // Warm the connection pool and the server.
    for _ in 0..200 {
        client.get(&url).bearer_auth(&token).send().await.unwrap();
    }
    // Open loop: request i is due at start + i / rate, and its latency counts from then, so a
    // slow server cannot hide its queueing (no coordinated omission).
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let client = client.clone();
        let url = url.clone();
        let token = token.clone();
        handles.push(tokio::spawn(async move {
            let response = client.get(&url).bearer_auth(&token).send().await;
            let ok = matches!(&response, Ok(r) if r.status() == 200);
            if let Ok(r) = response {
                let _ = r.bytes().await;
            }
            (due.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for handle in handles {
        let (latency, ok) = handle.await.unwrap();
        latencies.push(latency);
        errors += usize::from(!ok);
    }
    let achieved = total as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "GET /v1/jobs/{{id}} at {rate} req/s for {secs} s ({achieved:.0} req/s achieved, {errors} errors): \
         p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 0.999).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; any other argument selects nothing special.
    let jobs = env_or("LOAD_JOBS", 5000) as usize;
    let rate = env_or("LOAD_RATE", 2000);
    let secs = env_or("LOAD_SECS", 10);
    let concurrency = env_or("LOAD_CONCURRENCY", 16) as usize;
    let data = tempfile::tempdir().unwrap();

    let env = TestEnv::new(data.path()).await;
    status_latency(&env, rate, secs).await;
    env.cleanup().await;

    let env = TestEnv::new(data.path()).await;
    jobs_per_second(&env, jobs, concurrency).await;
    env.cleanup().await;
}
