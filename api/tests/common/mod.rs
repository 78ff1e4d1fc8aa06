//! `spawn_app`: the real api on port 0 against a fresh database and Redis prefix, optionally
//! with a worker in the same process.

#![allow(dead_code)]

pub mod receiver;

use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use strata_core::auth::issue_token;
use strata_core::testing::{TestEnv, TEST_SECRET};
use strata_core::Tier;
use tokio::sync::oneshot;

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub env: Option<TestEnv>,
    pub config: strata_core::Config,
    _data_dir: tempfile::TempDir,
    stop_api: Option<oneshot::Sender<()>>,
    stop_worker: Option<oneshot::Sender<()>>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// The api alone: jobs stay queued.
pub async fn spawn_app() -> TestApp {
    spawn(false, |_| {}).await
}

/// The api alone, with its configuration adjusted first.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut strata_core::Config)) -> TestApp {
    spawn(false, tweak).await
}

/// The api and a worker in this process: jobs run.
pub async fn spawn_app_with_worker() -> TestApp {
    spawn(true, |_| {}).await
}

/// The api and a worker in this process, with their configuration adjusted first.
pub async fn spawn_app_and_worker_with(tweak: impl FnOnce(&mut strata_core::Config)) -> TestApp {
    spawn(true, tweak).await
}

async fn spawn(with_worker: bool, tweak: impl FnOnce(&mut strata_core::Config)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let env = TestEnv::new(data_dir.path()).await;
    let mut config = env.config.clone();
    tweak(&mut config);
    let (address, stop_api) = serve_api(config.clone()).await;
    let mut app = TestApp {
        address,
        client: Client::new(),
        env: Some(env),
        config,
        _data_dir: data_dir,
        stop_api: Some(stop_api),
        stop_worker: None,
        worker: None,
    };
    if with_worker {
        app.start_worker();
    }
    app
}

/// Another api on a port of its own with `config` (give it a `TestApp`'s for a second replica
/// on the same database and Redis prefix); it serves until the sender is used or dropped.
pub async fn serve_api(config: strata_core::Config) -> (String, oneshot::Sender<()>) {
    let ctx = strata_api::ApiContext::connect(config)
        .await
        .expect("api context");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        strata_api::serve(ctx, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("api serves");
    });
    (address, stop)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Starts a worker in this process (once): queued jobs run from now on.
    pub fn start_worker(&mut self) {
        if self.worker.is_some() {
            return;
        }
        let (tx, rx) = oneshot::channel::<()>();
        let mut worker_config = self.config.clone();
        worker_config.worker.concurrency = 4;
        worker_config.worker.threads = 2;
        let handle = tokio::spawn(async move {
            strata_worker::run(worker_config, async {
                let _ = rx.await;
            })
            .await
            .expect("worker runs");
        });
        self.stop_worker = Some(tx);
        self.worker = Some(handle);
    }

    /// Stops the worker as SIGTERM would, and waits until it has stopped.
    pub async fn stop_worker(&mut self) {
        if let Some(tx) = self.stop_worker.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.worker.take() {
            tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("the worker stops within 30 s")
                .expect("the worker stops cleanly");
        }
    }

    /// An operator's token (the `admin` claim).
    pub fn admin_token(&self, sub: &str) -> String {
        issue_token(TEST_SECRET, sub, Tier::Elite, 3600, true).unwrap()
    }

    pub fn token(&self, sub: &str, tier: Tier) -> String {
        issue_token(TEST_SECRET, sub, tier, 3600, false).unwrap()
    }

    pub fn get(&self, path: &str, user: &str) -> RequestBuilder {
        self.client
            .get(self.url(path))
            .bearer_auth(self.token(user, Tier::Pro))
    }

    pub fn post(&self, path: &str, user: &str) -> RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(self.token(user, Tier::Pro))
    }

    /// `GET path` as `user`, the body as JSON (whatever the status).
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, user: &str) -> T {
        self.get(path, user)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn post_backtest(&self, user: &str, spec: &Value) -> Response {
        self.post("/v1/backtests", user)
            .json(spec)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_sweep(&self, user: &str, spec: &Value) -> Response {
        self.post("/v1/sweeps", user)
            .json(spec)
            .send()
            .await
            .unwrap()
    }

    pub async fn job(&self, user: &str, id: &str) -> Value {
        let response = self
            .get(&format!("/v1/jobs/{id}"), user)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls until the job has finished, for at most `secs`.
    pub async fn wait_finished(&self, user: &str, id: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let job = self.job(user, id).await;
            let status = job["status"].as_str().unwrap().to_owned();
            if matches!(status.as_str(), "succeeded" | "failed" | "cancelled") {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} still {status} after {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops worker and api, drops the database and the Redis keys.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop_worker.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.worker.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), handle).await;
        }
        if let Some(tx) = self.stop_api.take() {
            let _ = tx.send(());
        }
        if let Some(env) = self.env.take() {
            env.cleanup().await;
        }
    }
}

/// The README's example spec on the bundled GOOG data.
pub fn goog_spec() -> Value {
    json!({
        "data": {"dataset": "GOOG", "start": "2005-01-01", "end": "2012-12-31"},
        "strategy": {"template": "sma_cross", "params": {"fast": 10, "slow": 20}},
        "direction": "long",
        "execution": {"fill": "next_open", "fees": 0.001, "initial_cash": 10000, "size": 1.0},
        "precision": "bar"
    })
}

/// Asserts an error response is problem+json with `code`, and returns its body.
pub async fn problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        ct.starts_with("application/problem+json"),
        "content type {ct}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    body
}
