//! Every way a token can be wrong is a 401 with `WWW-Authenticate`, and users see only their own.

mod common;

use common::{goog_spec, problem, spawn_app};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use strata_core::testing::TEST_SECRET;

async fn refused(app: &common::TestApp, authorization: Option<String>) -> serde_json::Value {
    let mut request = app.client.get(app.url("/v1/jobs"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.headers().get("www-authenticate").is_some(),
        "401 without WWW-Authenticate"
    );
    problem(response, 401, "unauthorized").await
}

fn sign(claims: serde_json::Value, secret: &str) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn every_bad_token_is_refused() {
    let app = spawn_app().await;
    let later = chrono::Utc::now().timestamp() + 3600;

    let body = refused(&app, None).await;
    assert!(body["detail"].as_str().unwrap().contains("missing"));
    refused(&app, Some("Basic dXNlcjpwYXNz".into())).await;
    refused(&app, Some("Bearer not-a-jwt".into())).await;

    let wrong_signature = sign(
        json!({"sub": "ann", "tier": "pro", "exp": later}),
        "another-secret-that-is-at-least-32-bytes",
    );
    refused(&app, Some(format!("Bearer {wrong_signature}"))).await;

    let expired = sign(
        json!({"sub": "ann", "tier": "pro", "exp": chrono::Utc::now().timestamp() - 3600}),
        TEST_SECRET,
    );
    let body = refused(&app, Some(format!("Bearer {expired}"))).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("expired"),
        "{body}"
    );

    for missing in ["sub", "tier", "exp"] {
        let mut claims = json!({"sub": "ann", "tier": "pro", "exp": later});
        claims.as_object_mut().unwrap().remove(missing);
        let token = sign(claims, TEST_SECRET);
        refused(&app, Some(format!("Bearer {token}"))).await;
    }

    let bad_tier = sign(
        json!({"sub": "ann", "tier": "gold", "exp": later}),
        TEST_SECRET,
    );
    refused(&app, Some(format!("Bearer {bad_tier}"))).await;

    // alg "none": a header and claims with an empty signature.
    use base64_like::encode_segment;
    let none = format!(
        "{}.{}.",
        encode_segment(br#"{"alg":"none","typ":"JWT"}"#),
        encode_segment(format!(r#"{{"sub":"ann","tier":"elite","exp":{later}}}"#).as_bytes())
    );
    refused(&app, Some(format!("Bearer {none}"))).await;

    // A good token passes.
    let ok = app.get("/v1/jobs", "ann").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn users_see_only_their_own_jobs_and_datasets() {
    let app = spawn_app().await;
    let response = app.post_backtest("ann", &goog_spec()).await;
    assert_eq!(response.status(), 202);
    let job: serde_json::Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap();

    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/result")] {
        let response = app.get(&path, "bob").send().await.unwrap();
        problem(response, 404, "not_found").await;
    }
    let response = app
        .post(&format!("/v1/jobs/{id}/cancel"), "bob")
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    let listed: serde_json::Value = app.get_json("/v1/jobs", "bob").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 0);

    let csv = std::fs::read_to_string(app.config.bundled_dir.join("GOOG.csv")).unwrap();
    let uploaded: serde_json::Value = app
        .post("/v1/datasets?name=mine", "ann")
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dataset = uploaded["id"].as_str().unwrap();
    let response = app
        .get(&format!("/v1/datasets/{dataset}"), "bob")
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    let response = app
        .client
        .delete(app.url(&format!("/v1/datasets/{dataset}")))
        .bearer_auth(app.token("bob", strata_core::Tier::Pro))
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    // Bob cannot run a backtest on Ann's data set by name either.
    let mut spec = goog_spec();
    spec["data"]["dataset"] = json!("mine");
    let response = app.post_backtest("bob", &spec).await;
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "data.dataset");
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_token_and_a_sub_that_cannot_name_an_owner_are_refused() {
    let app = spawn_app().await;
    let later = chrono::Utc::now().timestamp() + 3600;

    // Over 8 KiB: refused before it is decoded, signature and all.
    let padded = sign(
        json!({"sub": "ann", "tier": "pro", "exp": later, "pad": "x".repeat(9000)}),
        TEST_SECRET,
    );
    let started = std::time::Instant::now();
    let body = refused(&app, Some(format!("Bearer {padded}"))).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(body["detail"].as_str().unwrap().contains("8192"), "{body}");
    // Just under it is read.
    let near = sign(
        json!({"sub": "ann", "tier": "pro", "exp": later, "pad": "x".repeat(5000)}),
        TEST_SECRET,
    );
    let response = app
        .client
        .get(app.url("/v1/jobs"))
        .bearer_auth(near)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A sub is stored with every job, logged and part of Redis keys.
    for sub in [
        String::new(),
        "a".repeat(257),
        "ann\u{0}".to_owned(),
        "ann\nlevel=error".to_owned(),
        "\u{1b}[31mred".to_owned(),
    ] {
        let token = sign(
            json!({"sub": sub, "tier": "pro", "exp": later}),
            TEST_SECRET,
        );
        let body = refused(&app, Some(format!("Bearer {token}"))).await;
        assert!(body["detail"].as_str().unwrap().contains("sub"), "{body}");
        // The same token cannot submit a job either.
        let response = app
            .client
            .post(app.url("/v1/backtests"))
            .bearer_auth(&token)
            .json(&goog_spec())
            .send()
            .await
            .unwrap();
        problem(response, 401, "unauthorized").await;
    }
    let longest = sign(
        json!({"sub": "a".repeat(256), "tier": "pro", "exp": later}),
        TEST_SECRET,
    );
    let response = app
        .client
        .post(app.url("/v1/backtests"))
        .bearer_auth(longest)
        .json(&goog_spec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn with_an_issuer_and_audience_configured_only_tokens_for_this_service_pass() {
    let app = common::spawn_app_with(|config| {
        config.jwt_issuer = Some("https://login.example.com/".into());
        config.jwt_audience = Some("strata".into());
    })
    .await;
    let later = chrono::Utc::now().timestamp() + 3600;
    let token = |claims: serde_json::Value| {
        let mut all = json!({"sub": "ann", "tier": "pro", "exp": later});
        all.as_object_mut()
            .unwrap()
            .extend(claims.as_object().unwrap().clone());
        sign(all, TEST_SECRET)
    };
    let good = token(json!({"iss": "https://login.example.com/", "aud": "strata"}));
    let response = app
        .client
        .get(app.url("/v1/jobs"))
        .bearer_auth(good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for (claims, says) in [
        // Both missing: either may be named first.
        (json!({}), "it has no '"),
        (json!({"aud": "strata"}), "it has no 'iss' claim"),
        (
            json!({"iss": "https://login.example.com/"}),
            "it has no 'aud' claim",
        ),
        (
            json!({"iss": "https://elsewhere.example/", "aud": "strata"}),
            "issuer",
        ),
        (
            json!({"iss": "https://login.example.com/", "aud": "billing"}),
            "audience",
        ),
    ] {
        let body = refused(&app, Some(format!("Bearer {}", token(claims.clone())))).await;
        let detail = body["detail"].as_str().unwrap().to_lowercase();
        assert!(detail.contains(says), "{claims}: {body}");
    }
    // Strata's own tokens (`strata token`) carry neither, so they no longer pass.
    let own = app.get("/v1/jobs", "ann").send().await.unwrap();
    problem(own, 401, "unauthorized").await;
    app.stop().await;
}

/// Base64url without padding, as JWT segments are written.
mod base64_like {
    pub fn encode_segment(bytes: &[u8]) -> String {
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
