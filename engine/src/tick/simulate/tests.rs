//! The tick event loop against hand-built books with known answers, and a seeded synthetic
//! book for the invariants.

use rand::{Rng, SeedableRng};

use super::*;
use crate::strategy::Strategy;
use crate::tick::{ExecutionReport, FillReport};

const US: i64 = 1_000;
const MS: i64 = 1_000_000;

fn strategy(entry: &str, exit: &str) -> CompiledStrategy {
    Strategy {
        template: None,
        entry: entry.to_owned(),
        exit: exit.to_owned(),
        params: Default::default(),
    }
    .compile()
    .unwrap()
}

/// True at bar `k` only.
fn at_bar(k: usize) -> String {
    format!("shift(true, {k}) and not shift(true, {})", k + 1)
}

fn levels(data: &mut TickData, time: i64, bids: &[(f64, f64)], asks: &[(f64, f64)]) {
    for &(price, size) in bids {
        data.push(time, EventKind::Bid, price, size);
    }
    for &(price, size) in asks {
        data.push(time, EventKind::Ask, price, size);
    }
}

fn trade(data: &mut TickData, time: i64, price: f64, size: f64, by: Option<Aggressor>) {
    data.push(time, EventKind::Trade(by), price, size);
}

fn settings(orders: OrderType, latency: i64) -> TickSettings {
    TickSettings {
        latency,
        orders,
        clock: BarClock::Every(MS),
    }
}

fn limit(timeout: i64) -> OrderType {
    OrderType::Limit {
        offset_bps: 0.0,
        timeout,
    }
}

fn cash(initial_cash: f64) -> Execution {
    Execution {
        initial_cash,
        ..Execution::default()
    }
}

fn run(
    data: &TickData,
    entry: &str,
    exit: &str,
    execution: &Execution,
    settings: &TickSettings,
) -> TickBacktest {
    let backtest = run_tick_backtest(data, &strategy(entry, exit), execution, settings, None);
    assert_consistent(&backtest, execution);
    backtest
}

fn report(backtest: &TickBacktest) -> &ExecutionReport {
    match &backtest.result.precision {
        PrecisionReport::Tick(report) => report,
        other => panic!("not a tick report: {other:?}"),
    }
}

fn fills(backtest: &TickBacktest) -> &[FillReport] {
    &report(backtest).fills
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{actual} != {expected}"
    );
}

/// Equity, trades, fees and metrics tell the same story.
fn assert_consistent(backtest: &TickBacktest, execution: &Execution) {
    let result = &backtest.result;
    assert_eq!(result.equity.value.len(), backtest.bars.len());
    assert_eq!(&result.equity.time[..], &backtest.bars.time[..]);
    let pnl: f64 = result.trades.iter().map(|t| t.pnl).sum();
    let last = result.equity.value.last().copied();
    let scale = execution.initial_cash.abs().max(1.0);
    let final_equity = last.unwrap_or(execution.initial_cash);
    assert!(
        (final_equity - (execution.initial_cash + pnl)).abs() <= 1e-9 * scale,
        "final equity {final_equity} != {} + {pnl}",
        execution.initial_cash
    );
    assert_close(result.metrics.final_equity, final_equity);
    let fees: f64 = result.trades.iter().map(|t| t.fees).sum();
    assert!((result.metrics.fees_paid - fees).abs() <= 1e-9 * scale);
    for t in &result.trades {
        assert!(t.entry_bar <= t.exit_bar && t.exit_bar < backtest.bars.len());
        assert!(t.quantity > 0.0 && t.pnl.is_finite());
    }
    let report = report(backtest);
    assert_eq!(report.fill_count, report.fills.len());
    assert!(report.fills.windows(2).all(|w| w[0].time <= w[1].time));
}

/// A book three levels deep each side around 100.5.
fn three_levels() -> TickData {
    let mut data = TickData::default();
    levels(
        &mut data,
        0,
        &[(100.0, 5.0), (99.0, 10.0), (98.0, 20.0)],
        &[(101.0, 5.0), (102.0, 10.0), (103.0, 20.0)],
    );
    for bar in 0..3 {
        trade(&mut data, bar * MS + 500 * US, 100.5, 1.0, None);
    }
    data
}

