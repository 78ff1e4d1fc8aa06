//! The `AuthUser` extractor: a handler that takes one requires a valid bearer token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use strata_core::auth::Verifier;
use strata_core::Tier;

use crate::context::ApiContext;
use crate::error::ApiError;

/// The caller, from a valid `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The token's `sub`: jobs and data sets belong to it.
    pub sub: String,
    /// The token's tier.
    pub tier: Tier,
    /// An operator token.
    pub admin: bool,
}

impl FromRequestParts<ApiContext> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, ApiError> {
        // The rate limiter has usually checked the token already and left the user here.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        authenticate(&parts.headers, &ctx.verifier)
    }
}

/// The user of a request's `Authorization: Bearer` token, or why there is none.
pub fn authenticate(headers: &HeaderMap, verifier: &Verifier) -> Result<AuthUser, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'".into())
        })?;
    let claims = verifier
        .verify(token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    Ok(AuthUser {
        sub: claims.sub,
        tier: claims.tier,
        admin: claims.admin,
    })
}

/// An operator: a valid token with the `admin` claim. Any other valid token is a 403
/// (`admin_only`), no token a 401.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<ApiContext> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, ctx).await?;
        if !user.admin {
            return Err(ApiError::Forbidden {
                code: "admin_only",
                detail: "this route needs a token with the admin claim".to_owned(),
            });
        }
        Ok(AdminUser(user))
    }
}
