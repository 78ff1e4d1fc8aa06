//! One error type for the whole API, answered as `application/problem+json` (RFC 9457) with a
//! stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::spec::{SpecError, SpecErrors};
use serde::Serialize;

/// The result of every handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one that is not valid.
    #[error("{0}")]
    Unauthorized(String),
    /// The resource does not exist for this user.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well-formed but its content is wrong; `errors` say where.
    #[error("{detail}")]
    Validation {
        /// A one-line summary.
        detail: String,
        /// One entry per problem.
        errors: Vec<FieldError>,
    },
    /// The job is larger than the caller's tier allows in a way a plain validation failure does
    /// not say (`job_memory_exceeded`): a 422 with its own code, whose `errors` name the field.
    #[error("{detail}")]
    OverBudget {
        /// Stable machine-readable code.
        code: &'static str,
        /// Which limit, the job's size against it, and the tier that would allow more.
        detail: String,
        /// The field the size comes from.
        errors: Vec<FieldError>,
    },
    /// A body of a content type the operation does not take: a 415 naming the ones it does.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request cannot be read at all (not JSON, a bad header or query parameter).
    #[error("{detail}")]
    BadRequest {
        /// Stable machine-readable code.
        code: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The resource is not in a state that allows this.
    #[error("{detail}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A quota of the caller's tier is used up for now; retry after `retry_after` seconds.
    #[error("{detail}")]
    Limited {
        /// Stable machine-readable code.
        code: &'static str,
        /// Which limit, its value, and the tier that would allow more.
        detail: String,
        /// Seconds until a retry can succeed.
        retry_after: u64,
    },
    /// What the request would store is more than allowed: `dataset_too_large` (an upload over
    /// the api's row, column or size limits), `storage_quota_exceeded` (over the tier's
    /// `storage_mb`). A 413.
    #[error("{detail}")]
    TooLarge {
        /// Stable machine-readable code.
        code: &'static str,
        /// Which limit, its value, what was found, and the tier that would allow more.
        detail: String,
    },
    /// The api is at capacity for this kind of work (`uploads_busy`): a 503 with `Retry-After`,
    /// as a retry in a few seconds may succeed.
    #[error("{detail}")]
    Busy {
        /// Stable machine-readable code.
        code: &'static str,
        /// What is busy.
        detail: String,
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// The body is larger than the configured limit (bytes).
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// A dependency is down for now: `database_unavailable` (PostgreSQL) or `unavailable`
    /// (Redis); answered with `Retry-After`.
    #[error("{detail}")]
    Unavailable {
        /// Stable machine-readable code.
        code: &'static str,
        /// Which dependency, and what it said.
        detail: String,
    },
    /// A part of the service this server was not configured with (`ai_not_configured`): a 503
    /// without `Retry-After`, as waiting will not bring it.
    #[error("{detail}")]
    NotConfigured {
        /// Stable machine-readable code.
        code: &'static str,
        /// What is missing, and how an operator adds it.
        detail: String,
    },
    /// The caller may not do this: `admin_only` (an operator route without the `admin` claim),
    /// `precision_not_allowed` (a precision above the caller's tier).
    #[error("{detail}")]
    Forbidden {
        /// Stable machine-readable code.
        code: &'static str,
        /// What is not allowed, and what would allow it.
        detail: String,
    },
    /// A bug or an unexpected failure: logged in full, shown to the client without detail.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where a validation problem is: a field, and for an expression the column in it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `execution.fees` or `strategy.entry`.
    pub field: String,
    /// What is wrong there.
    pub message: String,
    /// 1-based column in the expression, for expression errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The expression, for expression errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

impl From<&SpecError> for FieldError {
    fn from(e: &SpecError) -> FieldError {
        match &e.expression {
            Some(x) => FieldError {
                field: e.field.clone(),
                message: x.message.clone(),
                column: Some(x.column),
                expression: Some(x.source.clone()),
            },
            None => FieldError {
                field: e.field.clone(),
                message: e.message.clone(),
                column: None,
                expression: None,
            },
        }
    }
}

impl From<SpecErrors> for ApiError {
    fn from(errors: SpecErrors) -> ApiError {
        ApiError::invalid(errors.0.iter().map(FieldError::from).collect())
    }
}

impl ApiError {
    /// A 422 listing `errors`.
    pub fn invalid(errors: Vec<FieldError>) -> ApiError {
        let detail = match errors.as_slice() {
            [one] if one.field.is_empty() => one.message.clone(),
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} problems in the request", many.len()),
        };
        ApiError::Validation { detail, errors }
    }

    /// A 422 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
            column: None,
            expression: None,
        }])
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::OverBudget { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Limited { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::TooLarge { code, .. } => (StatusCode::PAYLOAD_TOO_LARGE, code),
            ApiError::Busy { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            ApiError::Unavailable { code, .. } | ApiError::NotConfigured { code, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, code)
            }
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Seconds a client should wait before retrying while a dependency is down.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

impl ApiError {
    /// Redis cannot be reached.
    pub fn redis(e: impl std::fmt::Display) -> ApiError {
        ApiError::Unavailable {
            code: "unavailable",
            detail: format!("Redis: {e}"),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        if strata_core::store::is_unavailable(&e) {
            // Logged here with its cause; the client sees only that the database is down.
            tracing::warn!(error = %e, "PostgreSQL unavailable");
            ApiError::Unavailable {
                code: "database_unavailable",
                detail: "the database is not reachable right now; retry shortly".to_owned(),
            }
        } else {
            ApiError::Internal(format!("database: {e}"))
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` identifies the problem.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The HTTP status phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`, `unauthorized`.
    pub code: String,
    /// What went wrong, for a human.
    pub detail: String,
    /// For validation failures: each problem and where it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// A problem+json response for `status` (used for errors raised outside handlers too).
pub fn problem(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Vec<FieldError>,
) -> Response {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        code: code.to_owned(),
        detail,
        errors,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                "an internal error occurred; it has been logged".to_owned()
            }
            ApiError::Unavailable { detail, .. } => {
                tracing::warn!(error = %detail, "dependency unavailable");
                detail.clone()
            }
            other => other.to_string(),
        };
        let mut response = match self {
            ApiError::Validation { errors, .. } | ApiError::OverBudget { errors, .. } => {
                problem(status, code, detail, errors)
            }
            ApiError::Limited { retry_after, .. } | ApiError::Busy { retry_after, .. } => {
                let mut response = problem(status, code, detail, Vec::new());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
            ApiError::Unavailable { .. } => {
                let mut response = problem(status, code, detail, Vec::new());
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_AFTER),
                );
                response
            }
            _ => problem(status, code, detail, Vec::new()),
        };
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750: say which scheme is expected and, for a bad token, that it is invalid.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"strata\", error=\"invalid_token\""),
            );
        }
        response
    }
}