#[test]
fn bars_are_cut_at_the_clock_and_skip_intervals_without_trades() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(99.0, 1.0)], &[(101.0, 1.0)]);
    trade(&mut data, 100 * US, 100.0, 1.0, None);
    trade(&mut data, 200 * US, 102.0, 2.0, None);
    trade(&mut data, 900 * US, 101.0, 3.0, None);
    trade(&mut data, 3 * MS + 1, 98.0, 4.0, None);
    let clock = Clock::build(&Events::of(&data), BarClock::Every(MS));
    let bars = &clock.bars;
    assert_eq!(bars.time, [0, 3 * MS]);
    assert_eq!(
        (bars.open[0], bars.high[0], bars.low[0], bars.close[0]),
        (100.0, 102.0, 100.0, 101.0)
    );
    assert_eq!((bars.volume[0], bars.close[1]), (6.0, 98.0));
    // Bar 0 is decided before the 3 ms trade, bar 1 after the last event.
    assert_eq!(clock.decide_at, [5, 6]);
    assert_eq!(clock.decide_time, [MS, 4 * MS]);
}

#[test]
fn event_bars_follow_the_last_trade_or_the_mid_without_trades() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(99.0, 1.0)], &[(101.0, 1.0)]);
    trade(&mut data, 10, 100.0, 2.0, None);
    levels(&mut data, 20, &[(99.5, 1.0)], &[]);
    let clock = Clock::build(&Events::of(&data), BarClock::Event);
    // The two book events before the first trade have no price yet.
    assert_eq!(clock.bars.close, [100.0, 100.0]);
    assert_eq!(clock.bars.volume, [2.0, 0.0]);
    assert_eq!(clock.decide_at, [3, 4]);

    let mut book_only = TickData::default();
    levels(&mut book_only, 0, &[(99.0, 1.0)], &[(101.0, 1.0)]);
    levels(&mut book_only, 5, &[], &[(100.0, 1.0)]);
    let clock = Clock::build(&Events::of(&book_only), BarClock::Event);
    assert_eq!(clock.bars.close, [100.0, 99.5]);
    assert!(clock.bars.volume.iter().all(|v| v.is_nan()));
}

#[test]
fn a_market_buy_larger_than_the_best_level_walks_three_levels() {
    let data = three_levels();
    let backtest = run(
        &data,
        &at_bar(0),
        "false",
        &cash(2020.0),
        &settings(OrderType::Market, 0),
    );
    // 2020 buys 20 at the best ask 101; the book gives 5 @ 101, 10 @ 102, 5 @ 103.
    let fill = &fills(&backtest)[0];
    assert_eq!(
        (fill.side, fill.origin),
        (OrderSide::Buy, OrderOrigin::EntrySignal)
    );
    assert_eq!((fill.order, fill.time), (OrderKind::Market, MS));
    assert_eq!(
        (fill.quantity, fill.price, fill.levels_consumed),
        (20.0, 102.0, 3)
    );
    assert_eq!(fill.decision_mid, 100.5);
    assert_close(fill.slippage_bps, 1.5 / 100.5 * 10_000.0);
    assert_close(fill.impact_bps.unwrap(), 1.0 / 101.0 * 10_000.0);
    let report = report(&backtest);
    assert_close(report.slippage_bps.mean, 1.5 / 100.5 * 10_000.0);
    assert_close(report.market_impact_bps, 1.0 / 101.0 * 10_000.0);
    assert_eq!((report.market_orders, report.unfilled_quantity), (1, 0.0));
    assert_eq!(
        (report.events, report.trades, report.book_updates),
        (9, 3, 6)
    );
    // Walking the book spent 2040 of 2020: impact is a real cost.
    assert_eq!(backtest.result.equity.value, [2020.0, 1990.0, 1990.0]);
    let t = &backtest.result.trades[0];
    assert_eq!((t.entry_bar, t.entry_price, t.quantity), (1, 102.0, 20.0));
    assert_eq!(
        (t.exit_reason, t.exit_price, t.pnl),
        (ExitReason::Open, 100.5, -30.0)
    );
}

