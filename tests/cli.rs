//! The `strata` command line as a user runs it.

use serde_json::Value;
use std::process::Command;

const GOOG: &str = "examples/data/GOOG.csv";

fn strata(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr_of_failure(output: &std::process::Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    serde_json::from_str(&stdout(&strata(&all))).expect("exactly one JSON document")
}

#[test]
fn default_backtest_prints_a_readable_report() {
    let text = stdout(&strata(&["backtest", "--data", GOOG]));
    assert!(text.contains("sma_cross (fast=10, slow=20)"), "{text}");
    assert!(
        text.contains("2148 bars, 2004-08-19 .. 2013-03-01"),
        "{text}"
    );
    for name in [
        "final_equity",
        "sharpe",
        "max_drawdown",
        "win_rate",
        "trades",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[test]
fn json_output_has_metrics_trades_and_equity() {
    let result = json(&["backtest", "--data", GOOG]);
    let m = &result["metrics"];
    assert_eq!(m["bars"], 2148);
    assert!(m["max_drawdown"].as_f64().unwrap() <= 0.0);
    let trades = result["trades"].as_array().unwrap();
    assert_eq!(trades.len() as u64, m["trades"].as_u64().unwrap());
    assert_eq!(trades[0]["side"], "long");
    assert!(trades[0]["entry_time"]
        .as_str()
        .unwrap()
        .starts_with("2004-"));
    let equity = &result["equity"];
    assert_eq!(equity["value"].as_array().unwrap().len(), 2148);
    assert_eq!(equity["time"][0], "2004-08-19T00:00:00Z");
    let last = equity["value"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_f64()
        .unwrap();
    assert_eq!(last, m["final_equity"].as_f64().unwrap());
}

#[test]
fn spec_file_runs_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.json");
    std::fs::write(
        &spec,
        format!(
            r#"{{
              "data": {{ "path": "{GOOG}", "start": "2006-01-01", "end": "2010-12-31" }},
              "strategy": {{ "template": "ema_cross", "params": {{ "fast": 8 }} }},
              "direction": "long",
              "execution": {{ "fill": "close", "fees": 0.001, "initial_cash": 5000, "size": 1.0 }},
              "precision": "bar"
            }}"#
        ),
    )
    .unwrap();
    let spec = spec.to_str().unwrap();
    let from_spec = json(&["backtest", "--spec", spec]);
    let by_flags = json(&[
        "backtest",
        "--data",
        GOOG,
        "--start",
        "2006-01-01",
        "--end",
        "2010-12-31",
        "--strategy",
        "ema_cross",
        "--param",
        "fast=8",
        "--fill",
        "close",
        "--fees",
        "0.001",
        "--cash",
        "5000",
    ]);
    assert_eq!(from_spec, by_flags);
    assert_eq!(from_spec["equity"]["time"][0], "2006-01-03T00:00:00Z");
    assert_eq!(
        from_spec["equity"]["time"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "2010-12-31T00:00:00Z"
    );

    let overridden = json(&["backtest", "--spec", spec, "--cash", "10000"]);
    let ratio = overridden["metrics"]["final_equity"].as_f64().unwrap()
        / from_spec["metrics"]["final_equity"].as_f64().unwrap();
    assert!(
        (ratio - 2.0).abs() < 1e-9,
        "cash override scales equity: {ratio}"
    );
}

#[test]
fn custom_expressions_equal_the_template_they_spell_out() {
    let template = json(&["backtest", "--data", GOOG, "--strategy", "sma_cross"]);
    let written = json(&[
        "backtest",
        "--data",
        GOOG,
        "--entry",
        "cross_above(sma(close, fast), sma(close, slow))",
        "--exit",
        "cross_below(sma(close, fast), sma(close, slow))",
        "--param",
        "fast=10",
        "--param",
        "slow=20",
    ]);
    assert_eq!(template["metrics"], written["metrics"]);
}

#[test]
fn every_template_runs_on_goog() {
    let list: Value =
        serde_json::from_str(&stdout(&strata(&["strategies", "--format", "json"]))).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sma_cross",
            "ema_cross",
            "rsi_reversion",
            "bollinger_reversion",
            "macd_cross",
            "donchian_breakout",
            "buy_and_hold"
        ]
    );
    for name in names {
        let result = json(&["backtest", "--data", GOOG, "--strategy", name]);
        assert!(
            result["metrics"]["trades"].as_u64().unwrap() > 0,
            "{name} made no trade"
        );
    }
}

