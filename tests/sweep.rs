//! `strata sweep` and `strata walk-forward` as a user runs them.

use std::process::{Command, Output};

use serde_json::Value;

const GOOG: &str = "examples/data/GOOG.csv";

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> Value {
    let output = strata(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("exactly one JSON document")
}

const GRID: [&str; 8] = [
    "--strategy",
    "sma_cross",
    "--grid",
    "fast=5:50:5",
    "--grid",
    "slow=20:200:20",
    "--fees",
    "0.001",
];

#[test]
fn the_best_set_equals_running_every_set_through_backtest() {
    let mut args = vec!["sweep", "--data", GOOG];
    args.extend(GRID);
    args.extend(["--format", "json"]);
    let sweep = json(&args);
    let results = sweep["results"].as_array().unwrap();
    assert_eq!(results.len(), 100, "10 x 10 grid");

    // Every set, one by one, through `strata backtest`.
    let mut best: Option<(f64, Value)> = None;
    for set in results {
        let fast = set["params"]["fast"].as_f64().unwrap().to_string();
        let slow = set["params"]["slow"].as_f64().unwrap().to_string();
        let single = json(&[
            "backtest",
            "--data",
            GOOG,
            "--strategy",
            "sma_cross",
            "--param",
            &format!("fast={fast}"),
            "--param",
            &format!("slow={slow}"),
            "--fees",
            "0.001",
            "--format",
            "json",
        ]);
        assert_eq!(single["metrics"], set["metrics"], "fast={fast} slow={slow}");
        let sharpe = single["metrics"]["sharpe"]
            .as_f64()
            .unwrap_or(f64::NEG_INFINITY);
        if best.as_ref().is_none_or(|(b, _)| sharpe > *b) {
            best = Some((sharpe, set["params"].clone()));
        }
    }
    let (best_sharpe, best_params) = best.unwrap();
    assert_eq!(sweep["best"]["params"], best_params);
    assert_eq!(
        sweep["best"]["metrics"]["sharpe"].as_f64().unwrap(),
        best_sharpe
    );
    assert_eq!(sweep["best"], results[0], "ranked best first");
}

#[test]
fn thread_count_does_not_change_results() {
    let run = |threads: &str| {
        let mut args = vec!["sweep", "--data", GOOG];
        args.extend(GRID);
        args.extend([
            "--constraint",
            "fast < slow",
            "--threads",
            threads,
            "--format",
            "json",
        ]);
        json(&args)
    };
    let one = run("1");
    assert_eq!(one, run("2"));
    assert_eq!(one, run("4"));
    assert!(one["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["params"]["fast"].as_f64() < r["params"]["slow"].as_f64()));
}

#[test]
fn table_lists_the_top_sets_and_a_heatmap() {
    let mut args = vec!["sweep", "--data", GOOG];
    args.extend(GRID);
    args.extend([
        "--constraint",
        "fast < slow",
        "--objective",
        "total_return",
        "--top",
        "5",
    ]);
    let output = strata(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("ranked by total_return (highest first)"),
        "{text}"
    );
    assert!(text.contains("best       fast="), "{text}");
    assert!(
        text.contains("total_return by slow (rows) and fast (columns)"),
        "{text}"
    );
    let ranked_rows = text
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains('%'))
        .count();
    assert_eq!(ranked_rows, 5, "{text}");
}

#[test]
fn bad_grid_and_constraint_are_named() {
    let output = strata(&["sweep", "--data", GOOG, "--grid", "fast=5:50:0"]);
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(err.contains("grid.fast"), "{err}");

    let output = strata(&["sweep", "--data", GOOG, "--grid", "fats=5:50:5"]);
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(err.contains("fats") && err.contains("fast, slow"), "{err}");

    let output = strata(&[
        "sweep",
        "--data",
        GOOG,
        "--grid",
        "fast=5:50:5",
        "--constraint",
        "fast < slwo",
    ]);
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(err.contains("constraint") && err.contains("slwo"), "{err}");

    let output = strata(&[
        "sweep",
        "--data",
        GOOG,
        "--grid",
        "fast=5:50:5",
        "--objective",
        "sharp",
    ]);
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(err.contains("sharp"), "{err}");
}

#[test]
fn walk_forward_stitches_out_of_sample_windows() {
    let result = json(&[
        "walk-forward",
        "--data",
        GOOG,
        "--strategy",
        "sma_cross",
        "--grid",
        "fast=5:30:5",
        "--grid",
        "slow=20:100:20",
        "--constraint",
        "fast < slow",
        "--in-sample",
        "500",
        "--out-of-sample",
        "250",
        "--format",
        "json",
    ]);
    let windows = result["windows"].as_array().unwrap();
    // 2148 bars: out-of-sample windows start at bars 500, 750, ..., 2000 (the last one short).
    assert!(
        (6..=7).contains(&windows.len()),
        "{} windows",
        windows.len()
    );
    for pair in windows.windows(2) {
        assert!(pair[0]["out_of_sample_end"].as_str() < pair[1]["out_of_sample_start"].as_str());
    }
    let equity = result["out_of_sample"]["equity"]["value"]
        .as_array()
        .unwrap();
    let final_equity = equity.last().unwrap().as_f64().unwrap();
    assert_eq!(
        result["out_of_sample"]["metrics"]["final_equity"]
            .as_f64()
            .unwrap(),
        final_equity
    );
    assert_eq!(
        result["out_of_sample"]["equity"]["time"][0],
        windows[0]["out_of_sample_start"]
    );

    let anchored = json(&[
        "walk-forward",
        "--data",
        GOOG,
        "--strategy",
        "sma_cross",
        "--grid",
        "fast=5:30:5",
        "--grid",
        "slow=20:100:20",
        "--in-sample",
        "730d",
        "--out-of-sample",
        "365d",
        "--anchored",
        "--format",
        "json",
    ]);
    let windows = anchored["windows"].as_array().unwrap();
    assert!(windows.len() >= 5);
    assert!(windows
        .iter()
        .all(|w| w["in_sample_start"] == "2004-08-19T00:00:00Z"));
}
