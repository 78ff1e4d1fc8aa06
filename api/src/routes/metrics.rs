//! `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::context::ApiContext;

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new().route("/metrics", get(metrics))
}

/// Requests by route and status with latency histograms, jobs submitted, and queue depth per
/// queue (`backlog` in PostgreSQL, `ready` in Redis), read at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(ctx): State<ApiContext>) -> impl IntoResponse {
    ctx.metrics
        .jobs
        .refresh_queue_depth(&ctx.store, &ctx.queues)
        .await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        strata_core::metrics::render(&ctx.metrics.registry),
    )
}