#[test]
fn buy_and_hold_follows_the_price() {
    let result = json(&[
        "backtest",
        "--data",
        GOOG,
        "--strategy",
        "buy_and_hold",
        "--fill",
        "close",
    ]);
    // Bought at the first close (100.34), held to the last (806.19 on 2013-03-01).
    let total = result["metrics"]["total_return"].as_f64().unwrap();
    let closes = std::fs::read_to_string(GOOG).unwrap();
    let last_close: f64 = closes
        .lines()
        .last()
        .unwrap()
        .split(',')
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (total - (last_close / 100.34 - 1.0)).abs() < 1e-12,
        "{total}"
    );
}

#[test]
fn strategies_lists_templates_with_parameters() {
    let text = stdout(&strata(&["strategies"]));
    assert!(text.contains("sma_cross  (fast=10, slow=20)"), "{text}");
    assert!(
        text.contains("entry: cross_above(sma(close, fast), sma(close, slow))"),
        "{text}"
    );
}

#[test]
fn bad_expression_shows_the_column() {
    let err = stderr_of_failure(&strata(&[
        "backtest",
        "--data",
        GOOG,
        "--entry",
        "cross_above(smaa(close, 10), sma(close, 20))",
        "--exit",
        "close < 0",
    ]));
    assert!(err.contains("strategy.entry"), "{err}");
    assert!(err.contains("unknown function 'smaa'"), "{err}");
    assert!(err.contains("column 13"), "{err}");
    assert!(
        err.contains("\n              ^"),
        "caret under the column:\n{err}"
    );
}

#[test]
fn unknown_parameter_is_named_with_the_known_ones() {
    let err = stderr_of_failure(&strata(&["backtest", "--data", GOOG, "--param", "fats=5"]));
    assert!(err.contains("unknown parameter 'fats'"), "{err}");
    assert!(err.contains("fast, slow"), "{err}");
}

#[test]
fn unknown_template_lists_the_available_ones() {
    let err = stderr_of_failure(&strata(&[
        "backtest",
        "--data",
        GOOG,
        "--strategy",
        "sma_crossing",
    ]));
    assert!(err.contains("unknown template 'sma_crossing'"), "{err}");
    assert!(err.contains("donchian_breakout"), "{err}");
}

#[test]
fn invalid_execution_values_name_the_field() {
    let err = stderr_of_failure(&strata(&[
        "backtest", "--data", GOOG, "--fees", "1.5", "--size", "0",
    ]));
    assert!(
        err.contains("execution.fees: must be a fraction in [0, 1), got 1.5"),
        "{err}"
    );
    assert!(err.contains("execution.size"), "{err}");
}

#[test]
fn missing_file_and_missing_data_are_clear() {
    let err = stderr_of_failure(&strata(&["backtest", "--data", "no/such/file.csv"]));
    assert!(err.contains("no/such/file.csv"), "{err}");
    let err = stderr_of_failure(&strata(&["backtest"]));
    assert!(err.contains("--data"), "{err}");
}

#[test]
fn spec_with_an_unknown_field_is_rejected_with_its_path_and_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, r#"{"data": {"path": "x.csv"}, "strategy": {"template": "sma_cross"}, "execution": {"fess": 0.1}}"#).unwrap();
    let err = stderr_of_failure(&strata(&["backtest", "--spec", spec.to_str().unwrap()]));
    assert!(
        err.contains("execution.fess: unknown field 'fess'; did you mean 'fees'?"),
        "{err}"
    );
    // JSON that does not read is named by line and column.
    std::fs::write(
        &spec,
        "{\"data\": {\"path\": \"x.csv\"},\n  \"strategy\": }",
    )
    .unwrap();
    let err = stderr_of_failure(&strata(&["backtest", "--spec", spec.to_str().unwrap()]));
    assert!(err.contains("line 2 column"), "{err}");
}

