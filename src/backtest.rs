//! `strata backtest`: one backtest on a local file.

use clap::Args;
use engine::run_backtest;

use crate::report::{self, Format};
use crate::spec_args::{Loaded, SpecArgs};

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
    let Loaded { path, plan, bars } = args.spec.load()?;
    let result = run_backtest(
        &bars,
        &plan.compiled,
        &plan.execution,
        plan.periods_per_year,
    );
    report::print(args.format, &result, |out| {
        report::backtest(out, &path, &bars, &plan, &result)
    })?;
    Ok(())
}
