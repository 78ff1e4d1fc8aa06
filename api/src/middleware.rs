//! Cross-cutting behaviour of every route: request ids, tracing, metrics, problem+json for
//! every error, security headers, CORS, compression, timeouts and body limits.

use std::any::Any;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::context::ApiContext;
use crate::error::{problem, FieldError};
use crate::request_id::REQUEST_ID;

/// Wraps `router` in every layer, outermost first.
pub fn layers(router: Router<ApiContext>, ctx: &ApiContext) -> Router<ApiContext> {
    let config = &ctx.config.api;
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    // Every method a route answers (a browser asks before PUT and DELETE), and every header a
    // client reads: where a job went, the request's id to quote, when to retry, its rate.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
            REQUEST_ID.clone(),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            REQUEST_ID.clone(),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            HeaderName::from_static("idempotent-replayed"),
            // `GET /v1/datasets`: the caller's storage against the tier's quota.
            HeaderName::from_static("strata-storage-bytes"),
            HeaderName::from_static("strata-storage-bytes-limit"),
            HeaderName::from_static("strata-storage-datasets"),
            HeaderName::from_static("strata-storage-datasets-limit"),
            // A sweep's result: its ranked sets in all, whatever `top` and `offset` return.
            HeaderName::from_static(crate::routes::jobs::RESULTS_TOTAL),
        ])
        .max_age(Duration::from_secs(3600));
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("request", method = %request.method(), uri = %request.uri().path(), request_id = %id)
    });
    let security = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    router.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(crate::request_id::screen))
            .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
            .layer(trace)
            .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
            .layer(middleware::from_fn_with_state(ctx.clone(), record_metrics))
            .layer(middleware::from_fn_with_state(
                ctx.clone(),
                crate::quota::rate_limit,
            ))
            .layer(CompressionLayer::new())
            .layer(middleware::from_fn(problem_for_errors))
            .layer(middleware::from_fn_with_state(
                config.json_limit_bytes,
                refuse_oversized_bodies,
            ))
            .layer(middleware::from_fn(refuse_unknown_query))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(security)
            .layer(cors)
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(config.request_timeout_secs),
            ))
            .layer(DefaultBodyLimit::max(config.json_limit_bytes)),
    )
}

/// Most bytes of an oversized body read before it is refused, and for how long.
const DRAIN_MAX_BYTES: u64 = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Refuses a body that declares more bytes than `api.json_limit_bytes` with a 413, after
/// reading and dropping it (up to [`DRAIN_MAX_BYTES`], for at most [`DRAIN_TIME`]). A server
/// that answers and closes with a body unread makes the kernel reset the connection, and the
/// client may lose the answer with it: it would see "connection reset" instead of the 413 that
/// says why ("error writing a body to connection: Broken pipe", seen by the abuse suite on a
/// loaded machine). Uploads have a limit of their own (`api.upload_limit_bytes`).
async fn refuse_oversized_bodies(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let upload = request.method() == Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|path| path.as_str() == "/v1/datasets");
    match declared {
        Some(length) if length > limit as u64 && !upload => {
            if length <= DRAIN_MAX_BYTES {
                let mut body = request.into_body().into_data_stream();
                let drained = async { while let Some(Ok(_)) = body.next().await {} };
                let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
            }
            crate::error::ApiError::PayloadTooLarge(limit).into_response()
        }
        _ => next.run(request).await,
    }
}

/// Counts the request by route, method and status, and times it.
async fn record_metrics(State(ctx): State<ApiContext>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let metrics = &ctx.metrics;
    metrics
        .requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    metrics
        .latency
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The query parameters each operation takes, by (method, route), as the OpenAPI document
/// declares them: the document is the one list, so what it shows is exactly what is accepted.
static QUERY_PARAMETERS: LazyLock<HashMap<(Method, String), Vec<String>>> = LazyLock::new(|| {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::OpenApi;
    let document = crate::routes::ApiDoc::openapi();
    let mut taken = HashMap::new();
    for (path, item) in &document.paths.paths {
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let names = item
                .parameters
                .iter()
                .chain(&operation.parameters)
                .flatten()
                .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
                .map(|p| p.name.clone())
                .collect();
            taken.insert((method, path.clone()), names);
        }
    }
    taken
});

/// Refuses a query parameter the operation does not take (a typo such as `?limt=5` would
/// otherwise be ignored in silence): a 400 `unknown_query_parameter` that names it and lists
/// the ones the operation takes. Routes outside the OpenAPI document (`/docs`) are left alone.
async fn refuse_unknown_query(request: Request, next: Next) -> Response {
    let (Some(query), Some(route)) = (
        request.uri().query(),
        request.extensions().get::<MatchedPath>(),
    ) else {
        return next.run(request).await;
    };
    let key = (request.method().clone(), route.as_str().to_owned());
    let Some(taken) = QUERY_PARAMETERS.get(&key) else {
        return next.run(request).await;
    };
    let unknown: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name.into_owned())
        .filter(|name| !taken.contains(name))
        .fold(Vec::new(), |mut unknown, name| {
            if !unknown.contains(&name) {
                unknown.push(name);
            }
            unknown
        });
    if unknown.is_empty() {
        return next.run(request).await;
    }
    let takes = if taken.is_empty() {
        "no query parameters".to_owned()
    } else {
        taken.join(", ")
    };
    let quoted: Vec<String> = unknown.iter().map(|name| format!("'{name}'")).collect();
    let detail = format!(
        "unknown query parameter{} {}: {} {} takes {takes}",
        if unknown.len() > 1 { "s" } else { "" },
        quoted.join(", "),
        key.0,
        key.1
    );
    let errors = unknown
        .into_iter()
        .map(|name| FieldError {
            field: name,
            message: format!("not a query parameter of this operation, which takes {takes}"),
            column: None,
            expression: None,
        })
        .collect();
    problem(
        StatusCode::BAD_REQUEST,
        "unknown_query_parameter",
        detail,
        errors,
    )
}

/// Turns any error response that is not problem+json yet (unknown route, wrong method,
/// timeout, a framework rejection) into one, keeping its text as the detail.
async fn problem_for_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, 64 * 1024)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|t| !t.trim().is_empty());
    let (code, default) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this method is not allowed here"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported content type")
        }
        StatusCode::UNPROCESSABLE_ENTITY => ("validation_failed", "the request is invalid"),
        s if s.is_server_error() => ("internal", "an internal error occurred"),
        _ => ("bad_request", "the request is invalid"),
    };
    let detail = match text {
        Some(t) if status.is_client_error() => t,
        _ => default.to_owned(),
    };
    let mut converted = problem(status, code, detail, Vec::new());
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            converted.headers_mut().insert(name.clone(), value.clone());
        }
    }
    converted
}

/// A panicking handler becomes a logged 500, never a dropped connection.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = %message, "handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "an internal error occurred; it has been logged".to_owned(),
        Vec::new(),
    )
}
