//! Sweeps and walk-forwards on real data, checked against one backtest at a time.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::*;
use crate::backtest::run_backtest;
use crate::data::{self, LoadOptions, NANOS_PER_DAY};
use crate::execution::{simulate, BarRange, Execution};
use crate::expr::SeriesCache;
use crate::metrics::MetricInputs;
use crate::spec::StrategySpec;
use crate::strategy::Strategy;
use crate::Bars;

fn goog() -> Bars {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/GOOG.csv");
    data::load(&path, &LoadOptions::default()).unwrap()
}

fn sma_cross() -> Strategy {
    Strategy::from_spec(&StrategySpec {
        template: Some("sma_cross".to_owned()),
        ..StrategySpec::default()
    })
    .unwrap()
}

fn execution() -> Execution {
    Execution {
        fees: 0.001,
        ..Execution::default()
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// fast=5:50:5, slow=20:200:20, fast < slow: 90 of the 100 grid points.
fn grid_spec() -> SweepSpec {
    SweepSpec {
        grid: [
            ("fast".to_owned(), GridValues::Text("5:50:5".to_owned())),
            ("slow".to_owned(), GridValues::Text("20:200:20".to_owned())),
        ]
        .into(),
        constraint: Some("fast < slow".to_owned()),
        ..SweepSpec::default()
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// The same strategy with `params`, through `run_backtest`.
fn backtest<'a>(bars: &'a Bars, params: &Params) -> crate::BacktestResult<'a> {
    let compiled = Strategy {
        params: params.clone(),
        ..sma_cross()
    }
    .compile()
    .unwrap();
    run_backtest(bars, &compiled, &execution(), None)
}

#[test]
fn every_set_matches_its_own_backtest() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = SweepSpec {
        top: Some(3),
        ..grid_spec()
    };
    let sets = spec.parameter_sets(&strategy).unwrap();
    assert_eq!(sets.len(), 90);
    let result = run_sweep(
        &bars,
        &strategy,
        &sets,
        &execution(),
        None,
        &spec,
        &pool(4),
        &Control::default(),
    )
    .unwrap();
    assert_eq!(result.results.len(), 90);

    let mut expected: Vec<(usize, f64, String)> = sets
        .iter()
        .enumerate()
        .map(|(i, params)| {
            let m = backtest(&bars, params).metrics;
            (i, m.sharpe, json(&m))
        })
        .collect();
    // Best first, NaN last, ties in grid order.
    expected.sort_by(|a, b| match (a.1.is_nan(), b.1.is_nan()) {
        (false, false) => b.1.partial_cmp(&a.1).unwrap(),
        (a_nan, b_nan) => a_nan.cmp(&b_nan),
    });
    for (rank, (set, _, metrics)) in expected.iter().enumerate() {
        let got = &result.results[rank];
        assert_eq!(got.params, sets[*set], "rank {rank}");
        assert_eq!(
            json(&got.metrics),
            *metrics,
            "rank {rank}: {:?}",
            got.params
        );
    }
    assert!(result
        .results
        .windows(2)
        .all(|w| w[0].metrics.sharpe >= w[1].metrics.sharpe));
    let best = result.best.as_ref().unwrap();
    assert_eq!(json(best), json(&result.results[0]));
    // Equity values for the top 3 only, equal to their backtests' curves.
    for (rank, set) in result.results.iter().enumerate() {
        match &set.equity {
            Some(equity) => {
                assert!(rank < 3);
                assert_eq!(*equity, backtest(&bars, &set.params).equity.value);
            }
            None => assert!(rank >= 3),
        }
    }
}

#[test]
fn a_top_far_beyond_the_sets_keeps_every_curve_without_allocating_by_it() {
    // 2^45 curves asked for: the run once aborted reserving room for them.
    let bars = goog();
    let strategy = sma_cross();
    let spec = SweepSpec {
        grid: [("fast".to_owned(), GridValues::List(vec![5.0, 10.0]))].into(),
        top: Some(35_184_372_088_832),
        ..SweepSpec::default()
    };
    let sets = spec.parameter_sets(&strategy).unwrap();
    let result = run_sweep(
        &bars,
        &strategy,
        &sets,
        &execution(),
        None,
        &spec,
        &pool(2),
        &Control::default(),
    )
    .unwrap();
    assert_eq!(result.results.len(), 2);
    for set in &result.results {
        assert_eq!(
            set.equity.as_deref(),
            Some(backtest(&bars, &set.params).equity.value.as_slice())
        );
    }
}

#[test]
fn minimize_ranks_the_smallest_first() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = SweepSpec {
        objective: "max_drawdown".to_owned(),
        minimize: true,
        ..grid_spec()
    };
    let sets = spec.parameter_sets(&strategy).unwrap();
    let result = run_sweep(
        &bars,
        &strategy,
        &sets,
        &execution(),
        None,
        &spec,
        &pool(2),
        &Control::default(),
    )
    .unwrap();
    let drawdowns: Vec<f64> = result
        .results
        .iter()
        .map(|r| r.metrics.max_drawdown)
        .collect();
    assert!(drawdowns.windows(2).all(|w| w[0] <= w[1]));
    let worst = sets
        .iter()
        .map(|p| backtest(&bars, p).metrics.max_drawdown)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(drawdowns[0], worst);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = SweepSpec {
        top: Some(5),
        ..grid_spec()
    };
    let sets = spec.parameter_sets(&strategy).unwrap();
    let run = |threads: usize| {
        json(
            &run_sweep(
                &bars,
                &strategy,
                &sets,
                &execution(),
                None,
                &spec,
                &pool(threads),
                &Control::default(),
            )
            .unwrap(),
        )
    };
    let one = run(1);
    assert_eq!(one, run(4));
    assert_eq!(one, run(3));
}

