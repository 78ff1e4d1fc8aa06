//! Hostile sizes: every size a request controls is refused with a 4xx naming the field and the
//! limit, quickly, before anything is built or queued; and a job's estimated memory is checked
//! against its tier's `job_memory_mb` before it is queued.

mod common;

use std::time::{Duration, Instant};

use common::{problem, spawn_app_and_worker_with, spawn_app_with};
use engine::limits::{MAX_EXPRESSION_BYTES, MAX_INDICATOR_COLUMNS};
use engine::spec::Precision;
use serde_json::{json, Value};
use strata_core::config::Quota;
use strata_core::Tier;

/// What a hostile request may take of the api, at most, before its answer.
const QUICK: Duration = Duration::from_secs(1);

fn limits(config: &mut strata_core::Config) {
    config.tiers.basic = Quota {
        sweep_sets: Some(100),
        sweep_top: Some(100),
        job_memory_mb: Some(1024),
        submissions_per_minute: None,
        precision: Some(vec![Precision::Bar]),
        weight: 1,
        ..Quota::default()
    };
    config.tiers.pro = Quota {
        sweep_sets: Some(10_000),
        sweep_top: Some(1_000),
        job_memory_mb: Some(4096),
        precision: Some(vec![Precision::Bar, Precision::Hybrid]),
        weight: 3,
        ..Quota::default()
    };
    config.tiers.elite = Quota::default();
}

/// POSTs `spec` to `path` as `user` of `tier`; the answer and how long the api took.
async fn post(
    app: &common::TestApp,
    path: &str,
    tier: Tier,
    spec: &Value,
) -> (reqwest::Response, Duration) {
    let started = Instant::now();
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(app.token("ann", tier))
        .json(spec)
        .send()
        .await
        .unwrap();
    (response, started.elapsed())
}

/// A sweep of sma_cross on GOOG with `grid` and the other keys of `extra`.
fn sweep(grid: Value, extra: Value) -> Value {
    let mut spec = json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"template": "sma_cross"},
        "grid": grid,
    });
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    spec
}

/// The one field error of a 422 `code`: its field and message.
async fn refused(response: reqwest::Response, code: &str) -> (String, String) {
    let body = problem(response, 422, code).await;
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    (
        errors[0]["field"].as_str().unwrap().to_owned(),
        errors[0]["message"].as_str().unwrap().to_owned(),
    )
}

/// `max(a, max(b, ...))` as a balanced tree: many calls, little depth.
fn balanced_max(calls: &[String]) -> String {
    match calls {
        [one] => one.clone(),
        many => {
            let (a, b) = many.split_at(many.len() / 2);
            format!("max({},{})", balanced_max(a), balanced_max(b))
        }
    }
}

fn sma_calls(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("sma(close,{i})")).collect()
}

