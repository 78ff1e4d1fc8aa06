//! Health: liveness, readiness (PostgreSQL and Redis reachable) and a per-component report.
//! Anyone (a load balancer, an orchestrator's probe) sees whether each dependency is up; how
//! long it took to answer and why it is down (a driver's text, naming hosts and ports) only an
//! operator sees, with an admin token.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::auth::authenticate;
use crate::context::ApiContext;

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(health))
}

/// One dependency's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Component {
    /// `up` or `down`.
    status: &'static str,
    /// Round-trip time of a trivial request, milliseconds (admin tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    /// Why it is down (admin tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The whole report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when every component is up, else `unavailable`.
    status: &'static str,
    /// Each dependency by name.
    components: BTreeMap<&'static str, Component>,
}

/// How long a dependency may take to answer a health check before it counts as down: a probe
/// must get its answer well within the usual few seconds, even while PostgreSQL refuses
/// connections and the pool keeps retrying.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `probe`'s answer, or why there is none within [`CHECK_TIMEOUT`].
async fn within<T, E: std::fmt::Display>(
    what: &str,
    probe: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer from {what} within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

async fn check(ctx: &ApiContext) -> Health {
    let (db, redis) = tokio::join!(
        within("PostgreSQL", ctx.store.ping()),
        within("Redis", ctx.queues.ping()),
    );
    let component = |result: Result<std::time::Duration, String>| match result {
        Ok(latency) => Component {
            status: "up",
            latency_ms: Some(latency.as_secs_f64() * 1e3),
            error: None,
        },
        Err(e) => Component {
            status: "down",
            latency_ms: None,
            error: Some(e),
        },
    };
    let mut components = BTreeMap::new();
    components.insert("postgres", component(db));
    components.insert("redis", component(redis));
    let up = components.values().all(|c| c.status == "up");
    Health {
        status: if up { "ok" } else { "unavailable" },
        components,
    }
}

/// The report for `headers`' caller: in full for an admin token, otherwise each dependency's
/// status alone.
fn for_caller(mut health: Health, headers: &HeaderMap, ctx: &ApiContext) -> Health {
    let admin = authenticate(headers, &ctx.verifier).is_ok_and(|user| user.admin);
    if !admin {
        for component in health.components.values_mut() {
            component.latency_ms = None;
            component.error = None;
        }
    }
    health
}

/// 200 with the report, or 503 as problem+json carrying the same report.
fn answer(health: Health) -> Response {
    if health.status == "ok" {
        return Json(health).into_response();
    }
    let down: Vec<&str> = health
        .components
        .iter()
        .filter(|(_, c)| c.status != "up")
        .map(|(name, _)| *name)
        .collect();
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "code": "not_ready",
        "detail": format!("unreachable: {}", down.join(", ")),
        "components": health.components,
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER),
    );
    response
}

/// The process is up (it answers); nothing else is checked.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200)))]
pub async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready to serve: PostgreSQL and Redis answer; 503 otherwise. Each component's status; with
/// an admin token also its latency and why it is down.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = crate::error::Problem)),
    security((), ("bearer" = [])))]
pub async fn ready(State(ctx): State<ApiContext>, headers: HeaderMap) -> Response {
    answer(for_caller(check(&ctx).await, &headers, &ctx))
}

/// Every component's status; with an admin token also its latency and why it is down. 503
/// when one is down.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = crate::error::Problem)),
    security((), ("bearer" = [])))]
pub async fn health(State(ctx): State<ApiContext>, headers: HeaderMap) -> Response {
    answer(for_caller(check(&ctx).await, &headers, &ctx))
}