#[test]
fn a_market_order_larger_than_the_book_fills_partly() {
    let backtest = run(
        &three_levels(),
        &at_bar(0),
        "false",
        &cash(10_100.0),
        &settings(OrderType::Market, 0),
    );
    // 100 wanted at 101; the asks hold 35.
    let fill = &fills(&backtest)[0];
    assert_eq!((fill.quantity, fill.levels_consumed), (35.0, 3));
    assert_eq!(report(&backtest).unfilled_quantity, 65.0);
    assert_eq!(backtest.result.trades[0].quantity, 35.0);
}

#[test]
fn a_limit_buy_fills_only_after_the_size_ahead_has_traded() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 100.0)], &[(101.0, 50.0)]);
    trade(&mut data, 500 * US, 100.5, 1.0, None);
    // Placed at 1 ms at the bid, 100 ahead. A buyer's print does not reach the bids.
    trade(&mut data, 1100 * US, 100.0, 5.0, Some(Aggressor::Buy));
    trade(&mut data, 1200 * US, 100.0, 60.0, Some(Aggressor::Sell));
    trade(&mut data, 1400 * US, 100.0, 50.0, Some(Aggressor::Sell));
    trade(&mut data, 1600 * US, 100.0, 30.0, None);
    trade(&mut data, 1800 * US, 99.5, 1.0, Some(Aggressor::Sell));
    trade(&mut data, 2500 * US, 100.0, 1.0, None);
    let backtest = run(
        &data,
        &at_bar(0),
        "false",
        &cash(10_000.0),
        &settings(limit(1_000 * MS), 0),
    );
    let got: Vec<(f64, f64, Option<i64>)> = fills(&backtest)
        .iter()
        .map(|f| (f.quantity, f.price, f.rested_ns))
        .collect();
    // 60 and 40 of the next 50 clear the queue; 10, then 30, then the trade through 100
    // fills the last 60.
    assert_eq!(
        got,
        [
            (10.0, 100.0, Some(400 * US)),
            (30.0, 100.0, Some(600 * US)),
            (60.0, 100.0, Some(800 * US)),
        ]
    );
    let report = report(&backtest);
    assert_eq!((report.limit_orders, report.limit_fill_ratio), (1, 1.0));
    assert_eq!(report.rested_mean_ns, 600_000.0);
    assert_eq!(report.slippage_bps.p50, -0.5 / 100.5 * 10_000.0);
    assert!(fills(&backtest).iter().all(|f| f.order == OrderKind::Limit));
    let t = &backtest.result.trades[0];
    assert_eq!((t.entry_bar, t.entry_price, t.quantity), (1, 100.0, 100.0));
}

#[test]
fn cancellations_ahead_move_a_limit_order_up_the_queue() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 100.0)], &[(101.0, 50.0)]);
    trade(&mut data, 500 * US, 100.5, 1.0, None);
    // After placement: 70 of the 100 ahead cancel, then 170 join behind us.
    levels(&mut data, 1100 * US, &[(100.0, 30.0)], &[]);
    levels(&mut data, 1200 * US, &[(100.0, 200.0)], &[]);
    trade(&mut data, 1300 * US, 100.0, 40.0, Some(Aggressor::Sell));
    trade(&mut data, 2500 * US, 100.5, 1.0, None);
    let backtest = run(
        &data,
        &at_bar(0),
        "false",
        &cash(10_000.0),
        &settings(limit(1_000 * MS), 0),
    );
    assert_eq!(fills(&backtest)[0].quantity, 10.0);
    let report = report(&backtest);
    assert_eq!(report.limit_fill_ratio, 0.1);
    assert_eq!(report.unfilled_quantity, 90.0);
}

