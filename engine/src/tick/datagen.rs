//! Seeded synthetic market data: trades with a level-2 book ([`book`]), trades alone
//! ([`trades`]) and one-minute bars ([`bars`]). The same seed gives the same data.
//!
//! One price process drives all three: a latent *fair price* on a grid of 0.01 from 100.00,
//! a random walk of about 0.03 ticks per √ms (≈ 0.07 % a minute, ≈ 2.8 % a day) whose
//! volatility clusters: its logarithm is a slowly mean-reverting AR(1) (memory of about ten
//! minutes, spread ±50 %), so calm and busy stretches alternate as in real markets. The fair
//! price is reflected at 1.00 so prices stay positive.
//!
//! The book follows the fair price the way a real one does, through orders:
//! - Events arrive as a Poisson process, about 1 ms apart on average and faster when the
//!   market is volatile. 10 million events span about three hours: enough one-minute bars for
//!   a strategy to trade (at the 100 µs of a very liquid stock they would cover 17 minutes).
//! - It opens with a snapshot (a `Clear`, then `levels` bids and `levels` asks, spread 1 tick).
//!   Resting sizes are log-normal, larger away from the touch.
//! - About 15 % of events are trades. A trade's aggressor leans toward the fair price (buyers
//!   lift the ask when it is above the mid); it takes part of the opposite best level, or all
//!   of it (more often when the fair price has moved past the touch). Each trade is followed,
//!   at the same time, by the update of the level it hit and, when it emptied the level, by
//!   a new level at the back, so each side keeps `levels` levels.
//! - The rest are adds and cancels, mostly near the touch, that pull sizes back toward their
//!   typical size (a cancel that empties a level removes it; a new level replaces it at the
//!   back); new levels at empty prices near the touch, where the market moved away; and, when
//!   the spread is wider than a tick, new best quotes inside it on the side the fair price is
//!   on. A level added nearer the touch pushes the deepest one out, to keep `levels`. Prices
//!   never cross: the best bid is below the best ask after every event; the spread is one tick
//!   about three quarters of the time and rarely more than three.
//!
//! Trades alone arrive about 10 ms apart, at the bid or the ask around the fair price. Bars
//! sample the fair price every 3 s for their open, high, low and close.
//!
//! Normal and exponential draws use the platform's `ln`, `exp` and `sin_cos`; prices are then
//! rounded to the tick grid, so a last-bit difference between math libraries rarely shows.

use std::collections::VecDeque;
use std::f64::consts::TAU;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Aggressor, EventKind, TickData};
use crate::data::{Bars, NANOS_PER_MINUTE};

/// Where generated data starts: 2024-01-02T00:00:00Z, in ns since the epoch.
pub const START: i64 = 1_704_153_600_000_000_000;

/// Ticks in one unit of price: the tick is 0.01.
const TICKS_PER_UNIT: f64 = 100.0;
/// The fair price at the start, in ticks (100.00).
const START_TICKS: f64 = 10_000.0;
/// The fair price is reflected here (1.00) so prices stay positive.
const FLOOR_TICKS: f64 = 100.0;
/// Volatility of the fair price at average activity, in ticks per √ms.
const SIGMA_PER_SQRT_MS: f64 = 0.03;
/// How long the volatility remembers its level (the AR(1)'s time constant), ns.
const VOLATILITY_MEMORY: f64 = 600e9;
/// Stationary standard deviation of the log of the volatility.
const VOLATILITY_DISPERSION: f64 = 0.5;
/// Mean time between book events at average activity, ns.
const BOOK_GAP: f64 = 1e6;
/// Mean time between trades when generating trades alone, ns.
const TRADE_GAP: f64 = 1e7;
/// Fair-price samples per one-minute bar.
const STEPS_PER_BAR: usize = 20;

/// A price in ticks as the price it stands for; dividing (rather than multiplying by 0.01)
/// gives the float nearest to the decimal, so `10001` prints as `100.01`.
fn price(ticks: i64) -> f64 {
    ticks as f64 / TICKS_PER_UNIT
}

