//! `strata backtest`: one backtest on a local file.

use anyhow::bail;
use clap::Args;
use engine::run_backtest;
use engine::tick::run_tick_backtest;

use crate::report::{self, Format};
use crate::spec_args::{Market, SpecArgs};

/// Options of `strata backtest`; every flag overrides the same field of `--spec`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Validates the spec, loads the data, runs the backtest and prints the result.
pub fn run(args: BacktestArgs) -> anyhow::Result<()> {
    let (path, plan, market) = args.spec.load_market()?;
    match market {
        Market::Ticks(ticks, settings) => {
            let run = run_tick_backtest(
                &ticks,
                &plan.compiled,
                &plan.execution,
                &settings,
                plan.periods_per_year,
            );
            if run.bars.is_empty() {
                bail!(
                    "{}: no bars to trade on: the events hold no trade or book price",
                    path.display()
                );
            }
            report::print(args.format, &run.result, |out| {
                report::backtest(out, &path, &run.bars, &plan, &run.result)
            })?;
        }
        Market::Bars(bars) => {
            let result = run_backtest(
                &bars,
                &plan.compiled,
                &plan.execution,
                plan.periods_per_year,
            );
            report::print(args.format, &result, |out| {
                report::backtest(out, &path, &bars, &plan, &result)
            })?;
        }
    }
    Ok(())
}