#[test]
fn a_snapshot_without_our_level_empties_the_queue_ahead() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 100.0)], &[(101.0, 50.0)]);
    trade(&mut data, 500 * US, 100.5, 1.0, None);
    data.push(1100 * US, EventKind::Clear, 0.0, 0.0);
    levels(&mut data, 1100 * US, &[(99.0, 10.0)], &[(101.0, 50.0)]);
    trade(&mut data, 1300 * US, 100.0, 40.0, Some(Aggressor::Sell));
    trade(&mut data, 2500 * US, 100.5, 1.0, None);
    let backtest = run(
        &data,
        &at_bar(0),
        "false",
        &cash(10_000.0),
        &settings(limit(1_000 * MS), 0),
    );
    assert_eq!(fills(&backtest)[0].quantity, 40.0);
}

#[test]
fn latency_makes_the_order_meet_the_later_book() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 1000.0)], &[(101.0, 1000.0)]);
    trade(&mut data, 500 * US, 100.5, 1.0, None);
    // 5 ms after the decision at 1 ms the book moves up a point.
    levels(&mut data, 6 * MS, &[(100.0, 0.0), (101.0, 1000.0)], &[]);
    levels(&mut data, 6 * MS, &[], &[(101.0, 0.0), (102.0, 1000.0)]);
    trade(&mut data, 20 * MS + 500 * US, 101.5, 1.0, None);
    trade(&mut data, 21 * MS + 500 * US, 101.5, 1.0, None);
    let fill = |latency| {
        let backtest = run(
            &data,
            &at_bar(0),
            "false",
            &cash(10_100.0),
            &settings(OrderType::Market, latency),
        );
        let fill = fills(&backtest)[0].clone();
        (fill.time, fill.price, fill.quantity, fill.decision_mid)
    };
    assert_eq!(fill(0), (MS, 101.0, 100.0, 100.5));
    assert_eq!(fill(10 * MS), (11 * MS, 102.0, 10_100.0 / 102.0, 100.5));
}

#[test]
fn a_stop_triggered_by_a_trade_goes_out_at_market_after_the_latency() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 1000.0)], &[(101.0, 1000.0)]);
    trade(&mut data, 500 * US, 100.5, 1.0, None);
    trade(&mut data, 2500 * US, 100.5, 1.0, None);
    levels(&mut data, 3 * MS, &[(100.0, 0.0), (96.0, 1000.0)], &[]);
    levels(&mut data, 3 * MS, &[], &[(101.0, 0.0), (97.0, 1000.0)]);
    // The stop at 101 * 0.95 = 95.95 trades at 3.2 ms; while its order travels the bid
    // falls to 95.
    trade(&mut data, 3200 * US, 95.9, 1.0, Some(Aggressor::Sell));
    levels(&mut data, 3700 * US, &[(96.0, 0.0), (95.0, 1000.0)], &[]);
    trade(&mut data, 4500 * US, 95.0, 1.0, None);
    trade(&mut data, 5500 * US, 95.0, 1.0, None);
    let execution = Execution {
        stop_loss: Some(0.05),
        ..cash(10_100.0)
    };
    let backtest = run(
        &data,
        &at_bar(0),
        "false",
        &execution,
        &settings(OrderType::Market, MS),
    );
    let fills = fills(&backtest);
    assert_eq!(fills.len(), 2);
    let stop = &fills[1];
    assert_eq!(
        (stop.origin, stop.order, stop.side),
        (OrderOrigin::StopLoss, OrderKind::Market, OrderSide::Sell)
    );
    assert_eq!(
        (stop.time, stop.price, stop.quantity),
        (4200 * US, 95.0, 100.0)
    );
    assert_eq!(stop.decision_mid, 96.5);
    assert_close(stop.slippage_bps, 1.5 / 96.5 * 10_000.0);
    let t = &backtest.result.trades[0];
    assert_eq!(
        (t.exit_reason, t.exit_price, t.pnl),
        (ExitReason::StopLoss, 95.0, -600.0)
    );
    assert_eq!((t.entry_bar, t.exit_bar), (1, 3));
}

