//! What every handler can reach: configuration, the store, the queues, the token verifier and
//! the metrics.

use std::sync::Arc;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use strata_core::auth::Verifier;
use strata_core::metrics::JobMetrics;
use strata_core::queue::Queues;
use strata_core::{Config, Store};

use crate::routes::datasets::DatasetView;

/// The api's shared state, cheap to clone (axum state).
#[derive(Clone)]
pub struct ApiContext {
    /// The configuration the api started with.
    pub config: Arc<Config>,
    /// PostgreSQL.
    pub store: Store,
    /// Redis (for readiness and queue depth; jobs reach Redis through the dispatcher).
    pub queues: Queues,
    /// Checks bearer tokens.
    pub verifier: Verifier,
    /// Everything `/metrics` shows.
    pub metrics: Arc<ApiMetrics>,
    /// The bundled examples' descriptions, read once.
    pub bundled: Arc<tokio::sync::OnceCell<Vec<DatasetView>>>,
    /// Job events for the server-sent event streams.
    pub events: crate::events::Events,
    /// Uploads in progress: their slots and staging files.
    pub uploads: crate::routes::datasets::Uploads,
    /// Turns true when the api shuts down: open event streams end, so the shutdown can finish.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The api's Prometheus metrics.
pub struct ApiMetrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Requests by route, method and status.
    pub requests: IntCounterVec,
    /// Request latency by route and method.
    pub latency: HistogramVec,
    /// Job counters (the api records submissions).
    pub jobs: JobMetrics,
}

impl ApiMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> prometheus::Result<ApiMetrics> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("strata_http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "strata_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            &["route", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let jobs = JobMetrics::register(&registry)?;
        Ok(ApiMetrics {
            registry,
            requests,
            latency,
            jobs,
        })
    }
}
