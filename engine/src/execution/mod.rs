//! The execution simulator: one event loop over bars that owns orders, fills, fees, slippage,
//! position sizing, stops, targets and liquidation.
//!
//! Within bar `i` events happen in this order:
//! 1. **open** — an order decided at the previous close (`fill = next_open`) fills at the open;
//! 2. **inside the bar** — an open position's stop-loss and take-profit are checked against the
//!    bar's prices as given by an [`Intrabar`] price source, the only thing that differs between
//!    precisions: [`BarRange`] (bar precision: the bar's open, high and low) or [`Hybrid`] (hybrid
//!    precision: a seeded simulated path inside volatile bars where both levels lie; chosen by
//!    [`Execution::hybrid`]). Tick precision replays real trades instead (`crate::tick`).
//!    An open position's liquidation price (see [`liquidation_price`]) is checked the same
//!    way, as a stop at that price; a bar whose open is through it when an order is pending
//!    liquidates at the open before that order fills. A liquidation that leaves no equity makes
//!    the account bust: equity stays 0 and no position opens again;
//! 3. **close** — the entry and exit signals of bar `i` are read; with `fill = close` the order
//!    fills at this close, with `fill = next_open` it waits for the next bar's open;
//! 4. **mark** — equity is cash plus the position valued at the close.

mod hybrid;
mod intrabar;
mod simulator;

pub use hybrid::{Hybrid, HybridSettings};
pub use intrabar::{BarRange, Intrabar, ProtectiveExit};
pub use simulator::{simulate, Simulation};
// The tick event loop reads signals with the same rules.
pub(crate) use simulator::{decide, Order};

use serde::{Deserialize, Serialize};

/// Which positions a strategy may hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Entry signals open longs, exit signals close them.
    #[default]
    Long,
    /// Entry signals open shorts, exit signals cover them.
    Short,
    /// Entry signals mean "be long", exit signals mean "be short"; an opposite signal reverses.
    LongShort,
}

/// When an order decided on a bar's signals is filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// At the next bar's open (no look-ahead: the signal needs the bar's close).
    #[default]
    NextOpen,
    /// At the signal bar's own close (the vectorbt `from_signals` default).
    Close,
}

/// The side of a position or trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Bought first, profits when the price rises.
    Long,
    /// Sold first, profits when the price falls.
    Short,
}

impl Side {
    /// +1 for long, -1 for short: multiplies a quantity into a signed position.
    pub fn sign(self) -> f64 {
        match self {
            Side::Long => 1.0,
            Side::Short => -1.0,
        }
    }
}

/// Why a trade was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The exit signal (or, for `long_short`, the opposite signal) closed it.
    Signal,
    /// The stop-loss level was touched (or gapped through) inside a bar.
    StopLoss,
    /// The take-profit level was touched (or gapped through) inside a bar.
    TakeProfit,
    /// Equity fell to the maintenance margin (zero by default): the position was closed at the
    /// price where that happened, or at the open of a bar that gapped through it.
    Liquidation,
    /// Still open at the last bar: valued at the last close, no exit fees charged.
    Open,
}

/// How orders are filled and what they cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Which positions may be held.
    pub direction: Direction,
    /// When a signal's order fills.
    pub fill: Fill,
    /// Fee as a fraction of traded value, charged on every fill.
    pub fees: f64,
    /// Fixed fee in cash per fill.
    pub fixed_fee: f64,
    /// Slippage in basis points, against the trader on market fills.
    pub slippage_bps: f64,
    /// Cash at the start.
    pub initial_cash: f64,
    /// Fraction of equity committed to each new position (1.0 = all of it; above 1 borrows,
    /// which the spec allows only up to its `leverage`).
    pub size: f64,
    /// Equity below which a position is liquidated, as a fraction of the position's value at
    /// the current price, in `[0, 1)`; 0 liquidates when equity reaches zero. See
    /// [`liquidation_price`].
    pub maintenance_margin: f64,
    /// Quantities are rounded down to a multiple of this; `None` allows fractional quantities.
    pub lot_size: Option<f64>,
    /// Stop-loss distance from the entry price, as a fraction (0.05 = 5 % adverse move).
    pub stop_loss: Option<f64>,
    /// Take-profit distance from the entry price, as a fraction.
    pub take_profit: Option<f64>,
    /// Hybrid precision's settings; `None` runs at bar precision.
    pub hybrid: Option<HybridSettings>,
}

