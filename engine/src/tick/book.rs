//! The level-2 order book as the recorded events change it.
//!
//! Each side is a short vector of `(price, size)` levels sorted best first (bids descending,
//! asks ascending). Books in the data keep a few dozen levels per side, so a linear search from
//! the best level finds a price in a handful of comparisons and stays in one or two cache lines,
//! which beats a tree or a binary search at these sizes.
//!
//! Prices are compared exactly: every price of a level comes from the same data file, so the
//! same level always carries the same bits.
//!
//! [`Book::walk`] prices a market order against the book without changing it: the recorded feed
//! stays the truth, and the next book events already describe what the market did next (with
//! our order or without it, the data cannot say).

use super::EventKind;

/// Levels kept per side without reallocating; deeper books grow the vectors once.
const RESERVED_LEVELS: usize = 64;

/// A side of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookSide {
    /// Resting buy orders, best (highest) price first.
    Bid,
    /// Resting sell orders, best (lowest) price first.
    Ask,
}

/// One price level: the price and the size resting there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Level price.
    pub price: f64,
    /// Size resting at the price, always `> 0` in a book.
    pub size: f64,
}

/// What a market order would get from the book: the levels it takes, best first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Walk {
    /// Quantity the book could fill (`<=` the quantity asked for).
    pub filled: f64,
    /// Cash value of the filled quantity at the level prices.
    pub cost: f64,
    /// Number of levels the order took from (partly or wholly).
    pub levels_consumed: usize,
    /// Best price on the side walked before the order, if the side had any level.
    pub touch: Option<f64>,
}

impl Walk {
    /// Volume-weighted average fill price; NaN when nothing was filled.
    pub fn vwap(&self) -> f64 {
        if self.filled > 0.0 {
            self.cost / self.filled
        } else {
            f64::NAN
        }
    }
}

/// A level-2 book: bids and asks, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    bids: Vec<Level>,
    asks: Vec<Level>,
}

impl Default for Book {
    fn default() -> Self {
        Book::new()
    }
}

impl Book {
    /// An empty book with room for a typical depth, so replaying events does not allocate.
    pub fn new() -> Book {
        Book {
            bids: Vec::with_capacity(RESERVED_LEVELS),
            asks: Vec::with_capacity(RESERVED_LEVELS),
        }
    }

    /// Applies one event: a level update, or a clear before a snapshot; trades leave the book
    /// alone (the feed's own updates say what they removed).
    #[inline]
    pub fn apply(&mut self, kind: EventKind, price: f64, size: f64) {
        match kind {
            EventKind::Bid => self.set(BookSide::Bid, price, size),
            EventKind::Ask => self.set(BookSide::Ask, price, size),
            EventKind::Clear => self.clear(),
            EventKind::Trade(_) => {}
        }
    }

    /// Sets the size resting at `price` on `side`; a size of zero (or less, or NaN) removes the
    /// level.
    #[inline]
    pub fn set(&mut self, side: BookSide, price: f64, size: f64) {
        match side {
            BookSide::Bid => set_level(&mut self.bids, price, size, |a, b| a > b),
            BookSide::Ask => set_level(&mut self.asks, price, size, |a, b| a < b),
        }
    }

    /// Removes every level (a snapshot follows).
    #[inline]
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// The levels of `side`, best first.
    pub fn levels(&self, side: BookSide) -> &[Level] {
        match side {
            BookSide::Bid => &self.bids,
            BookSide::Ask => &self.asks,
        }
    }

    /// Best bid as `(price, size)`.
    #[inline]
    pub fn best_bid(&self) -> Option<(f64, f64)> {
        self.bids.first().map(|l| (l.price, l.size))
    }

    /// Best ask as `(price, size)`.
    #[inline]
    pub fn best_ask(&self) -> Option<(f64, f64)> {
        self.asks.first().map(|l| (l.price, l.size))
    }

    /// Best price of `side`.
    #[inline]
    pub fn best(&self, side: BookSide) -> Option<f64> {
        self.levels(side).first().map(|l| l.price)
    }

    /// Midpoint of the best bid and ask; `None` unless both sides have a level.
    #[inline]
    pub fn mid(&self) -> Option<f64> {
        match (self.bids.first(), self.asks.first()) {
            (Some(b), Some(a)) => Some(0.5 * (b.price + a.price)),
            _ => None,
        }
    }

    /// Size resting at exactly `price` on `side`; 0 when there is no such level.
    pub fn size_at(&self, side: BookSide, price: f64) -> f64 {
        self.levels(side)
            .iter()
            .find(|l| l.price == price)
            .map_or(0.0, |l| l.size)
    }

    /// What a market order for `quantity` would get: a buy takes the asks, a sell the bids,
    /// best level first. The book is not changed (see the module doc).
    pub fn walk(&self, buy: bool, quantity: f64) -> Walk {
        self.walk_after(buy, 0.0, quantity)
    }

    /// Like [`walk`](Book::walk), for an order that comes right after another one of `taken`
    /// on the same side: the first `taken` of the side's size is already gone. A reversal closes
    /// a position and opens the opposite one in one go; its second part must not take the same
    /// liquidity again.
    pub fn walk_after(&self, buy: bool, taken: f64, quantity: f64) -> Walk {
        let levels = if buy { &self.asks } else { &self.bids };
        let mut walk = Walk {
            filled: 0.0,
            cost: 0.0,
            levels_consumed: 0,
            touch: levels.first().map(|l| l.price),
        };
        // NaN or negative amounts take nothing (and skip nothing).
        let mut skip = if taken > 0.0 { taken } else { 0.0 };
        let mut wanted = if quantity > 0.0 { quantity } else { 0.0 };
        for level in levels {
            if wanted <= 0.0 {
                break;
            }
            let available = level.size - skip;
            skip = (skip - level.size).max(0.0);
            if available <= 0.0 {
                continue;
            }
            let take = available.min(wanted);
            walk.filled += take;
            walk.cost += take * level.price;
            walk.levels_consumed += 1;
            wanted -= take;
        }
        walk
    }
}

