//! One backtest from bars to result: signals, simulation, metrics.

use serde::Serialize;

use crate::data::Bars;
use crate::execution::{simulate, BarRange, Execution, Trade};
use crate::expr::SeriesCache;
use crate::metrics::{MetricInputs, Metrics};
use crate::strategy::CompiledStrategy;

/// What a backtest produces: `{"metrics": {...}, "trades": [...], "equity": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestResult {
    /// Summary figures.
    pub metrics: Metrics,
    /// Every round trip; the last may still be open.
    pub trades: Vec<Trade>,
    /// Equity and drawdown at each bar's close.
    pub equity: EquityCurve,
}

/// Equity at each bar's close, with its drawdown from the running peak.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EquityCurve {
    /// Bar times (RFC 3339 in JSON).
    #[serde(serialize_with = "crate::data::serialize_times")]
    pub time: Vec<i64>,
    /// Equity: cash plus the position valued at the close.
    pub value: Vec<f64>,
    /// `value / running peak - 1`, `<= 0`.
    pub drawdown: Vec<f64>,
}

impl EquityCurve {
    /// Builds the curve and its drawdowns from equity values at `time`.
    pub fn new(time: Vec<i64>, value: Vec<f64>) -> EquityCurve {
        let mut peak = f64::NEG_INFINITY;
        let drawdown = value
            .iter()
            .map(|&v| {
                peak = peak.max(v);
                v / peak - 1.0
            })
            .collect();
        EquityCurve { time, value, drawdown }
    }
}

/// Runs `strategy` over `bars` at bar precision.
///
/// `periods_per_year` annualises the metrics; `None` infers it from the bars' spacing.
pub fn run_backtest(
    bars: &Bars,
    strategy: &CompiledStrategy,
    execution: &Execution,
    periods_per_year: Option<f64>,
) -> BacktestResult {
    let signals = strategy.signals(bars, &SeriesCache::new());
    let simulation = simulate(bars, &signals.entries, &signals.exits, execution, &mut BarRange);
    let metrics = Metrics::compute(MetricInputs {
        equity: &simulation.equity,
        initial_cash: execution.initial_cash,
        trades: &simulation.trades,
        fees_paid: simulation.fees_paid,
        exposure_bars: simulation.exposure_bars,
        periods_per_year: periods_per_year.or_else(|| bars.periods_per_year()).unwrap_or(f64::NAN),
    });
    BacktestResult {
        metrics,
        trades: simulation.trades,
        equity: EquityCurve::new(bars.time.clone(), simulation.equity),
    }
}
