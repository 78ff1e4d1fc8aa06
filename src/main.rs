//! `strata`: the command line of the Strata backtest service.

mod backtest;
mod datagen;
mod report;
mod service;
mod spec_args;
mod strategies;
mod sweep;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// jemalloc, with background threads purging freed pages on a slow decay, keeps them for reuse.
// With the system allocator every fresh column of a large backtest is returned to the OS and
// faulted in again page by page, which on this kind of machine costs more than the backtest
// itself (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    Backtest(Box<backtest::BacktestArgs>),
    /// Run a grid (or a random sample) of parameter sets, ranked by an objective metric.
    Sweep(Box<sweep::SweepArgs>),
    /// Optimise in rolling (or anchored) in-sample windows, run each winner out of sample.
    WalkForward(Box<sweep::WalkForwardArgs>),
    /// List the strategy templates with their expressions and default parameters.
    Strategies(strategies::StrategiesArgs),
    /// Write seeded synthetic trades, level-2 book events or bars to a CSV or Parquet file.
    Datagen(Box<datagen::DatagenArgs>),
    /// Serve the HTTP API.
    Api(Box<service::ApiArgs>),
    /// Run queued jobs (start as many as you like, on as many machines).
    Worker(Box<service::WorkerArgs>),
    /// Apply the database migrations.
    Migrate(service::ConfigFile),
    /// Print a signed token for a user (for operators and local use).
    Token(Box<service::TokenArgs>),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(service::ConfigCommand),
    /// Convert one upload for `strata api`, which starts this in a process of its own so that
    /// no file can take the api down (api/src/conversion.rs).
    #[command(name = "convert-upload", hide = true)]
    ConvertUpload {
        /// Cap on this process's address space, in MiB.
        #[arg(long)]
        memory_mb: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Backtest(args) => backtest::run(*args),
        Command::Sweep(args) => sweep::sweep(*args),
        Command::WalkForward(args) => sweep::walk_forward(*args),
        Command::Strategies(args) => strategies::run(args),
        Command::Datagen(args) => datagen::run(*args),
        Command::Api(args) => service::api(*args),
        Command::Worker(args) => service::worker(*args),
        Command::Migrate(args) => service::migrate(args),
        Command::Token(args) => service::token(*args),
        Command::Config(command) => service::config(command),
        Command::ConvertUpload { memory_mb } => {
            return strata_api::conversion::child_main(memory_mb)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
