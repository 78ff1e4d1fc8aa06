//! Execution analytics of a tick-precision backtest: what every fill cost against the mid when
//! its order was decided, how far market orders walked the book, how limit orders fared in the
//! queue.
//!
//! Conventions:
//! - slippage, in basis points of the decision mid, is positive when it cost the trader:
//!   `(price - mid) / mid * 1e4` for a buy, `(mid - price) / mid * 1e4` for a sell. Without a
//!   two-sided book the last trade price stands in for the mid;
//! - market impact is the part of that cost spent beyond the best level: the VWAP against the
//!   touch when the order reached the book, in basis points, same sign convention;
//! - percentiles interpolate linearly between the sorted values (numpy's default);
//! - a figure with nothing to measure (no fill, no limit order) is NaN in Rust and `null` in
//!   JSON.

use serde::{Serialize, Serializer};

use crate::data::serialize_time;
use crate::metrics::quantile;

/// Execution analytics of a tick-precision backtest, under `precision` in the result as
/// `{"mode": "tick", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionReport {
    /// Events replayed (trades, book updates and snapshot clears).
    pub events: usize,
    /// Trades among them.
    pub trades: usize,
    /// Book updates among them (level changes and snapshot clears).
    pub book_updates: usize,
    /// Nanoseconds between a decision and its order reaching the book.
    pub latency_ns: i64,
    /// Orders that reached the book (market and limit, stops included).
    pub orders: usize,
    /// Market orders among them.
    pub market_orders: usize,
    /// Limit orders among them.
    pub limit_orders: usize,
    /// Number of fills (a limit order can fill in several pieces; take-profits count).
    pub fill_count: usize,
    /// Slippage of every fill against the decision mid, in basis points.
    pub slippage_bps: SlippageSummary,
    /// Mean cost of walking beyond the best level, over market fills against a book, in bps.
    #[serde(serialize_with = "finite_or_null")]
    pub market_impact_bps: f64,
    /// Filled quantity over ordered quantity, over limit orders.
    #[serde(serialize_with = "finite_or_null")]
    pub limit_fill_ratio: f64,
    /// Mean time limit fills waited in the queue, in nanoseconds.
    #[serde(serialize_with = "finite_or_null")]
    pub rested_mean_ns: f64,
    /// 95th percentile of the time limit fills waited in the queue, in nanoseconds.
    #[serde(serialize_with = "finite_or_null")]
    pub rested_p95_ns: f64,
    /// Quantity ordered but never filled: market orders larger than the book, limit orders
    /// cancelled at their timeout or still resting at the end.
    pub unfilled_quantity: f64,
    /// Every fill in time order: the audit trail.
    pub fills: Vec<FillReport>,
}

/// One fill of one order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillReport {
    /// When it filled (RFC 3339 in JSON).
    #[serde(serialize_with = "serialize_time")]
    pub time: i64,
    /// Bought or sold.
    pub side: OrderSide,
    /// What sent the order.
    pub origin: OrderOrigin,
    /// Market or limit (a take-profit is a resting limit).
    pub order: OrderKind,
    /// Quantity filled.
    pub quantity: f64,
    /// Average fill price (the VWAP over the levels taken).
    pub price: f64,
    /// The mid when the order was decided (the last trade price without a two-sided book).
    #[serde(serialize_with = "finite_or_null")]
    pub decision_mid: f64,
    /// Cost against `decision_mid` in basis points, positive when it cost the trader.
    #[serde(serialize_with = "finite_or_null")]
    pub slippage_bps: f64,
    /// Book levels a market order took from; 0 for limit fills and fills at a trade's price.
    pub levels_consumed: usize,
    /// Market fills against a book: the VWAP beyond the touch at arrival, in basis points.
    pub impact_bps: Option<f64>,
    /// Limit fills: nanoseconds from reaching the book to this fill.
    pub rested_ns: Option<i64>,
}

/// What sent an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderOrigin {
    /// An entry signal (or, for `long_short`, the opening half of a reversal).
    EntrySignal,
    /// An exit signal (or the closing half of a reversal).
    ExitSignal,
    /// The stop-loss level traded: a market order.
    StopLoss,
    /// The take-profit level traded: filled at the level.
    TakeProfit,
    /// A trade reached the position's liquidation price: a market order for all of it.
    Liquidation,
}

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderSide {
    /// Bought: takes the asks, or rests on the bid side.
    Buy,
    /// Sold: takes the bids, or rests on the ask side.
    Sell,
}