#[test]
fn a_take_profit_fills_at_its_level_when_a_trade_reaches_it() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 1000.0)], &[(101.0, 1000.0)]);
    trade(&mut data, 500 * US, 100.5, 1.0, None);
    trade(&mut data, 1500 * US, 105.0, 1.0, None);
    trade(&mut data, 1600 * US, 106.5, 1.0, Some(Aggressor::Buy));
    trade(&mut data, 2500 * US, 100.0, 1.0, None);
    let execution = Execution {
        take_profit: Some(0.05),
        ..cash(10_100.0)
    };
    let backtest = run(
        &data,
        &at_bar(0),
        "false",
        &execution,
        &settings(OrderType::Market, 0),
    );
    // Target 101 * 1.05 = 106.05: 105 misses, 106.5 prints through it.
    let t = &backtest.result.trades[0];
    assert_eq!(t.exit_reason, ExitReason::TakeProfit);
    assert_close(t.exit_price, 106.05);
    let tp = &fills(&backtest)[1];
    assert_eq!(
        (tp.origin, tp.order, tp.time),
        (OrderOrigin::TakeProfit, OrderKind::Limit, 1600 * US)
    );
}

#[test]
fn a_limit_order_times_out_and_reports_its_fill_ratio() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 100.0)], &[(101.0, 50.0)]);
    trade(&mut data, 500 * US, 100.5, 1.0, None);
    // Placed at 1 ms, cancelled at 3 ms: 25 fill before, nothing after.
    trade(&mut data, 1500 * US, 100.0, 125.0, Some(Aggressor::Sell));
    trade(&mut data, 2500 * US, 100.5, 1.0, Some(Aggressor::Buy));
    trade(&mut data, 3500 * US, 100.0, 500.0, Some(Aggressor::Sell));
    trade(&mut data, 4500 * US, 100.5, 1.0, None);
    let backtest = run(
        &data,
        &at_bar(0),
        "false",
        &cash(10_000.0),
        &settings(limit(2 * MS), 0),
    );
    let report = report(&backtest);
    assert_eq!(report.fill_count, 1);
    assert_eq!(
        (report.limit_fill_ratio, report.unfilled_quantity),
        (0.25, 75.0)
    );
    // What filled is kept.
    let t = &backtest.result.trades[0];
    assert_eq!((t.quantity, t.exit_reason), (25.0, ExitReason::Open));
    assert_close(backtest.result.metrics.final_equity, 10_000.0 + 25.0 * 0.5);
}

#[test]
fn long_short_reverses_through_the_book() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 1000.0)], &[(101.0, 1000.0)]);
    for bar in 0..4 {
        trade(&mut data, bar * MS + 500 * US, 100.5, 1.0, None);
    }
    let execution = Execution {
        direction: Direction::LongShort,
        ..cash(10_100.0)
    };
    let backtest = run(
        &data,
        &at_bar(0),
        &at_bar(2),
        &execution,
        &settings(OrderType::Market, 0),
    );
    // Long 100 @ 101; at 3 ms sell 100 @ 100 (cash 10000) and short 100 more @ 100.
    let result = &backtest.result;
    assert_eq!(result.equity.value, [10_100.0, 10_050.0, 10_050.0, 9_950.0]);
    let (long, short) = (&result.trades[0], &result.trades[1]);
    assert_eq!(
        (long.side, long.exit_price, long.pnl),
        (Side::Long, 100.0, -100.0)
    );
    assert_eq!((long.exit_reason, long.exit_bar), (ExitReason::Signal, 3));
    assert_eq!(
        (short.side, short.entry_price, short.quantity),
        (Side::Short, 100.0, 100.0)
    );
    assert_eq!((short.exit_reason, short.pnl), (ExitReason::Open, -50.0));
    let origins: Vec<OrderOrigin> = fills(&backtest).iter().map(|f| f.origin).collect();
    assert_eq!(
        origins,
        [
            OrderOrigin::EntrySignal,
            OrderOrigin::ExitSignal,
            OrderOrigin::EntrySignal
        ]
    );
    assert_eq!(report(&backtest).market_orders, 2);
}

