//! The abuse suite, from the built binaries: `strata api` and two `strata worker` processes with
//! the default tiers, and a basic-tier user who tries everything a hostile tenant would: sizes
//! that ask for terabytes, expressions built to exhaust the indicator cache, malformed and
//! oversized tokens, hostile CSV and Parquet uploads, hundreds of event streams, webhook URLs
//! that point inside the network, NUL bytes, deep nesting.
//!
//! Each request must get its 4xx quickly (within a second of api time, plus the upload's own
//! transfer where there is one); afterwards every worker is alive, the api's resident memory is
//! back under 100 MB, no partial upload is left on disk, and an ordinary job submitted last
//! succeeds. `STRATA_ABUSE_LOGS=DIR` keeps the logs.

mod support;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strata_core::testing::{TestEnv, TEST_SECRET};
use strata_core::Tier;
use support::{binary, env_refs, token, DumpLogsOnPanic, LogDir, WorkerProcess};

/// The api time a refusal may take (transfer of the body aside).
const QUICK: Duration = Duration::from_secs(1);

/// What every hostile request got, printed at the end.
#[derive(Default)]
struct Report(Vec<(String, u16, Duration)>);

impl Report {
    /// Sends `request`, which must get a 4xx within `QUICK` plus `transfer`; returns its body.
    async fn refused(
        &mut self,
        case: &str,
        request: reqwest::RequestBuilder,
        transfer: Duration,
    ) -> Value {
        let started = Instant::now();
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: no answer: {}", with_causes(&e)));
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!(
            (400..500).contains(&status),
            "{case}: expected a 4xx, got {status}: {}",
            text.chars().take(500).collect::<String>()
        );
        assert!(
            elapsed < QUICK + transfer,
            "{case}: the {status} took {elapsed:?}"
        );
        self.0.push((case.to_owned(), status, elapsed));
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// An error and every error under it: reqwest's own says only "error sending request".
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}

/// The basic tier as configured by default, with its per-minute rates lifted: the suite sends
/// more than a basic user may in a minute, and tests what comes after the rate limit.
fn settings() -> Vec<(String, String)> {
    vec![
        (
            "STRATA_TIERS__BASIC__REQUESTS_PER_MINUTE".into(),
            "100000".into(),
        ),
        (
            "STRATA_TIERS__BASIC__SUBMISSIONS_PER_MINUTE".into(),
            "100000".into(),
        ),
        ("STRATA_WORKER__HEARTBEAT_SECS".into(), "1".into()),
        ("STRATA_WORKER__METRICS_BIND".into(), "127.0.0.1:0".into()),
    ]
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The Parquet files in fuzz/crashes that stopped a loader (bars and ticks).
fn crash_inputs() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/crashes");
    let mut found: Vec<_> = ["bars_parquet", "ticks"]
        .iter()
        .flat_map(|target| files_under(&root.join(target)))
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "no crash inputs under {}",
        root.display()
    );
    found
}

/// A balanced `max(...)` tree over `sma(close, 2..)`: `leaves` distinct indicator columns in
/// an expression of depth about log2(leaves).
fn sma_tree(leaves: usize) -> String {
    fn build(from: usize, to: usize) -> String {
        if to - from == 1 {
            format!("sma(close, {})", from + 2)
        } else {
            let mid = (from + to) / 2;
            format!("max({}, {})", build(from, mid), build(mid, to))
        }
    }
    build(0, leaves)
}

