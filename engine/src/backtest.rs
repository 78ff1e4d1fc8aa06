//! One backtest from bars to result: signals, simulation, metrics.

use std::borrow::Cow;

use serde::Serialize;

use crate::data::Bars;
use crate::execution::{simulate, BarRange, Execution, Trade};
use crate::expr::SeriesCache;
use crate::metrics::{MetricInputs, Metrics};
use crate::strategy::CompiledStrategy;

/// What a backtest produces:
/// `{"metrics": {...}, "trades": [...], "equity": {...}, "precision": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestResult<'a> {
    /// Summary figures.
    pub metrics: Metrics,
    /// Every round trip; the last may still be open.
    pub trades: Vec<Trade>,
    /// Equity and drawdown at each bar's close.
    pub equity: EquityCurve<'a>,
    /// How fills were resolved, with what that precision has to report.
    pub precision: PrecisionReport,
}

/// The precision a backtest ran at and what it reports: `{"mode": "hybrid", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum PrecisionReport {
    /// Bars only.
    Bar,
    /// Simulated paths inside volatile bars.
    Hybrid {
        /// The seed of the paths.
        seed: u64,
        /// A bar is simulated when its range exceeds this multiple of the recent average range.
        threshold: f64,
        /// Bars whose stop or target was decided by a simulated path.
        simulated_bars: usize,
    },
    /// Trades and the book, event by event.
    Tick(Box<crate::tick::ExecutionReport>),
}

/// Equity at each bar's close; in JSON also its drawdown from the running peak.
///
/// The times are borrowed from the bars when the caller has them: a million-bar curve need not
/// copy them. Tick precision builds its bars itself and hands them over.
#[derive(Debug, Clone, PartialEq)]
pub struct EquityCurve<'a> {
    /// Bar times, nanoseconds since the epoch.
    pub time: Cow<'a, [i64]>,
    /// Equity: cash plus the position valued at the close.
    pub value: Vec<f64>,
}

impl EquityCurve<'_> {
    /// `value / running peak - 1` at each bar, `<= 0`.
    pub fn drawdown(&self) -> Vec<f64> {
        let mut peak = f64::NEG_INFINITY;
        self.value
            .iter()
            .map(|&v| {
                peak = peak.max(v);
                v / peak - 1.0
            })
            .collect()
    }
}

/// `{"time": [RFC 3339...], "value": [...], "drawdown": [...]}`; the drawdown is derived here,
/// when it is written, rather than kept beside every curve.
impl Serialize for EquityCurve<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Times<'a>(&'a [i64]);
        impl Serialize for Times<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                crate::data::serialize_times(self.0, serializer)
            }
        }
        let mut curve = serializer.serialize_struct("EquityCurve", 3)?;
        curve.serialize_field("time", &Times(&self.time))?;
        curve.serialize_field("value", &self.value)?;
        curve.serialize_field("drawdown", &self.drawdown())?;
        curve.end()
    }
}

/// Runs `strategy` over `bars` at bar precision, or at hybrid precision when
/// `execution.hybrid` is set.
///
/// `periods_per_year` annualises the metrics; `None` infers it from the bars' spacing.
pub fn run_backtest<'a>(
    bars: &'a Bars,
    strategy: &CompiledStrategy,
    execution: &Execution,
    periods_per_year: Option<f64>,
) -> BacktestResult<'a> {
    let signals = strategy.signals(bars, &SeriesCache::new());
    let (entries, exits) = (&signals.entries, &signals.exits);
    let (simulation, precision) = match execution.hybrid {
        Some(settings) => {
            let mut hybrid = crate::execution::Hybrid::new(settings);
            let simulation = simulate(bars, entries, exits, execution, &mut hybrid);
            let report = PrecisionReport::Hybrid {
                seed: settings.seed,
                threshold: settings.threshold,
                simulated_bars: hybrid.simulated_bars(),
            };
            (simulation, report)
        }
        None => (
            simulate(bars, entries, exits, execution, &mut BarRange),
            PrecisionReport::Bar,
        ),
    };
    let metrics = Metrics::compute(MetricInputs {
        equity: &simulation.equity,
        initial_cash: execution.initial_cash,
        trades: &simulation.trades,
        fees_paid: simulation.fees_paid,
        exposure_bars: simulation.exposure_bars,
        periods_per_year: periods_per_year
            .or_else(|| bars.periods_per_year())
            .unwrap_or(f64::NAN),
    });
    BacktestResult {
        metrics,
        trades: simulation.trades,
        equity: EquityCurve {
            time: Cow::Borrowed(&bars.time),
            value: simulation.equity,
        },
        precision,
    }
}
