//! The tick event loop: a strategy's orders against recorded trades and a level-2 book.
//!
//! 1. **Bars.** The strategy sees bars cut from the trades at its clock: [`BarClock::Every`]
//!    makes OHLCV bars aligned to multiples of the bar length since the epoch (intervals without
//!    trades make no bar); [`BarClock::Event`] makes one bar per event at the last trade price.
//!    Data without trades is priced by the mid after each book event instead (volume NaN). Its
//!    signals are computed once over all the bars (expressions are causal: no look-ahead), and
//!    bar `k`'s signals are *decided* at its end (its start plus the bar length, or its event's
//!    time), when the book holds every event before that time.
//! 2. **Latency.** An order decided at `d` reaches the book at `d + latency`: it is executed
//!    once every event before that time has been applied. With no latency it meets exactly the
//!    book the decision saw.
//! 3. **Market orders** are sized like the bar simulator's (`size` of cash at the best price,
//!    fees and lot size), then walk the book from the best level; what the book cannot fill is
//!    reported unfilled. A walk leaves the book as recorded (see [`book`](super::book)). With no
//!    level on the side to take (trades-only data), the order fills at the next trade's price.
//! 4. **Limit orders** rest at the best price on their side moved `offset_bps` away from the
//!    touch, behind the size already resting there. Trades at that price by the other side (or
//!    of unknown aggressor) eat the queue ahead first, then fill us, partly if need be; a trade
//!    through the price fills what is left; a book update that leaves less resting than is
//!    ahead of us means orders ahead were cancelled, and we move up. What is left after the
//!    timeout is cancelled; what filled is kept.
//! 5. **Stops and targets** are watched on every trade: a trade at or through the stop sends a
//!    market order (after the latency), a trade at or through the target fills at the target.
//!    So is the **liquidation price** (where equity reaches the maintenance margin, recomputed
//!    whenever the cash or the quantity changes): a trade at or through it sends a market
//!    order for the whole position as a stop does, and its fills close with `liquidation`. If
//!    that leaves no equity the account is bust: equity is 0 from then on (what the book lost
//!    beyond it is the broker's) and nothing opens again.
//! 6. **Equity** is marked at each bar's decision: cash plus the position at the bar's close.
//!    A fill belongs to the bar in progress when it happens (its equity is the first to show
//!    it). An order decided at the end of the last bar never reaches the book (as with
//!    `next_open` at bar precision); a position still open is reported as an open trade at the
//!    last close.
//!
//! One signal order is out at a time: signals seen while an order is on its way to the book are
//! ignored, and a resting limit order is cancelled when the signals ask for something else (an
//! exit signal withdraws a resting entry).
//!
//! `execution.fill` and `execution.slippage_bps` have no meaning here (fills come from the
//! book; the spec rejects slippage at tick precision); fees apply to every fill, the fixed fee
//! once per order and leg (the closing and the opening half of a reversal are two legs).
//!
//! Cost: replaying an event is a book update (a short linear search from the touch) and one
//! comparison of the event's index with the next index where something is due (a decision, an
//! order's arrival, a limit's timeout); trades are inspected only while a limit order rests,
//! an order waits for a trade, or a stop, a target or a liquidation price is set (a short, or a
//! long bought on borrowed cash).

use std::borrow::Cow;

use super::book::{Book, BookSide};
use super::report::{cost_bps, FillReport, OrderKind, OrderOrigin, OrderSide, Tally};
use super::{Aggressor, BarClock, EventKind, OrderType, TickData, TickSettings};
use crate::backtest::{BacktestResult, EquityCurve, PrecisionReport};
use crate::data::Bars;
use crate::execution::{
    decide, liquidation_price, through_liquidation, Direction, Execution, ExitReason, Order, Side,
    Trade,
};
use crate::expr::SeriesCache;
use crate::metrics::{MetricInputs, Metrics};
use crate::strategy::CompiledStrategy;

/// A tick-precision backtest: the bars the strategy saw and the result over them.
#[derive(Debug, Clone)]
pub struct TickBacktest {
    /// Bars built from the events at the strategy's clock.
    pub bars: Bars,
    /// Metrics, trades and equity at each bar's close; `precision` is `PrecisionReport::Tick`.
    pub result: BacktestResult<'static>,
}

/// Runs `strategy` over `ticks` event by event (see the module doc for the rules).
///
/// `periods_per_year` annualises the metrics; `None` infers it from the built bars' spacing.
pub fn run_tick_backtest(
    ticks: &TickData,
    strategy: &CompiledStrategy,
    execution: &Execution,
    settings: &TickSettings,
    periods_per_year: Option<f64>,
) -> TickBacktest {
    let events = Events::of(ticks);
    let clock = Clock::build(&events, settings.clock);
    let (entries, exits) = if clock.bars.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let signals = strategy.signals(&clock.bars, &SeriesCache::new());
        (signals.entries, signals.exits)
    };
    let mut replay = Replay::new(&events, &clock, &entries, &exits, execution, settings);
    replay.run();
    let Replay {
        account,
        equity,
        exposure_bars,
        tally,
        latency,
        ..
    } = replay;
    let Account {
        trades, fees_paid, ..
    } = account;
    let metrics = Metrics::compute(MetricInputs {
        equity: &equity,
        initial_cash: execution.initial_cash,
        trades: &trades,
        fees_paid,
        exposure_bars,
        periods_per_year: periods_per_year
            .or_else(|| clock.bars.periods_per_year())
            .unwrap_or(f64::NAN),
    });
    let report = tally.report(latency);
    let time = Cow::Owned(clock.bars.time.clone());
    TickBacktest {
        bars: clock.bars,
        result: BacktestResult {
            metrics,
            trades,
            equity: EquityCurve {
                time,
                value: equity,
            },
            precision: PrecisionReport::Tick(Box::new(report)),
        },
    }
}