#[test]
fn without_a_book_a_market_order_fills_at_the_next_trade() {
    let mut data = TickData::default();
    trade(&mut data, 500 * US, 100.0, 1.0, None);
    trade(&mut data, 1500 * US, 101.0, 1.0, None);
    trade(&mut data, 2500 * US, 102.0, 1.0, None);
    let backtest = run(
        &data,
        &at_bar(0),
        "false",
        &cash(10_000.0),
        &settings(OrderType::Market, 0),
    );
    let fill = &fills(&backtest)[0];
    assert_eq!(
        (fill.time, fill.price, fill.levels_consumed),
        (1500 * US, 101.0, 0)
    );
    assert_eq!((fill.decision_mid, fill.impact_bps), (100.0, None));
    assert_close(fill.slippage_bps, 100.0);
}

#[test]
fn event_clock_orders_meet_the_book_before_the_next_event() {
    let mut data = TickData::default();
    levels(&mut data, 0, &[(100.0, 1000.0)], &[(101.0, 1000.0)]);
    trade(&mut data, 10, 100.5, 1.0, None);
    levels(&mut data, 20, &[], &[(101.0, 0.0), (102.0, 1000.0)]);
    trade(&mut data, 30, 101.5, 1.0, None);
    let clock = TickSettings {
        clock: BarClock::Event,
        ..settings(OrderType::Market, 0)
    };
    // Bar 0 is the trade at 10 ns: the order fills at 101 before the ask moves.
    let backtest = run(&data, &at_bar(0), "false", &cash(10_100.0), &clock);
    assert_eq!(backtest.bars.len(), 4);
    assert_eq!(
        (fills(&backtest)[0].price, fills(&backtest)[0].time),
        (101.0, 10)
    );
    assert_eq!(backtest.result.trades[0].entry_bar, 1);
}

#[test]
fn the_report_is_serialized_under_precision_as_tick() {
    let backtest = run(
        &three_levels(),
        &at_bar(0),
        "false",
        &cash(2020.0),
        &settings(OrderType::Market, 0),
    );
    let json = serde_json::to_value(&backtest.result).unwrap();
    let precision = &json["precision"];
    assert_eq!(precision["mode"], "tick");
    assert_eq!(precision["fill_count"], 1);
    assert_eq!(precision["fills"][0]["origin"], "entry_signal");
    assert_eq!(precision["fills"][0]["order"], "market");
    assert_eq!(precision["fills"][0]["side"], "buy");
    assert_eq!(precision["fills"][0]["time"], "1970-01-01T00:00:00.001Z");
    assert!(precision["fills"][0]["rested_ns"].is_null());
    assert!(precision["limit_fill_ratio"].is_null());
}

#[test]
fn odd_data_never_panics() {
    let mut zero_levels = TickData::default();
    levels(&mut zero_levels, 0, &[(100.0, 0.0)], &[(101.0, 0.0)]);
    trade(&mut zero_levels, MS, 100.0, 0.0, None);
    trade(&mut zero_levels, 3 * MS, 100.0, 1.0, None);
    let mut clears = TickData::default();
    clears.push(0, EventKind::Clear, 0.0, 0.0);
    clears.push(MS, EventKind::Clear, 0.0, 0.0);
    let mut one_sided = TickData::default();
    levels(&mut one_sided, 0, &[(100.0, 5.0)], &[]);
    trade(&mut one_sided, 2 * MS, 100.0, 1.0, None);
    trade(&mut one_sided, 4 * MS, 100.0, 1.0, None);
    let mut ragged = three_levels();
    ragged.size.pop();
    let datasets = [
        TickData::default(),
        zero_levels,
        clears,
        one_sided,
        ragged,
        synthetic(2_000, 5, 7),
    ];
    let orders = [OrderType::Market, limit(MS), limit(0)];
    let clocks = [BarClock::Every(MS), BarClock::Every(0), BarClock::Event];
    let directions = [Direction::Long, Direction::Short, Direction::LongShort];
    for data in &datasets {
        for (&orders, &clock) in orders.iter().zip(&clocks) {
            for direction in directions {
                let execution = Execution {
                    direction,
                    stop_loss: Some(0.0001),
                    take_profit: Some(0.0001),
                    ..cash(1_000.0)
                };
                let settings = TickSettings {
                    latency: 3 * US,
                    orders,
                    clock,
                };
                run(data, "true", "shift(true, 3)", &execution, &settings);
                run(data, "false", "false", &execution, &settings);
            }
        }
    }
}

