//! The worker's small HTTP server: `/metrics` for Prometheus, `/health/live` and
//! `/health/ready` for orchestrators.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::{Worker, WorkerError};

/// A readiness check taking longer than this counts as a failure.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds `addr` and serves until `stop` turns true; returns the address bound (port 0 picks
/// one) and the server's task.
pub(crate) async fn serve(
    worker: Arc<Worker>,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), WorkerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WorkerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| WorkerError::Bind { addr, source })?;
    info!(address = %bound, "metrics on http://{bound}/metrics, health on /health/live and /health/ready");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(worker);
    let server = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|&stop| stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "the metrics server stopped");
        }
    });
    Ok((bound, server))
}

async fn metrics(State(worker): State<Arc<Worker>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        strata_core::metrics::render(&worker.registry),
    )
        .into_response()
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when PostgreSQL and Redis answer, 503 otherwise; each with its latency or error.
async fn ready(State(worker): State<Arc<Worker>>) -> Response {
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, worker.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, worker.queues.ping()),
    );
    let report =
        |outcome: Result<Result<Duration, String>, tokio::time::error::Elapsed>| match outcome {
            Ok(Ok(latency)) => (
                true,
                json!({"status": "up", "latency_ms": latency.as_secs_f64() * 1e3}),
            ),
            Ok(Err(e)) => (false, json!({"status": "down", "error": e})),
            Err(_) => (false, json!({"status": "down", "error": "timed out"})),
        };
    let (pg_up, postgres) = report(postgres.map(|r| r.map_err(|e| e.to_string())));
    let (redis_up, redis) = report(redis.map(|r| r.map_err(|e| e.to_string())));
    let up = pg_up && redis_up;
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if up { "ready" } else { "unavailable" },
        "components": {"postgres": postgres, "redis": redis},
    });
    (status, Json(body)).into_response()
}