/// The event columns cut to a common length, so no index can fall outside one of them.
struct Events<'a> {
    time: &'a [i64],
    kind: &'a [EventKind],
    price: &'a [f64],
    size: &'a [f64],
}

impl<'a> Events<'a> {
    fn of(ticks: &'a TickData) -> Events<'a> {
        let n = ticks
            .time
            .len()
            .min(ticks.kind.len())
            .min(ticks.price.len())
            .min(ticks.size.len());
        Events {
            time: &ticks.time[..n],
            kind: &ticks.kind[..n],
            price: &ticks.price[..n],
            size: &ticks.size[..n],
        }
    }

    fn len(&self) -> usize {
        self.time.len()
    }

    /// The first index at or after `from` whose time is at least `t` (the length if none):
    /// where something due at `t` happens. Galloping from `from`, because it is usually near.
    fn seek(&self, from: usize, t: i64) -> usize {
        let time = self.time;
        if from >= time.len() || time[from] >= t {
            return from.min(time.len());
        }
        // time[low] < t from here on.
        let (mut low, mut step) = (from, 1);
        loop {
            let high = low + step;
            if high >= time.len() {
                return low + 1 + time[low + 1..].partition_point(|&x| x < t);
            }
            if time[high] >= t {
                return low + 1 + time[low + 1..=high].partition_point(|&x| x < t);
            }
            low = high;
            step *= 2;
        }
    }
}

/// The strategy's bars and when each one is decided.
struct Clock {
    bars: Bars,
    /// Bar `k` is decided just before event `decide_at[k]` is applied (the number of events
    /// when it comes after them all). Strictly increasing.
    decide_at: Vec<usize>,
    /// When bar `k` is decided: its end, or its event's time.
    decide_time: Vec<i64>,
}

impl Clock {
    fn build(events: &Events, clock: BarClock) -> Clock {
        let trades = events
            .kind
            .iter()
            .filter(|k| matches!(k, EventKind::Trade(_)))
            .count();
        if trades > 0 {
            let sample = |j: usize| {
                matches!(events.kind[j], EventKind::Trade(_))
                    .then(|| (events.price[j], events.size[j]))
            };
            Clock::cut(events, clock, trades, 0.0, sample)
        } else {
            // Without trades the mid after each book event is the price: replay the book. There
            // is no volume to speak of.
            let mut book = Book::new();
            let sample = |j: usize| {
                book.apply(events.kind[j], events.price[j], events.size[j]);
                book.mid().map(|mid| (mid, f64::NAN))
            };
            Clock::cut(events, clock, events.len(), f64::NAN, sample)
        }
    }

    /// Cuts bars from the prices `sample` gives after each event: `(price, volume)`, or `None`
    /// when the event sets no price (an event bar then gets `quiet_volume`). `samples` bounds
    /// the number of bars, to size the columns.
    fn cut(
        events: &Events,
        clock: BarClock,
        samples: usize,
        quiet_volume: f64,
        mut sample: impl FnMut(usize) -> Option<(f64, f64)>,
    ) -> Clock {
        let mut built = Clock {
            bars: Bars::default(),
            decide_at: Vec::new(),
            decide_time: Vec::new(),
        };
        match clock {
            BarClock::Every(length) => {
                // A bar length below 1 ns cannot cut anything; take the finest there is.
                let length = length.max(1);
                let span = match (events.time.first(), events.time.last()) {
                    (Some(&first), Some(&last)) => last.saturating_sub(first) / length + 1,
                    _ => 0,
                };
                built.reserve(samples.min(usize::try_from(span).unwrap_or(usize::MAX)));
                // The end of the bar being built; i64::MAX while there is none.
                let mut end = i64::MAX;
                for (j, &t) in events.time.iter().enumerate() {
                    if t >= end {
                        built.decide_at.push(j);
                        built.decide_time.push(end);
                        end = i64::MAX;
                    }
                    let Some((price, volume)) = sample(j) else {
                        continue;
                    };
                    let bars = &mut built.bars;
                    match bars.len().checked_sub(1) {
                        Some(last) if end != i64::MAX => {
                            bars.high[last] = bars.high[last].max(price);
                            bars.low[last] = bars.low[last].min(price);
                            bars.close[last] = price;
                            bars.volume[last] += volume;
                        }
                        _ => {
                            let start = t.div_euclid(length) * length;
                            // A bar ending at i64::MAX would never be decided; that far out it
                            // cannot matter.
                            end = start.saturating_add(length).min(i64::MAX - 1);
                            bars.push(start, price, price, price, price, volume);
                        }
                    }
                }
                if end != i64::MAX {
                    built.decide_at.push(events.len());
                    built.decide_time.push(end);
                }
            }
            BarClock::Event => {
                built.reserve(events.len());
                let mut last = f64::NAN;
                for (j, &t) in events.time.iter().enumerate() {
                    let volume = match sample(j) {
                        Some((price, volume)) => {
                            last = price;
                            volume
                        }
                        None => quiet_volume,
                    };
                    if last.is_nan() {
                        continue;
                    }
                    built.bars.push(t, last, last, last, last, volume);
                    built.decide_at.push(j + 1);
                    built.decide_time.push(t);
                }
            }
        }
        built
    }

