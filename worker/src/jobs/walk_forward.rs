//! A walk-forward job: a sweep in each in-sample window on the engine pool, its best set run on
//! the out-of-sample window after it, with progress and cancellation between runs.

use engine::sweep::{run_walk_forward, WalkForwardError};
use strata_core::job::parse_walk_forward;

use super::{Input, JobError, Output};

/// Runs the walk-forward; the document is what `strata walk-forward --format json` prints.
pub(crate) fn run(input: &Input) -> Result<Output, JobError> {
    let (spec, sweep, walk) = parse_walk_forward(input.spec).map_err(JobError::invalid_spec)?;
    let (plan, sets, bars) = super::sweep::prepare(input, &spec, &sweep)?;
    let result = input
        .with_control(|control| {
            run_walk_forward(
                &bars,
                &plan.strategy,
                &sets,
                &plan.execution,
                plan.periods_per_year,
                &sweep,
                &walk,
                input.pool,
                control,
            )
        })
        .map_err(|e| match e {
            // The windows are checked against the data only here, where the data is.
            WalkForwardError::Invalid(error) => {
                JobError::Failed(format!("invalid walk-forward: {error}"))
            }
            WalkForwardError::Cancelled => JobError::Cancelled,
        })?;
    // Every window sweeps its in-sample bars once per set and runs its out-of-sample bars.
    Output::of(&result, bars.len() * sets.len())
}
