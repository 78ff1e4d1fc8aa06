//! Strata agrees with vectorbt 1.2 where the conventions match.
//!
//! Rules (see `../shared/reference/README.md`): long only, SMA cross signals, fills at the
//! signal bar's close, all cash invested with fees included, an open position marked at the last
//! close. The GOOG 10/20 figures are the shared reference; the others were produced the same way
//! by `Portfolio.from_signals(close, entries, exits, init_cash=10000, fees=F)` after pandas
//! rolling means, with entries `(f > s) & (f.shift(1) <= s.shift(1))` and the mirror for exits.

use serde_json::Value;
use std::process::Command;

struct Case {
    file: &'static str,
    fast: u32,
    slow: u32,
    fees: f64,
    final_equity: f64,
    total_return: f64,
    trades: u64,
    max_drawdown: f64,
    win_rate: f64,
}

const CASES: &[Case] = &[
    Case {
        file: "GOOG",
        fast: 10,
        slow: 20,
        fees: 0.0,
        final_equity: 72771.57406801813,
        total_return: 6.277157406801813,
        trades: 47,
        max_drawdown: -0.2290266923528984,
        win_rate: 0.5869565217391305,
    },
    Case {
        file: "GOOG",
        fast: 10,
        slow: 20,
        fees: 0.001,
        final_equity: 66309.01639603433,
        total_return: 5.630901639603434,
        trades: 47,
        max_drawdown: -0.23669800748328285,
        win_rate: 0.5652173913043478,
    },
    Case {
        file: "GOOG",
        fast: 20,
        slow: 50,
        fees: 0.0005,
        final_equity: 28355.06442074913,
        total_return: 1.8355064420749132,
        trades: 20,
        max_drawdown: -0.3737428308683671,
        win_rate: 0.42105263157894735,
    },
    Case {
        file: "EURUSD",
        fast: 5,
        slow: 50,
        fees: 0.0002,
        final_equity: 10027.163657907076,
        total_return: 0.0027163657907076414,
        trades: 87,
        max_drawdown: -0.038975738415958916,
        win_rate: 0.28735632183908044,
    },
    Case {
        file: "BTCUSD",
        fast: 3,
        slow: 12,
        fees: 0.002,
        final_equity: 2320355.1535589495,
        total_return: 231.03551535589494,
        trades: 4,
        max_drawdown: -0.5727584460788875,
        win_rate: 0.6666666666666666,
    },
];

fn assert_relative(what: &str, actual: f64, expected: f64) {
    let error = ((actual - expected) / expected).abs();
    assert!(
        error <= 1e-9,
        "{what}: {actual} vs vectorbt {expected} (relative error {error:e})"
    );
}

#[test]
fn sma_cross_agrees_with_vectorbt() {
    for case in CASES {
        let output = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "backtest",
                "--data",
                &format!("examples/data/{}.csv", case.file),
            ])
            .args([
                "--strategy",
                "sma_cross",
                "--param",
                &format!("fast={}", case.fast),
            ])
            .args(["--param", &format!("slow={}", case.slow), "--fill", "close"])
            .args([
                "--fees",
                &case.fees.to_string(),
                "--cash",
                "10000",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let result: Value = serde_json::from_slice(&output.stdout).unwrap();
        let m = &result["metrics"];
        let label = format!(
            "{} {}/{} fees {}",
            case.file, case.fast, case.slow, case.fees
        );
        assert_relative(
            &format!("{label} final_equity"),
            m["final_equity"].as_f64().unwrap(),
            case.final_equity,
        );
        assert_relative(
            &format!("{label} total_return"),
            m["total_return"].as_f64().unwrap(),
            case.total_return,
        );
        assert_relative(
            &format!("{label} max_drawdown"),
            m["max_drawdown"].as_f64().unwrap(),
            case.max_drawdown,
        );
        assert_relative(
            &format!("{label} win_rate"),
            m["win_rate"].as_f64().unwrap(),
            case.win_rate,
        );
        assert_eq!(m["trades"].as_u64().unwrap(), case.trades, "{label} trades");
    }
}
