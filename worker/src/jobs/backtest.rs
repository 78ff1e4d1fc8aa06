//! A backtest job: the stored spec, run once over its data set at its precision.

use engine::run_backtest;
use engine::tick::run_tick_backtest;
use strata_core::job::parse_backtest;

use super::{Input, JobError, Output};

/// Runs the backtest; the document is what `strata backtest --format json` prints.
pub(crate) fn run(input: &Input) -> Result<Output, JobError> {
    let spec = parse_backtest(input.spec).map_err(JobError::invalid_spec)?;
    let plan = spec.plan().map_err(JobError::invalid_spec)?;
    match &plan.tick {
        Some(settings) => {
            let ticks = input.load_ticks(&plan.load)?;
            input.job.check()?;
            let run = run_tick_backtest(
                &ticks,
                &plan.compiled,
                &plan.execution,
                settings,
                plan.periods_per_year,
            );
            // Events, not the bars built from them, are the work a tick job did.
            Output::of(&run.result, ticks.len())
        }
        None => {
            let bars = input.load(&plan.load)?;
            input.job.check()?;
            let result = run_backtest(
                &bars,
                &plan.compiled,
                &plan.execution,
                plan.periods_per_year,
            );
            Output::of(&result, bars.len())
        }
    }
}
