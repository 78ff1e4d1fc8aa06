//! The backtest spec: the JSON users submit (`POST /v1/backtests`, `strata backtest --spec`),
//! and its validation into what the engine runs.
//!
//! ```json
//! {
//!   "data":      { "path": "examples/data/GOOG.csv", "timeframe": "1d", "start": "2005-01-01", "end": "2012-12-31" },
//!   "strategy":  { "template": "sma_cross", "params": { "fast": 10, "slow": 20 } },
//!   "direction": "long",
//!   "execution": { "fill": "next_open", "fees": 0.001, "initial_cash": 10000, "size": 1.0 },
//!   "precision": "bar"
//! }
//! ```
//!
//! Some `execution` fields belong to one precision: `seed` and `intrabar_threshold` to `hybrid`;
//! `latency_ms`, `order_type`, `limit_offset_bps` and `limit_timeout_ms` to `tick`. Giving one at
//! another precision is an error on that field rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{self, LoadOptions, Timeframe, NANOS_PER_MINUTE, NANOS_PER_SECOND};
use crate::execution::{Direction, Execution, Fill, HybridSettings};
use crate::expr::ExprError;
use crate::limits::MAX_LEVERAGE;
use crate::strategy::{CompiledStrategy, Strategy};
use crate::tick::{BarClock, OrderType, TickSettings};

mod reading;
pub use reading::from_json;

/// What a limit order waits when the spec does not say: one minute.
pub const DEFAULT_LIMIT_TIMEOUT_MS: f64 = 60_000.0;

/// Longest latency or limit timeout a spec may give, in milliseconds (about 31 years): far
/// beyond any real use, and small enough that event times plus it stay within `i64` nanoseconds.
const MAX_MILLIS: f64 = 1e12;

/// Why a tick-precision spec cannot be swept.
const TICK_SWEEP: &str =
    "tick precision runs single backtests; sweeps and walk-forward run at bar or hybrid precision";

/// A whole backtest request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestSpec {
    /// Which bars to run on.
    pub data: DataSpec,
    /// What to trade on.
    pub strategy: StrategySpec,
    /// Long only, short only, or both with reversals.
    #[serde(default)]
    pub direction: Direction,
    /// Fills, costs and sizing.
    #[serde(default)]
    pub execution: ExecutionSpec,
    /// Price resolution inside a bar.
    #[serde(default)]
    pub precision: Precision,
    /// Bars per year for annualised metrics; inferred from the data's spacing when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periods_per_year: Option<f64>,
}

/// Where the bars come from and which part of them to use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// A CSV or Parquet file (the CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// An uploaded or bundled data set by name (the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Resample to this coarser bar, e.g. `1h`, `1d`; at tick precision the bars the strategy
    /// sees (`1s`, `100ms`, `5m`, or `event` for one bar per event; one minute when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeframe: Option<String>,
    /// First bar time to include (a date or a datetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Last bar time to include; a bare date includes that whole day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A template, or entry and exit expressions, with parameter values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    /// A template name such as `sma_cross`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Entry condition; overrides the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Exit condition; overrides the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
    /// Parameter values; override the template's defaults.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "crate::expr::serialize_params"
    )]
    pub params: BTreeMap<String, f64>,
}

/// Fills, costs and sizing as submitted (see [`Execution`] for meanings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionSpec {
    /// `next_open` (default) or `close`.
    pub fill: Fill,
    /// Fee as a fraction of traded value.
    pub fees: f64,
    /// Fixed fee per fill, in cash.
    pub fixed_fee: f64,
    /// Slippage in basis points.
    pub slippage_bps: f64,
    /// Starting cash.
    pub initial_cash: f64,
    /// Fraction of equity per position; above 1 only up to `leverage`.
    pub size: f64,
    /// The largest `size` allowed: 1 when absent (no borrowing), at most
    /// [`MAX_LEVERAGE`](crate::limits::MAX_LEVERAGE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leverage: Option<f64>,
    /// Equity below which a position is liquidated, as a fraction of its value, in `[0, 1)`; 0
    /// (liquidated when equity reaches zero) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_margin: Option<f64>,
    /// Round quantities down to a multiple of this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot_size: Option<f64>,
    /// Stop-loss as a fraction of the entry price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<f64>,
    /// Take-profit as a fraction of the entry price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<f64>,
    /// Hybrid only: seed of the simulated intrabar paths (0 when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Hybrid only: a bar is simulated when its range exceeds this multiple of the mean range
    /// of the 20 bars before it (1.5 when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intrabar_threshold: Option<f64>,
    /// Tick only: milliseconds between a decision and its order reaching the book (0 when
    /// absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Tick only: how the strategy's orders are sent (`market` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_type: Option<OrderTypeSpec>,
    /// Tick, limit orders only: basis points behind the best price on our side (0 when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_offset_bps: Option<f64>,
    /// Tick, limit orders only: milliseconds before what is left of a limit order is cancelled
    /// ([`DEFAULT_LIMIT_TIMEOUT_MS`] when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_timeout_ms: Option<f64>,
}

