//! The spec flags every run command shares: data, strategy, execution.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use engine::data::{self, Bars};
use engine::execution::{Direction, Fill};
use engine::spec::{BacktestSpec, Plan, Precision, SpecErrors};
use engine::tick::{TickData, TickSettings};

/// What to run and how: the spec file and the flags that override its fields, shared by
/// `strata backtest`, `strata sweep` and `strata walk-forward`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// A spec JSON file (see README); flags override its fields.
    #[arg(long, value_name = "FILE.json")]
    spec: Option<PathBuf>,
    /// OHLCV data: a CSV or Parquet file.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// A strategy template (see `strata strategies`); sma_cross when nothing else is given.
    #[arg(long, value_name = "NAME")]
    strategy: Option<String>,
    /// Entry condition, e.g. "cross_above(sma(close, 10), sma(close, 20))".
    #[arg(long, value_name = "EXPR")]
    entry: Option<String>,
    /// Exit condition.
    #[arg(long, value_name = "EXPR")]
    exit: Option<String>,
    /// A strategy parameter, e.g. --param fast=5 (repeatable).
    #[arg(long = "param", value_name = "K=V", value_parser = parse_param)]
    params: Vec<(String, f64)>,
    /// Which positions to take.
    #[arg(long, value_enum)]
    direction: Option<DirectionArg>,
    /// When orders fill: at the next bar's open or at the signal bar's close.
    #[arg(long, value_enum)]
    fill: Option<FillArg>,
    /// Fee as a fraction of traded value (0.001 = 0.1 %).
    #[arg(long, value_name = "F")]
    fees: Option<f64>,
    /// Fixed fee per fill, in cash.
    #[arg(long, value_name = "F")]
    fixed_fee: Option<f64>,
    /// Slippage in basis points against each market fill.
    #[arg(long, value_name = "B")]
    slippage_bps: Option<f64>,
    /// Starting cash.
    #[arg(long, value_name = "C")]
    cash: Option<f64>,
    /// Fraction of equity per position (1.0 = all of it; above 1 needs --leverage).
    #[arg(long, value_name = "F")]
    size: Option<f64>,
    /// The largest --size allowed (default 1: no borrowing; at most 100).
    #[arg(long, value_name = "X")]
    leverage: Option<f64>,
    /// Liquidate a position when equity falls to this fraction of its value (default 0: when
    /// equity reaches zero).
    #[arg(long, value_name = "F")]
    maintenance_margin: Option<f64>,
    /// Round quantities down to a multiple of this (fractional quantities otherwise).
    #[arg(long, value_name = "Q")]
    lot_size: Option<f64>,
    /// Stop-loss as a fraction of the entry price (0.05 = 5 %).
    #[arg(long, value_name = "F")]
    stop_loss: Option<f64>,
    /// Take-profit as a fraction of the entry price.
    #[arg(long, value_name = "F")]
    take_profit: Option<f64>,
    /// First bar to use (date or datetime).
    #[arg(long, value_name = "D")]
    start: Option<String>,
    /// Last bar to use; a bare date includes the whole day.
    #[arg(long, value_name = "D")]
    end: Option<String>,
    /// Resample to a coarser bar: 5m, 15m, 1h, 4h, 1d, 1w, ...
    #[arg(long, value_name = "TF")]
    timeframe: Option<String>,
    /// Bars per year for annualised metrics (inferred from the data by default).
    #[arg(long, value_name = "N")]
    periods_per_year: Option<f64>,
    /// Price resolution inside a bar: bar, hybrid (simulated paths in volatile bars) or tick.
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// Hybrid precision: seed of the simulated intrabar paths (default 0).
    #[arg(long, value_name = "N")]
    intrabar_seed: Option<u64>,
    /// Hybrid precision: simulate bars whose range exceeds X times the mean of the 20 before
    /// (default 1.5).
    #[arg(long, value_name = "X")]
    intrabar_threshold: Option<f64>,
    /// Tick precision: milliseconds between a decision and its order reaching the book.
    #[arg(long, value_name = "MS")]
    latency_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum DirectionArg {
    Long,
    Short,
    LongShort,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum PrecisionArg {
    Bar,
    Hybrid,
    Tick,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum FillArg {
    NextOpen,
    Close,
}

fn parse_param(text: &str) -> Result<(String, f64), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got '{text}'"))?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("parameter '{key}' needs a number, got '{value}'"))?;
    Ok((key.trim().to_owned(), value))
}

impl SpecArgs {
    /// The spec file (if any) with every given flag applied over it.
    pub fn spec(&self) -> anyhow::Result<BacktestSpec> {
        let mut spec = match &self.spec {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read spec {}", path.display()))?;
                let json: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("invalid spec {}", path.display()))?;
                engine::spec::from_json(json)
                    .with_context(|| format!("invalid spec {}", path.display()))?
            }
            None => BacktestSpec::default(),
        };
        let set = |slot: &mut Option<String>, flag: &Option<String>| {
            if flag.is_some() {
                slot.clone_from(flag);
            }
        };
        if let Some(path) = &self.data {
            spec.data.path = Some(path.clone());
        }
        set(&mut spec.data.start, &self.start);
        set(&mut spec.data.end, &self.end);
        set(&mut spec.data.timeframe, &self.timeframe);
        set(&mut spec.strategy.template, &self.strategy);
        set(&mut spec.strategy.entry, &self.entry);
        set(&mut spec.strategy.exit, &self.exit);
        let s = &spec.strategy;
        if s.template.is_none() && s.entry.is_none() && s.exit.is_none() {
            spec.strategy.template = Some("sma_cross".to_owned());
        }
        spec.strategy.params.extend(self.params.iter().cloned());
        if let Some(d) = self.direction {
            spec.direction = match d {
                DirectionArg::Long => Direction::Long,
                DirectionArg::Short => Direction::Short,
                DirectionArg::LongShort => Direction::LongShort,
            };
        }
        let e = &mut spec.execution;
        if let Some(f) = self.fill {
            e.fill = match f {
                FillArg::NextOpen => Fill::NextOpen,
                FillArg::Close => Fill::Close,
            };
        }
        let over = |slot: &mut f64, flag: Option<f64>| *slot = flag.unwrap_or(*slot);
        over(&mut e.fees, self.fees);
        over(&mut e.fixed_fee, self.fixed_fee);
        over(&mut e.slippage_bps, self.slippage_bps);
        over(&mut e.initial_cash, self.cash);
        over(&mut e.size, self.size);
        e.leverage = self.leverage.or(e.leverage);
        e.maintenance_margin = self.maintenance_margin.or(e.maintenance_margin);
        e.lot_size = self.lot_size.or(e.lot_size);
        e.stop_loss = self.stop_loss.or(e.stop_loss);
        e.take_profit = self.take_profit.or(e.take_profit);
        e.seed = self.intrabar_seed.or(e.seed);
        e.intrabar_threshold = self.intrabar_threshold.or(e.intrabar_threshold);
        e.latency_ms = self.latency_ms.or(e.latency_ms);
        spec.periods_per_year = self.periods_per_year.or(spec.periods_per_year);
        if let Some(p) = self.precision {
            spec.precision = match p {
                PrecisionArg::Bar => Precision::Bar,
                PrecisionArg::Hybrid => Precision::Hybrid,
                PrecisionArg::Tick => Precision::Tick,
            };
        }
        Ok(spec)
    }
}

