//! What a job will hold in memory, estimated from its shape before it is queued, so the api can
//! refuse a job beyond its tier's `job_memory_mb` instead of a worker running out of memory.
//!
//! The estimate adds what a run keeps for its whole length or at its peak:
//! - the bars: [`BAR_COLUMNS`] columns of 8 bytes per bar (a walk-forward copies its windows'
//!   bars once more);
//! - the indicator cache: every distinct indicator column of every parameter set, 8 bytes per
//!   bar, kept until the job ends (see [`SeriesCache`](crate::expr::SeriesCache));
//! - the sets running at once, one per engine thread: [`WORKING_COLUMNS_PER_SET`] columns each
//!   (signals, equity, the temporaries of evaluating a condition);
//! - the equity curves kept for the result: a backtest's one, a sweep's `top` best;
//! - at tick precision, the recorded events, [`BYTES_PER_TICK_EVENT`] each.
//!
//! Polars' buffers while a file is read, trades and metrics are small beside these and left out:
//! the budget is a bound on what grows with a request, not an exact measure.

/// Bytes of one value of a column (`f64`, or `i64` for times).
pub const BYTES_PER_VALUE: u64 = 8;

/// Columns of bars: time, open, high, low, close, volume.
pub const BAR_COLUMNS: u64 = 6;

/// Columns one parameter set being run holds besides the cache: entry and exit flags, the
/// equity curve, and the intermediate columns of evaluating its conditions.
pub const WORKING_COLUMNS_PER_SET: u64 = 8;

/// Bytes of one recorded tick event: time, price and size (8 bytes each) and its kind, padded.
pub const BYTES_PER_TICK_EVENT: u64 = 32;

/// What a job runs on and how, as far as memory goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobShape {
    /// Bars the strategy runs on (at tick precision, the bars cut from the events).
    pub bars: u64,
    /// Recorded events loaded at tick precision; 0 at bar and hybrid precision.
    pub tick_events: u64,
    /// Distinct indicator columns of all the job's parameter sets together.
    pub indicator_columns: u64,
    /// Parameter sets (1 for a backtest).
    pub sets: u64,
    /// Engine threads running sets at once.
    pub threads: u64,
    /// Equity curves kept for the result: 1 for a backtest, `min(top, sets)` for a sweep.
    pub kept_curves: u64,
    /// A walk-forward, which copies each window's bars out of the history.
    pub walk_forward: bool,
}

/// A job's estimated memory, by part, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The bars (and a walk-forward's window copies).
    pub bars: u64,
    /// The indicator cache.
    pub indicators: u64,
    /// The parameter sets running at once.
    pub working: u64,
    /// Equity curves kept for the result.
    pub kept_curves: u64,
    /// Recorded tick events.
    pub tick_events: u64,
}

impl JobShape {
    /// The memory a job of this shape holds at its peak, by part. Saturates rather than
    /// overflows: an absurd shape estimates as `u64::MAX`.
    pub fn estimate(&self) -> MemoryEstimate {
        let column = self.bars.saturating_mul(BYTES_PER_VALUE);
        let bar_copies = if self.walk_forward { 2 } else { 1 };
        let running = self.threads.max(1).min(self.sets.max(1));
        MemoryEstimate {
            bars: column.saturating_mul(BAR_COLUMNS * bar_copies),
            indicators: column.saturating_mul(self.indicator_columns),
            working: column
                .saturating_mul(WORKING_COLUMNS_PER_SET)
                .saturating_mul(running),
            kept_curves: column.saturating_mul(self.kept_curves),
            tick_events: self.tick_events.saturating_mul(BYTES_PER_TICK_EVENT),
        }
    }
}

impl MemoryEstimate {
    /// Every part together, in bytes.
    pub fn total(&self) -> u64 {
        [
            self.bars,
            self.indicators,
            self.working,
            self.kept_curves,
            self.tick_events,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    /// Every part together, in MiB, rounded up.
    pub fn mib(&self) -> u64 {
        self.total().div_ceil(1024 * 1024)
    }

    /// The parts that are not zero, largest first, in MiB: `indicators 7630 MiB, bars 46 MiB`.
    pub fn describe(&self) -> String {
        let mut parts = [
            ("indicator columns", self.indicators),
            ("bars", self.bars),
            ("sets running at once", self.working),
            ("equity curves kept", self.kept_curves),
            ("tick events", self.tick_events),
        ];
        parts.sort_by_key(|&(_, bytes)| std::cmp::Reverse(bytes));
        parts
            .iter()
            .filter(|(_, bytes)| *bytes > 0)
            .map(|(name, bytes)| format!("{name} {} MiB", bytes.div_ceil(1024 * 1024)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_backtest_holds_its_bars_its_indicators_and_one_run() {
        let shape = JobShape {
            bars: MIB,
            indicator_columns: 2,
            sets: 1,
            threads: 8,
            kept_curves: 1,
            ..JobShape::default()
        };
        let estimate = shape.estimate();
        assert_eq!(estimate.bars, 6 * 8 * MIB);
        assert_eq!(estimate.indicators, 2 * 8 * MIB);
        // One set runs, whatever the threads.
        assert_eq!(estimate.working, WORKING_COLUMNS_PER_SET * 8 * MIB);
        assert_eq!(estimate.kept_curves, 8 * MIB);
        assert_eq!(estimate.mib(), (6 + 2 + 8 + 1) * 8);
    }

    #[test]
    fn a_sweep_adds_its_sets_running_at_once_and_its_top_curves() {
        let shape = JobShape {
            bars: 1000,
            indicator_columns: 40_000,
            sets: 10_000,
            threads: 4,
            kept_curves: 100,
            ..JobShape::default()
        };
        let estimate = shape.estimate();
        assert_eq!(estimate.indicators, 40_000 * 8000);
        assert_eq!(estimate.working, 4 * WORKING_COLUMNS_PER_SET * 8000);
        assert_eq!(estimate.kept_curves, 100 * 8000);
        assert!(estimate
            .describe()
            .starts_with("indicator columns 306 MiB, equity curves kept 1 MiB"));
        let walk_forward = JobShape {
            walk_forward: true,
            ..shape
        };
        assert_eq!(walk_forward.estimate().bars, 2 * shape.estimate().bars);
    }

    #[test]
    fn tick_events_count_at_tick_precision_and_absurd_shapes_saturate() {
        let ticks = JobShape {
            tick_events: 10 * MIB,
            sets: 1,
            ..JobShape::default()
        };
        assert_eq!(ticks.estimate().total(), 10 * MIB * BYTES_PER_TICK_EVENT);
        let absurd = JobShape {
            bars: u64::MAX / 2,
            kept_curves: 1 << 45,
            sets: 2,
            ..JobShape::default()
        };
        assert_eq!(absurd.estimate().total(), u64::MAX);
    }
}