/// The seeded random source and the fair price it drives.
struct Market {
    rng: ChaCha8Rng,
    /// The second value of the last Box–Muller pair.
    spare_normal: Option<f64>,
    /// Fair price, in ticks.
    fair: f64,
    /// Log of the volatility multiplier (0 on average).
    log_vol: f64,
    /// AR(1) coefficient of `log_vol` per step of `mean_gap`.
    persistence: f64,
    /// Standard deviation of the AR(1) shock per step.
    shock: f64,
    /// Mean gap between steps at average activity, ns.
    mean_gap: f64,
    /// Current time, ns.
    time: i64,
}

impl Market {
    fn new(seed: u64, mean_gap: f64) -> Market {
        let persistence = (-mean_gap / VOLATILITY_MEMORY).exp();
        Market {
            rng: ChaCha8Rng::seed_from_u64(seed),
            spare_normal: None,
            fair: START_TICKS,
            log_vol: 0.0,
            persistence,
            shock: VOLATILITY_DISPERSION * (1.0 - persistence * persistence).sqrt(),
            mean_gap,
            time: START,
        }
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.uniform() < probability
    }

    /// Standard normal (Box–Muller, both values used).
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        let (sin, cos) = (TAU * self.uniform()).sin_cos();
        self.spare_normal = Some(radius * sin);
        radius * cos
    }

    /// Log-normal with this median and log standard deviation.
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// A whole size of at least 1, log-normal around `median`.
    fn size(&mut self, median: f64, sigma: f64) -> f64 {
        self.lognormal(median, sigma).round().max(1.0)
    }

    /// The volatility multiplier: above 1 in busy stretches, below in calm ones.
    fn activity(&self) -> f64 {
        self.log_vol.exp()
    }

    /// Moves to the next event: a Poisson gap (shorter when busy), then the fair price.
    fn advance(&mut self) {
        let mean = self.mean_gap / self.activity();
        let gap = -mean * (1.0 - self.uniform()).ln();
        self.advance_by(gap);
    }

    /// Moves time by `gap` ns and the fair price by the volatility over that time.
    fn advance_by(&mut self, gap: f64) {
        self.log_vol = (self.log_vol * self.persistence + self.shock * self.normal())
            .clamp(-4.0 * VOLATILITY_DISPERSION, 4.0 * VOLATILITY_DISPERSION);
        // Whole ns: two events may share a timestamp, as in real feeds.
        self.time += gap as i64;
        let sigma = SIGMA_PER_SQRT_MS * self.activity() * (gap / 1e6).sqrt();
        self.fair += sigma * self.normal();
        if self.fair < FLOOR_TICKS {
            self.fair = 2.0 * FLOOR_TICKS - self.fair;
        }
    }

    /// The fair price rounded to the grid.
    fn ticks(&self) -> i64 {
        self.fair.round() as i64
    }
}

// ---------------------------------------------------------------------------------------------
// Book

/// Which side of the generated book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Bid,
    Ask,
}

impl Side {
    /// +1 when deeper levels have higher prices (asks), -1 when lower (bids).
    fn outward(self) -> i64 {
        match self {
            Side::Bid => -1,
            Side::Ask => 1,
        }
    }

    fn event(self) -> EventKind {
        match self {
            Side::Bid => EventKind::Bid,
            Side::Ask => EventKind::Ask,
        }
    }
}

/// One side's levels, best first: prices in ticks and resting sizes.
#[derive(Debug, Default)]
struct Levels {
    prices: VecDeque<i64>,
    sizes: VecDeque<f64>,
}

/// The typical resting size at `depth` levels from the touch: deeper levels hold more.
fn typical_size(depth: usize) -> f64 {
    20.0 * (1.0 + 0.25 * depth as f64)
}

/// The book generator: the market, both sides and the events written so far.
struct BookGen {
    market: Market,
    bids: Levels,
    asks: Levels,
    levels: usize,
    out: TickData,
}

impl BookGen {
    fn side(&mut self, side: Side) -> &mut Levels {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }

    fn emit(&mut self, kind: EventKind, ticks: i64, size: f64) {
        self.out.push(self.market.time, kind, price(ticks), size);
    }

