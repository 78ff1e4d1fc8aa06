//! A backtest job: the stored spec, run once over its data set at its precision.

use engine::run_backtest;
use engine::tick::run_tick_backtest;
use strata_core::job::parse_backtest;

use super::{Input, JobError, Output};

/// Runs the backtest; the document is what `strata backtest --format json` prints.
pub(crate) fn run(input: &Input) -> Result<Output, JobError> {
    let spec = parse_backtest(input.spec).map_err(JobError::invalid_spec)?;
    let plan = spec.plan().map_err(JobError::invalid_spec)?;
    let (document, bars) = match &plan.tick {
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
            (serde_json::to_string(&run.result), ticks.len())
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
            (serde_json::to_string(&result), bars.len())
        }
    };
    let document =
        document.map_err(|e| JobError::Failed(format!("cannot write the result: {e}")))?;
    Ok(Output {
        document,
        bars: bars as u64,
        child: None,
    })
}