#[test]
fn equity_and_trades_agree_over_a_synthetic_day() {
    let data = synthetic(200_000, 20, 42);
    let sma = strategy(
        "cross_above(sma(close, 5), sma(close, 20))",
        "cross_below(sma(close, 5), sma(close, 20))",
    );
    for (orders, direction) in [
        (OrderType::Market, Direction::Long),
        (limit(2 * MS), Direction::LongShort),
        (
            OrderType::Limit {
                offset_bps: 1.0,
                timeout: MS,
            },
            Direction::Short,
        ),
    ] {
        let execution = Execution {
            direction,
            fees: 0.0005,
            fixed_fee: 0.1,
            lot_size: Some(1.0),
            stop_loss: Some(0.002),
            take_profit: Some(0.003),
            ..cash(100_000.0)
        };
        let settings = settings(orders, 50 * US);
        let backtest = run_tick_backtest(&data, &sma, &execution, &settings, None);
        assert_consistent(&backtest, &execution);
        let report = report(&backtest);
        assert!(
            report.fill_count > 10,
            "{orders:?}: {} fills",
            report.fill_count
        );
        assert!(backtest.result.trades.len() > 5);
        assert!(report.events > 0 && report.events <= data.len());
    }
}

#[test]
fn seek_finds_the_first_event_at_or_after_a_time() {
    let times: Vec<i64> = (0..100).map(|i| i / 3 * 10).collect();
    let data = TickData {
        time: times.clone(),
        kind: vec![EventKind::Clear; 100],
        price: vec![0.0; 100],
        size: vec![0.0; 100],
    };
    let events = Events::of(&data);
    for from in [0, 1, 5, 50, 99, 100] {
        for t in [-5, 0, 5, 10, 11, 150, 329, 330, 400] {
            let expected = (from..100).find(|&i| times[i] >= t).unwrap_or(100);
            assert_eq!(events.seek(from, t), expected, "from {from} t {t}");
        }
    }
}

/// A seeded book `levels` deep around 100 with a two-tick spread: a fifth of the events are
/// trades at the touch, one in twenty moves the mid a tick, the rest change a level's size.
fn synthetic(events: usize, levels: usize, seed: u64) -> TickData {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let price = |ticks: i64| ticks as f64 * 0.01;
    let depth = levels as i64;
    let mut mid: i64 = 10_000;
    let mut data = TickData::default();
    let mut t = 0;
    for i in 0..depth {
        data.push(t, EventKind::Bid, price(mid - 1 - i), 50.0);
        data.push(t, EventKind::Ask, price(mid + 1 + i), 50.0);
    }
    while data.len() < events {
        t += rng.random_range(1..20 * US);
        let roll: f64 = rng.random();
        let size = rng.random_range(1..100) as f64;
        if roll < 0.2 {
            let buy = rng.random_bool(0.5);
            let at = if buy { mid + 1 } else { mid - 1 };
            let by = if buy { Aggressor::Buy } else { Aggressor::Sell };
            data.push(t, EventKind::Trade(Some(by)), price(at), size.min(20.0));
        } else if roll < 0.25 {
            let up = rng.random_bool(0.5);
            let step = if up { 1 } else { -1 };
            if up {
                data.push(t, EventKind::Ask, price(mid + 1), 0.0);
                data.push(t, EventKind::Bid, price(mid), size);
                data.push(t, EventKind::Bid, price(mid - depth), 0.0);
                data.push(t, EventKind::Ask, price(mid + depth + 1), size);
            } else {
                data.push(t, EventKind::Bid, price(mid - 1), 0.0);
                data.push(t, EventKind::Ask, price(mid), size);
                data.push(t, EventKind::Ask, price(mid + depth), 0.0);
                data.push(t, EventKind::Bid, price(mid - depth - 1), size);
            }
            mid += step;
        } else {
            let level = rng.random_range(0..depth);
            if rng.random_bool(0.5) {
                data.push(t, EventKind::Bid, price(mid - 1 - level), size);
            } else {
                data.push(t, EventKind::Ask, price(mid + 1 + level), size);
            }
        }
    }
    data
}