    fn reserve(&mut self, bars: usize) {
        self.bars = Bars::with_capacity(bars);
        self.decide_at.reserve(bars);
        self.decide_time.reserve(bars);
    }
}

/// Cash, the open position and the trade log.
struct Account<'a> {
    execution: &'a Execution,
    /// Bar times, for the trade log.
    bar_time: &'a [i64],
    cash: f64,
    position: Option<Position>,
    /// Positions opened so far: the id of the next one, so a stop order knows its position.
    opened: u64,
    trades: Vec<Trade>,
    fees_paid: f64,
    /// A liquidation left no equity: no position opens again.
    bust: bool,
}

/// The open position; several fills of one order average into it.
#[derive(Debug, Clone, Copy)]
struct Position {
    id: u64,
    side: Side,
    quantity: f64,
    /// Average entry price.
    entry_price: f64,
    /// The bar of the first entry fill.
    entry_bar: usize,
    /// Entry fees not yet charged to a closed trade.
    entry_fees: f64,
    stop: Option<f64>,
    target: Option<f64>,
    /// Where equity reaches the maintenance margin, for the cash and quantity now held (see
    /// [`liquidation_price`]); `None` for a long on its own cash.
    liquidation: Option<f64>,
    /// A stop's or liquidation's market order is on its way: the levels are no longer watched.
    exiting: bool,
}

impl Account<'_> {
    /// Fee of one fill worth `value`; the fixed fee is charged on an order leg's first fill.
    fn fee(&self, value: f64, first_fill: bool) -> f64 {
        let fixed = if first_fill {
            self.execution.fixed_fee
        } else {
            0.0
        };
        value * self.execution.fees + fixed
    }

    /// Quantity a new position of `size` of `cash` buys at `price`, fees included, rounded down
    /// to the lot size (the bar simulator's rule); 0 when that buys nothing.
    fn quantity(&self, cash: f64, price: f64) -> f64 {
        if self.bust {
            return 0.0;
        }
        let exec = self.execution;
        let mut quantity = (exec.size * cash - exec.fixed_fee) / (1.0 + exec.fees) / price;
        if let Some(lot) = exec.lot_size {
            quantity = (quantity / lot).floor() * lot;
        }
        if quantity > 0.0 && quantity.is_finite() {
            quantity
        } else {
            0.0
        }
    }

    /// The signed quantity held: positive long, negative short, zero flat.
    fn held(&self) -> f64 {
        self.position.map_or(0.0, |p| p.side.sign() * p.quantity)
    }

    /// Opens a position, or adds to the one on the same side at an averaged price.
    fn open(&mut self, side: Side, quantity: f64, price: f64, fee: f64, bar: usize) {
        self.cash -= side.sign() * quantity * price + fee;
        self.fees_paid += fee;
        let position = match self.position {
            Some(mut p) if p.side == side => {
                let total = p.quantity + quantity;
                p.entry_price = (p.entry_price * p.quantity + price * quantity) / total;
                p.quantity = total;
                p.entry_fees += fee;
                p
            }
            _ => {
                self.opened += 1;
                Position {
                    id: self.opened,
                    side,
                    quantity,
                    entry_price: price,
                    entry_bar: bar,
                    entry_fees: fee,
                    stop: None,
                    target: None,
                    liquidation: None,
                    exiting: false,
                }
            }
        };
        let exec = self.execution;
        let level = |fraction: f64, adverse: bool| {
            let away = if adverse { -fraction } else { fraction };
            position.entry_price * (1.0 + side.sign() * away)
        };
        self.position = Some(Position {
            stop: exec.stop_loss.map(|f| level(f, true)),
            target: exec.take_profit.map(|f| level(f, false)),
            ..position
        });
        self.update_liquidation();
    }

    /// Recomputes the liquidation price after the cash or the quantity changed.
    fn update_liquidation(&mut self) {
        let (cash, margin) = (self.cash, self.execution.maintenance_margin);
        if let Some(p) = &mut self.position {
            p.liquidation = liquidation_price(cash, p.side, p.quantity, p.entry_price, margin);
        }
    }

    /// Closes `quantity` of the position at `price` and logs that part as a trade, with its
    /// share of the entry fees.
    fn close(&mut self, quantity: f64, price: f64, fee: f64, bar: usize, reason: ExitReason) {
        let Some(mut p) = self.position else {
            return;
        };
        let quantity = quantity.min(p.quantity);
        self.cash += p.side.sign() * quantity * price - fee;
        self.fees_paid += fee;
        let entry_fees = p.entry_fees * (quantity / p.quantity);
        self.log(&p, quantity, price, bar, reason, entry_fees + fee);
        p.quantity -= quantity;
        p.entry_fees -= entry_fees;
        self.position = (p.quantity > 0.0).then_some(p);
        self.update_liquidation();
        // A signal's order can also close below zero, when it reaches the book before a
        // liquidation's order on its way: the same rule settles it.
        if self.position.is_none() && (reason == ExitReason::Liquidation || self.cash < 0.0) {
            self.settle_liquidation();
        }
    }

    /// After a liquidation has closed the whole position (see
    /// [`crate::execution::settle_liquidation`]).
    fn settle_liquidation(&mut self) {
        let margin = self.execution.maintenance_margin;
        if crate::execution::settle_liquidation(&mut self.cash, margin, &mut self.trades) {
            self.bust = true;
        }
    }

    fn log(
        &mut self,
        p: &Position,
        quantity: f64,
        exit_price: f64,
        bar: usize,
        reason: ExitReason,
        fees: f64,
    ) {
        let pnl = p.side.sign() * quantity * (exit_price - p.entry_price) - fees;
        self.trades.push(Trade {
            side: p.side,
            entry_time: self.bar_time[p.entry_bar],
            entry_bar: p.entry_bar,
            entry_price: p.entry_price,
            exit_time: self.bar_time[bar],
            exit_bar: bar,
            exit_price,
            quantity,
            fees,
            pnl,
            return_: pnl / (quantity * p.entry_price),
            exit_reason: reason,
        });
    }
}