#[test]
fn progress_reaches_the_total_in_order() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = grid_spec();
    let sets = spec.parameter_sets(&strategy).unwrap();
    let reports = Mutex::new(Vec::new());
    let progress = |done: usize, total: usize| reports.lock().unwrap().push((done, total));
    let control = Control {
        progress: Some(&progress),
        cancel: None,
    };
    run_sweep(
        &bars,
        &strategy,
        &sets,
        &execution(),
        None,
        &spec,
        &pool(4),
        &control,
    )
    .unwrap();
    let reports = reports.into_inner().unwrap();
    assert_eq!(reports, (1..=90).map(|d| (d, 90)).collect::<Vec<_>>());
}

#[test]
fn a_cancelled_sweep_stops_early() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = grid_spec();
    let sets = spec.parameter_sets(&strategy).unwrap();
    let cancel = AtomicBool::new(false);
    let calls = Mutex::new(0);
    let progress = |done: usize, _: usize| {
        *calls.lock().unwrap() += 1;
        if done >= 5 {
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let control = Control {
        progress: Some(&progress),
        cancel: Some(&cancel),
    };
    let outcome = run_sweep(
        &bars,
        &strategy,
        &sets,
        &execution(),
        None,
        &spec,
        &pool(2),
        &control,
    );
    assert!(matches!(outcome, Err(Cancelled)));
    // Sets already started finish; no new one starts once the flag is seen.
    let calls = calls.into_inner().unwrap();
    assert!((5..10).contains(&calls), "{calls} sets ran");
}

#[test]
fn indicators_are_computed_once_across_sets() {
    let bars = goog();
    let strategy = sma_cross();
    let values = "5:230:25";
    let spec = SweepSpec {
        grid: [
            ("fast".to_owned(), GridValues::Text(values.to_owned())),
            ("slow".to_owned(), GridValues::Text(values.to_owned())),
        ]
        .into(),
        constraint: Some("fast < slow".to_owned()),
        ..SweepSpec::default()
    };
    let sets = spec.parameter_sets(&strategy).unwrap();
    assert_eq!(sets.len(), 45);
    let cache = SeriesCache::new();
    let result = run_sweep_with_cache(
        &bars,
        &strategy,
        &sets,
        &execution(),
        None,
        &spec,
        &pool(4),
        &Control::default(),
        &cache,
    )
    .unwrap();
    assert_eq!(result.results.len(), 45);
    let mut expected: Vec<String> = (0..10)
        .map(|i| format!("sma(close,{})", 5 + 25 * i))
        .collect();
    expected.sort();
    assert_eq!(cache.keys(), expected);
}

#[test]
fn heatmap_of_two_parameters() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = grid_spec();
    let sets = spec.parameter_sets(&strategy).unwrap();
    let result = run_sweep(
        &bars,
        &strategy,
        &sets,
        &execution(),
        None,
        &spec,
        &pool(2),
        &Control::default(),
    )
    .unwrap();
    let map = result.heatmap("fast", "slow", "sharpe").unwrap();
    assert_eq!(
        map.x_values,
        [5., 10., 15., 20., 25., 30., 35., 40., 45., 50.]
    );
    assert_eq!(
        map.y_values,
        [20., 40., 60., 80., 100., 120., 140., 160., 180., 200.]
    );
    // slow = 20 (row 0): fast 5, 10, 15 ran; fast 20 and up were dropped by the constraint.
    let at = |fast: f64, slow: f64| {
        result
            .results
            .iter()
            .find(|r| r.params["fast"] == fast && r.params["slow"] == slow)
            .unwrap()
            .metrics
            .sharpe
    };
    assert_eq!(map.values[0][2], at(15.0, 20.0));
    assert!(map.values[0][3].is_nan());
    assert_eq!(map.values[9][9], at(50.0, 200.0));
    let value = serde_json::to_value(&map).unwrap();
    assert!(value["values"][0][3].is_null());
    assert_eq!(value["values"][0][2], at(15.0, 20.0));
    assert_eq!(value["x"], "fast");
    // Not a heatmap: the same parameter twice, an unknown one, or an unknown metric.
    assert!(result.heatmap("fast", "fast", "sharpe").is_none());
    assert!(result.heatmap("fast", "period", "sharpe").is_none());
    assert!(result.heatmap("fast", "slow", "sharp").is_none());
}