/// A token signed with the test secret over arbitrary claims.
fn signed(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .expect("a token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_get_their_4xx_and_leave_the_service_whole() {
    let data = tempfile::tempdir().expect("a data directory");
    let env = TestEnv::new(data.path()).await;
    let logs = LogDir::from_env("STRATA_ABUSE_LOGS");
    let _dump = DumpLogsOnPanic(logs.path());
    let extra = settings();
    let (api, base) = env.start_api(binary(), &env_refs(&extra));
    let api_pid = api.0.id();
    let mut workers = [
        WorkerProcess::start(&env, &extra, logs.path(), "w0", 2, 1),
        WorkerProcess::start(&env, &extra, logs.path(), "w1", 2, 1),
    ];
    // A connection per request: the api closes one whose body it refused unread (a 413), and a
    // pooled client could send the next request on it before it sees the close.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    let mallory = token("mallory", Tier::Basic);
    let post = |path: &str| client.post(format!("{base}{path}")).bearer_auth(&mallory);
    let mut report = Report::default();
    let none = Duration::ZERO;

    // Sizes a request controls.
    let sweep = |grid: Value, extra: Value| {
        let mut body = json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"template": "sma_cross"},
            "grid": grid,
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        body
    };
    report
        .refused(
            "sweep top 2^45",
            post("/v1/sweeps").json(&sweep(
                json!({"fast": [5, 10]}),
                json!({"top": 35_184_372_088_832u64}),
            )),
            none,
        )
        .await;
    report
        .refused(
            "grid range of 200,000",
            post("/v1/sweeps").json(&sweep(json!({"fast": "1:200000:1"}), json!({}))),
            none,
        )
        .await;
    report
        .refused(
            "9 million sets with a constraint",
            post("/v1/sweeps").json(&sweep(
                json!({"fast": "1:3000:1", "slow": "1:3000:1"}),
                json!({"constraint": "fast < slow"}),
            )),
            none,
        )
        .await;
    report
        .refused(
            "grid list of a million",
            post("/v1/sweeps").json(&sweep(
                json!({"fast": (1..=1_000_000).collect::<Vec<u32>>()}),
                json!({}),
            )),
            none,
        )
        .await;
    let strategy = |entry: String| {
        json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"entry": entry, "exit": "close < sma(close, 20)"},
        })
    };
    report
        .refused(
            "40,000 distinct indicators",
            post("/v1/backtests").json(&strategy(format!("close > {}", sma_tree(40_000)))),
            none,
        )
        .await;
    report
        .refused(
            "300 distinct indicators in a short expression",
            post("/v1/backtests").json(&strategy(format!("close > {}", sma_tree(300)))),
            none,
        )
        .await;
    report
        .refused(
            "100,000 nested parentheses",
            post("/v1/backtests").json(&strategy(format!(
                "{}close{} > 1",
                "(".repeat(100_000),
                ")".repeat(100_000)
            ))),
            none,
        )
        .await;
    report
        .refused(
            "JSON nested 100,000 deep",
            post("/v1/backtests")
                .header("Content-Type", "application/json")
                .body(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
            none,
        )
        .await;
    report
        .refused(
            "a 2 MiB JSON body",
            post("/v1/backtests")
                .header("Content-Type", "application/json")
                .body(format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20))),
            none,
        )
        .await;
    report
        .refused(
            "walk-forward of one-bar windows",
            post("/v1/walk-forwards").json(&sweep(
                json!({"fast": [5, 10]}),
                json!({"in_sample": 1, "out_of_sample": 1}),
            )),
            none,
        )
        .await;

    // Text PostgreSQL refuses.
    for (case, body) in [
        (
            "NUL in a data set name",
            json!({"data": {"dataset": "GO\u{0}OG"}, "strategy": {"template": "sma_cross"}}),
        ),
        (
            "NUL in an expression",
            strategy("close > sma(close, 10)\u{0}".into()),
        ),
        (
            "NUL in an unknown field",
            json!({"data": {"dataset": "GOOG"}, "strategy": {"template": "sma_cross"}, "x\u{0}": "\u{0}"}),
        ),
    ] {
        report
            .refused(case, post("/v1/backtests").json(&body), none)
            .await;
    }

    // Tokens.
    let now = chrono::Utc::now().timestamp();
    let claims = |sub: Value| json!({"sub": sub, "tier": "basic", "iat": now, "exp": now + 3600});
    for (case, token) in [
        ("a 9 KiB token", "a".repeat(9 << 10)),
        ("a token that is no JWT", "not.a.token".to_owned()),
        (
            "alg none",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJyb290IiwidGllciI6ImVsaXRlIiwiZXhwIjo5OTk5OTk5OTk5fQ."
                .to_owned(),
        ),
        (
            "a signature by another key",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &claims(json!("mallory")),
                &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-32-bytes-or-more!!"),
            )
            .expect("a token"),
        ),
        ("an empty sub", signed(&claims(json!("")))),
        ("a 300-byte sub", signed(&claims(json!("m".repeat(300))))),
        ("a sub with a newline", signed(&claims(json!("mal\nlory")))),
        (
            "expired",
            signed(&json!({"sub": "mallory", "tier": "basic", "iat": now - 7200, "exp": now - 3600})),
        ),
        (
            "an unknown tier",
            signed(&json!({"sub": "mallory", "tier": "root", "iat": now, "exp": now + 3600})),
        ),
    ] {
        report
            .refused(
                case,
                client.get(format!("{base}/v1/jobs")).bearer_auth(token),
                none,
            )
            .await;
    }

    // Hostile uploads.
    let upload =
        |name: &str| post(&format!("/v1/datasets?name={name}")).header("Content-Type", "text/csv");
    let header = "time,open,high,low,close,volume\n";
    let good_row = "2020-01-01,1,2,0.5,1.5,100\n";
    for (case, body) in [
        (
            "NaN prices",
            format!("{header}{good_row}2020-01-02,NaN,2,0.5,1.5,100\n"),
        ),
        (
            "infinite prices",
            format!("{header}{good_row}2020-01-02,1,inf,0.5,1.5,100\n"),
        ),
        (
            "an unterminated quote",
            format!("{header}{good_row}\"2020-01-02,1,2,0.5,1.5,100\n"),
        ),
        ("an empty body", String::new()),
        ("a header alone", header.to_owned()),
    ] {
        report
            .refused(case, upload("hostile").body(body), none)
            .await;
    }
    let wide: String = (0..5_000_000).map(|i| format!("c{i},")).collect();
    report
        .refused(
            "a header of 5 million columns",
            upload("wide").body(format!("{wide}\n")),
            Duration::from_secs(2),
        )
        .await;
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in format!("{header}{good_row}").encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    report
        .refused("UTF-16", upload("utf16").body(utf16), none)
        .await;
    let long_line = vec![b'7'; 250_000_000];
    report
        .refused(
            "a 250 MB single line",
            upload("long").body(long_line),
            Duration::from_secs(10),
        )
        .await;
    let bomb = data
        .path()
        .join("..")
        .join(format!("bomb-{}.parquet", std::process::id()));
    engine::data::synthetic::constant_bars_parquet(&bomb, 1_000_000, 50).expect("write the bomb");
    let bomb_bytes = std::fs::read(&bomb).expect("read the bomb");
    let _ = std::fs::remove_file(&bomb);
    report
        .refused(
            &format!("a Parquet bomb ({} KB, 50M rows)", bomb_bytes.len() / 1024),
            post("/v1/datasets?name=bomb")
                .header("Content-Type", "application/vnd.apache.parquet")
                .body(bomb_bytes),
            Duration::from_secs(1),
        )
        .await;

    // Every input that made a fuzzer's Parquet loader abort or crash (fuzz/crashes): one asks
    // polars for 2^61 bytes for a 2 KB file. The api decodes uploads in a child process, so
    // each is the child's end and a 4xx, and the api serves on.
    for crash in crash_inputs() {
        let name = crash.file_name().unwrap().to_string_lossy().into_owned();
        let ticks = crash.parent().unwrap().ends_with("ticks");
        let path = format!(
            "/v1/datasets?name=crash{}{}",
            report.0.len(),
            if ticks { "&kind=ticks" } else { "" }
        );
        report
            .refused(
                &format!("fuzz crash {name}"),
                post(&path)
                    .header("Content-Type", "application/vnd.apache.parquet")
                    .body(std::fs::read(&crash).expect("read a crash input")),
                none,
            )
            .await;
    }

    // Webhook URLs that point inside the network, in every disguise. With a signing secret, so
    // the only reason left to refuse them is where they point.
    let secret = post("/v1/webhooks/secret").send().await.expect("an answer");
    assert!(secret.status().is_success(), "a webhook secret");
    for url in [
        "http://127.0.0.1/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://017700000001/hook",
        "http://127.1/hook",
        "http://0.0.0.0/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://user:pass@127.0.0.1/hook",
        "http://[fe80::1]/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "http://127.0.0.1:6379/",
    ] {
        let mut body = strategy("close > sma(close, 10)".into());
        body["webhook_url"] = json!(url);
        report
            .refused(
                &format!("webhook {url}"),
                post("/v1/backtests").json(&body),
                none,
            )
            .await;
    }

    // 500 event streams from one user: the tier's cap holds, the rest are 429s.
    let mut open = Vec::new();
    let mut refused = 0;
    let started = Instant::now();
    for _ in 0..500 {
        let response = client
            .get(format!("{base}/v1/events"))
            .bearer_auth(&mallory)
            .send()
            .await
            .expect("an answer");
        match response.status().as_u16() {
            200 => open.push(response),
            429 => refused += 1,
            other => panic!("an event stream answered {other}"),
        }
    }
    let streams_took = started.elapsed();
    assert!(
        !open.is_empty() && open.len() <= 10 && refused == 500 - open.len(),
        "{} streams open, {refused} refused",
        open.len()
    );
    drop(open);

    // A hostile request id is replaced, never echoed.
    let response = client
        .get(format!("{base}/v1/jobs"))
        .bearer_auth(&mallory)
        .header("X-Request-ID", format!("<script>{}", "x".repeat(5000)))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 200);
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        !id.is_empty() && id.len() <= 64 && !id.contains('<'),
        "the request id came back as {id:?}"
    );

    // Afterwards: every worker alive, the api's memory back down, no partial upload on disk.
    for worker in &mut workers {
        assert!(worker.alive(), "worker {} died", worker.name);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rss = rss_mib(api_pid);
    while rss >= 100.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss = rss_mib(api_pid);
    }
    assert!(rss < 100.0, "the api holds {rss:.0} MiB");
    let left = files_under(data.path());
    assert!(left.is_empty(), "files left behind: {left:?}");

    // An ordinary job, submitted last, succeeds.
    let response = post("/v1/backtests")
        .json(&json!({
            "data": {"dataset": "GOOG", "start": "2005-01-01"},
            "strategy": {"template": "sma_cross", "params": {"fast": 10, "slow": 20}},
        }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 202, "the ordinary job");
    let job: Value = response.json().await.expect("a job");
    let id = job["id"].as_str().expect("an id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let job: Value = client
            .get(format!("{base}/v1/jobs/{id}"))
            .bearer_auth(&mallory)
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("a job");
        let status = job["status"].as_str().unwrap_or_default().to_owned();
        if !matches!(status.as_str(), "queued" | "running") || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, "succeeded", "the ordinary job");
    for worker in &mut workers {
        assert!(worker.alive(), "worker {} died", worker.name);
    }

    let mut out = std::io::stderr().lock();
    for (case, status, took) in &report.0 {
        let _ = writeln!(
            out,
            "{status}  {:>7.1} ms  {case}",
            took.as_secs_f64() * 1e3
        );
    }
    let _ = writeln!(
        out,
        "500 event streams: {} refused in {streams_took:?}; api RSS afterwards {rss:.0} MiB",
        refused
    );
    drop(api);
    env.cleanup().await;
}
