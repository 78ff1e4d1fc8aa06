//! Uploading (raw CSV, raw Parquet, multipart), describing, listing and deleting data sets; and
//! what bounds an upload: its slots, the tier's storage, the file's declared size, its files
//! when the client goes away.

mod common;

use std::time::{Duration, Instant};

use common::{goog_spec, problem, spawn_app, spawn_app_with};
use serde_json::{json, Value};
use strata_core::Tier;

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

    // A content type uploads do not take is a 415 naming the ones they do.
    let body = problem(
        upload("x", "application/json", "{}").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    for accepted in [
        "text/csv",
        "application/vnd.apache.parquet",
        "multipart/form-data",
    ] {
        assert!(detail.contains(accepted), "{detail}");
    }
    // Trades and book events sent as bars get the hint to say kind=ticks.
    let ticks = "time,type,side,price,size\n2024-01-02T09:30:00Z,trade,buy,100.5,10\n";
    let body = problem(
        upload("trades", "text/csv", ticks).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("missing columns"), "{message}");
    assert!(message.contains("?kind=ticks"), "{message}");
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

/// `POST /v1/datasets?name=NAME` of `body` as `content_type`, as `user` of `tier`.
fn upload_as(
    app: &common::TestApp,
    user: &str,
    tier: Tier,
    name: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/v1/datasets?name={name}")))
        .bearer_auth(app.token(user, tier))
        .header("content-type", content_type)
        .body(body)
}

/// A CSV of `n` daily bars whose prices all differ, so their Parquet file does not shrink much.
fn varied_csv(n: usize) -> String {
    let mut text = String::from("time,open,high,low,close,volume\n");
    for i in 0..n {
        let close = 100.0 + (i as f64 * 0.618_033_988_7).sin() * 10.0 + i as f64 * 1e-4;
        text.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{}\n",
            1_000_000_000 + i as i64 * 86_400,
            close,
            close + 1.25,
            close - 1.5,
            close,
            1000 + i
        ));
    }
    text
}

const SMALL: &str = "time,open,high,low,close\n2024-01-01,10,11,9,10.5\n2024-01-02,10,12,9,11\n";

