//! Every route, one module per resource; `router` merges them.

pub mod admin;
pub mod ai;
pub mod backtests;
pub mod datasets;
pub mod events;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod sweeps;
pub mod webhooks;

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::context::ApiContext;

/// The API's routes, without the layers.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .merge(backtests::router())
        .merge(sweeps::router())
        .merge(jobs::router())
        .merge(events::router())
        .merge(webhooks::router())
        .merge(datasets::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(admin::router())
        .merge(ai::router())
        // The documentation page is served from the binary: it works with no internet.
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}

/// The OpenAPI document, generated from the handlers and types above.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Strata",
        description = "Tiered backtest service: submit backtests, parameter sweeps and AI jobs, \
                       poll their status, read their results. Every error is application/problem+json with \
                       a stable `code`."
    ),
    paths(
        backtests::create,
        sweeps::create,
        sweeps::walk_forward,
        jobs::status,
        jobs::list,
        jobs::cancel,
        jobs::result,
        events::job_events,
        events::all_events,
        webhooks::settings,
        webhooks::set_default,
        webhooks::rotate_secret,
        webhooks::deliveries,
        datasets::upload,
        datasets::list,
        datasets::describe,
        datasets::remove,
        health::live,
        health::ready,
        health::health,
        metrics::metrics,
        admin::queues,
        admin::poisoned,
        admin::retry,
        ai::strategies,
        ai::analyses,
        ai::usage,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Backtests, sweeps and walk-forwards: submit, follow, cancel, read results"),
        (name = "webhooks", description = "Signed events announcing that jobs ended: default URL, signing secret, delivery log"),
        (name = "datasets", description = "Uploaded and bundled market data"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "ai", description = "AI jobs: strategies from plain words, analyses of results (503 ai_not_configured without a language model)"),
        (name = "admin", description = "Operators (tokens with the admin claim): queues, workers, poison jobs, retries"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the secured paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