#[tokio::test]
async fn a_top_beyond_the_tier_is_a_422_on_top_and_an_unlimited_one_keeps_every_set() {
    let app = spawn_app_and_worker_with(limits).await;
    let spec = sweep(
        json!({"fast": [5, 10]}),
        json!({"top": 35_184_372_088_832_u64}),
    );
    let (response, took) = post(&app, "/v1/sweeps", Tier::Basic, &spec).await;
    let (field, message) = refused(response, "validation_failed").await;
    assert_eq!(field, "top");
    assert_eq!(
        message,
        "sweep_top: top asks for the equity curves of 35184372088832 ranked sets; the basic \
         tier keeps at most 100; pro allows 1000"
    );
    assert!(took < QUICK, "{took:?}");

    // Elite has no cap: the run keeps one curve per set and the worker lives to tell.
    let (response, _) = post(&app, "/v1/sweeps", Tier::Elite, &spec).await;
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    let finished = app.wait_finished("ann", id, 60).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let result: Value = app.get_json(&format!("/v1/jobs/{id}/result"), "ann").await;
    let results = result["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().all(|set| set["equity"].is_array()),
        "{result}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_long_range_is_counted_not_built_and_refused_at_once() {
    let app = spawn_app_with(limits).await;
    let spec = sweep(json!({"fast": "1:200000:1"}), json!({}));
    let (response, took) = post(&app, "/v1/sweeps", Tier::Basic, &spec).await;
    let (field, message) = refused(response, "validation_failed").await;
    assert_eq!(field, "grid");
    assert_eq!(
        message,
        "sweep_sets: the grid has 200000 parameter sets; the basic tier allows 100; pro allows \
         10000"
    );
    assert!(took < QUICK, "{took:?}");

    // Past the engine's own ceiling, whatever the tier.
    let spec = sweep(json!({"fast": "1:2000000:1"}), json!({}));
    let (response, took) = post(&app, "/v1/sweeps", Tier::Elite, &spec).await;
    let (field, message) = refused(response, "validation_failed").await;
    assert_eq!(field, "grid.fast");
    assert_eq!(
        message,
        "the range has 2000000 values, more than the 1000000 allowed"
    );
    assert!(took < QUICK, "{took:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_constrained_grid_of_millions_is_refused_without_evaluating_its_constraint() {
    let app = spawn_app_with(limits).await;
    // 9,000,000 sets of which the constraint keeps none: evaluating it took 6.5 s.
    let spec = sweep(
        json!({"fast": "1:3000:1", "slow": "1:3000:1"}),
        json!({"constraint": "fast > slow * 1000"}),
    );
    let (response, took) = post(&app, "/v1/sweeps", Tier::Basic, &spec).await;
    let (field, message) = refused(response, "validation_failed").await;
    assert_eq!(field, "grid");
    assert_eq!(
        message,
        "sweep_sets: the grid has 9000000 parameter sets before its constraint, more than the \
         10000 (100 x 100) whose constraint is evaluated to count them; narrow the ranges or \
         draw some with samples; the basic tier allows 100; pro allows 10000"
    );
    assert!(took < QUICK, "{took:?}");

    // A constraint longer than the engine allows.
    let long = format!("fast < slow{}", " and fast > 0".repeat(100));
    let spec = sweep(json!({"fast": [5, 10]}), json!({"constraint": long}));
    let (response, took) = post(&app, "/v1/sweeps", Tier::Basic, &spec).await;
    let (field, message) = refused(response, "validation_failed").await;
    assert_eq!(field, "constraint");
    assert_eq!(
        message,
        "the constraint is 1311 bytes long, more than the 1024 allowed"
    );
    assert!(took < QUICK, "{took:?}");
    app.stop().await;
}

#[tokio::test]
async fn expressions_are_bounded_in_length_and_in_indicator_columns() {
    let app = spawn_app_with(limits).await;
    let backtest = |entry: &str| {
        json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"entry": entry, "exit": "close < 0"},
        })
    };
    // 30,000 distinct sma calls in a balanced max(...) tree, within the JSON body limit: the
    // cache would keep every column for the whole job.
    let huge = format!("{} > 0", balanced_max(&sma_calls(30_000)));
    let (response, took) = post(&app, "/v1/backtests", Tier::Elite, &backtest(&huge)).await;
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "strategy.entry");
    assert_eq!(
        body["errors"][0]["message"],
        format!(
            "the expression is {} bytes long, more than the {MAX_EXPRESSION_BYTES} allowed",
            huge.len()
        )
    );
    assert!(took < QUICK, "{took:?}");

    // Within the length, one distinct column too many: the error points at its call.
    let over = format!(
        "{} > 0",
        balanced_max(&sma_calls(MAX_INDICATOR_COLUMNS + 1))
    );
    assert!(over.len() <= MAX_EXPRESSION_BYTES);
    let (response, took) = post(&app, "/v1/backtests", Tier::Elite, &backtest(&over)).await;
    let body = problem(response, 422, "validation_failed").await;
    let error = &body["errors"][0];
    assert_eq!(error["field"], "strategy.entry");
    let last = format!("sma(close,{})", MAX_INDICATOR_COLUMNS + 1);
    assert_eq!(
        error["message"],
        format!(
            "too many indicators: {last} would be indicator column 257, more than the 256 \
             distinct columns one strategy may compute"
        )
    );
    assert_eq!(error["column"], over.find(&last).unwrap() + 1);
    assert!(took < QUICK, "{took:?}");
    app.stop().await;
}