/// Files in the api's staging directory.
fn staged_files(app: &common::TestApp) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(app.config.data_dir.join("staging"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Waits until `done` holds, for at most 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn names_and_symbols_with_control_characters_are_422s_naming_the_field() {
    let app = spawn_app().await;
    for (query, field) in [
        ("name=bad%00name", "name"),
        ("name=bad%0Aname", "name"),
        ("name=ok&symbol=GO%00OG", "symbol"),
        ("name=ok&symbol=GO%1BOG", "symbol"),
        ("name=ok&symbol=", "symbol"),
    ] {
        let response = app
            .post(&format!("/v1/datasets?{query}"), "ann")
            .header("content-type", "text/csv")
            .body(SMALL)
            .send()
            .await
            .unwrap();
        let body = problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    assert!(staged_files(&app).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn storage_and_dataset_quotas_are_enforced_shown_and_race_free() {
    let app = spawn_app_with(|config| {
        config.tiers.basic.storage_mb = Some(1);
        config.tiers.pro.datasets = Some(2);
        config.api.upload_concurrency = 8;
    })
    .await;

    // Bytes: uploads of a basic user until the next one would pass 1 MiB.
    let csv = varied_csv(20_000);
    let mut stored = 0;
    let refusal = loop {
        let response = upload_as(
            &app,
            "bea",
            Tier::Basic,
            &format!("part{stored}"),
            "text/csv",
            csv.clone(),
        )
        .send()
        .await
        .unwrap();
        if response.status() != 201 {
            break response;
        }
        stored += 1;
        assert!(stored < 20, "1 MiB never filled");
    };
    let usage: Value = app
        .client
        .get(app.url("/v1/datasets/usage"))
        .bearer_auth(app.token("bea", Tier::Basic))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stored >= 1, "the first upload fits: {usage}");
    let detail = problem(refusal, 413, "storage_quota_exceeded").await["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("storage_mb")
            && detail.contains("of the 1 MiB the basic tier allows")
            && detail.contains("this one needs")
            && detail.contains("pro has no limit"),
        "{detail}"
    );
    let (bytes, one) = (usage["bytes"].as_i64().unwrap(), 1 << 20);
    assert_eq!(usage["tier"], "basic");
    assert_eq!(usage["datasets"], stored);
    assert_eq!(usage["bytes_limit"], one);
    assert_eq!(usage["datasets_limit"], Value::Null);
    let each = bytes / stored;
    assert!(bytes <= one && bytes + each > one, "{usage}");

    // Count: a pro user may keep two; the list shows usage and limit in its headers.
    let app_ref = &app;
    assert_eq!(
        upload_as(app_ref, "pia", Tier::Pro, "one", "text/csv", SMALL)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    // Four uploads at once race for the last place: one wins.
    let racing = (0..4).map(|i| async move {
        upload_as(
            app_ref,
            "pia",
            Tier::Pro,
            &format!("race{i}"),
            "text/csv",
            SMALL,
        )
        .send()
        .await
        .unwrap()
    });
    let mut statuses: Vec<u16> = futures::future::join_all(racing)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409]);
    let response = upload_as(&app, "pia", Tier::Pro, "three", "text/csv", SMALL)
        .send()
        .await
        .unwrap();
    let detail = problem(response, 409, "dataset_quota_exceeded").await["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("you have 2 data sets; the pro tier allows 2"),
        "{detail}"
    );
    let response = app.get("/v1/datasets", "pia").send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("strata-storage-datasets").as_deref(), Some("2"));
    assert_eq!(
        header("strata-storage-datasets-limit").as_deref(),
        Some("2")
    );
    assert!(header("strata-storage-bytes").is_some_and(|b| b.parse::<i64>().unwrap() > 0));
    assert_eq!(header("strata-storage-bytes-limit"), None);
    let listed: Vec<Value> = response.json().await.unwrap();
    let own: Vec<&Value> = listed.iter().filter(|d| d["bundled"] == false).collect();
    assert_eq!(own.len(), 2);

    // Deleting one frees its place.
    let id = own[0]["id"].as_str().unwrap();
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/datasets/{id}")))
        .bearer_auth(app.token("pia", Tier::Pro))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        upload_as(&app, "pia", Tier::Pro, "three", "text/csv", SMALL)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    // Refused uploads leave no file behind: one per stored data set.
    let files = walk(&app.config.data_dir.join("datasets"));
    assert_eq!(files.len(), stored as usize + 2, "{files:?}");
    assert!(staged_files(&app).is_empty());
    app.stop().await;
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A body whose chunks the test sends when it likes; dropping the sender ends it.
fn trickled_body() -> (
    futures::channel::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    (tx, reqwest::Body::wrap_stream(rx))
}

#[tokio::test]
async fn uploads_beyond_the_concurrency_are_503s_with_retry_after() {
    let app = spawn_app_with(|config| config.api.upload_concurrency = 1).await;
    let (tx, body) = trickled_body();
    let first = tokio::spawn(upload_as(&app, "ann", Tier::Pro, "slow", "text/csv", body).send());
    tx.unbounded_send(Ok(b"time,open,high,low,close\n".to_vec()))
        .unwrap();
    eventually("the first upload is staged", || {
        !staged_files(&app).is_empty()
    })
    .await;

    let response = app
        .post("/v1/datasets?name=second", "bob")
        .header("content-type", "text/csv")
        .body(SMALL)
        .send()
        .await
        .unwrap();
    let retry_after = response.headers().get("retry-after").cloned();
    problem(response, 503, "uploads_busy").await;
    assert_eq!(retry_after.unwrap(), "5");

    tx.unbounded_send(Ok(
        b"2024-01-01,10,11,9,10.5\n2024-01-02,10,12,9,11\n".to_vec()
    ))
    .unwrap();
    drop(tx);
    assert_eq!(first.await.unwrap().unwrap().status(), 201);
    // The slot is free again.
    let response = app
        .post("/v1/datasets?name=second", "bob")
        .header("content-type", "text/csv")
        .body(SMALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(staged_files(&app).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_upload_leaves_no_file_and_frees_its_slot() {
    let app = spawn_app_with(|config| config.api.upload_concurrency = 1).await;
    let (tx, body) = trickled_body();
    let upload =
        tokio::spawn(upload_as(&app, "ann", Tier::Pro, "dropped", "text/csv", body).send());
    tx.unbounded_send(Ok(SMALL.as_bytes().to_vec())).unwrap();
    eventually("the upload is staged", || !staged_files(&app).is_empty()).await;

    // The client goes away mid-upload: its connection closes.
    upload.abort();
    let _ = upload.await;
    drop(tx);
    eventually("the staged file is removed", || {
        staged_files(&app).is_empty()
    })
    .await;
    let listed: Vec<Value> = app.get_json("/v1/datasets", "ann").await;
    assert!(listed.iter().all(|d| d["name"] != "dropped"));
    assert!(walk(&app.config.data_dir.join("datasets")).is_empty());

    // Its slot is free again.
    let response = app
        .post("/v1/datasets?name=after", "ann")
        .header("content-type", "text/csv")
        .body(SMALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_upload_kills_its_converter_before_its_files_go() {
    // A converter that says who it is and then takes its time: the client gives up meanwhile.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("converter.pid");
    let converter = dir.path().join("slow-converter");
    std::fs::write(
        &converter,
        format!(
            "#!/bin/sh\necho $$ > {}.tmp && mv {0}.tmp {0}\nexec /bin/sleep 60\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &converter,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let app = spawn_app_with(|config| config.api.upload_converter = Some(converter)).await;
    let upload =
        tokio::spawn(upload_as(&app, "ann", Tier::Pro, "abandoned", "text/csv", SMALL).send());
    eventually("the converter starts", || pid_file.exists()).await;
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    assert!(!staged_files(&app).is_empty());

    upload.abort();
    let _ = upload.await;
    eventually("the converter is killed and reaped", || !proc_dir.exists()).await;
    eventually("the staged files are removed", || {
        staged_files(&app).is_empty()
    })
    .await;
    let listed: Vec<Value> = app.get_json("/v1/datasets", "ann").await;
    assert!(listed.iter().all(|d| d["name"] != "abandoned"));
    app.stop().await;
}

#[tokio::test]
async fn a_restarted_api_removes_staged_files_left_by_a_crash() {
    let app = spawn_app().await;
    let staging = app.config.data_dir.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let (old, fresh) = (staging.join("old.csv"), staging.join("fresh.csv"));
    std::fs::write(&old, SMALL).unwrap();
    std::fs::write(&fresh, SMALL).unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();

    // A second api on the same directory starts: the crash's leftover goes, a file that may
    // be another replica's upload in progress stays.
    let (_address, stop) = common::serve_api(app.config.clone()).await;
    assert!(!old.exists());
    assert!(fresh.exists());
    drop(stop);
    app.stop().await;
}

/// Peak resident memory of this process since the last reset, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Makes the peak resident memory start again from the current one.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

#[tokio::test]
async fn a_parquet_bomb_is_refused_fast_with_little_memory() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.parquet");
    tokio::task::spawn_blocking({
        let bomb = bomb.clone();
        move || engine::data::synthetic::constant_bars_parquet(&bomb, 1_000_000, 200)
    })
    .await
    .unwrap()
    .unwrap();
    let bytes = std::fs::read(&bomb).unwrap();
    assert!(bytes.len() < 20 << 20, "{} bytes", bytes.len());

    reset_peak_rss();
    let before = peak_rss();
    let started = Instant::now();
    let response = upload_as(
        &app,
        "mallory",
        Tier::Basic,
        "bomb",
        "application/vnd.apache.parquet",
        bytes,
    )
    .send()
    .await
    .unwrap();
    let took = started.elapsed();
    let body = problem(response, 413, "dataset_too_large").await;
    let grew = peak_rss().saturating_sub(before);
    assert_eq!(
        body["detail"],
        "the upload: too large: 200000000 rows; the limit is 10000000"
    );
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    assert!(grew < 200 << 20, "peak memory grew by {} MiB", grew >> 20);
    assert!(staged_files(&app).is_empty());
    assert!(walk(&app.config.data_dir.join("datasets")).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_file_that_aborts_its_reader_is_refused_and_the_api_serves_on() {
    // Found by fuzzing: a 2 KB Parquet page that makes polars ask for 2^61 bytes. A failed
    // allocation aborts the process that makes it; this test's process holds the api, so it
    // passes only because uploads are decoded by a child process.
    let app = spawn_app().await;
    let crafted = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/crashes/bars_parquet/alloc-2e61-in-page-validity.parquet"),
    )
    .unwrap();
    let started = Instant::now();
    let response = upload_as(
        &app,
        "mallory",
        Tier::Basic,
        "crafted",
        "application/vnd.apache.parquet",
        crafted,
    )
    .send()
    .await
    .unwrap();
    let body = problem(response, 413, "dataset_too_large").await;
    assert_eq!(
        body["detail"],
        "the upload: converting it needed more than the 4096 MiB of memory an upload may use \
         (api.upload_memory_mb); the file holds more than an upload may, or it is damaged"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(staged_files(&app).is_empty());

    // The same api, the same user: a sound file is stored.
    let response = upload_as(&app, "mallory", Tier::Basic, "sound", "text/csv", SMALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    app.stop().await;
}

#[tokio::test]
async fn a_converter_that_cannot_start_is_the_servers_error_and_stores_nothing() {
    let app = spawn_app_with(|config| {
        config.api.upload_converter = Some("/nonexistent/strata".into());
    })
    .await;
    let response = upload_as(&app, "ann", Tier::Basic, "lost", "text/csv", SMALL)
        .send()
        .await
        .unwrap();
    let body = problem(response, 500, "internal").await;
    // The operator's log has the path; the user is told nothing of the server's files.
    assert!(!body.to_string().contains("nonexistent"), "{body}");
    assert!(staged_files(&app).is_empty());
    let listed: Vec<Value> = app.get_json("/v1/datasets", "ann").await;
    assert!(listed.iter().all(|d| d["name"] != "lost"));
    app.stop().await;
}

#[tokio::test]
async fn a_name_means_one_data_set_ignoring_case_and_bundled_ones_stay() {
    let app = spawn_app().await;
    let goog = std::fs::read_to_string(app.config.bundled_dir.join("GOOG.csv")).unwrap();
    let upload = |name: &str| upload_as(&app, "ann", Tier::Pro, name, "text/csv", goog.clone());

    // A bundled example's name, in any case, is refused before a byte is stored.
    for name in ["GOOG", "goog", "EurUsd"] {
        let response = upload(name).send().await.unwrap();
        let body = problem(response, 409, "dataset_name_bundled").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!(
                "'{name}' is the name of the bundled example data set"
            )) && detail.contains("pick another name"),
            "{detail}"
        );
    }
    // One of the user's own names, in another case, too.
    let response = upload("Mine").send().await.unwrap();
    assert_eq!(response.status(), 201);
    let mine: Value = response.json().await.unwrap();
    let body = problem(upload("MINE").send().await.unwrap(), 409, "dataset_exists").await;
    assert!(
        body["detail"].as_str().unwrap().contains("named 'Mine'"),
        "{body}"
    );
    // Another user may take the name.
    assert_eq!(
        upload_as(&app, "bob", Tier::Pro, "mine", "text/csv", goog.clone())
            .send()
            .await
            .unwrap()
            .status(),
        201
    );

    // Every lookup ignores case: GET by name (bundled or own), jobs, DELETE.
    let bundled: Value = app.get_json("/v1/datasets/goog", "ann").await;
    assert_eq!(
        (&bundled["name"], &bundled["bundled"]),
        (&json!("GOOG"), &json!(true))
    );
    let own: Value = app.get_json("/v1/datasets/mINe", "ann").await;
    assert_eq!(own["id"], mine["id"]);
    for dataset in ["goog", "MINE", mine["id"].as_str().unwrap()] {
        let mut spec = goog_spec();
        spec["data"]["dataset"] = json!(dataset);
        let response = app.post_backtest("ann", &spec).await;
        assert_eq!(response.status(), 202, "{dataset}");
    }
    let delete = |who: &str, id: &str| {
        app.client
            .delete(app.url(&format!("/v1/datasets/{id}")))
            .bearer_auth(app.token(who, Tier::Pro))
            .send()
    };
    for id in ["GOOG", "btcusd"] {
        let body = problem(delete("ann", id).await.unwrap(), 403, "dataset_bundled").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("is a bundled example data set")
                && detail.contains("cannot be deleted"),
            "{detail}"
        );
    }
    problem(delete("ann", "nothing").await.unwrap(), 404, "not_found").await;
    assert_eq!(delete("ann", "mine").await.unwrap().status(), 204);
    problem(delete("ann", "Mine").await.unwrap(), 404, "not_found").await;
    // Bob's is his own.
    let bobs: Value = app.get_json("/v1/datasets/MINE", "bob").await;
    assert_eq!(bobs["name"], "mine");

    // An upload from before the rule that took a bundled name: the name means the bundled
    // example everywhere, the upload is reached by its id, and the list tells them apart.
    let env = app.env.as_ref().unwrap();
    let old = strata_core::store::NewDataset {
        id: uuid::Uuid::now_v7(),
        owner: "ann".to_owned(),
        name: "GOOG".to_owned(),
        symbol: "GOOG".to_owned(),
        path: "datasets/old.parquet".to_owned(),
        kind: strata_core::store::DatasetKind::Bars,
        bars: 3,
        first_time: chrono::Utc::now(),
        last_time: chrono::Utc::now(),
        spacing_seconds: Some(86_400),
        bytes: 100,
    };
    env.store
        .insert_dataset_within(&old, Default::default())
        .await
        .unwrap();
    let by_name: Value = app.get_json("/v1/datasets/GOOG", "ann").await;
    assert_eq!(by_name["bundled"], true);
    let by_id: Value = app
        .get_json(&format!("/v1/datasets/{}", old.id), "ann")
        .await;
    assert_eq!(
        (&by_id["name"], &by_id["bundled"]),
        (&json!("GOOG"), &json!(false))
    );
    let listed: Vec<Value> = app.get_json("/v1/datasets", "ann").await;
    let ids: Vec<&str> = listed
        .iter()
        .filter(|d| d["name"] == "GOOG")
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [old.id.to_string().as_str(), "GOOG"]);
    app.stop().await;
}
