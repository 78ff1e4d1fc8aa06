//! `/v1/webhooks`: a user's default webhook URL and signing secret; `GET
//! /v1/jobs/{id}/deliveries`: every attempt to announce a job's end.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use strata_core::store::{DeliveryView, WebhookSettings};
use strata_core::webhooks::{guard, new_secret};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::submission::json_body;

/// How long the secret before a rotation goes on signing beside the new one: a day for
/// receivers to take the new one without dropping events.
const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/webhooks", get(settings).put(set_default))
        .route("/v1/webhooks/secret", post(rotate_secret))
        .route("/v1/jobs/{id}/deliveries", get(deliveries))
}

/// Checks a webhook URL a user gave, for the field `field`: http or https, and a host that
/// resolves to public addresses only (unless `webhooks.allow` lists it). Returns it as parsed.
pub async fn check_url(ctx: &ApiContext, field: &str, url: &str) -> ApiResult<String> {
    match guard::check(url, &ctx.config.webhooks.allow).await {
        Ok((url, _)) => Ok(url.to_string()),
        Err(refusal) => Err(ApiError::field(field, refusal.to_string())),
    }
}

/// The caller's webhook settings, and the secret when this request made it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    #[serde(flatten)]
    settings: WebhookSettings,
    /// The signing secret, present only in the answer that created it: keep it, it is not
    /// shown again (rotate it with `POST /v1/webhooks/secret` if lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

/// The caller's default webhook URL and when their signing secret was made; 404 before they
/// set either.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = SettingsView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn settings(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> ApiResult<Json<SettingsView>> {
    let settings = ctx
        .store
        .webhook_settings(&user.sub)
        .await?
        .ok_or(ApiError::NotFound("webhook settings"))?;
    Ok(Json(SettingsView {
        settings,
        secret: None,
    }))
}

/// `PUT /v1/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultUrl {
    /// Where the caller's jobs announce their end when submitted without `webhook_url`; null
    /// for nowhere.
    url: Option<String>,
}

/// Sets the caller's default webhook URL: jobs submitted without `webhook_url` announce their
/// end there (a job's own `webhook_url` wins; `"webhook_url": null` opts a job out). The first
/// call also makes the signing secret and shows it, once.
#[utoipa::path(put, path = "/v1/webhooks", tag = "webhooks",
    request_body(content = DefaultUrl, example = json!({"url": "https://hooks.example.com/strata"})),
    responses((status = 200, description = "Saved; `secret` only when this call made it", body = SettingsView),
              (status = 422, description = "Not an http(s) URL, or one reaching an internal address", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn set_default(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<SettingsView>> {
    let value = json_body(&headers, &body)?;
    let request: DefaultUrl = serde_json::from_value(value).map_err(|e| {
        ApiError::field(
            "url",
            format!("expected {{\"url\": \"https://...\"}} or {{\"url\": null}}: {e}"),
        )
    })?;
    let url = match &request.url {
        Some(url) => Some(check_url(&ctx, "url", url).await?),
        None => None,
    };
    let secret = new_secret();
    let (settings, created) = ctx
        .store
        .set_webhook_url(&user.sub, url.as_deref(), &secret)
        .await?;
    Ok(Json(SettingsView {
        settings,
        secret: created.then_some(secret),
    }))
}

/// Makes a new signing secret and shows it, once. For a day the previous secret signs events
/// too (a second `v1=` in `Strata-Signature`), so receivers can switch without dropping any.
#[utoipa::path(post, path = "/v1/webhooks/secret", tag = "webhooks",
    responses((status = 201, description = "The new secret, shown only here", body = SettingsView)),
    security(("bearer" = [])))]
pub async fn rotate_secret(State(ctx): State<ApiContext>, user: AuthUser) -> ApiResult<Response> {
    let secret = new_secret();
    let settings = ctx
        .store
        .rotate_webhook_secret(&user.sub, &secret, ROTATION_OVERLAP)
        .await?;
    let view = SettingsView {
        settings,
        secret: Some(secret),
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// A job's webhook deliveries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deliveries {
    /// The events announcing the job's end (one per final status), each with every attempt.
    deliveries: Vec<DeliveryView>,
}

/// Every event announcing the caller's job's end, and every attempt to deliver it: when, how
/// long it took, the receiver's status and the start of its answer, or why it failed.
#[utoipa::path(get, path = "/v1/jobs/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Deliveries), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Deliveries>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("job"))?;
    ctx.store
        .job(&user.sub, id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    let deliveries = ctx.store.job_deliveries(&user.sub, id).await?;
    Ok(Json(Deliveries { deliveries }))
}