/// How a tick-precision spec sends the strategy's orders (`"market"` or `"limit"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderTypeSpec {
    /// Take liquidity: walk the book.
    #[default]
    Market,
    /// Rest in the book at the touch (or behind it by `limit_offset_bps`) until filled or timed
    /// out.
    Limit,
}

impl OrderTypeSpec {
    /// The name used in specs: `market`, `limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderTypeSpec::Market => "market",
            OrderTypeSpec::Limit => "limit",
        }
    }
}

impl Default for ExecutionSpec {
    fn default() -> Self {
        let e = Execution::default();
        ExecutionSpec {
            fill: e.fill,
            fees: e.fees,
            fixed_fee: e.fixed_fee,
            slippage_bps: e.slippage_bps,
            initial_cash: e.initial_cash,
            size: e.size,
            leverage: None,
            maintenance_margin: None,
            lot_size: e.lot_size,
            stop_loss: e.stop_loss,
            take_profit: e.take_profit,
            seed: None,
            intrabar_threshold: None,
            latency_ms: None,
            order_type: None,
            limit_offset_bps: None,
            limit_timeout_ms: None,
        }
    }
}

/// How prices inside a bar are resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// The bar's open, high, low and close.
    #[default]
    Bar,
    /// A simulated intrabar path inside volatile bars.
    Hybrid,
    /// Real trades and a level-2 book.
    Tick,
}

impl Precision {
    /// The name used in specs and configuration: `bar`, `hybrid`, `tick`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Bar => "bar",
            Precision::Hybrid => "hybrid",
            Precision::Tick => "tick",
        }
    }
}

/// A problem with one field of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// Dotted path of the field, e.g. `execution.fees` or `strategy.entry`.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
    /// For an expression field: the parse or type error with its column.
    pub expression: Option<ExprError>,
}