#[test]
fn heatmap_needs_exactly_two_varying_parameters() {
    let set = |a: f64, b: f64, c: f64| SetResult {
        params: [
            ("a".to_owned(), a),
            ("b".to_owned(), b),
            ("c".to_owned(), c),
        ]
        .into(),
        metrics: Metrics::compute(MetricInputs {
            equity: &[1.0, 2.0],
            initial_cash: 1.0,
            trades: &[],
            fees_paid: 0.0,
            exposure_bars: 0,
            periods_per_year: 1.0,
        }),
        equity: None,
    };
    let result = SweepResult {
        results: vec![set(1., 1., 1.), set(1., 1., 2.)],
        best: None,
    };
    assert!(result.heatmap("a", "b", "sharpe").is_none());
    assert!(result.heatmap("a", "c", "total_return").is_some());
}

#[test]
fn json_shape_of_a_sweep() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = SweepSpec {
        top: Some(1),
        ..grid_spec()
    };
    let sets = spec.parameter_sets(&strategy).unwrap();
    let result = run_sweep(
        &bars,
        &strategy,
        &sets[..3],
        &execution(),
        None,
        &spec,
        &pool(1),
        &Control::default(),
    )
    .unwrap();
    let value = serde_json::to_value(&result).unwrap();
    let results = value["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["params"].as_object().unwrap().len(), 2);
    assert!(results[0]["metrics"]["sharpe"].is_number());
    assert_eq!(results[0]["equity"].as_array().unwrap().len(), bars.len());
    assert!(results[1].get("equity").is_none());
    assert_eq!(value["best"], results[0]);
    // The spec round-trips through JSON.
    let text = json(&spec);
    assert_eq!(serde_json::from_str::<SweepSpec>(&text).unwrap(), spec);
}

/// A small grid for walk-forwards: fast 5:20:5 x slow 30:90:30.
fn small_spec() -> SweepSpec {
    SweepSpec {
        grid: [
            ("fast".to_owned(), GridValues::Text("5:20:5".to_owned())),
            ("slow".to_owned(), GridValues::Text("30:90:30".to_owned())),
        ]
        .into(),
        ..SweepSpec::default()
    }
}

fn walk_forward(
    bars: &Bars,
    walk: &WalkForwardSpec,
    control: &Control,
) -> Result<WalkForwardResult, WalkForwardError> {
    let strategy = sma_cross();
    let spec = small_spec();
    let sets = spec.parameter_sets(&strategy).unwrap();
    run_walk_forward(
        bars,
        &strategy,
        &sets,
        &execution(),
        None,
        &spec,
        walk,
        &pool(2),
        control,
    )
}