/// Sets one level of a side sorted by `better` (best first), keeping it sorted.
#[inline(always)]
fn set_level(levels: &mut Vec<Level>, price: f64, size: f64, better: impl Fn(f64, f64) -> bool) {
    // Updates cluster at the touch: searching from the best level ends after a few steps.
    let at = levels
        .iter()
        .position(|l| !better(l.price, price))
        .unwrap_or(levels.len());
    let present = levels.get(at).is_some_and(|l| l.price == price);
    if size > 0.0 {
        if present {
            levels[at].size = size;
        } else {
            levels.insert(at, Level { price, size });
        }
    } else if present {
        levels.remove(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bids 100 x 5, 99 x 10, 98 x 20; asks 101 x 5, 102 x 10, 103 x 20.
    fn book() -> Book {
        let mut book = Book::new();
        for (i, size) in [5.0, 10.0, 20.0].into_iter().enumerate() {
            book.apply(EventKind::Bid, 100.0 - i as f64, size);
            book.apply(EventKind::Ask, 101.0 + i as f64, size);
        }
        book
    }

    #[test]
    fn levels_stay_sorted_best_first_whatever_the_order_of_updates() {
        let mut book = Book::new();
        for price in [99.0, 101.0, 100.0, 97.0, 98.0] {
            book.apply(EventKind::Bid, price, 1.0);
            book.apply(EventKind::Ask, price + 10.0, 1.0);
        }
        let bids: Vec<f64> = book.levels(BookSide::Bid).iter().map(|l| l.price).collect();
        let asks: Vec<f64> = book.levels(BookSide::Ask).iter().map(|l| l.price).collect();
        assert_eq!(bids, [101.0, 100.0, 99.0, 98.0, 97.0]);
        assert_eq!(asks, [107.0, 108.0, 109.0, 110.0, 111.0]);
    }

    #[test]
    fn an_update_replaces_the_size_and_zero_removes_the_level() {
        let mut book = book();
        book.apply(EventKind::Bid, 99.0, 7.0);
        assert_eq!(book.size_at(BookSide::Bid, 99.0), 7.0);
        book.apply(EventKind::Bid, 100.0, 0.0);
        assert_eq!(book.best_bid(), Some((99.0, 7.0)));
        // Removing a level that is not there changes nothing.
        book.apply(EventKind::Ask, 150.0, 0.0);
        assert_eq!(book.levels(BookSide::Ask).len(), 3);
        assert_eq!(book.size_at(BookSide::Ask, 150.0), 0.0);
    }

    #[test]
    fn best_prices_and_mid() {
        let book = book();
        assert_eq!(book.best_bid(), Some((100.0, 5.0)));
        assert_eq!(book.best_ask(), Some((101.0, 5.0)));
        assert_eq!(book.mid(), Some(100.5));
    }

    #[test]
    fn an_empty_or_one_sided_book_has_no_mid() {
        let mut book = Book::new();
        assert_eq!(
            (book.best_bid(), book.best_ask(), book.mid()),
            (None, None, None)
        );
        book.apply(EventKind::Bid, 10.0, 1.0);
        assert_eq!(book.mid(), None);
        book.apply(EventKind::Clear, 0.0, 0.0);
        assert_eq!(book.best_bid(), None);
    }

    #[test]
    fn trades_do_not_change_the_book() {
        let mut book = book();
        book.apply(EventKind::Trade(None), 101.0, 5.0);
        assert_eq!(book, self::book());
    }

    #[test]
    fn a_market_buy_walks_the_asks_across_levels() {
        // 5 @ 101 + 10 @ 102 + 5 @ 103 = 2040 for 20.
        let walk = book().walk(true, 20.0);
        assert_eq!((walk.filled, walk.cost), (20.0, 2040.0));
        assert_eq!(walk.vwap(), 102.0);
        assert_eq!((walk.levels_consumed, walk.touch), (3, Some(101.0)));
    }

    #[test]
    fn a_market_sell_walks_the_bids() {
        let walk = book().walk(false, 8.0);
        assert_eq!(
            (walk.filled, walk.cost, walk.levels_consumed),
            (8.0, 797.0, 2)
        );
    }

    #[test]
    fn a_walk_larger_than_the_book_fills_partly() {
        let walk = book().walk(true, 100.0);
        assert_eq!((walk.filled, walk.levels_consumed), (35.0, 3));
        assert_eq!(walk.cost, 5.0 * 101.0 + 10.0 * 102.0 + 20.0 * 103.0);
    }

    #[test]
    fn a_walk_after_another_skips_the_liquidity_it_took() {
        // The first 8 took 5 @ 101 and 3 @ 102; the next 10 get 7 @ 102 and 3 @ 103.
        let walk = book().walk_after(true, 8.0, 10.0);
        assert_eq!((walk.filled, walk.cost), (10.0, 7.0 * 102.0 + 3.0 * 103.0));
        assert_eq!(walk.levels_consumed, 2);
    }

    #[test]
    fn walking_an_empty_side_fills_nothing() {
        let walk = Book::new().walk(false, 3.0);
        assert_eq!(
            (walk.filled, walk.levels_consumed, walk.touch),
            (0.0, 0, None)
        );
        assert!(walk.vwap().is_nan());
        assert_eq!(book().walk(true, 0.0).levels_consumed, 0);
    }
}