impl SpecError {
    /// A problem with a plain field.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            field: field.into(),
            message: message.into(),
            expression: None,
        }
    }

    /// A problem inside an expression field.
    pub fn expression(field: impl Into<String>, error: ExprError) -> SpecError {
        SpecError {
            field: field.into(),
            message: error.message.clone(),
            expression: Some(error),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expression {
            Some(e) => write!(f, "{}: {e}", self.field),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for SpecError {}

/// Every problem found in a spec, so a user fixes them all in one go.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SpecErrors(pub Vec<SpecError>);

/// A validated spec: what to load and what to run on it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Time range and timeframe to load.
    pub load: LoadOptions,
    /// The strategy as resolved (expressions and parameter values).
    pub strategy: Strategy,
    /// The strategy, compiled.
    pub compiled: CompiledStrategy,
    /// Fills, costs and sizing; at hybrid precision also the paths' settings.
    pub execution: Execution,
    /// Bars per year, when given.
    pub periods_per_year: Option<f64>,
    /// The precision to run at.
    pub precision: Precision,
    /// Latency, order type and bar clock; `Some` exactly when `precision` is tick.
    pub tick: Option<TickSettings>,
}

impl BacktestSpec {
    /// Checks every field and compiles the strategy; nothing is loaded or run.
    pub fn plan(&self) -> Result<Plan, SpecErrors> {
        self.plan_for(false)
    }

    /// [`plan`](Self::plan) for a sweep or walk-forward, which run at bar or hybrid precision
    /// only: tick precision is one more error, on `precision`.
    pub fn plan_sweep(&self) -> Result<Plan, SpecErrors> {
        self.plan_for(true)
    }

    fn plan_for(&self, sweep: bool) -> Result<Plan, SpecErrors> {
        let mut errors = Vec::new();
        let precision = self.precision;
        if sweep && precision == Precision::Tick {
            errors.push(SpecError::new("precision", TICK_SWEEP));
        }
        let (load, clock) = self.data.load_options(precision, &mut errors);
        let execution = self
            .execution
            .validate(self.direction, precision, &mut errors);
        let tick = clock.map(|clock| self.execution.tick_settings(clock));
        if let Some(ppy) = self.periods_per_year {
            if !(ppy.is_finite() && ppy > 0.0) {
                errors.push(SpecError::new(
                    "periods_per_year",
                    format!("must be a positive number, got {ppy}"),
                ));
            }
        }
        let strategy = Strategy::from_spec(&self.strategy)
            .map_err(|e| errors.push(e))
            .ok();
        let compiled = strategy
            .as_ref()
            .and_then(|s| s.compile().map_err(|e| errors.extend(e)).ok());
        match (strategy, compiled) {
            (Some(strategy), Some(compiled)) if errors.is_empty() => Ok(Plan {
                load,
                strategy,
                compiled,
                execution,
                periods_per_year: self.periods_per_year,
                precision,
                tick,
            }),
            _ => Err(SpecErrors(errors)),
        }
    }
}

impl DataSpec {
    /// What to load, and at tick precision the strategy's bar clock (`Some` exactly then).
    fn load_options(
        &self,
        precision: Precision,
        errors: &mut Vec<SpecError>,
    ) -> (LoadOptions, Option<BarClock>) {
        let mut bound = |field: &str, text: &Option<String>, end_of_day: bool| {
            text.as_deref().and_then(|t| {
                data::parse_time_bound(t, end_of_day)
                    .map_err(|e| errors.push(SpecError::new(field, e.to_string())))
                    .ok()
            })
        };
        let start = bound("data.start", &self.start, false);
        let end = bound("data.end", &self.end, true);
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                errors.push(SpecError::new("data.end", "must not be before data.start"));
            }
        }
        let text = self.timeframe.as_deref();
        let (timeframe, clock) = if precision == Precision::Tick {
            // Ticks are not resampled: the timeframe is the clock bars are cut from events by.
            let clock = text.map_or(Ok(BarClock::Every(NANOS_PER_MINUTE)), bar_clock);
            // After an error the plan is still tick-shaped; the error keeps it from being used.
            let clock = clock.unwrap_or_else(|message| {
                errors.push(SpecError::new("data.timeframe", message));
                BarClock::Every(NANOS_PER_MINUTE)
            });
            (None, Some(clock))
        } else if text.map(str::trim) == Some("event") {
            errors.push(SpecError::new(
                "data.timeframe",
                format!(
                    "\"event\" (one bar per trade or book change) needs precision \"tick\"; \
                     this spec's precision is \"{}\"",
                    precision.as_str()
                ),
            ));
            (None, None)
        } else {
            let timeframe = text.and_then(|t| {
                t.parse::<Timeframe>()
                    .map_err(|e| errors.push(SpecError::new("data.timeframe", e.to_string())))
                    .ok()
            });
            (timeframe, None)
        };
        let load = LoadOptions {
            start,
            end,
            timeframe,
        };
        (load, clock)
    }
}