fn bar_walk(in_sample: &str, out_of_sample: &str, anchored: bool) -> WalkForwardSpec {
    WalkForwardSpec {
        in_sample: in_sample.to_owned(),
        out_of_sample: out_of_sample.to_owned(),
        step: None,
        anchored,
    }
}

/// One set's run over `range` of `bars`, its signals computed on the bars up to the range's end
/// only (no shared cache, no later bars), starting with `cash`.
fn window_run(
    bars: &Bars,
    params: &Params,
    range: std::ops::Range<usize>,
    cash: f64,
) -> (Vec<f64>, Vec<crate::execution::Trade>, f64, usize, Metrics) {
    let compiled = Strategy {
        params: params.clone(),
        ..sma_cross()
    }
    .compile()
    .unwrap();
    let history = bars.slice(0..range.end);
    let signals = compiled.signals(&history, &SeriesCache::new());
    let window = bars.slice(range.clone());
    let execution = Execution {
        initial_cash: cash,
        ..execution()
    };
    let sim = simulate(
        &window,
        &signals.entries[range.clone()],
        &signals.exits[range],
        &execution,
        &mut BarRange,
    );
    let metrics = Metrics::compute(MetricInputs {
        equity: &sim.equity,
        initial_cash: cash,
        trades: &sim.trades,
        fees_paid: sim.fees_paid,
        exposure_bars: sim.exposure_bars,
        periods_per_year: bars.periods_per_year().unwrap(),
    });
    (
        sim.equity,
        sim.trades,
        sim.fees_paid,
        sim.exposure_bars,
        metrics,
    )
}

#[test]
fn walk_forward_picks_in_sample_and_compounds_out_of_sample() {
    let bars = goog();
    let result = walk_forward(&bars, &bar_walk("500", "250", false), &Control::default()).unwrap();
    // 2148 bars: in-sample 500, out-of-sample 250: windows at 0, 250, ..., 1250.
    assert_eq!(bars.len(), 2148);
    assert_eq!(result.windows.len(), 6);
    let sets = small_spec().parameter_sets(&sma_cross()).unwrap();
    let mut cash = execution().initial_cash;
    let (mut equity, mut trades, mut fees, mut exposure) = (vec![], vec![], 0.0, 0);
    for (k, window) in result.windows.iter().enumerate() {
        let in_sample = 250 * k..250 * k + 500;
        let out_of_sample = in_sample.end..in_sample.end + 250;
        assert_eq!(window.in_sample_start, bars.time[in_sample.start]);
        assert_eq!(window.in_sample_end, bars.time[in_sample.end - 1]);
        assert_eq!(window.out_of_sample_start, bars.time[out_of_sample.start]);
        assert_eq!(window.out_of_sample_end, bars.time[out_of_sample.end - 1]);

        // The chosen set is the in-sample best, computed here set by set.
        let (best, best_sharpe) = sets
            .iter()
            .map(|p| {
                (
                    p,
                    window_run(&bars, p, in_sample.clone(), 10_000.0).4.sharpe,
                )
            })
            .fold((&sets[0], f64::NAN), |(bp, bv), (p, v)| {
                if bv.is_nan() || v > bv {
                    (p, v)
                } else {
                    (bp, bv)
                }
            });
        assert_eq!(window.params, *best, "window {k}");
        assert_eq!(window.in_sample_objective, best_sharpe);

        // Out of sample: starts with the previous window's final equity.
        let (values, window_trades, window_fees, window_exposure, metrics) =
            window_run(&bars, best, out_of_sample, cash);
        assert_eq!(json(&window.out_of_sample), json(&metrics), "window {k}");
        if k > 0 {
            let previous = &result.windows[k - 1].out_of_sample;
            let start =
                window.out_of_sample.final_equity / (1.0 + window.out_of_sample.total_return);
            assert!((start - previous.final_equity).abs() < 1e-9 * start);
        }
        cash = metrics.final_equity;
        equity.extend(values);
        trades.extend(window_trades);
        fees += window_fees;
        exposure += window_exposure;
    }
    let stitched = &result.out_of_sample;
    assert_eq!(stitched.equity.value, equity);
    assert_eq!(stitched.equity.time, bars.time[500..2000].to_vec());
    let metrics = Metrics::compute(MetricInputs {
        equity: &equity,
        initial_cash: execution().initial_cash,
        trades: &trades,
        fees_paid: fees,
        exposure_bars: exposure,
        periods_per_year: bars.periods_per_year().unwrap(),
    });
    assert_eq!(json(&stitched.metrics), json(&metrics));
    assert_eq!(stitched.metrics.final_equity, cash);
    assert_eq!(stitched.metrics.bars, 1500);
    // Results: the windows' chosen sets with their out-of-sample metrics, best first.
    assert_eq!(result.results.len(), 6);
    assert!(result
        .results
        .windows(2)
        .all(|w| w[0].metrics.sharpe >= w[1].metrics.sharpe || w[1].metrics.sharpe.is_nan()));
    assert_eq!(json(&result.best), json(&result.results.first()));
}

