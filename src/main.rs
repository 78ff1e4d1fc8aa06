//! `strata`: the command line of the Strata backtest service.

mod backtest;
mod report;
mod strategies;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Strata: backtests, parameter sweeps and a job service for quant research.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one backtest on a CSV or Parquet file, locally, with no services.
    Backtest(backtest::BacktestArgs),
    /// List the strategy templates with their expressions and default parameters.
    Strategies(strategies::StrategiesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Backtest(args) => backtest::run(args),
        Command::Strategies(args) => strategies::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
