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
        datasets::storage_usage,
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
    modifiers(&BearerAuth, &ProblemResponses),
    tags(
        (name = "jobs", description = "Backtests, sweeps and walk-forwards: submit, follow, cancel, read results"),
        (name = "webhooks", description = "Signed events announcing that jobs ended: default URL, signing secret, delivery log"),
        (name = "datasets", description = "Uploaded and bundled market data. A data set is named by \
            its id (an upload's UUID) or its name; names ignore ASCII case (`goog` is `GOOG`) in \
            every lookup (a spec's `data.dataset`, `GET` and `DELETE /v1/datasets/{id}`) and an \
            upload may not take a bundled example's name or one of yours in any case (409), so a \
            name means one data set. Bundled examples cannot be deleted (403)."),
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

/// Documents what every operation may answer besides its own outcomes, and documents every
/// error as `application/problem+json` (the handlers declare their errors with `Problem` under
/// the default `application/json`): a client generated from the document then expects what the
/// api really sends, and schema testing holds the api to it.
struct ProblemResponses;

/// Whether a common error applies to an operation.
type Applies = fn(&utoipa::openapi::path::Operation) -> bool;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, RefOr, Response};
        let problem = || Content::new(Some(Ref::from_schema_name("Problem")));
        // (status, description, whether the operation may answer it)
        let common: [(&str, &str, Applies); 7] = [
            (
                "400",
                "A malformed request: a query parameter the operation does not take \
                 (`unknown_query_parameter`, naming it), a path or query parameter's value, a \
                 header or the JSON body",
                |_| true,
            ),
            (
                "503",
                "PostgreSQL or Redis is unavailable for the moment; `Retry-After` says when to \
                 try again",
                |_| true,
            ),
            ("401", "No token, or one that is invalid or expired", |op| {
                op.security.as_ref().is_some_and(|s| !s.is_empty())
            }),
            (
                "429",
                "A rate or quota of the caller's tier is used up; `Retry-After` says when it \
                 frees",
                |op| op.security.as_ref().is_some_and(|s| !s.is_empty()),
            ),
            ("413", "The body is larger than the api takes", |op| {
                op.request_body.is_some()
            }),
            (
                "415",
                "A body of a type the operation does not take",
                |op| op.request_body.is_some(),
            ),
            (
                "409",
                "This `Idempotency-Key` was used before for a different request",
                |op| {
                    op.parameters
                        .iter()
                        .flatten()
                        .any(|p| p.name.eq_ignore_ascii_case("Idempotency-Key"))
                },
            ),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, description, applies) in &common {
                    if applies(operation) {
                        operation
                            .responses
                            .responses
                            .entry((*status).to_owned())
                            .or_insert_with(|| {
                                let mut response = Response::new(*description);
                                response
                                    .content
                                    .insert("application/problem+json".into(), problem());
                                RefOr::T(response)
                            });
                    }
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    let is_error = status.parse::<u16>().is_ok_and(|code| code >= 400);
                    if let (true, RefOr::T(response)) = (is_error, response) {
                        if let Some(content) = response.content.shift_remove("application/json") {
                            response
                                .content
                                .insert("application/problem+json".into(), content);
                        }
                    }
                }
            }
        }
    }
}