    /// The opening snapshot: a clear, then `levels` bids and `levels` asks around the fair
    /// price with a one-tick spread.
    fn open(&mut self) {
        self.out.push(self.market.time, EventKind::Clear, 0.0, 0.0);
        let bid = self.market.fair.floor() as i64;
        for (side, touch) in [(Side::Bid, bid), (Side::Ask, bid + 1)] {
            let size = self.market.size(typical_size(0), 0.6);
            self.side(side).prices.push_back(touch);
            self.side(side).sizes.push_back(size);
            self.emit(side.event(), touch, size);
            for _ in 1..self.levels {
                self.add_deepest(side, touch);
            }
        }
    }

    /// One market step: a new quote inside a wide spread, a trade, an add or a cancel.
    fn step(&mut self) {
        self.market.advance();
        let (Some(&bid), Some(&ask)) = (self.bids.prices.front(), self.asks.prices.front()) else {
            return self.requote();
        };
        let spread = ask - bid;
        // How far the fair price is above the mid, in ticks: positive draws buyers.
        let pressure = self.market.fair - (bid + ask) as f64 / 2.0;
        let improve = match spread {
            1 => 0.0,
            2 => 0.3,
            _ => 0.6,
        };
        if self.market.chance(improve) {
            return self.improve(pressure, bid, ask);
        }
        // How far the fair price is past the touch: the market is about to move through it.
        let beyond = (pressure.abs() - spread as f64 / 2.0).clamp(0.0, 2.0);
        if self.market.chance(0.2 + 0.2 * beyond) {
            return self.trade(pressure, beyond);
        }
        let side = if self.market.chance(0.5) {
            Side::Bid
        } else {
            Side::Ask
        };
        // Liquidity comes back to the empty prices near the touch the market left behind.
        if self.market.chance(0.15) && self.fill_gap(side) {
            return;
        }
        // Mostly near the touch: depth 0 about half the time, 1 a quarter, ...
        let len = self.side(side).prices.len();
        let mut depth = 0;
        while depth + 1 < len && self.market.chance(0.5) {
            depth += 1;
        }
        let (ticks, size) = {
            let levels = self.side(side);
            (levels.prices[depth], levels.sizes[depth])
        };
        // Adds and cancels pull a level's size toward its typical size.
        let typical = typical_size(depth);
        if self.market.chance(typical / (typical + size)) {
            let size = size + self.market.size(typical * 0.3, 0.7);
            self.side(side).sizes[depth] = size;
            self.emit(side.event(), ticks, size);
        } else {
            let cancel = if self.market.chance(0.1) {
                size
            } else {
                (size * self.market.uniform() * 0.7).round().max(1.0)
            };
            self.reduce(side, depth, cancel);
        }
    }

    /// Quotes an empty side again next to the other one. Only a bid side pushed against the
    /// lowest price (a tick) can empty, which the floor under the fair price rules out; this
    /// keeps the generator total anyway.
    fn requote(&mut self) {
        let (side, ticks) = match (self.bids.prices.front(), self.asks.prices.front()) {
            (None, Some(&ask)) => (Side::Bid, (ask - 1).max(1)),
            (Some(&bid), None) => (Side::Ask, bid + 1),
            _ => (Side::Bid, self.market.ticks().max(1)),
        };
        let size = self.market.size(typical_size(0), 0.6);
        let levels = self.side(side);
        levels.prices.push_front(ticks);
        levels.sizes.push_front(size);
        self.emit(side.event(), ticks, size);
    }

    /// A new best quote inside the spread, on the side the fair price is on (with noise).
    fn improve(&mut self, pressure: f64, bid: i64, ask: i64) {
        let side = if pressure + 0.5 * self.market.normal() > 0.0 {
            Side::Bid
        } else {
            Side::Ask
        };
        // Usually one tick better; two when the spread is wide, never reaching the other side.
        let step = if ask - bid > 3 && self.market.chance(0.3) {
            2
        } else {
            1
        };
        let ticks = match side {
            Side::Bid => (bid + step).min(ask - 1),
            Side::Ask => (ask - step).max(bid + 1),
        };
        self.make_room(side);
        let size = self.market.size(typical_size(0) * 0.5, 0.7);
        let levels = self.side(side);
        levels.prices.push_front(ticks);
        levels.sizes.push_front(size);
        self.emit(side.event(), ticks, size);
    }

