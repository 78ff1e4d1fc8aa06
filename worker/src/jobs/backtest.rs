//! A backtest job: the stored spec, run once over its data set.

use engine::run_backtest;
use strata_core::job::parse_backtest;

use super::{Input, JobError, Output};

/// Runs the backtest; the document is what `strata backtest --format json` prints.
pub(crate) fn run(input: &Input) -> Result<Output, JobError> {
    let spec = parse_backtest(input.spec).map_err(JobError::invalid_spec)?;
    let plan = spec.plan().map_err(JobError::invalid_spec)?;
    let bars = input.load(&plan.load)?;
    input.job.check()?;
    let result = run_backtest(
        &bars,
        &plan.compiled,
        &plan.execution,
        plan.periods_per_year,
    );
    let document = serde_json::to_string(&result)
        .map_err(|e| JobError::Failed(format!("cannot write the result: {e}")))?;
    Ok(Output {
        document,
        bars: bars.len() as u64,
    })
}