/// A signal's order from its decision to its last fill.
#[derive(Debug, Clone, Copy)]
struct SignalOrder {
    order: Order,
    /// The mid when it was decided (the last trade price without a two-sided book).
    mid: f64,
    state: OrderState,
}

#[derive(Debug, Clone, Copy)]
enum OrderState {
    /// On its way: reaches the book at `arrival`, just before event `at`.
    InFlight { arrival: i64, at: usize },
    /// A market order that found no level to take: fills at the next trade's price.
    WaitingTrade,
    /// A limit order in the queue.
    Resting(Resting),
}

/// A limit order in the queue. It may close a position and open the opposite one (a
/// reversal): its fills close first.
#[derive(Debug, Clone, Copy)]
struct Resting {
    buy: bool,
    price: f64,
    /// Quantity still to close, then to open.
    close_left: f64,
    open_left: f64,
    open: Option<Side>,
    /// Size resting ahead of us at our price.
    ahead: f64,
    /// When it reached the book.
    placed: i64,
    /// When what is left is cancelled, and the event before which that happens.
    expires: i64,
    expires_at: usize,
    /// Whether each leg has filled yet (the fixed fee goes with the first fill).
    closed_any: bool,
    opened_any: bool,
    /// A snapshot cleared the book at this time: the queue is checked once it is rebuilt.
    snapshot: Option<i64>,
}

impl Resting {
    fn side(&self) -> BookSide {
        if self.buy {
            BookSide::Bid
        } else {
            BookSide::Ask
        }
    }

    fn left(&self) -> f64 {
        self.close_left + self.open_left
    }
}

/// A stop-loss's (or a liquidation's) market order for the position it closes.
#[derive(Debug, Clone, Copy)]
struct StopOrder {
    position: u64,
    /// `StopLoss` or `Liquidation`.
    reason: ExitReason,
    /// The mid when the stop traded.
    mid: f64,
    arrival: i64,
    at: usize,
    /// It found no level to take: fills at the next trade's price.
    waiting: bool,
}

impl StopOrder {
    /// The reason its fills close the position with, and the origin they are reported with.
    fn closing(&self) -> (ExitReason, OrderOrigin) {
        match self.reason {
            ExitReason::Liquidation => (ExitReason::Liquidation, OrderOrigin::Liquidation),
            _ => (ExitReason::StopLoss, OrderOrigin::StopLoss),
        }
    }
}

/// What an order does to the position when it fills: the side it trades, how much it closes,
/// what it opens after that.
#[derive(Debug, Clone, Copy)]
struct Legs {
    buy: bool,
    close: f64,
    open: Option<Side>,
}

/// One fill to book and report.
struct Fill {
    time: i64,
    buy: bool,
    effect: Effect,
    origin: OrderOrigin,
    kind: OrderKind,
    quantity: f64,
    price: f64,
    mid: f64,
    levels: usize,
    /// The best price on the side taken, for a market order walking the book.
    touch: Option<f64>,
    rested: Option<i64>,
    first_fill: bool,
}

/// What a fill does to the position.
#[derive(Debug, Clone, Copy)]
enum Effect {
    /// Closes (part of) it, for this reason.
    Close(ExitReason),
    /// Opens this side, or adds to it.
    Open(Side),
}

/// The replay: the book, the account, the orders and what is due next.
struct Replay<'a> {
    events: &'a Events<'a>,
    clock: &'a Clock,
    entries: &'a [bool],
    exits: &'a [bool],
    direction: Direction,
    latency: i64,
    orders: OrderType,

    book: Book,
    /// Last trade price, NaN before the first trade.
    last_trade: f64,
    /// The bar in progress: fills land in it, and it is the next one decided.
    bar: usize,
    account: Account<'a>,
    signal: Option<SignalOrder>,
    stop: Option<StopOrder>,
    /// The event before which something is due (a decision, an arrival, a timeout).
    next_action: usize,
    /// Whether trades and book updates must be looked at (see `refresh`).
    watching: bool,
    equity: Vec<f64>,
    exposure_bars: usize,
    tally: Tally,
}