    /// Removes the deepest level of a full side before a level is added nearer the touch, so a
    /// side never holds more than `levels` levels.
    fn make_room(&mut self, side: Side) {
        if self.side(side).prices.len() < self.levels {
            return;
        }
        let levels = self.side(side);
        levels.sizes.pop_back();
        if let Some(deepest) = levels.prices.pop_back() {
            self.emit(side.event(), deepest, 0.0);
        }
    }

    /// A new level at the first empty price within the five levels nearest the touch (the
    /// deepest level goes, to keep `levels`); false when there is no such gap.
    fn fill_gap(&mut self, side: Side) -> bool {
        let prices = &self.side(side).prices;
        let near = prices.len().min(5);
        let Some(depth) = (1..near).find(|&k| (prices[k] - prices[k - 1]).abs() > 1) else {
            return false;
        };
        let ticks = prices[depth - 1] + side.outward();
        self.make_room(side);
        let size = self.market.size(typical_size(depth), 0.6);
        let levels = self.side(side);
        levels.prices.insert(depth, ticks);
        levels.sizes.insert(depth, size);
        self.emit(side.event(), ticks, size);
        true
    }

    /// A trade against the best level of the side the aggressor takes from.
    fn trade(&mut self, pressure: f64, beyond: f64) {
        let buy_probability = 1.0 / (1.0 + (-2.0 * pressure).exp());
        let buy = self.market.chance(buy_probability);
        let (aggressor, side) = if buy {
            (Aggressor::Buy, Side::Ask)
        } else {
            (Aggressor::Sell, Side::Bid)
        };
        let (ticks, size) = (self.side(side).prices[0], self.side(side).sizes[0]);
        // With the fair price past the touch, the whole level is more likely to go.
        let with_pressure = if buy == (pressure > 0.0) { beyond } else { 0.0 };
        let quantity = if self.market.chance(0.15 + 0.3 * with_pressure) {
            size
        } else {
            (size * self.market.uniform() * 0.8)
                .round()
                .max(1.0)
                .min(size)
        };
        self.emit(EventKind::Trade(Some(aggressor)), ticks, quantity);
        self.reduce(side, 0, quantity);
    }

    /// Takes `quantity` from the level at `depth`: an update, or its removal and a new level at
    /// the back.
    fn reduce(&mut self, side: Side, depth: usize, quantity: f64) {
        let levels = self.side(side);
        let ticks = levels.prices[depth];
        let left = levels.sizes[depth] - quantity;
        if left > 0.0 {
            levels.sizes[depth] = left;
            self.emit(side.event(), ticks, left);
            return;
        }
        levels.prices.remove(depth);
        levels.sizes.remove(depth);
        self.emit(side.event(), ticks, 0.0);
        self.add_deepest(side, ticks);
    }

    /// A new level behind the deepest (or behind `fallback` when the side is empty), usually
    /// one tick further out, sometimes leaving a gap. Bids are not added at or below 0.
    fn add_deepest(&mut self, side: Side, fallback: i64) {
        let gap = if self.market.chance(0.1) {
            2 + i64::from(self.market.chance(0.3))
        } else {
            1
        };
        let depth = self.side(side).prices.len();
        let behind = self.side(side).prices.back().copied().unwrap_or(fallback);
        let ticks = behind + side.outward() * gap;
        if ticks < 1 {
            return;
        }
        let size = self.market.size(typical_size(depth), 0.6);
        let levels = self.side(side);
        levels.prices.push_back(ticks);
        levels.sizes.push_back(size);
        self.emit(side.event(), ticks, size);
    }
}

