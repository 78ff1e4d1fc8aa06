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
        let mut required = vec!["exp", "sub"];
        // An identity provider signs tokens for many services: only those it issued for this
        // one count. Without a configured audience, a token naming any is refused (RFC 7519).
        if let Some(issuer) = &config.jwt_issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &config.jwt_audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.leeway = 5;
        Ok(Verifier { key, validation })
    }

    /// The claims of a valid token. A token longer than [`MAX_TOKEN_BYTES`] is refused before
    /// it is decoded, and its `sub` must be a [usable user name](check_sub).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!(
                "the token is {} bytes long; at most {MAX_TOKEN_BYTES} are read",
                token.len()
            )));
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::Invalid(in_words(&e)))?;
        check_sub(&claims.sub).map_err(AuthError::Invalid)?;
        Ok(claims)
    }
}

/// Why jsonwebtoken refused a token, in words a user can act on (its own texts are Rust names
/// such as `InvalidSignature`).
fn in_words(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidToken => {
            "not a JWT: expected three base64url parts separated by dots".to_owned()
        }
        ErrorKind::InvalidSignature => {
            "its signature does not match: it was signed with another key".to_owned()
        }
        ErrorKind::ExpiredSignature => "it has expired (exp is past): get a new one".to_owned(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf is in the future)".to_owned(),
        ErrorKind::InvalidIssuer => "its issuer (iss) is not one this server accepts".to_owned(),
        ErrorKind::InvalidAudience => "its audience (aud) is not this server".to_owned(),
        ErrorKind::InvalidSubject => "its subject (sub) is not accepted".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "it is signed with an algorithm this server does not accept".to_owned()
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no '{claim}' claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("its '{claim}' claim has the wrong type"),
        ErrorKind::Base64(_) => "a part of it is not base64url".to_owned(),
        ErrorKind::Utf8(_) => "a part of it is not UTF-8 text".to_owned(),
        ErrorKind::Json(e) => {
            let what = e.to_string();
            let what = what.split(" at line ").next().unwrap_or_default();
            format!(
                "its claims do not read ({}): a Strata token has sub, tier (basic, pro or \
                 elite) and exp",
                what.replace('`', "'")
            )
        }
        _ => "it cannot be verified with this server's key".to_owned(),
    }
}

/// The longest token read. Strata's own are a few hundred bytes and an identity provider's a
/// few KiB; a longer one would only cost base64 and JSON decoding before it fails.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The longest `sub` accepted, in bytes.
pub const MAX_SUB_BYTES: usize = 256;

/// Checks a token's `sub`, which names the owner of every job and data set it creates and is
/// stored, logged and used in Redis keys: 1 to [`MAX_SUB_BYTES`] bytes, no control characters
/// (PostgreSQL refuses NUL in text; newlines would forge log lines).
pub fn check_sub(sub: &str) -> Result<(), String> {
    if sub.is_empty() || sub.len() > MAX_SUB_BYTES {
        return Err(format!(
            "sub must be 1 to {MAX_SUB_BYTES} bytes, got {}",
            sub.len()
        ));
    }
    if sub.chars().any(char::is_control) {
        return Err("sub must not contain control characters".to_owned());
    }
    Ok(())
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
        let refused = |token: &str| {
            Verifier::from_config(&config)
                .unwrap()
                .verify(token)
                .unwrap_err()
                .to_string()
        };
        // Why, in words rather than jsonwebtoken's names (`InvalidSignature`).
        assert_eq!(
            refused(&other),
            "invalid token: its signature does not match: it was signed with another key"
        );
        let expired = issue_token(&"s".repeat(32), "ann", Tier::Elite, -3600, false).unwrap();
        assert_eq!(
            refused(&expired),
            "invalid token: it has expired (exp is past): get a new one"
        );
        assert!(refused("not-a-token").starts_with("invalid token: not a JWT"));
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

    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret("s".repeat(32).as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn issuer_and_audience_are_checked_once_configured() {
        let exp = chrono::Utc::now().timestamp() + 600;
        let token = |extra: serde_json::Value| {
            let mut claims = serde_json::json!({"sub": "ann", "tier": "pro", "exp": exp});
            claims
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            signed(claims)
        };
        let plain = token(serde_json::json!({}));
        let right = token(serde_json::json!({"iss": "https://idp.example/", "aud": "strata"}));
        let many =
            token(serde_json::json!({"iss": "https://idp.example/", "aud": ["other", "strata"]}));
        let other_issuer =
            token(serde_json::json!({"iss": "https://evil.example/", "aud": "strata"}));
        let other_audience =
            token(serde_json::json!({"iss": "https://idp.example/", "aud": "billing"}));
        let no_audience = token(serde_json::json!({"iss": "https://idp.example/"}));

        // Not configured: no issuer needed, and a token meant for another audience is refused.
        let verifier = Verifier::from_config(&config()).unwrap();
        assert!(verifier.verify(&plain).is_ok());
        assert!(verifier.verify(&right).is_err());

        let mut configured = config();
        configured.jwt_issuer = Some("https://idp.example/".into());
        configured.jwt_audience = Some("strata".into());
        let verifier = Verifier::from_config(&configured).unwrap();
        assert_eq!(verifier.verify(&right).unwrap().sub, "ann");
        assert!(verifier.verify(&many).is_ok());
        for refused in [&plain, &other_issuer, &other_audience, &no_audience] {
            assert!(verifier.verify(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_sub_that_cannot_name_an_owner_and_an_oversized_token_are_refused() {
        let verifier = Verifier::from_config(&config()).unwrap();
        let exp = chrono::Utc::now().timestamp() + 600;
        let with_sub =
            |sub: &str| signed(serde_json::json!({"sub": sub, "tier": "pro", "exp": exp}));
        assert!(verifier
            .verify(&with_sub(&"a".repeat(MAX_SUB_BYTES)))
            .is_ok());
        for sub in [
            "",
            &"a".repeat(MAX_SUB_BYTES + 1),
            "ann\u{0}",
            "ann\nadmin",
            "\u{85}",
        ] {
            let refused = verifier.verify(&with_sub(sub)).unwrap_err().to_string();
            assert!(refused.contains("sub"), "{sub:?}: {refused}");
        }
        // Padding in an unchecked claim: valid but for its size.
        let padded = signed(serde_json::json!({
            "sub": "ann", "tier": "pro", "exp": exp, "pad": "x".repeat(MAX_TOKEN_BYTES)
        }));
        let refused = verifier.verify(&padded).unwrap_err().to_string();
        assert!(refused.contains("bytes long"), "{refused}");
    }
}