impl<'a> Replay<'a> {
    fn new(
        events: &'a Events<'a>,
        clock: &'a Clock,
        entries: &'a [bool],
        exits: &'a [bool],
        execution: &'a Execution,
        settings: &TickSettings,
    ) -> Replay<'a> {
        let mut replay = Replay {
            events,
            clock,
            entries,
            exits,
            direction: execution.direction,
            latency: settings.latency.max(0),
            orders: settings.orders,
            book: Book::new(),
            last_trade: f64::NAN,
            bar: 0,
            account: Account {
                execution,
                bar_time: &clock.bars.time,
                cash: execution.initial_cash,
                position: None,
                opened: 0,
                trades: Vec::new(),
                fees_paid: 0.0,
                bust: false,
            },
            signal: None,
            stop: None,
            next_action: usize::MAX,
            watching: false,
            equity: Vec::with_capacity(clock.bars.len()),
            exposure_bars: 0,
            tally: Tally::default(),
        };
        replay.refresh();
        replay
    }

    /// Replays every event up to the last bar's decision, then closes the books.
    fn run(&mut self) {
        let Events {
            kind, price, size, ..
        } = *self.events;
        let mut finished = false;
        let (mut trades, mut updates) = (0, 0);
        let mut j = 0;
        while j < kind.len() {
            if j >= self.next_action && !self.act(j) {
                finished = true;
                break;
            }
            let (p, s) = (price[j], size[j]);
            match kind[j] {
                EventKind::Trade(_) => {
                    self.last_trade = p;
                    trades += 1;
                }
                EventKind::Bid => {
                    self.book.set(BookSide::Bid, p, s);
                    updates += 1;
                }
                EventKind::Ask => {
                    self.book.set(BookSide::Ask, p, s);
                    updates += 1;
                }
                EventKind::Clear => {
                    self.book.clear();
                    updates += 1;
                }
            }
            if self.watching {
                self.watch(j);
            }
            j += 1;
        }
        // Bars decided after the last event (and orders arriving before those decisions).
        if !finished {
            self.act(j);
        }
        self.tally.events = j;
        self.tally.trades = trades;
        self.tally.book_updates = updates;
        if let Some(OrderState::Resting(r)) = self.signal.map(|o| o.state) {
            self.tally.unfilled += r.left();
        }
        // A position still open is valued at the last close and reported as an open trade.
        let account = &mut self.account;
        if let (Some(p), Some(&close)) = (account.position.take(), self.clock.bars.close.last()) {
            let last = self.clock.bars.len() - 1;
            account.log(&p, p.quantity, close, last, ExitReason::Open, p.entry_fees);
        }
    }

    /// Does what is due before event `j` is applied, earliest first; false once the last bar
    /// has been decided (nothing after it can show in the results).
    #[inline(never)]
    fn act(&mut self, j: usize) -> bool {
        let bars = self.clock.decide_at.len();
        loop {
            let decision = (self.bar < bars && self.clock.decide_at[self.bar] <= j)
                .then(|| self.clock.decide_time[self.bar]);
            let signal = self.signal.and_then(|o| match o.state {
                OrderState::InFlight { arrival, at } if at <= j => Some(arrival),
                OrderState::Resting(r) if r.expires_at <= j => Some(r.expires),
                _ => None,
            });
            let stop = self
                .stop
                .and_then(|s| (!s.waiting && s.at <= j).then_some(s.arrival));
            let order = match (signal, stop) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match (order, decision) {
                // On a tie an order already on its way goes first: it was sent before.
                (Some(due), decision) if decision.is_none_or(|d| due <= d) => {
                    if signal == Some(due) {
                        self.signal_due(j);
                    } else {
                        self.stop_arrives();
                    }
                }
                (_, Some(_)) => {
                    self.decide(j);
                    if self.bar == bars {
                        return false;
                    }
                }
                _ => break,
            }
        }
        self.refresh();
        true
    }

    /// Recomputes the next index where something is due and whether events must be watched.
    fn refresh(&mut self) {
        let mut next = self
            .clock
            .decide_at
            .get(self.bar)
            .copied()
            .unwrap_or(usize::MAX);
        let mut watching = false;
        match self.signal.map(|o| o.state) {
            Some(OrderState::InFlight { at, .. }) => next = next.min(at),
            Some(OrderState::Resting(r)) => {
                next = next.min(r.expires_at);
                watching = true;
            }
            Some(OrderState::WaitingTrade) => watching = true,
            None => {}
        }
        if let Some(s) = self.stop {
            if s.waiting {
                watching = true;
            } else {
                next = next.min(s.at);
            }
        }
        if let Some(p) = self.account.position {
            watching |=
                !p.exiting && (p.stop.is_some() || p.target.is_some() || p.liquidation.is_some());
        }
        self.next_action = next;
        self.watching = watching;
    }

    /// The price a decision is measured against: the mid, or the last trade without a
    /// two-sided book.
    fn reference(&self) -> f64 {
        self.book.mid().unwrap_or(self.last_trade)
    }

    /// Marks bar `k`'s equity at its close, then reads its signals (before event `j`).
    fn decide(&mut self, j: usize) {
        let k = self.bar;
        self.bar += 1;
        let held = self.account.held();
        // Below zero only while a liquidation's order is on its way (or the book was too thin
        // to close it all): the account cannot lose more than its equity (see
        // `Account::settle_liquidation`).
        let equity = self.account.cash + held * self.clock.bars.close[k];
        self.equity.push(if equity < 0.0 { 0.0 } else { equity });
        self.exposure_bars += usize::from(held != 0.0);
        if self.bar == self.clock.decide_at.len() {
            return;
        }
        let (entry, exit) = (
            self.entries.get(k).copied().unwrap_or(false),
            self.exits.get(k).copied().unwrap_or(false),
        );
        let side = self.account.position.map(|p| p.side);
        let wanted = decide(self.direction, side, entry, exit);
        if let Some(working) = self.signal {
            let OrderState::Resting(_) = working.state else {
                // An order is on its way to the book: the strategy waits for it.
                return;
            };
            let replace = match wanted {
                Some(order) => order != working.order,
                None => {
                    self.direction != Direction::LongShort
                        && exit
                        && !entry
                        && matches!(working.order, Order::Open(_))
                }
            };
            if !replace {
                return;
            }
            self.cancel();
        }
        let Some(order) = wanted else {
            return;
        };
        let decided = self.clock.decide_time[k];
        let arrival = decided.saturating_add(self.latency);
        self.signal = Some(SignalOrder {
            order,
            mid: self.reference(),
            state: OrderState::InFlight {
                arrival,
                at: self.events.seek(j, arrival),
            },
        });
    }

    /// Cancels what is left of a resting limit order.
    fn cancel(&mut self) {
        if let Some(OrderState::Resting(r)) = self.signal.take().map(|o| o.state) {
            self.tally.unfilled += r.left();
        }
    }

    /// The signal order is due before event `j`: it reaches the book, or its timeout passed.
    fn signal_due(&mut self, j: usize) {
        let Some(order) = self.signal else {
            return;
        };
        match order.state {
            OrderState::InFlight { arrival, .. } => {
                self.signal = None;
                match self.orders {
                    OrderType::Market => self.send_market(order, arrival),
                    OrderType::Limit {
                        offset_bps,
                        timeout,
                    } => {
                        self.place_limit(order, arrival, j, offset_bps, timeout);
                    }
                }
            }
            OrderState::Resting(_) => self.cancel(),
            OrderState::WaitingTrade => {}
        }
    }

    /// What `order` does to the position held now; `None` when nothing (a close while flat).
    fn legs(&self, order: Order) -> Option<Legs> {
        let held = self.account.position.map(|p| (p.side, p.quantity));
        match (order, held) {
            (Order::Close, Some((side, quantity))) => Some(Legs {
                buy: side == Side::Short,
                close: quantity,
                open: None,
            }),
            (Order::Close, None) => None,
            (Order::Open(side) | Order::Reverse(side), None) => Some(Legs {
                buy: side == Side::Long,
                close: 0.0,
                open: Some(side),
            }),
            (Order::Open(side) | Order::Reverse(side), Some((held, quantity))) if held != side => {
                Some(Legs {
                    buy: side == Side::Long,
                    close: quantity,
                    open: Some(side),
                })
            }
            // Already on that side: no pyramiding.
            _ => None,
        }
    }

    /// A signal's market order reaches the book at `time`.
    fn send_market(&mut self, order: SignalOrder, time: i64) {
        let Some(legs) = self.legs(order.order) else {
            return;
        };
        self.tally.market_orders += 1;
        if self.book.best(take_side(legs.buy)).is_none() {
            self.signal = Some(SignalOrder {
                state: OrderState::WaitingTrade,
                ..order
            });
            return;
        }
        let closing = (ExitReason::Signal, OrderOrigin::ExitSignal);
        self.walk(time, legs, order.mid, closing);
    }

    /// A market order takes `legs` from the book: the closing leg first, then the opening leg
    /// from the liquidity the first left (sized at the touch, as the bar simulator sizes at the
    /// price). An opening leg after a close the book could not fill completely is dropped: the
    /// position is still held.
    fn walk(&mut self, time: i64, legs: Legs, mid: f64, closing: (ExitReason, OrderOrigin)) {
        let touch = self.book.best(take_side(legs.buy));
        let mut taken = 0.0;
        if legs.close > 0.0 {
            let walk = self.book.walk(legs.buy, legs.close);
            self.tally.unfilled += legs.close - walk.filled;
            taken = walk.filled;
            self.fill(Fill {
                time,
                buy: legs.buy,
                effect: Effect::Close(closing.0),
                origin: closing.1,
                kind: OrderKind::Market,
                quantity: walk.filled,
                price: walk.vwap(),
                mid,
                levels: walk.levels_consumed,
                touch,
                rested: None,
                first_fill: true,
            });
        }
        let (Some(side), None, Some(touch)) = (legs.open, self.account.position, touch) else {
            return;
        };
        let quantity = self.account.quantity(self.account.cash, touch);
        if quantity > 0.0 {
            let walk = self.book.walk_after(legs.buy, taken, quantity);
            self.tally.unfilled += quantity - walk.filled;
            self.fill(Fill {
                time,
                buy: legs.buy,
                effect: Effect::Open(side),
                origin: OrderOrigin::EntrySignal,
                kind: OrderKind::Market,
                quantity: walk.filled,
                price: walk.vwap(),
                mid,
                levels: walk.levels_consumed,
                touch: Some(touch),
                rested: None,
                first_fill: true,
            });
        }
    }

    /// A market order that found no book fills `legs` at a trade's `price`.
    fn fill_at_trade(
        &mut self,
        time: i64,
        legs: Legs,
        price: f64,
        mid: f64,
        closing: (ExitReason, OrderOrigin),
    ) {
        let at_trade = |quantity, effect, origin| Fill {
            time,
            buy: legs.buy,
            effect,
            origin,
            kind: OrderKind::Market,
            quantity,
            price,
            mid,
            levels: 0,
            touch: None,
            rested: None,
            first_fill: true,
        };
        if legs.close > 0.0 {
            self.fill(at_trade(legs.close, Effect::Close(closing.0), closing.1));
        }
        if let (Some(side), None) = (legs.open, self.account.position) {
            let quantity = self.account.quantity(self.account.cash, price);
            self.fill(at_trade(
                quantity,
                Effect::Open(side),
                OrderOrigin::EntrySignal,
            ));
        }
    }

    /// A signal's limit order reaches the book at `time` (before event `j`) and joins the queue.
    fn place_limit(
        &mut self,
        order: SignalOrder,
        time: i64,
        j: usize,
        offset_bps: f64,
        timeout: i64,
    ) {
        let Some(legs) = self.legs(order.order) else {
            return;
        };
        let ours = if legs.buy {
            BookSide::Bid
        } else {
            BookSide::Ask
        };
        // Without a level on our side the last trade is the best guess at the touch.
        let touch = self.book.best(ours).unwrap_or(self.last_trade);
        let away = offset_bps / 10_000.0;
        let price = if legs.buy {
            touch * (1.0 - away)
        } else {
            touch * (1.0 + away)
        };
        if !(price > 0.0 && price.is_finite()) {
            return;
        }
        let account = &self.account;
        let open_left = match legs.open {
            Some(_) => {
                // Sized with the cash the closing leg will leave, at the limit price.
                let cash = match account.position {
                    Some(p) if legs.close > 0.0 => {
                        account.cash + p.side.sign() * legs.close * price
                            - account.fee(legs.close * price, true)
                    }
                    _ => account.cash,
                };
                account.quantity(cash, price)
            }
            None => 0.0,
        };
        let ordered = legs.close + open_left;
        if ordered.is_nan() || ordered <= 0.0 {
            return;
        }
        self.tally.limit_orders += 1;
        self.tally.limit_ordered += ordered;
        let expires = time.saturating_add(timeout.max(0));
        self.signal = Some(SignalOrder {
            state: OrderState::Resting(Resting {
                buy: legs.buy,
                price,
                close_left: legs.close,
                open_left,
                open: legs.open,
                ahead: self.book.size_at(ours, price),
                placed: time,
                expires,
                expires_at: self.events.seek(j, expires),
                closed_any: false,
                opened_any: false,
                snapshot: None,
            }),
            ..order
        });
    }

    /// The stop's market order reaches the book.
    fn stop_arrives(&mut self) {
        let Some(stop) = self.stop.take() else {
            return;
        };
        let Some(p) = self.account.position.filter(|p| p.id == stop.position) else {
            // Already closed by a signal: nothing left to stop.
            return;
        };
        self.tally.market_orders += 1;
        let legs = Legs {
            buy: p.side == Side::Short,
            close: p.quantity,
            open: None,
        };
        if self.book.best(take_side(legs.buy)).is_none() {
            self.stop = Some(StopOrder {
                waiting: true,
                ..stop
            });
            return;
        }
        self.walk(stop.arrival, legs, stop.mid, stop.closing());
        self.after_protective_exit();
    }

    /// After a stop or target fill: a rest of the position (the book was too thin) is watched
    /// again, and a resting signal order has nothing left to close.
    fn after_protective_exit(&mut self) {
        if let Some(p) = &mut self.account.position {
            p.exiting = false;
            return;
        }
        if let Some(mut o) = self.signal {
            if let OrderState::Resting(mut r) = o.state {
                self.tally.limit_ordered -= r.close_left;
                r.close_left = 0.0;
                o.state = OrderState::Resting(r);
                self.signal = (r.open_left > 0.0).then_some(o);
            }
        }
    }

    /// Looks at event `j` (already applied) for the orders and levels being watched.
    #[inline(never)]
    fn watch(&mut self, j: usize) {
        let events = self.events;
        let (t, p, s) = (events.time[j], events.price[j], events.size[j]);
        if let Some(SignalOrder {
            state: OrderState::Resting(r),
            ..
        }) = &mut self.signal
        {
            // A snapshot has been rebuilt: what rests at our price now bounds the queue ahead.
            if r.snapshot.is_some_and(|at| at != t) {
                r.ahead = r.ahead.min(self.book.size_at(r.side(), r.price));
                r.snapshot = None;
            }
            match events.kind[j] {
                EventKind::Bid | EventKind::Ask
                    if p == r.price && (events.kind[j] == EventKind::Bid) == r.buy =>
                {
                    // Less resting than ahead of us: orders ahead were cancelled.
                    r.ahead = r.ahead.min(s.max(0.0));
                }
                EventKind::Clear => r.snapshot = Some(t),
                _ => {}
            }
        }
        if let EventKind::Trade(aggressor) = events.kind[j] {
            self.signal_trade(t, p, s, aggressor);
            self.stop_trade(t, p);
            self.protect(j, t, p);
        }
        self.refresh();
    }

    /// A trade at `price` for `size` meets the signal order: a market order waiting for a price,
    /// or a resting limit order.
    fn signal_trade(&mut self, time: i64, price: f64, size: f64, aggressor: Option<Aggressor>) {
        let Some(mut order) = self.signal else {
            return;
        };
        let mut r = match order.state {
            OrderState::Resting(r) => r,
            OrderState::WaitingTrade => {
                self.signal = None;
                if let Some(legs) = self.legs(order.order) {
                    let closing = (ExitReason::Signal, OrderOrigin::ExitSignal);
                    self.fill_at_trade(time, legs, price, order.mid, closing);
                }
                return;
            }
            OrderState::InFlight { .. } => return,
        };
        let through = if r.buy {
            price < r.price
        } else {
            price > r.price
        };
        let hits_us = match aggressor {
            None => true,
            Some(Aggressor::Sell) => r.buy,
            Some(Aggressor::Buy) => !r.buy,
        };
        let quantity = if through {
            r.left()
        } else if price == r.price && hits_us {
            let ahead = size.min(r.ahead);
            r.ahead -= ahead;
            (size - ahead).min(r.left())
        } else {
            return;
        };
        order.state = OrderState::Resting(r);
        self.signal = Some(order);
        if quantity.is_nan() || quantity <= 0.0 {
            return;
        }
        // What is held may have shrunk since the order was placed (a thin stop exit).
        r.close_left = r
            .close_left
            .min(self.account.position.map_or(0.0, |p| p.quantity));
        let close = quantity.min(r.close_left);
        let open = (quantity - close).min(r.open_left);
        let limit_fill = move |quantity, effect, origin, first_fill| Fill {
            time,
            buy: r.buy,
            effect,
            origin,
            kind: OrderKind::Limit,
            quantity,
            price: r.price,
            mid: order.mid,
            levels: 0,
            touch: None,
            rested: Some(time - r.placed),
            first_fill,
        };
        if close > 0.0 {
            let fill = limit_fill(
                close,
                Effect::Close(ExitReason::Signal),
                OrderOrigin::ExitSignal,
                !r.closed_any,
            );
            self.fill(fill);
            r.close_left -= close;
            r.closed_any = true;
        }
        if let (Some(side), true) = (r.open, open > 0.0) {
            let fill = limit_fill(
                open,
                Effect::Open(side),
                OrderOrigin::EntrySignal,
                !r.opened_any,
            );
            self.fill(fill);
            r.open_left -= open;
            r.opened_any = true;
        }
        self.tally.limit_filled += close + open;
        order.state = OrderState::Resting(r);
        self.signal = (r.left() > 0.0).then_some(order);
    }

    /// A trade gives a stop's market order waiting for a price its price.
    fn stop_trade(&mut self, time: i64, price: f64) {
        let Some(stop) = self.stop.filter(|s| s.waiting) else {
            return;
        };
        self.stop = None;
        let Some(p) = self.account.position.filter(|p| p.id == stop.position) else {
            return;
        };
        let legs = Legs {
            buy: p.side == Side::Short,
            close: p.quantity,
            open: None,
        };
        self.fill_at_trade(time, legs, price, stop.mid, stop.closing());
        self.after_protective_exit();
    }

    /// A trade at `price` (event `j`) checks the position's liquidation price, stop and target.
    /// A trade at or through the liquidation price sends a market order for the whole position
    /// as a stop does (after the latency, walking the book); one that reaches both it and the
    /// stop is a liquidation.
    fn protect(&mut self, j: usize, time: i64, price: f64) {
        let Some(p) = &mut self.account.position else {
            return;
        };
        if p.exiting {
            return;
        }
        let long = p.side == Side::Long;
        let reached = |level: Option<f64>, above: bool| {
            level.is_some_and(|l| if above { price >= l } else { price <= l })
        };
        let liquidated = p
            .liquidation
            .is_some_and(|level| through_liquidation(p.side, price, level));
        if liquidated || reached(p.stop, !long) {
            // A stop is a market order: it reaches the book after the latency.
            p.exiting = true;
            let arrival = time.saturating_add(self.latency);
            self.stop = Some(StopOrder {
                position: p.id,
                reason: if liquidated {
                    ExitReason::Liquidation
                } else {
                    ExitReason::StopLoss
                },
                mid: self.book.mid().unwrap_or(self.last_trade),
                arrival,
                at: self.events.seek(j + 1, arrival),
                waiting: false,
            });
        } else if let (Some(target), true) = (p.target, reached(p.target, long)) {
            // A take-profit rests at the exchange: it fills at its level, without latency.
            let quantity = p.quantity;
            self.fill(Fill {
                time,
                buy: !long,
                effect: Effect::Close(ExitReason::TakeProfit),
                origin: OrderOrigin::TakeProfit,
                kind: OrderKind::Limit,
                quantity,
                price: target,
                mid: self.reference(),
                levels: 0,
                touch: None,
                rested: None,
                first_fill: true,
            });
            self.after_protective_exit();
        }
    }

    /// Books a fill in the account and reports it.
    fn fill(&mut self, f: Fill) {
        // A close cannot sell more than is held (nor anything when flat).
        let quantity = match f.effect {
            Effect::Close(_) => f
                .quantity
                .min(self.account.position.map_or(0.0, |p| p.quantity)),
            Effect::Open(_) => f.quantity,
        };
        if !(quantity > 0.0 && f.price.is_finite()) {
            return;
        }
        let fee = self.account.fee(quantity * f.price, f.first_fill);
        match f.effect {
            Effect::Close(reason) => self.account.close(quantity, f.price, fee, self.bar, reason),
            Effect::Open(side) => self.account.open(side, quantity, f.price, fee, self.bar),
        }
        let side = OrderSide::of(f.buy);
        self.tally.fills.push(FillReport {
            time: f.time,
            side,
            origin: f.origin,
            order: f.kind,
            quantity,
            price: f.price,
            decision_mid: f.mid,
            slippage_bps: cost_bps(side, f.price, f.mid),
            levels_consumed: f.levels,
            impact_bps: f.touch.map(|touch| cost_bps(side, f.price, touch)),
            rested_ns: f.rested,
        });
    }
}

/// The side of the book an order takes liquidity from: the asks for a buy.
fn take_side(buy: bool) -> BookSide {
    if buy {
        BookSide::Ask
    } else {
        BookSide::Bid
    }
}

#[cfg(test)]
mod tests;
