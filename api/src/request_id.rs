//! The `X-Request-ID` of a request: set (or kept from the client) by the outermost layer,
//! echoed on the response, logged, and stored with any job the request submits.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderName;

use crate::error::ApiError;

/// The header's name.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The current request's id.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(RequestId(
            parts
                .headers
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}
