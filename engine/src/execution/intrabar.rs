//! The price source inside a bar: the seam between precisions.
//!
//! The simulator asks one question inside a bar — does an open position's stop-loss or
//! take-profit trigger, which one first, and at what price? Bar precision ([`BarRange`]) answers
//! from the bar's open, high and low; hybrid precision ([`Hybrid`](super::Hybrid)) answers as bar
//! precision does except where both levels lie inside a volatile bar, where a seeded simulated
//! path decides. Tick precision answers from real trades in its own event loop (`crate::tick`).

use super::{ExitReason, Side};
use crate::data::Bars;

/// A protective exit triggered inside a bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProtectiveExit {
    /// Stop-loss or take-profit.
    pub reason: ExitReason,
    /// The price it fills at, before slippage.
    pub price: f64,
}

/// Answers, for bar `i`, whether a position's stop or target is reached first and where.
pub trait Intrabar {
    /// The first protective level reached inside bar `i` by a position on `side`, if any.
    /// `stop` is below the entry for a long and above it for a short; `target` the opposite.
    /// The simulator passes as `stop` the nearer of the stop-loss and the liquidation price,
    /// and names a `StopLoss` exit at or through the liquidation price a liquidation.
    fn protective_exit(
        &mut self,
        bars: &Bars,
        i: usize,
        side: Side,
        stop: Option<f64>,
        target: Option<f64>,
    ) -> Option<ProtectiveExit>;
}

/// Bar precision: the bar's open, high and low.
///
/// A bar that opens through a level fills at the open (a gap: the level was never traded).
/// Otherwise a level inside `[low, high]` fills at the level. When both the stop and the target
/// lie inside one bar, the order of touches is unknown; the stop is assumed first, the
/// conservative choice ([`Hybrid`](super::Hybrid) resolves it with a simulated path).
#[derive(Debug, Clone, Copy, Default)]
pub struct BarRange;

impl Intrabar for BarRange {
    fn protective_exit(
        &mut self,
        bars: &Bars,
        i: usize,
        side: Side,
        stop: Option<f64>,
        target: Option<f64>,
    ) -> Option<ProtectiveExit> {
        let (open, high, low) = (bars.open[i], bars.high[i], bars.low[i]);
        let (stop_hit_at_open, stop_hit, target_hit_at_open, target_hit) = match side {
            Side::Long => (
                stop.is_some_and(|s| open <= s),
                stop.is_some_and(|s| low <= s),
                target.is_some_and(|t| open >= t),
                target.is_some_and(|t| high >= t),
            ),
            Side::Short => (
                stop.is_some_and(|s| open >= s),
                stop.is_some_and(|s| high >= s),
                target.is_some_and(|t| open <= t),
                target.is_some_and(|t| low <= t),
            ),
        };
        let exit = |reason, price| Some(ProtectiveExit { reason, price });
        if stop_hit_at_open {
            exit(ExitReason::StopLoss, open)
        } else if target_hit_at_open {
            exit(ExitReason::TakeProfit, open)
        } else if stop_hit {
            exit(ExitReason::StopLoss, stop?)
        } else if target_hit {
            exit(ExitReason::TakeProfit, target?)
        } else {
            None
        }
    }
}