#[test]
fn anchored_walk_forward_grows_the_in_sample_window() {
    let bars = goog();
    let result = walk_forward(&bars, &bar_walk("500", "250", true), &Control::default()).unwrap();
    assert_eq!(result.windows.len(), 6);
    for (k, window) in result.windows.iter().enumerate() {
        assert_eq!(window.in_sample_start, bars.time[0]);
        assert_eq!(window.in_sample_end, bars.time[500 + 250 * k - 1]);
        assert_eq!(window.out_of_sample_start, bars.time[500 + 250 * k]);
    }
}

#[test]
fn duration_walk_forward_on_daily_bars() {
    let bars = goog();
    let walk = WalkForwardSpec {
        in_sample: "730d".to_owned(),
        out_of_sample: "180d".to_owned(),
        step: None,
        anchored: false,
    };
    let result = walk_forward(&bars, &walk, &Control::default()).unwrap();
    let t0 = bars.time[0];
    let day = NANOS_PER_DAY;
    for (k, w) in result.windows.iter().enumerate() {
        let start = t0 + k as i64 * 180 * day;
        let split = start + 730 * day;
        // First bar at or after the start, last bar before the end.
        let first_at_or_after = |t: i64| bars.time[bars.time.partition_point(|&x| x < t)];
        let last_before = |t: i64| bars.time[bars.time.partition_point(|&x| x < t) - 1];
        assert_eq!(w.in_sample_start, first_at_or_after(start));
        assert_eq!(w.in_sample_end, last_before(split));
        assert_eq!(w.out_of_sample_start, first_at_or_after(split));
        assert_eq!(w.out_of_sample_end, last_before(split + 180 * day));
    }
    // 2004-08-19 .. 2013-03-01 spans 3116 days, plus the last bar's day: window k is complete
    // while k * 180 + 730 + 180 <= 3117, so k = 0..=12.
    assert_eq!(result.windows.len(), 13);
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(
        json["windows"][0]["in_sample_start"],
        "2004-08-19T00:00:00Z"
    );
    // Whole parameter values come back as integers, as they were written.
    assert!(
        json["windows"][0]["params"]["fast"].is_u64(),
        "{}",
        json["windows"][0]["params"]
    );
    assert_eq!(
        json["out_of_sample"]["equity"]["time"][0],
        json["windows"][0]["out_of_sample_start"]
    );
    assert_eq!(
        json["out_of_sample"]["equity"]["value"]
            .as_array()
            .unwrap()
            .len(),
        result.out_of_sample.metrics.bars
    );
}

#[test]
fn walk_forward_longer_than_the_data_is_an_error() {
    let bars = goog();
    let error =
        walk_forward(&bars, &bar_walk("2000", "500", false), &Control::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "walk_forward: in_sample '2000' and out_of_sample '500' leave no complete window: the \
         data has 2148 bars from 2004-08-19 to 2013-03-01 (span 3116d)"
    );
    let error =
        walk_forward(&bars, &bar_walk("3000d", "1y", false), &Control::default()).unwrap_err();
    assert!(matches!(error, WalkForwardError::Invalid(_)));
}