/// `events` events of trades and book changes with `levels` levels per side (`0` is taken as
/// 1), starting with a snapshot of the book at [`START`] that counts among the events.
pub fn book(events: usize, levels: usize, seed: u64) -> TickData {
    let levels = levels.max(1);
    // Steps write up to three events, so the last one may be cut to `events`.
    let capacity = events + 3;
    let mut generator = BookGen {
        market: Market::new(seed, BOOK_GAP),
        bids: Levels::default(),
        asks: Levels::default(),
        levels,
        out: TickData {
            time: Vec::with_capacity(capacity),
            kind: Vec::with_capacity(capacity),
            price: Vec::with_capacity(capacity),
            size: Vec::with_capacity(capacity),
        },
    };
    generator.open();
    while generator.out.len() < events {
        generator.step();
    }
    let mut out = generator.out;
    out.time.truncate(events);
    out.kind.truncate(events);
    out.price.truncate(events);
    out.size.truncate(events);
    out
}

/// `events` trades, no book, the first at [`START`]: aggressors and prices from the bid or ask
/// around the fair price (a spread of one tick, sometimes two), whole log-normal sizes.
pub fn trades(events: usize, seed: u64) -> TickData {
    let mut market = Market::new(seed, TRADE_GAP);
    let mut out = TickData {
        time: Vec::with_capacity(events),
        kind: Vec::with_capacity(events),
        price: Vec::with_capacity(events),
        size: Vec::with_capacity(events),
    };
    for i in 0..events {
        if i > 0 {
            market.advance();
        }
        let bid = market.fair.floor() as i64;
        let ask = bid + 1 + i64::from(market.chance(0.2));
        // Buyers lift the ask more often the closer the fair price is to it.
        let buy = market.chance(market.fair - bid as f64);
        let (aggressor, ticks) = if buy {
            (Aggressor::Buy, ask)
        } else {
            (Aggressor::Sell, bid.max(1))
        };
        let size = market.size(5.0 * market.activity(), 1.0);
        out.push(
            market.time,
            EventKind::Trade(Some(aggressor)),
            price(ticks),
            size,
        );
    }
    out
}

