//! The `X-Request-ID` of a request: kept from the client when it is a plain token, otherwise
//! replaced by one the api makes up; echoed on the response, logged, and stored with any job
//! the request submits.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

/// The header's name.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id kept from a client: a UUID, a trace id or a load balancer's id fits.
pub const MAX_REQUEST_ID_LEN: usize = 64;

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

/// Whether a client's request id can be logged, stored and echoed as it is: 1 to
/// [`MAX_REQUEST_ID_LEN`] letters, digits, `.`, `_` or `-`. Anything else (spaces, quotes,
/// newlines a log line could be forged with, megabytes of text) is not the client's to choose.
pub fn is_acceptable(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Drops a client's `X-Request-ID` that is not [acceptable](is_acceptable) (and every value but
/// the first when it is sent twice), so the next layer makes one up. Runs before anything reads
/// the header.
pub async fn screen(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    match headers.get(&REQUEST_ID) {
        None => {}
        // Kept; sent twice, only the first value counts.
        Some(first) if is_acceptable(first.as_bytes()) => {
            let first = first.clone();
            headers.insert(&REQUEST_ID, first);
        }
        Some(_) => {
            tracing::debug!("X-Request-ID is not a plain token of at most 64 characters: replaced");
            headers.remove(&REQUEST_ID);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens_are_kept_and_anything_else_is_not() {
        for kept in [
            "0b6f1c8e-6a3f-4b1e-9a8e-2f1d3c4b5a69",
            "req_42",
            "lb.7f3a",
            &"a".repeat(64),
        ] {
            assert!(is_acceptable(kept.as_bytes()), "{kept}");
        }
        for replaced in [
            "",
            &"a".repeat(65),
            "two words",
            "a\"quote",
            "new\nline",
            "semi;colon",
            "<script>",
            "caf\u{e9}",
        ] {
            assert!(!is_acceptable(replaced.as_bytes()), "{replaced:?}");
        }
    }
}