#[test]
fn a_cancelled_walk_forward_stops() {
    let bars = goog();
    let cancel = AtomicBool::new(false);
    let reports = Mutex::new(Vec::new());
    let progress = |done: usize, total: usize| {
        reports.lock().unwrap().push((done, total));
        if done == 20 {
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let control = Control {
        progress: Some(&progress),
        cancel: Some(&cancel),
    };
    let outcome = walk_forward(&bars, &bar_walk("500", "250", false), &control);
    assert!(matches!(outcome, Err(WalkForwardError::Cancelled)));
    // 6 windows x (12 sets + 1 out-of-sample run).
    let reports = reports.into_inner().unwrap();
    assert!(reports.iter().all(|&(_, total)| total == 78));
    assert!(reports.len() < 30);
}

/// `cargo test --release -p engine sweep::tests::timing -- --ignored --nocapture`
#[test]
#[ignore = "timing: run on demand"]
fn timing_45_sets_on_a_million_bars() {
    let bars = crate::data::synthetic::random_walk(1_000_000, 42);
    let strategy = sma_cross();
    let values = GridValues::Text("5:230:25".to_owned());
    let spec = SweepSpec {
        grid: [
            ("fast".to_owned(), values.clone()),
            ("slow".to_owned(), values),
        ]
        .into(),
        constraint: Some("fast < slow".to_owned()),
        ..SweepSpec::default()
    };
    let sets = spec.parameter_sets(&strategy).unwrap();
    assert_eq!(sets.len(), 45);
    let pool = pool(2);
    for round in 0..3 {
        let started = std::time::Instant::now();
        let result = run_sweep(
            &bars,
            &strategy,
            &sets,
            &Execution::default(),
            None,
            &spec,
            &pool,
            &Control::default(),
        )
        .unwrap();
        let elapsed = started.elapsed();
        eprintln!(
            "round {round}: 45 sets x 1,000,000 bars on 2 threads: {elapsed:?} \
             ({:.1} M bar-sets/s); best {:?} sharpe {:.3}",
            45.0 / elapsed.as_secs_f64(),
            result.results[0].params,
            result.results[0].metrics.sharpe
        );
    }
}

/// Stops and targets 1 % away, hybrid paths in bars over 1.2 x their recent mean range.
fn hybrid_execution() -> Execution {
    Execution {
        stop_loss: Some(0.01),
        take_profit: Some(0.01),
        hybrid: Some(crate::execution::HybridSettings {
            seed: 7,
            threshold: 1.2,
            ..crate::execution::HybridSettings::default()
        }),
        ..execution()
    }
}

#[test]
fn a_hybrid_sweep_matches_its_backtests_on_any_thread_count() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = small_spec();
    let sets = spec.parameter_sets(&strategy).unwrap();
    let sweep = |threads| {
        run_sweep(
            &bars,
            &strategy,
            &sets,
            &hybrid_execution(),
            None,
            &spec,
            &pool(threads),
            &Control::default(),
        )
        .unwrap()
    };
    let result = sweep(4);
    assert_eq!(json(&result), json(&sweep(1)));
    let mut simulated = 0;
    let mut differs = false;
    for set in &result.results {
        let compiled = Strategy {
            params: set.params.clone(),
            ..sma_cross()
        }
        .compile()
        .unwrap();
        let hybrid = run_backtest(&bars, &compiled, &hybrid_execution(), None);
        assert_eq!(
            json(&set.metrics),
            json(&hybrid.metrics),
            "{:?}",
            set.params
        );
        if let crate::PrecisionReport::Hybrid { simulated_bars, .. } = hybrid.precision {
            simulated += simulated_bars;
        }
        let bar_execution = Execution {
            hybrid: None,
            ..hybrid_execution()
        };
        let bar = run_backtest(&bars, &compiled, &bar_execution, None);
        differs |= json(&bar.metrics) != json(&hybrid.metrics);
    }
    // The paths did decide some bars, and that changed some results.
    assert!(simulated > 0);
    assert!(differs);
}

#[test]
fn a_hybrid_walk_forward_is_the_same_on_any_thread_count() {
    let bars = goog();
    let strategy = sma_cross();
    let spec = small_spec();
    let sets = spec.parameter_sets(&strategy).unwrap();
    let walk = |threads| {
        run_walk_forward(
            &bars,
            &strategy,
            &sets,
            &hybrid_execution(),
            None,
            &spec,
            &bar_walk("500", "250", false),
            &pool(threads),
            &Control::default(),
        )
        .unwrap()
    };
    let hybrid = walk(3);
    assert_eq!(json(&hybrid), json(&walk(1)));
    assert_eq!(hybrid.windows.len(), 6);
}
