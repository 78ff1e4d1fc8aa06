//! The event loop: fills, fees, slippage, sizing, stops and targets, bar by bar.

use super::{Direction, Execution, ExitReason, Fill, Intrabar, Side, Trade};
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
        // 1. open: the order decided at the previous close.
        if let Some(order) = pending.take() {
            self.execute(order, bars.open[i], i);
        }
        // 2. inside the bar: stops and targets.
        if let Some(p) = self
            .position
            .filter(|p| p.stop.is_some() || p.target.is_some())
        {
            if let Some(hit) = intrabar.protective_exit(bars, i, p.side, p.stop, p.target) {
                // A stop is a market order (slippage); a take-profit is a limit (none).
                let fill = match hit.reason {
                    ExitReason::StopLoss => self.market_price(hit.price, p.side == Side::Short),
                    _ => hit.price,
                };
                self.close(fill, i, hit.reason);
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
    };
    let protective = execution.stop_loss.is_some() || execution.take_profit.is_some();
    let close = &bars.close[..n];
    let (entries, exits) = (&entries[..n], &exits[..n]);
    let mut equity = Vec::with_capacity(n);
    let mut exposure_bars = 0;
    let mut pending: Option<Order> = None;

    // Most bars have no order, no signal and no level to check: they are only marked to market,
    // a whole quiet run at a time. Bars with something to do go through `Account::events`.
    let (mut cash, mut held) = (account.cash, 0.0);
    let mut i = 0;
    while i < n {
        let watched = protective && held != 0.0;
        if pending.is_some() || watched || entries[i] | exits[i] {
            account.events(bars, i, entries[i], exits[i], &mut pending, intrabar);
            (cash, held) = (account.cash, account.held());
            equity.push(cash + held * close[i]);
            exposure_bars += usize::from(held != 0.0);
            i += 1;
            continue;
        }
        let quiet = entries[i..]
            .iter()
            .zip(&exits[i..])
            .position(|(&entry, &exit)| entry | exit)
            .unwrap_or(n - i);
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
}
