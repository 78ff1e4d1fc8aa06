//! `strata backtest`: one backtest on a local file.

use std::io::{BufWriter, Write};

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
    let mut out = BufWriter::new(std::io::stdout().lock());
    match args.format {
        Format::Json => {
            serde_json::to_writer(&mut out, &result)?;
            writeln!(out)?;
        }
        Format::Table => report::backtest(&mut out, &path, &bars, &plan, &result)?,
    }
    out.flush()?;
    Ok(())
}
