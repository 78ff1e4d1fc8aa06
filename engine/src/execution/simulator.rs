//! The event loop: fills, fees, slippage, sizing, stops and targets, bar by bar.

use super::{
    liquidation_price, through_liquidation, Direction, Execution, ExitReason, Fill, Intrabar, Side,
    Trade,
};
use crate::data::Bars;

/// What a simulation produces; metrics are computed from it afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// Equity at each bar's close: cash plus the position valued at the close.
    pub equity: Vec<f64>,
    /// Round trips in entry order; the last one may still be open.
    pub trades: Vec<Trade>,
    /// Total fees paid (entries and exits, fixed fees included).
    pub fees_paid: f64,
    /// Number of bars that closed with a position held.
    pub exposure_bars: usize,
}

/// What the signals of one bar ask for, given the position held at that bar's close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Open(Side),
    Close,
    /// Close the position and open the opposite one at the same price (`long_short`).
    Reverse(Side),
}

/// Reads one bar's entry and exit signals against the current position.
///
/// Conflicting signals (entry and exit on the same bar) cancel out, as in vectorbt.
pub(crate) fn decide(
    direction: Direction,
    held: Option<Side>,
    entry: bool,
    exit: bool,
) -> Option<Order> {
    if entry == exit {
        return None;
    }
    match (direction, held) {
        (Direction::Long, None) if entry => Some(Order::Open(Side::Long)),
        (Direction::Short, None) if entry => Some(Order::Open(Side::Short)),
        (Direction::Long | Direction::Short, Some(_)) if exit => Some(Order::Close),
        (Direction::LongShort, None) => {
            Some(Order::Open(if entry { Side::Long } else { Side::Short }))
        }
        (Direction::LongShort, Some(Side::Short)) if entry => Some(Order::Reverse(Side::Long)),
        (Direction::LongShort, Some(Side::Long)) if exit => Some(Order::Reverse(Side::Short)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
struct Position {
    side: Side,
    quantity: f64,
    entry_bar: usize,
    entry_price: f64,
    entry_fees: f64,
    stop: Option<f64>,
    target: Option<f64>,
    /// Where equity reaches the maintenance margin (see [`liquidation_price`]); `None` for a
    /// long on its own cash. Cash does not change while a position is held, so neither does it.
    liquidation: Option<f64>,
}

/// Cash, the open position and the trade log, with the fill rules.
struct Account<'a> {
    execution: &'a Execution,
    time: &'a [i64],
    slippage: f64,
    cash: f64,
    position: Option<Position>,
    trades: Vec<Trade>,
    fees_paid: f64,
    /// A liquidation left no equity: no position opens again.
    bust: bool,
}

impl Account<'_> {
    /// Fill price of a market order: slippage always goes against the trader.
    fn market_price(&self, price: f64, buying: bool) -> f64 {
        if buying {
            price * (1.0 + self.slippage)
        } else {
            price * (1.0 - self.slippage)
        }
    }

    fn fee(&self, value: f64) -> f64 {
        value * self.execution.fees + self.execution.fixed_fee
    }

    /// Opens a position worth `size` of equity at market; does nothing if that buys nothing.
    fn open(&mut self, side: Side, price: f64, bar: usize) {
        if self.bust {
            return;
        }
        let exec = self.execution;
        let budget = exec.size * self.cash;
        let fill = self.market_price(price, side == Side::Long);
        // Spend the budget on quantity and fees together: budget = q * fill * (1 + fees) + fixed
        // (the order of operations is vectorbt's, so results agree to the last digits).
        let mut quantity = (budget - exec.fixed_fee) / (1.0 + exec.fees) / fill;
        if let Some(lot) = exec.lot_size {
            quantity = (quantity / lot).floor() * lot;
        }
        if !(quantity > 0.0 && quantity.is_finite()) {
            return;
        }
        let fees = self.fee(quantity * fill);
        self.cash -= side.sign() * quantity * fill + fees;
        self.fees_paid += fees;
        let level = |fraction: f64, adverse: bool| {
            let away = if adverse { -fraction } else { fraction };
            fill * (1.0 + side.sign() * away)
        };
        self.position = Some(Position {
            side,
            quantity,
            entry_bar: bar,
            entry_price: fill,
            entry_fees: fees,
            stop: exec.stop_loss.map(|f| level(f, true)),
            target: exec.take_profit.map(|f| level(f, false)),
            liquidation: liquidation_price(
                self.cash,
                side,
                quantity,
                fill,
                exec.maintenance_margin,
            ),
        });
    }

    /// Closes the open position at `fill` (slippage already applied) and logs the trade.
    fn close(&mut self, fill: f64, bar: usize, reason: ExitReason) {
        let Some(p) = self.position.take() else {
            return;
        };
        let fees = self.fee(p.quantity * fill);
        self.cash += p.side.sign() * p.quantity * fill - fees;
        self.fees_paid += fees;
        self.log(p, fill, bar, reason, fees);
        // Only a liquidation can close below zero: the level is checked before any signal's
        // fill in a bar. The rule holds for any close all the same.
        if reason == ExitReason::Liquidation || self.cash < 0.0 {
            self.settle_liquidation();
        }
    }

    /// After a liquidation (see [`super::settle_liquidation`]).
    fn settle_liquidation(&mut self) {
        let margin = self.execution.maintenance_margin;
        if super::settle_liquidation(&mut self.cash, margin, &mut self.trades) {
            self.bust = true;
        }
    }

    fn log(
        &mut self,
        p: Position,
        exit_price: f64,
        bar: usize,
        reason: ExitReason,
        exit_fees: f64,
    ) {
        let fees = p.entry_fees + exit_fees;
        let pnl = p.side.sign() * p.quantity * (exit_price - p.entry_price) - fees;
        self.trades.push(Trade {
            side: p.side,
            entry_time: self.time[p.entry_bar],
            entry_bar: p.entry_bar,
            entry_price: p.entry_price,
            exit_time: self.time[bar],
            exit_bar: bar,
            exit_price,
            quantity: p.quantity,
            fees,
            pnl,
            return_: pnl / (p.quantity * p.entry_price),
            exit_reason: reason,
        });
    }

    /// The signed quantity held: positive long, negative short, zero flat.
    fn held(&self) -> f64 {
        self.position.map_or(0.0, |p| p.side.sign() * p.quantity)
    }

    /// The first bar in `from..to` whose range reaches the position's liquidation price.
    fn first_liquidation(&self, bars: &Bars, from: usize, to: usize) -> Option<usize> {
        let p = self.position?;
        let level = p.liquidation?;
        let reached = match p.side {
            Side::Long => bars.low[from..to].iter().position(|&low| low <= level),
            Side::Short => bars.high[from..to].iter().position(|&high| high >= level),
        };
        reached.map(|k| from + k)
    }

    /// Steps 1 to 3 of bar `i` (see the module doc): the pending order at the open, stops and
    /// targets inside the bar, the signals at the close.
    #[inline(never)]
    fn events(
        &mut self,
        bars: &Bars,
        i: usize,
        entry: bool,
        exit: bool,
        pending: &mut Option<Order>,
        intrabar: &mut impl Intrabar,
    ) {
        // 1. open: the order decided at the previous close. A position whose liquidation price
        // the open gapped through is liquidated there first.
        if let Some(order) = pending.take() {
            if let Some(p) = self.position {
                let open = bars.open[i];
                if p.liquidation
                    .is_some_and(|level| through_liquidation(p.side, open, level))
                {
                    let fill = self.market_price(open, p.side == Side::Short);
                    self.close(fill, i, ExitReason::Liquidation);
                }
            }
            self.execute(order, bars.open[i], i);
        }
        // 2. inside the bar: stops, targets and liquidation. The liquidation price acts as a
        // stop (a market order at the level, or at the open of a bar that gaps through it);
        // whichever of it and the stop-loss is nearer the price is reached first.
        if let Some(p) = self
            .position
            .filter(|p| p.stop.is_some() || p.target.is_some() || p.liquidation.is_some())
        {
            let stop = match (p.stop, p.liquidation) {
                (Some(stop), Some(level)) => Some(match p.side {
                    Side::Long => stop.max(level),
                    Side::Short => stop.min(level),
                }),
                (stop, level) => stop.or(level),
            };
            if let Some(hit) = intrabar.protective_exit(bars, i, p.side, stop, p.target) {
                // A stop or liquidation is a market order (slippage); a take-profit is a limit
                // (none). An adverse exit at or through the liquidation price is a liquidation.
                let reason = match hit.reason {
                    ExitReason::StopLoss
                        if p.liquidation
                            .is_some_and(|level| through_liquidation(p.side, hit.price, level)) =>
                    {
                        ExitReason::Liquidation
                    }
                    reason => reason,
                };
                let fill = match reason {
                    ExitReason::StopLoss | ExitReason::Liquidation => {
                        self.market_price(hit.price, p.side == Side::Short)
                    }
                    _ => hit.price,
                };
                self.close(fill, i, reason);
            }
        }
        // 3. close: this bar's signals.
        let held = self.position.map(|p| p.side);
        if let Some(order) = decide(self.execution.direction, held, entry, exit) {
            match self.execution.fill {
                Fill::Close => self.execute(order, bars.close[i], i),
                Fill::NextOpen => *pending = Some(order),
            }
        }
    }

    fn execute(&mut self, order: Order, price: f64, bar: usize) {
        match order {
            Order::Open(side) => self.open(side, price, bar),
            Order::Close | Order::Reverse(_) => {
                let selling = self.position.is_some_and(|p| p.side == Side::Long);
                let fill = self.market_price(price, !selling);
                self.close(fill, bar, ExitReason::Signal);
                if let Order::Reverse(side) = order {
                    self.open(side, price, bar);
                }
            }
        }
    }
}

/// Runs the event loop over `bars` with one entry and one exit signal per bar.
///
/// `intrabar` is the price source for stops and targets inside a bar (see [`Intrabar`]).
pub fn simulate(
    bars: &Bars,
    entries: &[bool],
    exits: &[bool],
    execution: &Execution,
    intrabar: &mut impl Intrabar,
) -> Simulation {
    let n = bars.len();
    assert!(entries.len() == n && exits.len() == n, "one signal per bar");
    let mut account = Account {
        execution,
        time: &bars.time,
        slippage: execution.slippage_bps / 10_000.0,
        cash: execution.initial_cash,
        position: None,
        // At most one trade per entry signal (and per exit signal when reversing): reserving
        // for them spares copying the log as it grows.
        trades: Vec::with_capacity(entries.iter().filter(|&&e| e).count() + 1),
        fees_paid: 0.0,
        bust: false,
    };
    let protective = execution.stop_loss.is_some() || execution.take_profit.is_some();
    let close = &bars.close[..n];
    let (entries, exits) = (&entries[..n], &exits[..n]);
    let mut equity = Vec::with_capacity(n);
    let mut exposure_bars = 0;
    let mut pending: Option<Order> = None;

    // Most bars have no order, no signal and no level to check: they are only marked to market,
    // a whole quiet run at a time. Bars with something to do go through `Account::events`; a
    // liquidation price ends a quiet run at the first bar that reaches it.
    let (mut cash, mut held) = (account.cash, 0.0);
    let mut i = 0;
    while i < n {
        let watched = protective && held != 0.0;
        let quiet = if pending.is_some() || watched || entries[i] | exits[i] {
            0
        } else {
            let quiet = entries[i..]
                .iter()
                .zip(&exits[i..])
                .position(|(&entry, &exit)| entry | exit)
                .unwrap_or(n - i);
            account
                .first_liquidation(bars, i, i + quiet)
                .map_or(quiet, |k| k - i)
        };
        if quiet == 0 {
            account.events(bars, i, entries[i], exits[i], &mut pending, intrabar);
            (cash, held) = (account.cash, account.held());
            equity.push(cash + held * close[i]);
            exposure_bars += usize::from(held != 0.0);
            i += 1;
            continue;
        }
        // 4. mark to market.
        equity.extend(close[i..i + quiet].iter().map(|&price| cash + held * price));
        exposure_bars += if held != 0.0 { quiet } else { 0 };
        i += quiet;
    }

    // A position still open is valued at the last close and reported as an open trade.
    if let Some(p) = account.position.take() {
        account.log(p, bars.close[n - 1], n - 1, ExitReason::Open, 0.0);
    }
    Simulation {
        equity,
        trades: account.trades,
        fees_paid: account.fees_paid,
        exposure_bars,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::BarRange;

    const DAY: i64 = 86_400_000_000_000;

    /// Bars from (open, high, low, close) rows, one day apart.
    fn bars(rows: &[(f64, f64, f64, f64)]) -> Bars {
        Bars {
            time: (0..rows.len() as i64).map(|i| i * DAY).collect(),
            open: rows.iter().map(|r| r.0).collect(),
            high: rows.iter().map(|r| r.1).collect(),
            low: rows.iter().map(|r| r.2).collect(),
            close: rows.iter().map(|r| r.3).collect(),
            volume: vec![1.0; rows.len()],
        }
    }

    fn rising() -> Bars {
        bars(&[
            (10.0, 11.0, 9.0, 10.0),
            (10.0, 12.0, 9.0, 11.0),
            (12.0, 13.0, 11.0, 12.0),
            (12.0, 14.0, 11.0, 13.0),
            (13.0, 15.0, 12.0, 14.0),
        ])
    }

    fn flags(n: usize, at: &[usize]) -> Vec<bool> {
        (0..n).map(|i| at.contains(&i)).collect()
    }

    fn run(bars: &Bars, entry_at: &[usize], exit_at: &[usize], execution: Execution) -> Simulation {
        let n = bars.len();
        simulate(
            bars,
            &flags(n, entry_at),
            &flags(n, exit_at),
            &execution,
            &mut BarRange,
        )
    }

    fn close_fill() -> Execution {
        Execution {
            fill: Fill::Close,
            initial_cash: 1000.0,
            ..Execution::default()
        }
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9 * expected.abs().max(1.0),
            "{actual} != {expected}"
        );
    }

    #[test]
    fn next_open_fills_at_the_following_bars_open() {
        let sim = run(
            &rising(),
            &[0],
            &[2],
            Execution {
                initial_cash: 1000.0,
                ..Execution::default()
            },
        );
        // Buy 100 at open[1] = 10, sell at open[3] = 12.
        assert_eq!(sim.equity, vec![1000.0, 1100.0, 1200.0, 1200.0, 1200.0]);
        let t = &sim.trades[0];
        assert_eq!(
            (t.entry_bar, t.entry_price, t.exit_bar, t.exit_price),
            (1, 10.0, 3, 12.0)
        );
        assert_eq!((t.quantity, t.pnl, t.return_), (100.0, 200.0, 0.2));
        assert_eq!(t.exit_reason, ExitReason::Signal);
        assert_eq!(sim.exposure_bars, 2);
    }

    #[test]
    fn next_open_signal_on_the_last_bar_never_fills() {
        let sim = run(&rising(), &[4], &[], Execution::default());
        assert!(sim.trades.is_empty());
        assert_eq!(sim.equity, vec![10_000.0; 5]);
    }

    #[test]
    fn close_fill_trades_at_the_signal_bars_close() {
        let sim = run(&rising(), &[0], &[2], close_fill());
        // Buy 100 at close[0] = 10, sell at close[2] = 12.
        assert_eq!(sim.equity, vec![1000.0, 1100.0, 1200.0, 1200.0, 1200.0]);
        assert_eq!((sim.trades[0].entry_bar, sim.trades[0].exit_bar), (0, 2));
        assert_eq!(sim.exposure_bars, 2);
    }

    #[test]
    fn fees_are_a_fraction_of_traded_value_on_both_fills() {
        let sim = run(
            &rising(),
            &[0],
            &[2],
            Execution {
                fees: 0.01,
                ..close_fill()
            },
        );
        // q = 1000 / 1.01 / 10 = 99.00990099; entry fee 9.9009901 (cash left 0);
        // exit: 99.00990099 * 12 = 1188.1188119, fee 11.881188, cash 1176.2376238.
        let q = 1000.0 / 1.01 / 10.0;
        let t = &sim.trades[0];
        assert_close(t.quantity, q);
        assert_close(sim.equity[1], q * 11.0);
        assert_close(sim.equity[4], q * 12.0 * 0.99);
        assert_close(sim.fees_paid, q * 10.0 * 0.01 + q * 12.0 * 0.01);
        assert_close(t.pnl, q * 2.0 - sim.fees_paid);
        assert_close(t.fees, sim.fees_paid);
    }

    #[test]
    fn fixed_fee_is_charged_per_fill() {
        let sim = run(
            &rising(),
            &[0],
            &[2],
            Execution {
                fixed_fee: 5.0,
                ..close_fill()
            },
        );
        // q = (1000 - 5) / 10 = 99.5; exit 99.5 * 12 - 5 = 1189.
        assert_close(sim.trades[0].quantity, 99.5);
        assert_close(sim.equity[4], 1189.0);
        assert_close(sim.fees_paid, 10.0);
        assert_close(sim.trades[0].pnl, 189.0);
    }

    #[test]
    fn slippage_moves_fills_against_the_trader() {
        let sim = run(
            &rising(),
            &[0],
            &[2],
            Execution {
                slippage_bps: 100.0,
                ..close_fill()
            },
        );
        // Buy at 10 * 1.01 = 10.1 (q = 99.00990099), sell at 12 * 0.99 = 11.88.
        let t = &sim.trades[0];
        assert_close(t.entry_price, 10.1);
        assert_close(t.exit_price, 11.88);
        assert_close(sim.equity[4], 1000.0 / 10.1 * 11.88);
        assert_eq!(sim.fees_paid, 0.0);
    }

    #[test]
    fn short_profits_from_a_fall_and_loses_on_a_rise() {
        let sim = run(
            &rising(),
            &[0],
            &[2],
            Execution {
                direction: Direction::Short,
                ..close_fill()
            },
        );
        // Sell 100 at 10 (cash 2000), cover at 12 (cash 800).
        assert_eq!(sim.equity, vec![1000.0, 900.0, 800.0, 800.0, 800.0]);
        let t = &sim.trades[0];
        assert_eq!((t.side, t.quantity, t.pnl), (Side::Short, 100.0, -200.0));
    }

    #[test]
    fn long_short_reverses_on_the_opposite_signal() {
        let sim = run(
            &rising(),
            &[0],
            &[2],
            Execution {
                direction: Direction::LongShort,
                ..close_fill()
            },
        );
        // Long 100 at 10; at close[2] = 12 sell 100 (cash 1200) and short 1200 / 12 = 100.
        // Last close 14: 2400 - 1400 = 1000.
        assert_eq!(sim.equity, vec![1000.0, 1100.0, 1200.0, 1100.0, 1000.0]);
        assert_eq!(sim.trades.len(), 2);
        let (long, short) = (&sim.trades[0], &sim.trades[1]);
        assert_eq!(
            (long.side, long.pnl, long.exit_reason),
            (Side::Long, 200.0, ExitReason::Signal)
        );
        assert_eq!(
            (short.side, short.entry_price, short.quantity),
            (Side::Short, 12.0, 100.0)
        );
        assert_eq!(
            (short.exit_reason, short.exit_price, short.pnl),
            (ExitReason::Open, 14.0, -200.0)
        );
        assert_eq!(sim.exposure_bars, 5);
    }

    #[test]
    fn long_short_opens_either_side_from_flat() {
        let sim = run(
            &rising(),
            &[],
            &[1],
            Execution {
                direction: Direction::LongShort,
                ..close_fill()
            },
        );
        assert_eq!(sim.trades[0].side, Side::Short);
        assert_eq!(sim.trades[0].entry_bar, 1);
    }

    #[test]
    fn conflicting_signals_cancel() {
        let sim = run(&rising(), &[1], &[1], close_fill());
        assert!(sim.trades.is_empty());
    }

    #[test]
    fn stop_loss_hit_inside_a_bar_fills_at_the_level() {
        let b = bars(&[
            (10.0, 11.0, 9.0, 10.0),
            (10.0, 10.5, 8.0, 9.0),
            (9.0, 10.0, 8.0, 9.5),
        ]);
        let sim = run(
            &b,
            &[0],
            &[],
            Execution {
                stop_loss: Some(0.15),
                ..close_fill()
            },
        );
        // Long 100 at 10; stop 8.5 touched by low[1] = 8.
        let t = &sim.trades[0];
        assert_eq!((t.exit_bar, t.exit_reason), (1, ExitReason::StopLoss));
        assert_close(t.exit_price, 8.5);
        assert_close(sim.equity[2], 850.0);
    }

    #[test]
    fn a_gap_through_the_stop_fills_at_the_open() {
        let b = bars(&[
            (10.0, 11.0, 9.0, 10.0),
            (8.0, 8.2, 7.5, 8.1),
            (8.0, 9.0, 8.0, 8.5),
        ]);
        let sim = run(
            &b,
            &[0],
            &[],
            Execution {
                stop_loss: Some(0.15),
                ..close_fill()
            },
        );
        let t = &sim.trades[0];
        assert_eq!(
            (t.exit_bar, t.exit_reason, t.exit_price),
            (1, ExitReason::StopLoss, 8.0)
        );
        assert_close(sim.equity[2], 800.0);
    }

    #[test]
    fn stop_loss_gets_slippage_and_take_profit_does_not() {
        let b = bars(&[(10.0, 11.0, 9.0, 10.0), (10.0, 10.5, 8.0, 9.0)]);
        let sim = run(
            &b,
            &[0],
            &[],
            Execution {
                stop_loss: Some(0.15),
                slippage_bps: 100.0,
                ..close_fill()
            },
        );
        // Entry 10.1, stop 10.1 * 0.85 = 8.585, sold at 8.585 * 0.99.
        assert_close(sim.trades[0].exit_price, 10.1 * 0.85 * 0.99);
    }

    #[test]
    fn take_profit_fills_at_the_target() {
        let sim = run(
            &rising(),
            &[0],
            &[],
            Execution {
                take_profit: Some(0.25),
                ..close_fill()
            },
        );
        // Target 12.5: high[1] = 12 misses, high[2] = 13 reaches it.
        let t = &sim.trades[0];
        assert_eq!(
            (t.exit_bar, t.exit_reason, t.exit_price),
            (2, ExitReason::TakeProfit, 12.5)
        );
        assert_close(sim.equity[4], 1250.0);
    }

    #[test]
    fn stop_is_assumed_first_when_both_levels_are_in_one_bar() {
        let b = bars(&[(10.0, 10.0, 10.0, 10.0), (10.0, 13.0, 8.0, 10.0)]);
        let sim = run(
            &b,
            &[0],
            &[],
            Execution {
                stop_loss: Some(0.1),
                take_profit: Some(0.1),
                ..close_fill()
            },
        );
        assert_eq!(sim.trades[0].exit_reason, ExitReason::StopLoss);
        assert_close(sim.trades[0].exit_price, 9.0);
    }

    #[test]
    fn short_stop_is_above_the_entry() {
        let b = bars(&[(10.0, 10.0, 10.0, 10.0), (10.0, 11.5, 9.5, 11.0)]);
        let exec = Execution {
            direction: Direction::Short,
            stop_loss: Some(0.1),
            ..close_fill()
        };
        let sim = run(&b, &[0], &[], exec);
        let t = &sim.trades[0];
        assert_eq!((t.exit_reason, t.exit_price), (ExitReason::StopLoss, 11.0));
        assert_close(t.pnl, -100.0);
    }

    #[test]
    fn next_open_entry_is_protected_within_its_first_bar() {
        let b = bars(&[
            (10.0, 10.0, 10.0, 10.0),
            (10.0, 10.5, 8.0, 9.0),
            (9.0, 9.0, 9.0, 9.0),
        ]);
        let exec = Execution {
            initial_cash: 1000.0,
            stop_loss: Some(0.1),
            ..Execution::default()
        };
        let sim = run(&b, &[0], &[], exec);
        let t = &sim.trades[0];
        assert_eq!(
            (t.entry_bar, t.exit_bar, t.exit_reason),
            (1, 1, ExitReason::StopLoss)
        );
        assert_close(t.exit_price, 9.0);
    }

    #[test]
    fn an_open_position_is_marked_to_market_at_the_end() {
        let sim = run(
            &rising(),
            &[0],
            &[],
            Execution {
                fees: 0.01,
                ..close_fill()
            },
        );
        let q = 1000.0 / 1.01 / 10.0;
        assert_close(sim.equity[4], q * 14.0);
        let t = &sim.trades[0];
        assert_eq!(
            (t.exit_reason, t.exit_bar, t.exit_price),
            (ExitReason::Open, 4, 14.0)
        );
        // Unrealised: no exit fee.
        assert_close(t.pnl, q * 4.0 - q * 10.0 * 0.01);
        assert_close(sim.fees_paid, q * 10.0 * 0.01);
    }

    #[test]
    fn lot_size_rounds_quantities_down() {
        let sim = run(
            &rising(),
            &[0],
            &[2],
            Execution {
                lot_size: Some(30.0),
                ..close_fill()
            },
        );
        // 100 rounds down to 90 shares; 100 cash stays idle.
        assert_eq!(sim.trades[0].quantity, 90.0);
        assert_close(sim.equity[4], 100.0 + 90.0 * 12.0);
    }

    #[test]
    fn size_commits_a_fraction_of_equity() {
        let sim = run(
            &rising(),
            &[0],
            &[2],
            Execution {
                size: 0.5,
                ..close_fill()
            },
        );
        assert_eq!(sim.trades[0].quantity, 50.0);
        assert_close(sim.equity[4], 1100.0);
    }

    /// Long twice its equity: 1000 cash buys 200 at 10 and borrows 1000, so equity reaches
    /// zero at 1000 / 200 = 5.
    fn leveraged_long() -> Execution {
        Execution {
            size: 2.0,
            ..close_fill()
        }
    }

    #[test]
    fn a_long_on_its_own_cash_has_no_liquidation_price() {
        assert_eq!(liquidation_price(0.0, Side::Long, 100.0, 10.0, 0.0), None);
        assert_eq!(liquidation_price(1e-12, Side::Long, 100.0, 10.0, 0.5), None);
        assert_eq!(
            liquidation_price(-1e-13, Side::Long, 100.0, 10.0, 0.0),
            None
        );
        assert_eq!(
            liquidation_price(-1000.0, Side::Long, 200.0, 10.0, 0.0),
            Some(5.0)
        );
        // A short of 100 sold at 10 from 1000 holds 2000: zero equity at 20.
        assert_eq!(
            liquidation_price(2000.0, Side::Short, 100.0, 10.0, 0.0),
            Some(20.0)
        );
    }

    #[test]
    fn a_leveraged_long_is_liquidated_at_the_price_where_equity_reaches_zero() {
        let b = bars(&[
            (10.0, 10.0, 10.0, 10.0),
            (10.0, 10.5, 4.0, 6.0),
            (6.0, 7.0, 5.5, 7.0),
            (7.0, 8.0, 6.5, 8.0),
        ]);
        // A second entry after the liquidation: the account is bust, nothing opens.
        let sim = run(&b, &[0, 2], &[], leveraged_long());
        assert_eq!(sim.trades.len(), 1);
        let t = &sim.trades[0];
        assert_eq!(
            (t.exit_bar, t.exit_reason, t.exit_price, t.quantity),
            (1, ExitReason::Liquidation, 5.0, 200.0)
        );
        assert_close(t.pnl, -1000.0);
        assert_eq!(sim.equity, vec![1000.0, 0.0, 0.0, 0.0]);
        assert_eq!(sim.exposure_bars, 1);
    }

    #[test]
    fn a_gap_through_the_liquidation_price_fills_at_the_open_and_floors_equity_at_zero() {
        let b = bars(&[
            (10.0, 10.0, 10.0, 10.0),
            (4.0, 4.5, 3.0, 4.0),
            (4.0, 9.0, 4.0, 9.0),
        ]);
        let sim = run(&b, &[0], &[], leveraged_long());
        let t = &sim.trades[0];
        assert_eq!(
            (t.exit_bar, t.exit_reason, t.exit_price),
            (1, ExitReason::Liquidation, 4.0)
        );
        // Sold 200 at 4 against 1000 borrowed: 200 short of zero, which the broker bears. The
        // trade loses what the account had.
        assert_close(t.pnl, -1000.0);
        assert_eq!(sim.equity, vec![1000.0, 0.0, 0.0]);
        let drawdown = crate::backtest::EquityCurve {
            time: std::borrow::Cow::Borrowed(&b.time),
            value: sim.equity.clone(),
        }
        .drawdown();
        assert!(drawdown.iter().all(|&d| d >= -1.0), "{drawdown:?}");
    }

    #[test]
    fn a_pending_order_meets_a_liquidation_at_the_open_first() {
        let b = bars(&[
            (10.0, 10.0, 10.0, 10.0),
            (10.0, 10.0, 9.0, 9.5),
            (4.0, 5.0, 4.0, 4.5),
        ]);
        // Bought 200 at open[1] = 10; the exit decided at close[1] would sell at open[2] = 4,
        // through the liquidation price 5: the account is liquidated there instead.
        let exec = Execution {
            fill: Fill::NextOpen,
            ..leveraged_long()
        };
        let sim = run(&b, &[0], &[1], exec);
        assert_eq!(sim.trades.len(), 1);
        let t = &sim.trades[0];
        assert_eq!(
            (t.entry_bar, t.exit_bar, t.exit_reason, t.exit_price),
            (1, 2, ExitReason::Liquidation, 4.0)
        );
        assert_eq!(sim.equity, vec![1000.0, 900.0, 0.0]);
    }

    #[test]
    fn a_short_squeezed_past_its_equity_is_liquidated() {
        // Short 100 at 10 from 1000: cash 2000, zero equity at 20.
        let b = bars(&[
            (10.0, 10.0, 10.0, 10.0),
            (12.0, 25.0, 11.0, 22.0),
            (22.0, 23.0, 8.0, 8.0),
        ]);
        let exec = Execution {
            direction: Direction::Short,
            ..close_fill()
        };
        let sim = run(&b, &[0, 1], &[], exec);
        assert_eq!(sim.trades.len(), 1);
        let t = &sim.trades[0];
        assert_eq!(
            (t.side, t.exit_bar, t.exit_reason, t.exit_price),
            (Side::Short, 1, ExitReason::Liquidation, 20.0)
        );
        assert_close(t.pnl, -1000.0);
        assert_eq!(sim.equity, vec![1000.0, 0.0, 0.0]);
    }

    #[test]
    fn liquidation_is_the_same_at_hybrid_precision() {
        let b = bars(&[
            (10.0, 10.0, 10.0, 10.0),
            (10.0, 10.2, 9.8, 10.0),
            (12.0, 25.0, 8.0, 22.0),
            (22.0, 23.0, 8.0, 8.0),
        ]);
        let exec = Execution {
            direction: Direction::Short,
            take_profit: Some(0.15),
            ..close_fill()
        };
        let bar = run(&b, &[0], &[], exec.clone());
        let mut hybrid = crate::execution::Hybrid::new(crate::execution::HybridSettings {
            threshold: 1.0,
            lookback: 2,
            ..Default::default()
        });
        let n = b.len();
        let sim = simulate(&b, &flags(n, &[0]), &flags(n, &[]), &exec, &mut hybrid);
        assert_eq!(bar.trades[0].exit_reason, ExitReason::Liquidation);
        // Bar 2 holds both the target (8.5) and the liquidation price (20) and is volatile:
        // a simulated path decides, and whichever it reaches, the account never goes below 0.
        assert_eq!(hybrid.simulated_bars(), 1);
        let t = &sim.trades[0];
        match t.exit_reason {
            ExitReason::Liquidation => assert_eq!(sim.equity[2..], [0.0, 0.0]),
            reason => assert_eq!(reason, ExitReason::TakeProfit),
        }
        assert!(sim.equity.iter().all(|&e| e >= 0.0));
    }

    #[test]
    fn a_maintenance_margin_leaves_equity_and_trading_goes_on() {
        let b = bars(&[
            (10.0, 10.0, 10.0, 10.0),
            (10.0, 10.5, 6.0, 7.0),
            (7.0, 7.5, 6.5, 7.0),
            (7.0, 8.0, 7.0, 8.0),
        ]);
        let exec = Execution {
            maintenance_margin: 0.25,
            ..leveraged_long()
        };
        let sim = run(&b, &[0, 2], &[], exec);
        // Equity -1000 + 200 p reaches 0.25 × 200 p at p = 1000 / 150.
        let level = 1000.0 / 150.0;
        let t = &sim.trades[0];
        assert_eq!((t.exit_bar, t.exit_reason), (1, ExitReason::Liquidation));
        assert_close(t.exit_price, level);
        let left = 0.25 * 200.0 * level;
        assert_close(sim.equity[1], left);
        // The next entry commits twice what is left.
        let again = &sim.trades[1];
        assert_eq!((again.entry_bar, again.exit_reason), (2, ExitReason::Open));
        assert_close(again.quantity, 2.0 * left / 7.0);
        assert_close(sim.equity[3], left + again.quantity * 1.0);
    }

    #[test]
    fn the_nearer_of_the_stop_and_the_liquidation_price_is_reached_first() {
        let b = bars(&[(10.0, 10.0, 10.0, 10.0), (10.0, 10.0, 3.0, 6.0)]);
        let exit = |stop_loss| {
            let exec = Execution {
                stop_loss: Some(stop_loss),
                ..leveraged_long()
            };
            let t = run(&b, &[0], &[], exec).trades[0].clone();
            (t.exit_reason, t.exit_price)
        };
        // Stop at 8, above the liquidation price 5: the stop fills first.
        assert_eq!(exit(0.2), (ExitReason::StopLoss, 8.0));
        // Stop at 4, below it: the liquidation comes first.
        assert_eq!(exit(0.6), (ExitReason::Liquidation, 5.0));
    }

    #[test]
    fn a_quiet_run_ends_at_the_bar_that_reaches_the_liquidation_price() {
        // No signal after the entry: the liquidation is found by the quiet-run scan.
        let mut rows = vec![(10.0, 10.0, 10.0, 10.0); 50];
        rows[30] = (10.0, 10.0, 4.0, 6.0);
        let b = bars(&rows);
        let sim = run(&b, &[0], &[], leveraged_long());
        let t = &sim.trades[0];
        assert_eq!((t.exit_bar, t.exit_reason), (30, ExitReason::Liquidation));
        assert!(sim.equity[..30].iter().all(|&e| e == 1000.0));
        assert!(sim.equity[30..].iter().all(|&e| e == 0.0));
        assert_eq!(sim.exposure_bars, 30);
    }
}