#[test]
fn precision_fields_are_checked_and_hybrid_runs() {
    // A field of another precision is refused by name.
    let err = stderr_of_failure(&strata(&["backtest", "--data", GOOG, "--latency-ms", "5"]));
    assert!(
        err.contains(
            r#"execution.latency_ms: applies only to precision "tick"; this spec's precision is "bar""#
        ),
        "{err}"
    );
    // Hybrid precision runs and reports its seed and the bars its paths decided.
    let result = json(&[
        "backtest",
        "--data",
        GOOG,
        "--stop-loss",
        "0.01",
        "--take-profit",
        "0.01",
        "--precision",
        "hybrid",
        "--intrabar-seed",
        "9",
        "--intrabar-threshold",
        "0.5",
    ]);
    let precision = &result["precision"];
    assert_eq!(precision["mode"], "hybrid");
    assert_eq!(
        (precision["seed"].as_u64(), precision["threshold"].as_f64()),
        (Some(9), Some(0.5))
    );
    assert_eq!(precision["simulated_bars"].as_u64(), Some(4));
    // Sweeps run at bar or hybrid precision only.
    let err = stderr_of_failure(&strata(&[
        "sweep",
        "--data",
        GOOG,
        "--grid",
        "fast=5,10",
        "--precision",
        "tick",
    ]));
    assert!(
        err.contains("precision: tick precision runs single backtests"),
        "{err}"
    );
}

#[test]
fn resampling_to_weekly_bars() {
    let result = json(&[
        "backtest",
        "--data",
        GOOG,
        "--timeframe",
        "1w",
        "--strategy",
        "buy_and_hold",
    ]);
    let bars = result["metrics"]["bars"].as_u64().unwrap();
    assert!((440..=450).contains(&bars), "{bars} weekly bars");
}