impl OrderSide {
    /// `Buy` when `buy`, else `Sell`.
    pub fn of(buy: bool) -> OrderSide {
        if buy {
            OrderSide::Buy
        } else {
            OrderSide::Sell
        }
    }

    /// +1 for a buy, -1 for a sell: turns a price difference into a cost.
    pub fn sign(self) -> f64 {
        match self {
            OrderSide::Buy => 1.0,
            OrderSide::Sell => -1.0,
        }
    }
}

/// How an order met the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    /// Took liquidity.
    Market,
    /// Rested at a price.
    Limit,
}

/// Mean, median and 95th percentile of slippage, in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SlippageSummary {
    /// Mean.
    #[serde(serialize_with = "finite_or_null")]
    pub mean: f64,
    /// Median.
    #[serde(serialize_with = "finite_or_null")]
    pub p50: f64,
    /// 95th percentile: the cost of the worst fills but one in twenty.
    #[serde(serialize_with = "finite_or_null")]
    pub p95: f64,
}

impl SlippageSummary {
    /// Summarises `values` (NaN ones are left out); all NaN when there is none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> SlippageSummary {
        let mut sorted: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        SlippageSummary {
            mean: mean(&sorted),
            p50: quantile(&sorted, 0.5),
            p95: quantile(&sorted, 0.95),
        }
    }
}

/// Counts kept while the events are replayed; [`Tally::report`] turns them into the report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub events: usize,
    pub trades: usize,
    pub book_updates: usize,
    pub market_orders: usize,
    pub limit_orders: usize,
    pub limit_ordered: f64,
    pub limit_filled: f64,
    pub unfilled: f64,
    pub fills: Vec<FillReport>,
}

impl Tally {
    /// The report, with every summary computed from the fills.
    pub fn report(self, latency_ns: i64) -> ExecutionReport {
        let fills = self.fills;
        let impacts: Vec<f64> = fills.iter().filter_map(|f| f.impact_bps).collect();
        let mut rested: Vec<f64> = fills
            .iter()
            .filter_map(|f| f.rested_ns.map(|ns| ns as f64))
            .collect();
        rested.sort_by(f64::total_cmp);
        let limit_fill_ratio = if self.limit_ordered > 0.0 {
            self.limit_filled / self.limit_ordered
        } else {
            f64::NAN
        };
        ExecutionReport {
            events: self.events,
            trades: self.trades,
            book_updates: self.book_updates,
            latency_ns,
            orders: self.market_orders + self.limit_orders,
            market_orders: self.market_orders,
            limit_orders: self.limit_orders,
            fill_count: fills.len(),
            slippage_bps: SlippageSummary::of(fills.iter().map(|f| f.slippage_bps)),
            market_impact_bps: mean(&impacts),
            limit_fill_ratio,
            rested_mean_ns: mean(&rested),
            rested_p95_ns: quantile(&rested, 0.95),
            unfilled_quantity: self.unfilled,
            fills,
        }
    }
}

/// Slippage of a fill at `price` against `mid`, in basis points, positive when it cost.
pub(crate) fn cost_bps(side: OrderSide, price: f64, mid: f64) -> f64 {
    side.sign() * (price - mid) / mid * 10_000.0
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// NaN and infinities as `null`: JSON has no number for them, and a missing figure is clearer
/// than a made-up one (as in the metrics).
fn finite_or_null<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let s = SlippageSummary::of([4.0, 1.0, 3.0, 2.0, f64::NAN]);
        assert_eq!((s.mean, s.p50), (2.5, 2.5));
        assert!((s.p95 - 3.85).abs() < 1e-12);
        let none = SlippageSummary::of([]);
        assert!(none.mean.is_nan() && none.p50.is_nan() && none.p95.is_nan());
    }

    #[test]
    fn slippage_is_positive_when_it_costs() {
        assert_eq!(cost_bps(OrderSide::Buy, 101.0, 100.0), 100.0);
        assert_eq!(cost_bps(OrderSide::Sell, 101.0, 100.0), -100.0);
    }

    #[test]
    fn an_empty_report_serializes_missing_figures_as_null() {
        let report = Tally::default().report(5);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["latency_ns"], 5);
        assert!(json["limit_fill_ratio"].is_null());
        assert!(json["slippage_bps"]["p95"].is_null());
        assert_eq!(json["fills"], serde_json::json!([]));
    }
}
