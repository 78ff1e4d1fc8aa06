//! Bearer tokens: who the caller is and which tier they pay for.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::tier::Tier;

/// The claims Strata requires in every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user: jobs and data sets belong to it.
    pub sub: String,
    /// The user's tier.
    pub tier: Tier,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    #[serde(default)]
    pub iat: i64,
    /// Operators may see every queue's depth and other users' jobs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token's signature, expiry or claims are wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key material in configuration cannot be used.
    #[error("cannot use the configured key: {0}")]
    Key(String),
}

/// Checks tokens with the configured algorithm and key.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// The verifier the configuration describes (HS256 secret, or RS256/ES256 public key).
    pub fn from_config(config: &Config) -> Result<Verifier, AuthError> {
        let (algorithm, key) = match config.jwt_algorithm.as_str() {
            "HS256" => {
                let secret = config
                    .jwt_secret
                    .as_ref()
                    .ok_or_else(|| AuthError::Key("no jwt_secret".into()))?;
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.expose().as_bytes()),
                )
            }
            name @ ("RS256" | "ES256") => {
                let path = config
                    .jwt_public_key
                    .as_ref()
                    .ok_or_else(|| AuthError::Key("no jwt_public_key".into()))?;
                let pem = std::fs::read(path)
                    .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
                let key = if name == "RS256" {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                }
                .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
                let algorithm = if name == "RS256" {
                    Algorithm::RS256
                } else {
                    Algorithm::ES256
                };
                (algorithm, key)
            }
            other => return Err(AuthError::Key(format!("unknown algorithm {other}"))),
        };
        // One algorithm only: a token claiming another (or `none`) is refused.
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Ok(Verifier { key, validation })
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

/// Signs an HS256 token for `sub` at `tier`, valid for `ttl_secs` (what `strata token` prints).
pub fn issue_token(
    secret: &str,
    sub: &str,
    tier: Tier,
    ttl_secs: i64,
    admin: bool,
) -> Result<String, AuthError> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        tier,
        exp: now + ttl_secs,
        iat: now,
        admin,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Key(e.to_string()))
}