#[test]
fn datagen_writes_a_book_that_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("book.csv");
    let text = stdout(&strata(&[
        "datagen",
        "--kind",
        "book",
        "--events",
        "2000",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        text.starts_with("wrote 2000 book events (20 levels a side, "),
        "{text}"
    );
    assert!(text.contains("2024-01-02 to 2024-01-02 00:00:0"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    let data = engine::tick::load(&out, &engine::data::LoadOptions::default()).unwrap();
    assert_eq!(data, engine::tick::datagen::book(2000, 20, 7));
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(csv.lines().next(), Some("time,type,side,price,size"));
    // One row per event but the opening snapshot's clear.
    assert_eq!(csv.lines().count(), 1 + 1999);
}

#[test]
fn datagen_bars_run_a_backtest() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["bars.csv", "bars.parquet"] {
        let out = dir.path().join(name);
        let out = out.to_str().unwrap();
        let text = stdout(&strata(&[
            "datagen", "--kind", "bars", "--events", "5000", "--out", out,
        ]));
        assert!(
            text.contains("wrote 5000 one-minute bars") && text.contains("(3d 11h)"),
            "{text}"
        );
        let result = json(&["backtest", "--data", out]);
        assert_eq!(result["metrics"]["bars"], 5000);
        assert_eq!(result["equity"]["time"][0], "2024-01-02T00:00:00Z");
    }
}

#[test]
fn datagen_refuses_what_it_cannot_write() {
    let err = stderr_of_failure(&strata(&[
        "datagen",
        "--kind",
        "trades",
        "--events",
        "10",
        "--out",
        "ticks.json",
    ]));
    assert!(
        err.contains("ticks.json: unsupported file type; expected a .csv, .parquet or .pq file"),
        "{err}"
    );
    let err = stderr_of_failure(&strata(&[
        "datagen",
        "--kind",
        "trades",
        "--events",
        "10",
        "--out",
        "/nonexistent/dir/ticks.csv",
    ]));
    assert!(
        err.contains("cannot write /nonexistent/dir/ticks.csv"),
        "{err}"
    );
    let err = stderr_of_failure(&strata(&[
        "datagen", "--kind", "book", "--events", "10", "--out", "book.csv",
    ]));
    assert!(err.contains("--events must be at least 41"), "{err}");
    let err = stderr_of_failure(&strata(&[
        "datagen", "--kind", "bars", "--events", "0", "--out", "bars.csv",
    ]));
    assert!(err.contains("--events must be at least 1"), "{err}");
}

#[test]
fn a_short_that_loses_its_equity_is_liquidated() {
    // BTCUSD's monthly bars: a 3/12 sma_cross short filled at the close is squeezed when the
    // price doubles from its entry. Before liquidation it covered in full and equity went far
    // below zero.
    let result = json(&[
        "backtest",
        "--data",
        "examples/data/BTCUSD.csv",
        "--direction",
        "short",
        "--fill",
        "close",
        "--param",
        "fast=3",
        "--param",
        "slow=12",
    ]);
    let trades = result["trades"].as_array().unwrap();
    let last = trades.last().unwrap();
    assert_eq!(last["exit_reason"], "liquidation", "{last}");
    // Zero equity at twice the entry: the cover fills there.
    let (entry, exit) = (
        last["entry_price"].as_f64().unwrap(),
        last["exit_price"].as_f64().unwrap(),
    );
    assert!((exit - 2.0 * entry).abs() < 1e-9 * exit, "{last}");
    let metrics = &result["metrics"];
    assert!(
        metrics["max_drawdown"].as_f64().unwrap() >= -1.0,
        "{metrics}"
    );
    assert_eq!(metrics["final_equity"], 0.0);
    let equity = result["equity"]["value"].as_array().unwrap();
    assert!(equity.iter().all(|e| e.as_f64().unwrap() >= 0.0));
    let drawdown = result["equity"]["drawdown"].as_array().unwrap();
    assert!(drawdown.iter().all(|d| d.as_f64().unwrap() >= -1.0));
    // The table says the account is bust.
    let text = stdout(&strata(&[
        "backtest",
        "--data",
        "examples/data/BTCUSD.csv",
        "--direction",
        "short",
        "--fill",
        "close",
        "--param",
        "fast=3",
        "--param",
        "slow=12",
    ]));
    assert!(
        text.contains("bust: the last trade was liquidated"),
        "{text}"
    );
}

#[test]
fn sizes_above_one_need_leverage() {
    let err = stderr_of_failure(&strata(&["backtest", "--data", GOOG, "--size", "50"]));
    assert!(
        err.contains("execution.size: 50 commits 5000% of equity")
            && err.contains("set execution.leverage (CLI --leverage) to at least 50"),
        "{err}"
    );
    // With the leverage for it, a run whose longs fall through their liquidation price: the
    // account ends at zero, never below.
    let result = json(&[
        "backtest",
        "--data",
        GOOG,
        "--size",
        "50",
        "--leverage",
        "50",
    ]);
    let metrics = &result["metrics"];
    assert!(
        metrics["max_drawdown"].as_f64().unwrap() >= -1.0,
        "{metrics}"
    );
    assert!(
        metrics["final_equity"].as_f64().unwrap() >= 0.0,
        "{metrics}"
    );
    let reasons: Vec<&Value> = result["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["exit_reason"])
        .collect();
    assert!(
        reasons.contains(&&Value::from("liquidation")),
        "{reasons:?}"
    );
    // A maintenance margin liquidates earlier and leaves equity to trade on.
    let result = json(&[
        "backtest",
        "--data",
        GOOG,
        "--size",
        "50",
        "--leverage",
        "50",
        "--maintenance-margin",
        "0.005",
    ]);
    let trades = result["trades"].as_array().unwrap();
    let first = &trades[0];
    assert_eq!(first["exit_reason"], "liquidation", "{first}");
    assert!(trades.len() > 1 && result["metrics"]["final_equity"].as_f64().unwrap() > 0.0);
    let err = stderr_of_failure(&strata(&["backtest", "--data", GOOG, "--leverage", "500"]));
    assert!(
        err.contains("execution.leverage: must be in [1, 100]"),
        "{err}"
    );
}
