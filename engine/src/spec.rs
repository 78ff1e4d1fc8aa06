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

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{self, LoadOptions, Timeframe};
use crate::execution::{Direction, Execution, Fill};
use crate::expr::ExprError;
use crate::strategy::{CompiledStrategy, Strategy};

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
    /// Resample to this coarser bar, e.g. `1h`, `1d`.
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
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
    /// Fraction of equity per position.
    pub size: f64,
    /// Round quantities down to a multiple of this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot_size: Option<f64>,
    /// Stop-loss as a fraction of the entry price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<f64>,
    /// Take-profit as a fraction of the entry price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<f64>,
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
            lot_size: e.lot_size,
            stop_loss: e.stop_loss,
            take_profit: e.take_profit,
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
    /// Fills, costs and sizing.
    pub execution: Execution,
    /// Bars per year, when given.
    pub periods_per_year: Option<f64>,
}

impl BacktestSpec {
    /// Checks every field and compiles the strategy; nothing is loaded or run.
    pub fn plan(&self) -> Result<Plan, SpecErrors> {
        let mut errors = Vec::new();
        let load = self.data.load_options(&mut errors);
        let execution = self.execution.validate(self.direction, &mut errors);
        if self.precision != Precision::Bar {
            errors.push(SpecError::new(
                "precision",
                format!(
                    "precision '{}' is not available yet; available: bar",
                    serde_json::to_value(self.precision)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
            ));
        }
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
            }),
            _ => Err(SpecErrors(errors)),
        }
    }
}

impl DataSpec {
    fn load_options(&self, errors: &mut Vec<SpecError>) -> LoadOptions {
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
        let timeframe = self.timeframe.as_deref().and_then(|t| {
            t.parse::<Timeframe>()
                .map_err(|e| errors.push(SpecError::new("data.timeframe", e.to_string())))
                .ok()
        });
        LoadOptions {
            start,
            end,
            timeframe,
        }
    }
}

impl ExecutionSpec {
    fn validate(&self, direction: Direction, errors: &mut Vec<SpecError>) -> Execution {
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
        Execution {
            direction,
            fill: self.fill,
            fees: self.fees,
            fixed_fee: self.fixed_fee,
            slippage_bps: self.slippage_bps,
            initial_cash: self.initial_cash,
            size: self.size,
            lot_size: self.lot_size,
            stop_loss: self.stop_loss,
            take_profit: self.take_profit,
        }
    }
}
