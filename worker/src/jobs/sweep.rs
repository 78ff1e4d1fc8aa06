//! A sweep job: many parameter sets over one data set on the engine pool, with progress and
//! cancellation between sets.

use std::sync::Arc;

use engine::data::Bars;
use engine::expr::Params;
use engine::spec::{BacktestSpec, Plan, SpecErrors};
use engine::sweep::{run_sweep, SweepSpec};
use strata_core::job::parse_sweep;

use super::{Input, JobError, Output};

/// Runs the sweep; the document is what `strata sweep --format json` prints for the same grid
/// (every set, ranked; the `top` best also carry their equity).
pub(crate) fn run(input: &Input) -> Result<Output, JobError> {
    let (spec, sweep) = parse_sweep(input.spec).map_err(JobError::invalid_spec)?;
    let (plan, sets, bars) = prepare(input, &spec, &sweep)?;
    let result = input
        .with_control(|control| {
            run_sweep(
                &bars,
                &plan.strategy,
                &sets,
                &plan.execution,
                plan.periods_per_year,
                &sweep,
                input.pool,
                control,
            )
        })
        .map_err(|_cancelled| JobError::Cancelled)?;
    Output::of(&result, bars.len() * sets.len())
}

/// What every job over a grid needs before it runs: the plan, the parameter sets and the bars.
pub(super) fn prepare(
    input: &Input,
    spec: &BacktestSpec,
    sweep: &SweepSpec,
) -> Result<(Plan, Vec<Params>, Arc<Bars>), JobError> {
    let plan = spec.plan_sweep().map_err(JobError::invalid_spec)?;
    let sets = sweep
        .parameter_sets(&plan.strategy)
        .map_err(|errors| JobError::invalid_spec(SpecErrors(errors)))?;
    let bars = input.load(&plan.load)?;
    input.job.check()?;
    Ok((plan, sets, bars))
}
