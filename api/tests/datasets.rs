//! Uploading (raw CSV, raw Parquet, multipart), describing, listing and deleting data sets.

mod common;

use common::{goog_spec, problem, spawn_app, spawn_app_with};
use serde_json::{json, Value};

#[tokio::test]
async fn csv_parquet_and_multipart_uploads_are_stored_and_described() {
    let app = spawn_app().await;
    let goog = app.config.bundled_dir.join("GOOG.csv");
    let csv = std::fs::read_to_string(&goog).unwrap();

    let response = app
        .post("/v1/datasets?name=goog-csv&symbol=GOOG", "ann")
        .header("content-type", "text/csv")
        .body(csv.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let from_csv: Value = response.json().await.unwrap();
    assert_eq!(from_csv["symbol"], "GOOG");
    assert_eq!(from_csv["spacing_seconds"], 86_400);
    let bars = from_csv["bars"].as_i64().unwrap();
    assert_eq!(bars as usize, csv.lines().count() - 1);
    assert!(from_csv["first_time"]
        .as_str()
        .unwrap()
        .starts_with("2004-08-19"));

    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("goog.parquet");
    engine::data::load(&goog, &Default::default())
        .unwrap()
        .write_parquet(&parquet)
        .unwrap();
    let response = app
        .post("/v1/datasets?name=goog-pq", "ann")
        .header("content-type", "application/vnd.apache.parquet")
        .body(std::fs::read(&parquet).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let from_parquet: Value = response.json().await.unwrap();
    assert_eq!(from_parquet["bars"], bars);
    assert_eq!(from_parquet["last_time"], from_csv["last_time"]);

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("goog.csv"),
    );
    let response = app
        .post("/v1/datasets?name=goog-form", "ann")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let from_form: Value = response.json().await.unwrap();
    assert_eq!(from_form["bars"], bars);

    let listed: Vec<Value> = app.get_json("/v1/datasets", "ann").await;
    let names: Vec<&str> = listed.iter().map(|d| d["name"].as_str().unwrap()).collect();
    for name in [
        "goog-csv",
        "goog-pq",
        "goog-form",
        "GOOG",
        "EURUSD",
        "BTCUSD",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    let bundled: Value = app.get_json("/v1/datasets/EURUSD", "ann").await;
    assert_eq!(bundled["bundled"], true);

    // A backtest on the upload, by name and by id, is accepted.
    let mut spec = goog_spec();
    spec["data"]["dataset"] = json!("goog-pq");
    assert_eq!(app.post_backtest("ann", &spec).await.status(), 202);
    spec["data"]["dataset"] = from_csv["id"].clone();
    assert_eq!(app.post_backtest("ann", &spec).await.status(), 202);

    let id = from_form["id"].as_str().unwrap();
    let delete = |id: String| {
        app.client
            .delete(app.url(&format!("/v1/datasets/{id}")))
            .bearer_auth(app.token("ann", strata_core::Tier::Pro))
            .send()
    };
    assert_eq!(delete(id.to_owned()).await.unwrap().status(), 204);
    problem(delete(id.to_owned()).await.unwrap(), 404, "not_found").await;
    let response = app
        .get(&format!("/v1/datasets/{id}"), "ann")
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn bad_uploads_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let upload = |name: &str, content_type: &str, body: &str| {
        app.post(&format!("/v1/datasets?name={name}"), "ann")
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
    };
    let broken = "time,open,high,low,close,volume\n\
                  2024-01-01,10,11,9,10.5,100\n\
                  2024-01-02,10,9,11,10.5,100\n";
    let body = problem(
        upload("bad", "text/csv", broken).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(body["errors"][0]["field"], "file");
    assert!(message.contains("row 2"), "{message}");
    assert!(
        !message.contains("staging"),
        "the server's paths stay private: {message}"
    );

    problem(
        upload("x", "application/json", "{}").await.unwrap(),
        400,
        "unsupported_media_type",
    )
    .await;
    problem(
        upload("no%20spaces", "text/csv", broken).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;

    let good = "time,open,high,low,close\n2024-01-01,10,11,9,10.5\n2024-01-02,10,12,9,11\n";
    assert_eq!(upload("ok", "text/csv", good).await.unwrap().status(), 201);
    problem(
        upload("ok", "text/csv", good).await.unwrap(),
        409,
        "dataset_exists",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_a_413() {
    let app = spawn_app_with(|config| config.api.upload_limit_bytes = 1000).await;
    let big = "x".repeat(1001);
    let response = app
        .post("/v1/datasets?name=big", "ann")
        .header("content-type", "text/csv")
        .body(big)
        .send()
        .await;
    // The server may close the connection after answering; either way nothing is stored.
    if let Ok(response) = response {
        problem(response, 413, "payload_too_large").await;
    }
    let listed: Vec<Value> = app.get_json("/v1/datasets", "ann").await;
    assert!(listed.iter().all(|d| d["name"] != "big"));
    app.stop().await;
}