impl Default for Execution {
    fn default() -> Self {
        Execution {
            direction: Direction::Long,
            fill: Fill::NextOpen,
            fees: 0.0,
            fixed_fee: 0.0,
            slippage_bps: 0.0,
            initial_cash: 10_000.0,
            size: 1.0,
            maintenance_margin: 0.0,
            lot_size: None,
            stop_loss: None,
            take_profit: None,
            hybrid: None,
        }
    }
}

/// The price at which a position of `quantity` on `side`, held with `cash`, is liquidated: where
/// equity (`cash + sign × quantity × price`) falls to `maintenance_margin × quantity × price`.
///
/// A long is liquidated at or below `-cash / (quantity × (1 − maintenance_margin))`, a short at
/// or above `cash / (quantity × (1 + maintenance_margin))`. `None` when no price can reach it:
/// a long bought with its own cash (`cash >= 0`) is never liquidated, whatever the margin; a
/// short always can be, even at a size of 1. A long level below a billionth of `entry_price`
/// counts as none: it is a rounding error of a long on its own cash, never traded.
pub fn liquidation_price(
    cash: f64,
    side: Side,
    quantity: f64,
    entry_price: f64,
    maintenance_margin: f64,
) -> Option<f64> {
    let level = match side {
        Side::Long => -cash / (quantity * (1.0 - maintenance_margin)),
        Side::Short => cash / (quantity * (1.0 + maintenance_margin)),
    };
    let reachable = match side {
        Side::Long => level > 1e-9 * entry_price,
        Side::Short => true,
    };
    (level.is_finite() && reachable).then_some(level)
}

/// Settles an account after a liquidation closed its position (or any close left `cash` below
/// zero). With no maintenance margin, equity has reached zero, and what a gap, the book's depth
/// or the exit's costs lost beyond it is the broker's, not the account's. Either way, or when a
/// margin above zero still left no cash, the account is bust: `cash` becomes 0, the last trade's
/// pnl becomes what the account actually lost, and the caller opens nothing again. Returns
/// whether it is bust. The bar and tick ledgers share this rule.
pub(crate) fn settle_liquidation(
    cash: &mut f64,
    maintenance_margin: f64,
    trades: &mut [Trade],
) -> bool {
    if *cash > 0.0 && maintenance_margin > 0.0 {
        return false;
    }
    let absorbed = -*cash;
    *cash = 0.0;
    if let Some(t) = trades.last_mut() {
        t.pnl += absorbed;
        t.return_ = t.pnl / (t.quantity * t.entry_price);
    }
    true
}

/// Whether `price` is at or through a liquidation `level` for a position on `side`.
pub(crate) fn through_liquidation(side: Side, price: f64, level: f64) -> bool {
    match side {
        Side::Long => price <= level,
        Side::Short => price >= level,
    }
}

/// One round trip: an entry fill and, unless still open, an exit fill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    /// Long or short.
    pub side: Side,
    /// Time of the entry bar (RFC 3339 in JSON).
    #[serde(serialize_with = "crate::data::serialize_time")]
    pub entry_time: i64,
    /// Index of the bar whose open or close filled the entry.
    pub entry_bar: usize,
    /// Entry fill price, slippage included.
    pub entry_price: f64,
    /// Time of the exit bar (RFC 3339 in JSON); the last bar for an open trade.
    #[serde(serialize_with = "crate::data::serialize_time")]
    pub exit_time: i64,
    /// Index of the exit bar (the last bar for an open trade).
    pub exit_bar: usize,
    /// Exit fill price, or the last close for an open trade.
    pub exit_price: f64,
    /// Quantity traded (always positive).
    pub quantity: f64,
    /// Fees paid on entry and exit.
    pub fees: f64,
    /// Profit and loss net of fees (unrealised for an open trade).
    pub pnl: f64,
    /// `pnl` relative to the entry value (`quantity * entry_price`), as a fraction.
    #[serde(rename = "return")]
    pub return_: f64,
    /// Why it closed, or `open`.
    pub exit_reason: ExitReason,
}

impl Trade {
    /// True unless the trade is still open at the last bar.
    pub fn is_closed(&self) -> bool {
        self.exit_reason != ExitReason::Open
    }
}
