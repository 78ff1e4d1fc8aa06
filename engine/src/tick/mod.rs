//! Tick precision: trades and a level-2 book, replayed event by event.
//!
//! - [`TickData`] is the market as recorded: trades and book changes in time order, one column
//!   per field, loaded from CSV or Parquet by [`load`] (`data.rs`) or made up by [`datagen`].
//! - [`book`] keeps the level-2 book as the events change it.
//! - [`simulate`] runs a strategy over the events: it sees bars built from the trades at its
//!   timeframe (or one bar per event), and its orders reach the book after a latency, walk it
//!   (market) or queue at a price (limit).
//! - [`ExecutionReport`] is what each fill cost compared with the mid when it was decided.
//!
//! On disk (CSV or Parquet, the same columns), one file holds trades and book changes together:
//!
//! | column | meaning |
//! |---|---|
//! | `time` | event time (RFC 3339 or epoch numbers, as for bars) |
//! | `type` | `trade`, `update` or `snapshot` (absent: every row is a trade) |
//! | `side` | trades: the aggressor, `buy`, `sell` or empty; book rows: `bid` or `ask` |
//! | `price` | trade price, or the book level's price |
//! | `size` | traded size, or the size now resting at that level (`0` removes it) |
//!
//! A run of consecutive `snapshot` rows with the same time replaces the whole book.

pub mod book;
mod data;
pub mod datagen;
mod report;
mod simulate;

pub use data::{load, load_limited};
pub use report::{ExecutionReport, FillReport, OrderKind, OrderOrigin, OrderSide, SlippageSummary};
pub use simulate::{run_tick_backtest, TickBacktest};

/// Which side of the book a level or an aggressive trade is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggressor {
    /// A buyer crossed the spread: the trade took liquidity from the asks.
    Buy,
    /// A seller crossed the spread: the trade took liquidity from the bids.
    Sell,
}

/// What one event is. One byte-ish per event keeps the replay cache-friendly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A trade printed at `price` for `size`, with its aggressor when the data has it.
    Trade(Option<Aggressor>),
    /// The bid level at `price` now holds `size` (0 removes it).
    Bid,
    /// The ask level at `price` now holds `size` (0 removes it).
    Ask,
    /// A snapshot starts: the whole book is cleared; the `Bid`/`Ask` rows that follow at the same
    /// time rebuild it. `price` and `size` are 0.
    Clear,
}

/// Recorded market events in time order, one column per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickData {
    /// Event time, nanoseconds since the epoch, non-decreasing.
    pub time: Vec<i64>,
    /// What happened.
    pub kind: Vec<EventKind>,
    /// Trade price or level price.
    pub price: Vec<f64>,
    /// Traded size, or the size resting at the level after the event.
    pub size: Vec<f64>,
}

impl TickData {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Appends one event.
    pub fn push(&mut self, time: i64, kind: EventKind, price: f64, size: f64) {
        self.time.push(time);
        self.kind.push(kind);
        self.price.push(price);
        self.size.push(size);
    }

    /// Number of trades.
    pub fn trades(&self) -> usize {
        self.kind
            .iter()
            .filter(|k| matches!(k, EventKind::Trade(_)))
            .count()
    }
}

/// How the strategy's bars are cut from the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarClock {
    /// Bars of this length in nanoseconds, aligned to multiples of it since the epoch; a bar's
    /// signals are known at its end.
    Every(i64),
    /// One bar per event (`"timeframe": "event"`): the strategy is evaluated after every event,
    /// on the last trade price.
    Event,
}

/// How signal orders are sent at tick precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OrderType {
    /// Take liquidity: walk the book from the best level until filled.
    Market,
    /// Rest at the best price on our side (a buy at the best bid), moved `offset_bps` away from
    /// the touch (more passive), joining the queue behind the size already there. What is not
    /// filled after `timeout` nanoseconds is cancelled.
    Limit {
        /// Basis points away from the best price on our side; 0 joins the touch.
        offset_bps: f64,
        /// Nanoseconds a limit order rests before what is left of it is cancelled.
        timeout: i64,
    },
}

/// Tick-precision settings from the spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickSettings {
    /// Nanoseconds between a decision and its order reaching the book.
    pub latency: i64,
    /// Market or limit orders for the strategy's signals (stops always go at market).
    pub orders: OrderType,
    /// The bars the strategy sees.
    pub clock: BarClock,
}

impl Default for TickSettings {
    fn default() -> Self {
        TickSettings {
            latency: 0,
            orders: OrderType::Market,
            clock: BarClock::Every(60_000_000_000),
        }
    }
}
