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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::process::Command;

    fn config() -> Config {
        use figment::providers::{Format, Toml};
        let mut config: Config = figment::Figment::from(Toml::string(crate::config::DEFAULT_TOML))
            .extract()
            .unwrap();
        config.jwt_secret = Some(Secret::new("s".repeat(32)));
        config
    }

    fn claims(tier: Tier) -> Claims {
        Claims {
            sub: "ann".into(),
            tier,
            exp: chrono::Utc::now().timestamp() + 600,
            iat: 0,
            admin: false,
        }
    }

    #[test]
    fn an_issued_token_verifies_and_another_secret_does_not() {
        let config = config();
        let token = issue_token(&"s".repeat(32), "ann", Tier::Elite, 60, true).unwrap();
        let claims = Verifier::from_config(&config)
            .unwrap()
            .verify(&token)
            .unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.tier, claims.admin),
            ("ann", Tier::Elite, true)
        );
        let other = issue_token(&"t".repeat(32), "ann", Tier::Elite, 60, false).unwrap();
        assert!(Verifier::from_config(&config)
            .unwrap()
            .verify(&other)
            .is_err());
    }

    /// RS256 and ES256 with a public key file: keys made by the openssl command line.
    #[test]
    fn rs256_and_es256_tokens_verify_with_the_configured_public_key() {
        let dir = tempfile::tempdir().unwrap();
        for (algorithm, genpkey_args) in [
            (
                "RS256",
                vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            ),
            (
                "ES256",
                vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            ),
        ] {
            let private = dir.path().join(format!("{algorithm}.key"));
            let public = dir.path().join(format!("{algorithm}.pub"));
            let ok = Command::new("openssl")
                .arg("genpkey")
                .args(&genpkey_args)
                .arg("-out")
                .arg(&private)
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl makes the test keys")
                .success()
                && Command::new("openssl")
                    .args(["pkey", "-pubout", "-in"])
                    .arg(&private)
                    .arg("-out")
                    .arg(&public)
                    .status()
                    .unwrap()
                    .success();
            assert!(ok, "openssl failed for {algorithm}");

            let mut config = config();
            config.jwt_algorithm = algorithm.to_owned();
            config.jwt_public_key = Some(public.clone());
            config.check().unwrap();
            let verifier = Verifier::from_config(&config).unwrap();
            let pem = std::fs::read(&private).unwrap();
            let (alg, key) = if algorithm == "RS256" {
                (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap())
            } else {
                (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap())
            };
            let token = jsonwebtoken::encode(&Header::new(alg), &claims(Tier::Pro), &key).unwrap();
            assert_eq!(
                verifier.verify(&token).unwrap().tier,
                Tier::Pro,
                "{algorithm}"
            );

            // An HS256 token made with the public key as its secret (the classic confusion) fails.
            let forged = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(Tier::Elite),
                &EncodingKey::from_secret(&std::fs::read(&public).unwrap()),
            )
            .unwrap();
            assert!(verifier.verify(&forged).is_err(), "{algorithm}");
        }
    }
}