#[tokio::test]
async fn too_many_walk_forward_windows_are_a_422_on_walk_forward() {
    let app = spawn_app_with(limits).await;
    let spec = sweep(
        json!({"fast": [5, 10]}),
        json!({"walk_forward": {"in_sample": "1", "out_of_sample": "1"}}),
    );
    let (response, took) = post(&app, "/v1/walk-forwards", Tier::Basic, &spec).await;
    let (field, message) = refused(response, "validation_failed").await;
    assert_eq!(field, "walk_forward");
    assert!(
        message.starts_with("about 2147 windows fit the data's 2148 bars, more than the 1000"),
        "{message}"
    );
    assert!(took < QUICK, "{took:?}");
    // Windows of a year and a quarter fit.
    let spec = sweep(
        json!({"fast": [5, 10]}),
        json!({"walk_forward": {"in_sample": "250", "out_of_sample": "60"}}),
    );
    let (response, _) = post(&app, "/v1/walk-forwards", Tier::Basic, &spec).await;
    assert_eq!(response.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn a_job_beyond_the_memory_budget_is_refused_before_it_is_queued() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.sweep_sets = Some(5_000);
        config.tiers.basic.job_memory_mb = Some(8);
    })
    .await;
    // 2,000 sets, each its own sma(close, fast): 2,000 columns of 2,148 bars kept to the end.
    let spec = sweep(json!({"fast": "1:2000:1"}), json!({}));
    let (response, took) = post(&app, "/v1/sweeps", Tier::Basic, &spec).await;
    let (field, message) = refused(response, "job_memory_exceeded").await;
    assert_eq!(field, "grid");
    assert!(
        message.starts_with("job_memory_mb: the job would hold about "),
        "{message}"
    );
    assert!(message.contains("(indicator columns 33 MiB, "), "{message}");
    assert!(
        message.ends_with("on 2148 bars of 'GOOG'; the basic tier allows 8 MiB; pro allows 4096"),
        "{message}"
    );
    assert!(took < QUICK, "{took:?}");
    // Pro's budget holds it; nothing of the refused one was stored.
    let (response, _) = post(&app, "/v1/sweeps", Tier::Pro, &spec).await;
    assert_eq!(response.status(), 202);
    let listed: Value = app.get_json("/v1/jobs", "ann").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);

    // A backtest whose own indicators are what is large is refused on its strategy.
    let entry = format!("{} > 0", balanced_max(&sma_calls(250)));
    let spec = json!({
        "data": {"dataset": "GOOG"},
        "strategy": {"entry": entry, "exit": "close < 0"},
    });
    let app = {
        app.stop().await;
        spawn_app_with(|config| {
            limits(config);
            config.tiers.basic.job_memory_mb = Some(2);
        })
        .await
    };
    let (response, _) = post(&app, "/v1/backtests", Tier::Basic, &spec).await;
    let (field, message) = refused(response, "job_memory_exceeded").await;
    assert_eq!(field, "strategy");
    assert!(message.contains("(indicator columns 5 MiB"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn submissions_are_counted_before_the_grid_is_checked() {
    let app = spawn_app_with(|config| {
        limits(config);
        config.tiers.basic.submissions_per_minute = Some(2);
    })
    .await;
    let hostile = sweep(
        json!({"fast": "1:3000:1", "slow": "1:3000:1"}),
        json!({"constraint": "fast > slow * 1000"}),
    );
    for _ in 0..2 {
        let (response, _) = post(&app, "/v1/sweeps", Tier::Basic, &hostile).await;
        assert_eq!(response.status(), 422);
    }
    // The third is refused by its rate, before any of its grid is looked at.
    let (response, took) = post(&app, "/v1/sweeps", Tier::Basic, &hostile).await;
    let body = problem(response, 429, "submission_rate_exceeded").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("at most 2 job submissions per minute"),
        "{body}"
    );
    assert!(took < QUICK, "{took:?}");
    app.stop().await;
}