/// A tick-precision bar clock: `event`, `<count>ms`, `<count>s`, or any bar [`Timeframe`]
/// (`5m`, `1h`, ...). Sub-minute bars are only for ticks: OHLCV bars resample to minutes and up.
fn bar_clock(text: &str) -> Result<BarClock, String> {
    let t = text.trim();
    if t == "event" {
        return Ok(BarClock::Event);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (count, unit) = t.split_at(split);
    let unit_nanos = match unit {
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        _ => {
            return t
                .parse::<Timeframe>()
                .map(|tf| BarClock::Every(tf.nanos()))
                .map_err(|e| format!("{e}; at tick precision also <count>s, <count>ms or event"))
        }
    };
    let invalid = |reason: &str| format!("invalid timeframe \"{t}\": {reason}");
    let count: i64 = match count {
        "" => return Err(invalid("expected <count><unit>, e.g. 100ms, 1s, 5m")),
        digits => digits
            .parse()
            .map_err(|_| invalid("the count is too large"))?,
    };
    if count == 0 {
        return Err(invalid("the count must be at least 1"));
    }
    count
        .checked_mul(unit_nanos)
        .map(BarClock::Every)
        .ok_or_else(|| invalid("the timeframe is too long"))
}

impl ExecutionSpec {
    fn validate(
        &self,
        direction: Direction,
        precision: Precision,
        errors: &mut Vec<SpecError>,
    ) -> Execution {
        self.validate_precision_fields(precision, errors);
        let mut check = |field: &str, value: f64, ok: bool, rule: &str| {
            if !(ok && value.is_finite()) {
                errors.push(SpecError::new(
                    format!("execution.{field}"),
                    format!("{rule}, got {value}"),
                ));
            }
        };
        check(
            "fees",
            self.fees,
            (0.0..1.0).contains(&self.fees),
            "must be a fraction in [0, 1)",
        );
        check(
            "fixed_fee",
            self.fixed_fee,
            self.fixed_fee >= 0.0,
            "must be >= 0",
        );
        check(
            "slippage_bps",
            self.slippage_bps,
            (0.0..10_000.0).contains(&self.slippage_bps),
            "must be in [0, 10000) basis points",
        );
        check(
            "initial_cash",
            self.initial_cash,
            self.initial_cash > 0.0,
            "must be > 0",
        );
        check(
            "size",
            self.size,
            self.size > 0.0,
            "must be a fraction of equity > 0",
        );
        if let Some(lot) = self.lot_size {
            check("lot_size", lot, lot > 0.0, "must be > 0");
        }
        if let Some(stop) = self.stop_loss {
            check(
                "stop_loss",
                stop,
                stop > 0.0 && stop < 1.0,
                "must be a fraction in (0, 1)",
            );
        }
        if let Some(target) = self.take_profit {
            let ok = target > 0.0 && (direction == Direction::Long || target < 1.0);
            check(
                "take_profit",
                target,
                ok,
                "must be a fraction > 0 (and < 1 when shorting)",
            );
        }
        let maintenance_margin = self.validate_leverage(errors);
        let hybrid = (precision == Precision::Hybrid).then(|| {
            let default = HybridSettings::default();
            HybridSettings {
                seed: self.seed.unwrap_or(default.seed),
                threshold: self.intrabar_threshold.unwrap_or(default.threshold),
                ..default
            }
        });
        Execution {
            direction,
            fill: self.fill,
            fees: self.fees,
            fixed_fee: self.fixed_fee,
            slippage_bps: self.slippage_bps,
            initial_cash: self.initial_cash,
            size: self.size,
            maintenance_margin,
            lot_size: self.lot_size,
            stop_loss: self.stop_loss,
            take_profit: self.take_profit,
            hybrid,
        }
    }

    /// Checks `leverage`, `size` against it and `maintenance_margin`; returns the margin.
    fn validate_leverage(&self, errors: &mut Vec<SpecError>) -> f64 {
        let leverage = self.leverage.unwrap_or(1.0);
        let leverage_ok = (1.0..=MAX_LEVERAGE).contains(&leverage);
        if !leverage_ok {
            errors.push(SpecError::new(
                "execution.leverage",
                format!(
                    "must be in [1, {MAX_LEVERAGE}] (the largest size it allows), got {leverage}"
                ),
            ));
        }
        if leverage_ok && self.size.is_finite() && self.size > leverage {
            let leverage_given = match self.leverage {
                Some(value) => format!("execution.leverage is {value}"),
                None => "execution.leverage is 1 when not given".to_owned(),
            };
            errors.push(SpecError::new(
                "execution.size",
                format!(
                    "{} commits {}% of equity, which borrows, and {leverage_given}: set \
                     execution.leverage (CLI --leverage) to at least {}, or lower the size",
                    self.size,
                    self.size * 100.0,
                    self.size
                ),
            ));
        }
        let margin = self.maintenance_margin.unwrap_or(0.0);
        if !(0.0..1.0).contains(&margin) {
            errors.push(SpecError::new(
                "execution.maintenance_margin",
                format!("must be a fraction of the position's value in [0, 1), got {margin}"),
            ));
        } else if self.size * margin >= 1.0 {
            errors.push(SpecError::new(
                "execution.maintenance_margin",
                format!(
                    "{margin} of a position of size {} is all of its equity: it would be \
                     liquidated as it opens; the margin must be below 1 / size",
                    self.size
                ),
            ));
        }
        margin
    }

    /// The fields that belong to one precision: refused at another, checked at theirs.
    fn validate_precision_fields(&self, precision: Precision, errors: &mut Vec<SpecError>) {
        let mut refuse = |field: &str, wanted: Precision| {
            errors.push(SpecError::new(
                format!("execution.{field}"),
                format!(
                    "applies only to precision \"{}\"; this spec's precision is \"{}\"",
                    wanted.as_str(),
                    precision.as_str()
                ),
            ));
        };
        let given = |value: Option<f64>| value.is_some();
        let owned = [
            ("seed", self.seed.is_some(), Precision::Hybrid),
            (
                "intrabar_threshold",
                given(self.intrabar_threshold),
                Precision::Hybrid,
            ),
            ("latency_ms", given(self.latency_ms), Precision::Tick),
            ("order_type", self.order_type.is_some(), Precision::Tick),
            (
                "limit_offset_bps",
                given(self.limit_offset_bps),
                Precision::Tick,
            ),
            (
                "limit_timeout_ms",
                given(self.limit_timeout_ms),
                Precision::Tick,
            ),
        ];
        for (field, present, wanted) in owned {
            if present && precision != wanted {
                refuse(field, wanted);
            }
        }

        let mut check = |field: &str, value: Option<f64>, ok: fn(f64) -> bool, rule: &str| {
            if let Some(value) = value.filter(|&v| !(ok(v) && v.is_finite())) {
                errors.push(SpecError::new(
                    format!("execution.{field}"),
                    format!("{rule}, got {value}"),
                ));
            }
        };
        match precision {
            Precision::Bar => {}
            Precision::Hybrid => check(
                "intrabar_threshold",
                self.intrabar_threshold,
                |v| v > 0.0,
                "must be a multiple of the mean range > 0",
            ),
            Precision::Tick => {
                check(
                    "latency_ms",
                    self.latency_ms,
                    |v| (0.0..=MAX_MILLIS).contains(&v),
                    "must be a number of milliseconds in [0, 1e12]",
                );
                check(
                    "limit_offset_bps",
                    self.limit_offset_bps,
                    |v| v >= 0.0,
                    "must be >= 0 basis points",
                );
                check(
                    "limit_timeout_ms",
                    self.limit_timeout_ms,
                    |v| v > 0.0 && v <= MAX_MILLIS,
                    "must be a number of milliseconds in (0, 1e12]",
                );
                let order_type = self.order_type.unwrap_or_default();
                if order_type != OrderTypeSpec::Limit {
                    for (field, present) in [
                        ("limit_offset_bps", given(self.limit_offset_bps)),
                        ("limit_timeout_ms", given(self.limit_timeout_ms)),
                    ] {
                        if present {
                            errors.push(SpecError::new(
                                format!("execution.{field}"),
                                format!(
                                    "applies only to order_type \"limit\"; this spec's \
                                     order_type is \"{}\"",
                                    order_type.as_str()
                                ),
                            ));
                        }
                    }
                }
                if self.slippage_bps > 0.0 {
                    errors.push(SpecError::new(
                        "execution.slippage_bps",
                        "at tick precision slippage comes from walking the book; remove \
                         execution.slippage_bps",
                    ));
                }
            }
        }
    }

    /// Tick precision's settings from validated fields, with `clock` from `data.timeframe`.
    fn tick_settings(&self, clock: BarClock) -> TickSettings {
        let orders = match self.order_type.unwrap_or_default() {
            OrderTypeSpec::Market => OrderType::Market,
            OrderTypeSpec::Limit => OrderType::Limit {
                offset_bps: self.limit_offset_bps.unwrap_or(0.0),
                timeout: millis_to_nanos(self.limit_timeout_ms.unwrap_or(DEFAULT_LIMIT_TIMEOUT_MS))
                    .max(1),
            },
        };
        TickSettings {
            latency: millis_to_nanos(self.latency_ms.unwrap_or(0.0)),
            orders,
            clock,
        }
    }
}

/// Milliseconds to whole nanoseconds, rounded; `as` saturates, and validation keeps the value
/// within `[0, 1e12]` ms anyway.
fn millis_to_nanos(millis: f64) -> i64 {
    (millis * 1e6).round() as i64
}

#[cfg(test)]
mod precision_tests {
    use super::*;

    /// sma_cross on a file at `precision`, with `execution` as JSON.
    fn spec(precision: &str, execution: serde_json::Value) -> BacktestSpec {
        serde_json::from_value(serde_json::json!({
            "data": { "path": "bars.csv" },
            "strategy": { "template": "sma_cross" },
            "execution": execution,
            "precision": precision,
        }))
        .unwrap()
    }

    /// Every error of the plan as (field, message).
    fn errors(spec: &BacktestSpec) -> Vec<(String, String)> {
        spec.plan()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    fn fields(spec: &BacktestSpec) -> Vec<String> {
        errors(spec).into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn hybrid_fields_at_another_precision_are_errors_on_those_fields() {
        for precision in ["bar", "tick"] {
            let s = spec(
                precision,
                serde_json::json!({"seed": 7, "intrabar_threshold": 2}),
            );
            let message = format!(
                "applies only to precision \"hybrid\"; this spec's precision is \"{precision}\""
            );
            assert_eq!(
                errors(&s),
                [
                    ("execution.seed".to_owned(), message.clone()),
                    ("execution.intrabar_threshold".to_owned(), message),
                ]
            );
        }
    }

    #[test]
    fn tick_fields_at_another_precision_are_errors_on_those_fields() {
        let execution = serde_json::json!({
            "latency_ms": 5, "order_type": "limit", "limit_offset_bps": 1, "limit_timeout_ms": 10
        });
        for precision in ["bar", "hybrid"] {
            let s = spec(precision, execution.clone());
            let message = format!(
                "applies only to precision \"tick\"; this spec's precision is \"{precision}\""
            );
            let expected: Vec<(String, String)> = [
                "latency_ms",
                "order_type",
                "limit_offset_bps",
                "limit_timeout_ms",
            ]
            .iter()
            .map(|f| (format!("execution.{f}"), message.clone()))
            .collect();
            assert_eq!(errors(&s), expected);
        }
    }

    #[test]
    fn hybrid_threshold_must_be_positive_and_finite() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut s = spec("hybrid", serde_json::json!({}));
            s.execution.intrabar_threshold = Some(bad);
            let errors = errors(&s);
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(errors[0].0, "execution.intrabar_threshold");
            assert!(errors[0]
                .1
                .starts_with("must be a multiple of the mean range > 0, got"));
        }
    }

    #[test]
    fn tick_values_are_checked() {
        let s = spec(
            "tick",
            serde_json::json!({
                "latency_ms": -1, "order_type": "limit", "limit_offset_bps": -2,
                "limit_timeout_ms": 0
            }),
        );
        assert_eq!(
            errors(&s),
            [
                (
                    "execution.latency_ms".to_owned(),
                    "must be a number of milliseconds in [0, 1e12], got -1".to_owned()
                ),
                (
                    "execution.limit_offset_bps".to_owned(),
                    "must be >= 0 basis points, got -2".to_owned()
                ),
                (
                    "execution.limit_timeout_ms".to_owned(),
                    "must be a number of milliseconds in (0, 1e12], got 0".to_owned()
                ),
            ]
        );
        let mut s = spec("tick", serde_json::json!({}));
        s.execution.latency_ms = Some(f64::INFINITY);
        assert_eq!(fields(&s), ["execution.latency_ms"]);
        s.execution.latency_ms = Some(2e12);
        assert_eq!(fields(&s), ["execution.latency_ms"]);
    }

    #[test]
    fn limit_fields_need_a_limit_order() {
        let message = "applies only to order_type \"limit\"; this spec's order_type is \"market\"";
        for execution in [
            serde_json::json!({"limit_offset_bps": 1, "limit_timeout_ms": 500}),
            serde_json::json!({
                "order_type": "market", "limit_offset_bps": 1, "limit_timeout_ms": 500
            }),
        ] {
            assert_eq!(
                errors(&spec("tick", execution)),
                [
                    ("execution.limit_offset_bps".to_owned(), message.to_owned()),
                    ("execution.limit_timeout_ms".to_owned(), message.to_owned()),
                ]
            );
        }
    }

    #[test]
    fn slippage_at_tick_precision_is_an_error() {
        let s = spec("tick", serde_json::json!({"slippage_bps": 2}));
        assert_eq!(
            errors(&s),
            [(
                "execution.slippage_bps".to_owned(),
                "at tick precision slippage comes from walking the book; remove \
                 execution.slippage_bps"
                    .to_owned()
            )]
        );
        // Zero is the default and says nothing.
        assert!(spec("tick", serde_json::json!({"slippage_bps": 0}))
            .plan()
            .is_ok());
    }

    #[test]
    fn event_bars_need_tick_precision() {
        for precision in ["bar", "hybrid"] {
            let mut s = spec(precision, serde_json::json!({}));
            s.data.timeframe = Some("event".to_owned());
            assert_eq!(
                errors(&s),
                [(
                    "data.timeframe".to_owned(),
                    format!(
                        "\"event\" (one bar per trade or book change) needs precision \"tick\"; \
                         this spec's precision is \"{precision}\""
                    )
                )]
            );
        }
    }

    #[test]
    fn sub_minute_clocks_are_for_ticks_only() {
        let mut s = spec("bar", serde_json::json!({}));
        s.data.timeframe = Some("1s".to_owned());
        assert_eq!(fields(&s), ["data.timeframe"]);
        for bad in ["0s", "ms", "1.5s", "5x", "99999999999999999999ms"] {
            let mut s = spec("tick", serde_json::json!({}));
            s.data.timeframe = Some(bad.to_owned());
            let errors = errors(&s);
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(errors[0].0, "data.timeframe");
            assert!(errors[0].1.contains("invalid timeframe"), "{}", errors[0].1);
        }
    }

    #[test]
    fn a_tick_plan_carries_its_settings() {
        let plan = spec(
            "tick",
            serde_json::json!({"latency_ms": 5, "order_type": "limit"}),
        )
        .plan()
        .unwrap();
        assert_eq!(plan.precision, Precision::Tick);
        assert_eq!(plan.load.timeframe, None);
        assert_eq!(plan.execution.hybrid, None);
        assert_eq!(
            plan.tick,
            Some(TickSettings {
                latency: 5_000_000,
                orders: OrderType::Limit {
                    offset_bps: 0.0,
                    timeout: 60_000_000_000,
                },
                clock: BarClock::Every(60_000_000_000),
            })
        );

        let plan = spec(
            "tick",
            serde_json::json!({
                "latency_ms": 0.25, "order_type": "limit", "limit_offset_bps": 1.5,
                "limit_timeout_ms": 1500
            }),
        )
        .plan()
        .unwrap();
        let tick = plan.tick.unwrap();
        assert_eq!(tick.latency, 250_000);
        assert_eq!(
            tick.orders,
            OrderType::Limit {
                offset_bps: 1.5,
                timeout: 1_500_000_000
            }
        );

        let market = spec("tick", serde_json::json!({})).plan().unwrap();
        assert_eq!(market.tick, Some(TickSettings::default()));

        for (timeframe, clock) in [
            ("event", BarClock::Event),
            ("100ms", BarClock::Every(100_000_000)),
            ("1s", BarClock::Every(1_000_000_000)),
            ("30s", BarClock::Every(30_000_000_000)),
            ("5m", BarClock::Every(300_000_000_000)),
            ("1h", BarClock::Every(3_600_000_000_000)),
        ] {
            let mut s = spec("tick", serde_json::json!({}));
            s.data.timeframe = Some(timeframe.to_owned());
            let plan = s.plan().unwrap();
            assert_eq!(plan.tick.map(|t| t.clock), Some(clock), "{timeframe}");
            // Ticks are cut into bars by the clock, never resampled.
            assert_eq!(plan.load.timeframe, None, "{timeframe}");
        }
    }

    #[test]
    fn bar_and_hybrid_plans_carry_their_settings() {
        let mut bar = spec("bar", serde_json::json!({}));
        bar.data.timeframe = Some("1h".to_owned());
        let plan = bar.plan().unwrap();
        assert_eq!(plan.precision, Precision::Bar);
        assert_eq!((plan.tick, plan.execution.hybrid), (None, None));
        assert_eq!(
            plan.load.timeframe.map(|t| t.nanos()),
            Some(3_600_000_000_000)
        );

        let plan = spec("hybrid", serde_json::json!({})).plan().unwrap();
        assert_eq!(plan.precision, Precision::Hybrid);
        assert_eq!(plan.tick, None);
        assert_eq!(plan.execution.hybrid, Some(HybridSettings::default()));

        let plan = spec(
            "hybrid",
            serde_json::json!({"seed": 7, "intrabar_threshold": 2.5}),
        )
        .plan()
        .unwrap();
        assert_eq!(
            plan.execution.hybrid,
            Some(HybridSettings {
                seed: 7,
                threshold: 2.5,
                lookback: 20
            })
        );
    }

    #[test]
    fn a_size_above_one_needs_the_leverage_for_it() {
        let refused = errors(&spec("bar", serde_json::json!({"size": 2})));
        assert_eq!(refused.len(), 1, "{refused:?}");
        let (field, message) = &refused[0];
        assert_eq!(field, "execution.size");
        assert!(
            message.contains("execution.leverage is 1 when not given")
                && message.contains("set execution.leverage (CLI --leverage) to at least 2"),
            "{message}"
        );
        let refused = errors(&spec("bar", serde_json::json!({"size": 3, "leverage": 2})));
        assert_eq!(refused[0].0, "execution.size");
        assert!(
            refused[0].1.contains("execution.leverage is 2"),
            "{refused:?}"
        );

        let plan = spec("bar", serde_json::json!({"size": 2, "leverage": 2}))
            .plan()
            .unwrap();
        assert_eq!(
            (plan.execution.size, plan.execution.maintenance_margin),
            (2.0, 0.0)
        );
        // A size within the leverage at every precision.
        for precision in ["hybrid", "tick"] {
            let ok = spec(precision, serde_json::json!({"size": 1.5, "leverage": 2}));
            assert!(ok.plan().is_ok(), "{precision}");
        }
    }

    #[test]
    fn leverage_and_maintenance_margin_are_checked() {
        for leverage in [0.5, 101.0] {
            let s = spec("bar", serde_json::json!({"leverage": leverage}));
            assert_eq!(fields(&s), ["execution.leverage"], "{leverage}");
        }
        for margin in [-0.1, 1.0] {
            let s = spec("bar", serde_json::json!({"maintenance_margin": margin}));
            assert_eq!(fields(&s), ["execution.maintenance_margin"], "{margin}");
        }
        // Half of a position twice the equity is all of it: liquidated as it opens.
        let s = spec(
            "bar",
            serde_json::json!({"size": 2, "leverage": 2, "maintenance_margin": 0.5}),
        );
        let refused = errors(&s);
        assert_eq!(refused[0].0, "execution.maintenance_margin");
        assert!(refused[0].1.contains("below 1 / size"), "{refused:?}");
        let plan = spec("bar", serde_json::json!({"maintenance_margin": 0.1}))
            .plan()
            .unwrap();
        assert_eq!(plan.execution.maintenance_margin, 0.1);
    }

    #[test]
    fn leverage_fields_are_written_only_when_given() {
        let plain = serde_json::to_value(ExecutionSpec::default()).unwrap();
        assert!(plain.get("leverage").is_none() && plain.get("maintenance_margin").is_none());
        let s = spec(
            "bar",
            serde_json::json!({"size": 2, "leverage": 3, "maintenance_margin": 0.05}),
        );
        let written = serde_json::to_value(&s.execution).unwrap();
        assert_eq!(
            (&written["leverage"], &written["maintenance_margin"]),
            (&serde_json::json!(3.0), &serde_json::json!(0.05))
        );
    }

    #[test]
    fn sweeps_refuse_tick_precision() {
        let tick = spec("tick", serde_json::json!({}));
        assert!(tick.plan().is_ok());
        let errors: Vec<(String, String)> = tick
            .plan_sweep()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect();
        assert_eq!(
            errors,
            [(
                "precision".to_owned(),
                "tick precision runs single backtests; sweeps and walk-forward run at bar or \
                 hybrid precision"
                    .to_owned()
            )]
        );
        for precision in ["bar", "hybrid"] {
            assert!(spec(precision, serde_json::json!({})).plan_sweep().is_ok());
        }
    }

    #[test]
    fn the_new_fields_read_and_write_json() {
        let s = spec(
            "tick",
            serde_json::json!({"latency_ms": 5, "order_type": "limit", "limit_timeout_ms": 100}),
        );
        assert_eq!(s.execution.order_type, Some(OrderTypeSpec::Limit));
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<BacktestSpec>(&text).unwrap(), s);
        // Absent fields stay absent.
        let plain = serde_json::to_value(BacktestSpec::default()).unwrap();
        let execution = plain["execution"].as_object().unwrap();
        for field in [
            "seed",
            "intrabar_threshold",
            "latency_ms",
            "order_type",
            "limit_offset_bps",
            "limit_timeout_ms",
        ] {
            assert!(!execution.contains_key(field), "{field}");
        }
        let bad: Result<BacktestSpec, _> = serde_json::from_value(serde_json::json!({
            "data": {}, "strategy": {}, "execution": {"order_type": "stop"}
        }));
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("unknown variant `stop`"));
    }
}
