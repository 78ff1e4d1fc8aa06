//! Results that fit: a sweep's ranked sets paged with `top` and `offset`; and a query
//! parameter an operation does not take is a 400 naming it, on every route.

mod common;

use common::{goog_spec, problem, spawn_app, spawn_app_with_worker};
use serde_json::{json, Value};

/// `GET path` as `user`: the status, the `Strata-Results-Total` header and the body.
async fn get(app: &common::TestApp, path: &str) -> (u16, Option<u64>, Value) {
    let response = app.get(path, "ann").send().await.unwrap();
    let total = response
        .headers()
        .get("strata-results-total")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (
        response.status().as_u16(),
        total,
        response.json().await.unwrap(),
    )
}

#[tokio::test]
async fn a_sweeps_ranked_sets_are_paged_with_top_and_offset() {
    let app = spawn_app_with_worker().await;
    let spec = json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"template": "sma_cross"},
        "grid": {"fast": "5:20:5", "slow": [30, 50]},
        "objective": "sharpe",
        "top": 8
    });
    let response = app.post_sweep("ann", &spec).await;
    assert_eq!(response.status(), 202);
    let sweep: Value = response.json().await.unwrap();
    let id = sweep["id"].as_str().unwrap().to_owned();
    let response = app.post_backtest("ann", &goog_spec()).await;
    let backtest: Value = response.json().await.unwrap();
    let backtest = backtest["id"].as_str().unwrap().to_owned();
    for job in [&id, &backtest] {
        let done = app.wait_finished("ann", job, 60).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let result = format!("/v1/jobs/{id}/result");

    let (status, total, whole) = get(&app, &result).await;
    assert_eq!((status, total), (200, Some(8)));
    let all = whole["results"].as_array().unwrap().clone();
    assert_eq!(all.len(), 8);

    // Two from the third on, in rank order; everything else as it was.
    let (status, total, page) = get(&app, &format!("{result}?top=2&offset=2")).await;
    assert_eq!((status, total), (200, Some(8)));
    assert_eq!(page["results"], json!(all[2..4]));
    assert_eq!(page["best"], whole["best"]);
    // `top` alone is the best few; `offset` alone the rest; past the end, none.
    let (_, _, best) = get(&app, &format!("{result}?top=3")).await;
    assert_eq!(best["results"], json!(all[..3]));
    let (_, _, rest) = get(&app, &format!("{result}?offset=5")).await;
    assert_eq!(rest["results"], json!(all[5..]));
    let (status, total, past) = get(&app, &format!("{result}?offset=8&top=5")).await;
    assert_eq!((status, total), (200, Some(8)));
    assert_eq!(past["results"], json!([]));
    // With `points`, the kept sets' curves are thinned too.
    let (_, _, thinned) = get(&app, &format!("{result}?top=1&points=10")).await;
    let curve = thinned["results"][0]["equity"].as_array().unwrap();
    assert_eq!(curve.len(), 10);
    assert_eq!(thinned["results"][0]["params"], all[0]["params"]);

    // `top` must be at least 1, and pages only ranked sets.
    let response = app
        .get(&format!("{result}?top=0"), "ann")
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "top");
    let response = app
        .get(&format!("/v1/jobs/{backtest}/result?offset=1"), "ann")
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "offset");
    assert!(
        body["detail"].as_str().unwrap().contains("backtest"),
        "{body}"
    );
    let (status, total, _) = get(&app, &format!("/v1/jobs/{backtest}/result")).await;
    assert_eq!((status, total), (200, None));
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_query_parameter_is_a_400_naming_it() {
    let app = spawn_app().await;
    let id = uuid::Uuid::now_v7();
    for (method, path, unknown, takes) in [
        (
            "GET",
            "/v1/jobs?limt=5".to_owned(),
            "limt",
            "status, kind, limit, cursor",
        ),
        (
            "GET",
            format!("/v1/jobs/{id}?verbose=1"),
            "verbose",
            "no query parameters",
        ),
        (
            "GET",
            format!("/v1/jobs/{id}/result?pionts=10&points=5"),
            "pionts",
            "points, top, offset",
        ),
        (
            "POST",
            "/v1/datasets?name=x&knid=ticks".to_owned(),
            "knid",
            "name, symbol, kind",
        ),
        (
            "GET",
            "/v1/datasets/GOOG?x".to_owned(),
            "x",
            "no query parameters",
        ),
        (
            "GET",
            "/health/ready?full=true".to_owned(),
            "full",
            "no query parameters",
        ),
    ] {
        let request = match method {
            "GET" => app.get(&path, "ann"),
            _ => app.post(&path, "ann"),
        };
        let response = request.send().await.unwrap();
        let body = problem(response, 400, "unknown_query_parameter").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("unknown query parameter '{unknown}': {method} "))
                && detail.ends_with(&format!("takes {takes}")),
            "{path}: {detail}"
        );
        assert_eq!(body["errors"][0]["field"], unknown, "{body}");
    }
    // Two at once are both named; known ones pass, malformed values of them are still 400s.
    let response = app.get("/v1/jobs?a=1&b=2&a=3", "ann").send().await.unwrap();
    let body = problem(response, 400, "unknown_query_parameter").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("unknown query parameters 'a', 'b': "),
        "{body}"
    );
    let response = app
        .get("/v1/jobs?limit=5&status=queued", "ann")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app.get("/v1/jobs?limit=many", "ann").send().await.unwrap();
    problem(response, 400, "bad_request").await;
    // The documentation pages are outside the API: left alone.
    let response = app
        .client
        .get(app.url("/openapi.json?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // And the document says what the 400 is.
    let document: Value = response.json().await.unwrap();
    let described = document["paths"]["/v1/jobs"]["get"]["responses"]["400"]["description"]
        .as_str()
        .unwrap();
    assert!(described.contains("unknown_query_parameter"), "{described}");
    app.stop().await;
}