/// A validated spec with its bars loaded: what every run command starts from.
pub struct Loaded {
    /// The data file.
    pub path: PathBuf,
    /// The validated spec.
    pub plan: Plan,
    /// The bars, filtered and resampled as asked.
    pub bars: Bars,
}

impl SpecArgs {
    /// Validates the spec of a sweep or walk-forward (every problem at once; tick precision is
    /// refused), then loads the bars.
    pub fn load_for_sweep(&self) -> anyhow::Result<Loaded> {
        let (path, plan) = self.plan_with(BacktestSpec::plan_sweep)?;
        let bars = data::load(&path, &plan.load)?;
        Ok(Loaded { path, plan, bars })
    }

    /// Validates the spec for one backtest and loads its data: bars, or at tick precision the
    /// trades and book events.
    pub fn load_market(&self) -> anyhow::Result<(PathBuf, Plan, Market)> {
        let (path, plan) = self.plan_with(BacktestSpec::plan)?;
        let market = match plan.tick {
            Some(settings) => Market::Ticks(engine::tick::load(&path, &plan.load)?, settings),
            None => Market::Bars(data::load(&path, &plan.load)?),
        };
        Ok((path, plan, market))
    }

    fn plan_with(
        &self,
        plan: fn(&BacktestSpec) -> Result<Plan, SpecErrors>,
    ) -> anyhow::Result<(PathBuf, Plan)> {
        let spec = self.spec()?;
        let Some(path) = spec.data.path.clone() else {
            if spec.data.dataset.is_some() {
                bail!("data.dataset names a data set on the service; locally, give a file with --data or data.path");
            }
            bail!("no data: give a CSV or Parquet file with --data FILE (or data.path in --spec)");
        };
        let plan = plan(&spec).context("invalid spec")?;
        Ok((path, plan))
    }
}

/// The data one backtest runs on.
pub enum Market {
    /// OHLCV bars (bar and hybrid precision).
    Bars(Bars),
    /// Trades and book events, with how to replay them (tick precision).
    Ticks(TickData, TickSettings),
}