/// `count` one-minute OHLCV bars from [`START`], on the 0.01 grid, with volume rising with
/// volatility.
pub fn bars(count: usize, seed: u64) -> Bars {
    let step = NANOS_PER_MINUTE as f64 / STEPS_PER_BAR as f64;
    let mut market = Market::new(seed, step);
    let mut out = Bars::with_capacity(count);
    for i in 0..count {
        let open = market.ticks();
        let (mut high, mut low) = (open, open);
        for _ in 0..STEPS_PER_BAR {
            market.advance_by(step);
            let ticks = market.ticks();
            high = high.max(ticks);
            low = low.min(ticks);
        }
        let close = market.ticks();
        let volume = market.size(2_000.0 * market.activity(), 0.5);
        out.push(
            START + i as i64 * NANOS_PER_MINUTE,
            price(open),
            price(high),
            price(low),
            price(close),
            volume,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::data::{format_time, NANOS_PER_SECOND};

    /// The book rebuilt from the events: bids and asks by price in ticks.
    #[derive(Default)]
    struct Replay {
        bids: BTreeMap<i64, f64>,
        asks: BTreeMap<i64, f64>,
    }

    impl Replay {
        fn apply(&mut self, kind: EventKind, price: f64, size: f64) {
            let ticks = (price * TICKS_PER_UNIT).round() as i64;
            let side = match kind {
                EventKind::Bid => &mut self.bids,
                EventKind::Ask => &mut self.asks,
                EventKind::Clear => {
                    self.bids.clear();
                    self.asks.clear();
                    return;
                }
                EventKind::Trade(_) => return,
            };
            if size == 0.0 {
                assert!(
                    side.remove(&ticks).is_some(),
                    "removing absent level {price}"
                );
            } else {
                side.insert(ticks, size);
            }
        }

        fn best_bid(&self) -> Option<i64> {
            self.bids.keys().next_back().copied()
        }

        fn best_ask(&self) -> Option<i64> {
            self.asks.keys().next().copied()
        }
    }

    #[test]
    fn book_opens_with_a_snapshot_at_the_start() {
        let data = book(1_000, 5, 1);
        assert_eq!(data.len(), 1_000);
        assert_eq!(format_time(data.time[0]), "2024-01-02T00:00:00Z");
        assert_eq!(data.kind[0], EventKind::Clear);
        assert_eq!((data.price[0], data.size[0]), (0.0, 0.0));
        assert!(data.kind[1..6].iter().all(|&k| k == EventKind::Bid));
        assert!(data.kind[6..11].iter().all(|&k| k == EventKind::Ask));
        assert!(data.time[..11].iter().all(|&t| t == START));
        assert_eq!((data.price[1], data.price[6]), (100.0, 100.01));
        // Bids best first going down, asks best first going up.
        assert!(data.price[1..6].windows(2).all(|w| w[1] < w[0]));
        assert!(data.price[6..11].windows(2).all(|w| w[1] > w[0]));
        assert_eq!(
            data.kind[1..]
                .iter()
                .filter(|&&k| k == EventKind::Clear)
                .count(),
            0
        );
    }

    #[test]
    fn book_is_never_crossed_and_keeps_its_levels() {
        let levels = 10;
        let data = book(200_000, levels, 42);
        assert_eq!(data.len(), 200_000);
        assert!(data.time.windows(2).all(|w| w[0] <= w[1]));
        let mut replay = Replay::default();
        let mut full = 0;
        let opening = 1 + 2 * levels;
        for i in 0..data.len() {
            let (kind, price, size) = (data.kind[i], data.price[i], data.size[i]);
            assert!(size.is_finite() && size >= 0.0, "event {i}: size {size}");
            if kind != EventKind::Clear {
                assert!(price > 0.0, "event {i}: price {price}");
                // Prices are on the 0.01 grid and print as such.
                assert_eq!(price, (price * 100.0).round() / 100.0, "event {i}");
            }
            if let EventKind::Trade(aggressor) = kind {
                assert!(size > 0.0, "event {i}: trade of 0");
                // A trade hits the best level of the side it takes from.
                let touch = match aggressor {
                    Some(Aggressor::Buy) => replay.best_ask(),
                    Some(Aggressor::Sell) => replay.best_bid(),
                    None => panic!("event {i}: trade without an aggressor"),
                };
                assert_eq!(touch, Some((price * 100.0).round() as i64), "event {i}");
            }
            replay.apply(kind, price, size);
            if i + 1 < opening {
                continue;
            }
            let (bid, ask) = (replay.best_bid().unwrap(), replay.best_ask().unwrap());
            assert!(bid < ask, "event {i}: crossed book {bid} >= {ask}");
            assert!(replay.bids.len() <= levels && replay.asks.len() <= levels);
            if replay.bids.len() == levels && replay.asks.len() == levels {
                full += 1;
            }
        }
        let after_open = data.len() - opening + 1;
        assert!(
            full as f64 > 0.7 * after_open as f64,
            "{full} of {after_open} events with {levels} levels a side"
        );
    }

    #[test]
    fn book_has_realistic_proportions() {
        let data = book(500_000, 20, 7);
        let share = data.trades() as f64 / data.len() as f64;
        assert!(
            (0.10..=0.20).contains(&share),
            "trades are {share:.3} of events"
        );
        let mut replay = Replay::default();
        let mut spreads = BTreeMap::<i64, usize>::new();
        for i in 0..data.len() {
            replay.apply(data.kind[i], data.price[i], data.size[i]);
            if i > 41 {
                let spread = replay.best_ask().unwrap() - replay.best_bid().unwrap();
                *spreads.entry(spread).or_default() += 1;
            }
        }
        let within_three: usize = spreads.range(1..=3).map(|(_, n)| n).sum();
        assert!(
            within_three as f64 > 0.9 * (data.len() - 42) as f64,
            "spreads in ticks: {spreads:?}"
        );
        // About 1 ms apart: 500k events over about 9 minutes on average, but a stretch this
        // short can be much busier or calmer (the volatility remembers about ten minutes).
        let span = (data.time[data.len() - 1] - data.time[0]) as f64 / NANOS_PER_SECOND as f64;
        assert!((150.0..=1_500.0).contains(&span), "{span} s");
        // The price moves, but stays near where it started.
        let last_trade = data
            .kind
            .iter()
            .rposition(|k| matches!(k, EventKind::Trade(_)))
            .unwrap();
        let moved = (data.price[last_trade] - 100.0).abs();
        assert!(moved > 0.0 && moved < 10.0, "{}", data.price[last_trade]);
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        assert_eq!(book(20_000, 20, 3), book(20_000, 20, 3));
        assert_ne!(book(20_000, 20, 3), book(20_000, 20, 4));
        assert_eq!(trades(5_000, 3), trades(5_000, 3));
        assert_ne!(trades(5_000, 3).price, trades(5_000, 4).price);
        assert_eq!(bars(1_000, 3), bars(1_000, 3));
        assert_ne!(bars(1_000, 3).close, bars(1_000, 4).close);
        // A shorter run is the start of a longer one.
        let long = book(30_000, 20, 3);
        assert_eq!(book(20_000, 20, 3).time, long.time[..20_000]);
    }

    #[test]
    fn small_books_and_tiny_counts() {
        assert!(book(0, 20, 1).is_empty());
        let one_level = book(10_000, 0, 5);
        assert_eq!(
            one_level.kind[..3],
            [EventKind::Clear, EventKind::Bid, EventKind::Ask]
        );
        let mut replay = Replay::default();
        for i in 0..one_level.len() {
            replay.apply(one_level.kind[i], one_level.price[i], one_level.size[i]);
            assert!(replay.bids.len() <= 1 && replay.asks.len() <= 1);
        }
        assert!(trades(0, 1).is_empty());
        assert!(bars(0, 1).is_empty());
    }

    #[test]
    fn trades_alone_have_aggressors_and_grid_prices() {
        let data = trades(100_000, 9);
        assert_eq!(data.len(), 100_000);
        assert_eq!(data.trades(), data.len());
        assert_eq!(data.time[0], START);
        assert!(data.time.windows(2).all(|w| w[0] <= w[1]));
        let buys = data
            .kind
            .iter()
            .filter(|&&k| k == EventKind::Trade(Some(Aggressor::Buy)))
            .count();
        let share = buys as f64 / data.len() as f64;
        assert!((0.4..0.6).contains(&share), "{share}");
        assert!(data.size.iter().all(|&s| s >= 1.0 && s.fract() == 0.0));
        assert!(data
            .price
            .iter()
            .all(|&p| p > 0.0 && p == (p * 100.0).round() / 100.0));
        // About 10 ms apart: 100k trades in roughly 15 to 25 minutes.
        let span = (data.time[data.len() - 1] - START) as f64 / NANOS_PER_SECOND as f64;
        assert!((800.0..=1_600.0).contains(&span), "{span} s");
    }

    #[test]
    fn bars_are_valid_one_minute_bars() {
        let data = bars(10_000, 11);
        assert_eq!(data.len(), 10_000);
        data.validate().unwrap();
        assert_eq!(data.spacing(), Some(NANOS_PER_MINUTE));
        assert_eq!(data.time[0], START);
        assert_eq!(data.open[0], 100.0);
        assert!(data.volume.iter().all(|&v| v >= 1.0));
        // Each bar opens where the previous closed: one continuous market.
        assert!((1..data.len()).all(|i| data.open[i] == data.close[i - 1]));
        assert!((1..data.len()).any(|i| data.high[i] > data.low[i]));
    }

    /// Generation speed; run with `cargo test --release -p engine --lib datagen -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore = "timing; run explicitly in release"]
    fn ten_million_events_generate_fast() {
        let started = std::time::Instant::now();
        let data = book(10_000_000, 20, 1);
        println!(
            "book: {} events ({} trades) in {:?}, spanning {:.0} s",
            data.len(),
            data.trades(),
            started.elapsed(),
            (data.time[data.len() - 1] - data.time[0]) as f64 / NANOS_PER_SECOND as f64
        );
        let started = std::time::Instant::now();
        let data = trades(10_000_000, 1);
        println!("trades: {} in {:?}", data.len(), started.elapsed());
        let started = std::time::Instant::now();
        let data = bars(1_000_000, 1);
        println!("bars: {} in {:?}", data.len(), started.elapsed());
    }
}