#[test]
fn a_short_squeezed_past_its_equity_is_liquidated_and_the_account_is_bust() {
    // Trades only: orders fill at the next trade. Short 100 at 100 from 10,000: cash 20,000,
    // zero equity at 200. A trade at 250 sends the liquidation, which fills at the next trade,
    // 260: 6,000 beyond the equity, the broker's.
    let mut data = TickData::default();
    for (k, price) in [100.0, 100.0, 150.0, 250.0, 260.0, 100.0, 100.0]
        .into_iter()
        .enumerate()
    {
        trade(&mut data, k as i64 * MS + 500 * US, price, 1.0, None);
    }
    let execution = Execution {
        direction: Direction::Short,
        ..cash(10_000.0)
    };
    // An entry on every bar: none opens again after the liquidation.
    let backtest = run(
        &data,
        "true",
        "false",
        &execution,
        &settings(OrderType::Market, 0),
    );
    let trades = &backtest.result.trades;
    assert_eq!(trades.len(), 1, "{trades:?}");
    let t = &trades[0];
    assert_eq!(
        (t.side, t.entry_price, t.exit_reason, t.exit_price),
        (Side::Short, 100.0, ExitReason::Liquidation, 260.0)
    );
    assert_close(t.pnl, -10_000.0);
    let liquidation = &fills(&backtest)[1];
    assert_eq!(
        (liquidation.origin, liquidation.side, liquidation.price),
        (OrderOrigin::Liquidation, OrderSide::Buy, 260.0)
    );
    let equity = &backtest.result.equity.value;
    assert!(equity.iter().all(|&e| e >= 0.0), "{equity:?}");
    assert_eq!(equity.last(), Some(&0.0));
    assert!(backtest.result.metrics.max_drawdown >= -1.0);
}

#[test]
fn a_maintenance_margin_liquidates_a_leveraged_long_with_equity_left() {
    // Long 2x: 10,000 buys 200 at 100 and borrows 10,000. With a margin of 0.2 equity
    // -10,000 + 200 p reaches 0.2 × 200 p at p = 62.5; the trade at 60 sends the
    // liquidation, filled at the next trade, 61: 2,200 left, and trading goes on.
    let mut data = TickData::default();
    for (k, price) in [100.0, 100.0, 90.0, 60.0, 61.0, 70.0, 70.0, 80.0]
        .into_iter()
        .enumerate()
    {
        trade(&mut data, k as i64 * MS + 500 * US, price, 1.0, None);
    }
    let execution = Execution {
        size: 2.0,
        maintenance_margin: 0.2,
        ..cash(10_000.0)
    };
    let backtest = run(
        &data,
        "true",
        "false",
        &execution,
        &settings(OrderType::Market, 0),
    );
    let trades = &backtest.result.trades;
    let t = &trades[0];
    assert_eq!(
        (t.exit_reason, t.exit_price, t.quantity),
        (ExitReason::Liquidation, 61.0, 200.0)
    );
    assert_close(t.pnl, -7_800.0);
    // The next entry commits twice the 2,200 left.
    let again = &trades[1];
    assert_eq!(again.exit_reason, ExitReason::Open);
    assert_close(again.quantity * again.entry_price, 4_400.0);
    assert!(backtest.result.metrics.final_equity > 0.0);
}
