//! `strata sweep` and `strata walk-forward`: many parameter sets over one data set.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use clap::Args;
use engine::expr::Params;
use engine::spec::SpecErrors;
use engine::sweep::{
    run_sweep, run_walk_forward, Control, GridValues, SweepSpec, WalkForwardError, WalkForwardSpec,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::report::{self, Format};
use crate::spec_args::{Loaded, SpecArgs};

/// Options of `strata sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// A parameter's values: a range start:stop:step (inclusive) or a list a,b,c (repeatable).
    #[arg(long = "grid", value_name = "K=SPEC", value_parser = parse_grid, required = true)]
    grid: Vec<(String, String)>,
    /// Draw this many distinct sets at random from the grid instead of running all of it.
    #[arg(long, value_name = "N")]
    samples: Option<usize>,
    /// Seed of the random draw of --samples (hybrid precision's paths have --intrabar-seed).
    #[arg(long, value_name = "S", default_value_t = 0)]
    sample_seed: u64,
    /// Keep only the sets where this condition on parameters holds, e.g. "fast < slow".
    #[arg(long, value_name = "EXPR")]
    constraint: Option<String>,
    /// The metric that ranks the sets.
    #[arg(long, value_name = "METRIC", default_value = "sharpe")]
    objective: String,
    /// Rank by the smallest objective instead of the largest.
    #[arg(long)]
    minimize: bool,
    /// List only the K best sets (default: 10 in a table, all in JSON).
    #[arg(long, value_name = "K")]
    top: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Options of `strata walk-forward`: a sweep in each in-sample window, its winner out of sample.
#[derive(Debug, Args)]
pub struct WalkForwardArgs {
    #[command(flatten)]
    sweep: SweepArgs,
    /// In-sample length: bars (500) or a duration (365d, 12w, 36h).
    #[arg(long, value_name = "N|DURATION")]
    in_sample: String,
    /// Out-of-sample length: bars or a duration.
    #[arg(long, value_name = "N|DURATION")]
    out_of_sample: String,
    /// How far each window moves on (default: the out-of-sample length).
    #[arg(long, value_name = "N|DURATION")]
    step: Option<String>,
    /// Every in-sample window starts at the first bar instead of sliding.
    #[arg(long)]
    anchored: bool,
}

fn parse_grid(text: &str) -> Result<(String, String), String> {
    let (key, values) = text.split_once('=').ok_or_else(|| {
        format!("expected NAME=SPEC (like fast=5:50:5 or slow=20,50,100), got '{text}'")
    })?;
    Ok((key.trim().to_owned(), values.trim().to_owned()))
}

impl SweepArgs {
    fn sweep_spec(&self) -> SweepSpec {
        SweepSpec {
            grid: self
                .grid
                .iter()
                .map(|(k, v)| (k.clone(), GridValues::Text(v.clone())))
                .collect::<BTreeMap<_, _>>(),
            samples: self.samples,
            seed: Some(self.sample_seed),
            constraint: self.constraint.clone(),
            objective: self.objective.clone(),
            minimize: self.minimize,
            top: None,
        }
    }

    fn prepare(&self) -> anyhow::Result<(Loaded, SweepSpec, Vec<Params>, rayon::ThreadPool)> {
        let loaded = self.spec.load_for_sweep()?;
        let spec = self.sweep_spec();
        let sets = spec
            .parameter_sets(&loaded.plan.strategy)
            .map_err(SpecErrors)
            .context("invalid sweep")?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads.unwrap_or(0))
            .build()?;
        Ok((loaded, spec, sets, pool))
    }

    /// How many ranked results to list.
    fn listed(&self, total: usize) -> usize {
        match (self.top, self.format) {
            (Some(k), _) => k.min(total),
            (None, Format::Table) => total.min(10),
            (None, Format::Json) => total,
        }
    }
}

/// Set by Ctrl-C; runs check it between parameter sets and stop cleanly.
fn cancel_flag() -> &'static AtomicBool {
    static CANCEL: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    CANCEL.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        // If the handler cannot be installed, Ctrl-C simply ends the process as usual.
        let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flag));
        flag
    })
}

/// Runs `work` with a progress bar on stderr (when it is a terminal) and Ctrl-C wired to the
/// engine's cancellation flag; also returns how many steps finished.
fn with_progress<T>(work: impl FnOnce(&Control) -> T) -> (T, usize) {
    let finished = AtomicUsize::new(0);
    let bar = std::io::stderr().is_terminal().then(|| {
        let style =
            ProgressStyle::with_template("{bar:40} {pos}/{len} parameter sets ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        ProgressBar::new(0).with_style(style)
    });
    let progress = |done: usize, total: usize| {
        finished.store(done, Ordering::Relaxed);
        if let Some(bar) = &bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    };
    let outcome = work(&Control {
        progress: Some(&progress),
        cancel: Some(cancel_flag()),
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    (outcome, finished.into_inner())
}

/// Runs a sweep and prints the ranked sets, the best one and, for two parameters, a heatmap.
pub fn sweep(args: SweepArgs) -> anyhow::Result<()> {
    let (loaded, spec, sets, pool) = args.prepare()?;
    let plan = &loaded.plan;
    let (outcome, finished) = with_progress(|control| {
        run_sweep(
            &loaded.bars,
            &plan.strategy,
            &sets,
            &plan.execution,
            plan.periods_per_year,
            &spec,
            &pool,
            control,
        )
    });
    let Ok(mut result) = outcome else {
        bail!(
            "cancelled after {finished} of {} parameter sets; nothing printed",
            sets.len()
        );
    };
    let heatmap = match spec.grid.keys().collect::<Vec<_>>()[..] {
        [x, y] => result.heatmap(x, y, &spec.objective),
        _ => None,
    };
    result.results.truncate(args.listed(sets.len()));
    report::print(args.format, &result, |out| {
        report::sweep(out, &loaded, &spec, sets.len(), &result, heatmap.as_ref())
    })?;
    Ok(())
}

/// Runs a walk-forward analysis and prints each window and the stitched out-of-sample result.
pub fn walk_forward(args: WalkForwardArgs) -> anyhow::Result<()> {
    let (loaded, spec, sets, pool) = args.sweep.prepare()?;
    let walk = WalkForwardSpec {
        in_sample: args.in_sample.clone(),
        out_of_sample: args.out_of_sample.clone(),
        step: args.step.clone(),
        anchored: args.anchored,
    };
    let plan = &loaded.plan;
    let (outcome, finished) = with_progress(|control| {
        run_walk_forward(
            &loaded.bars,
            &plan.strategy,
            &sets,
            &plan.execution,
            plan.periods_per_year,
            &spec,
            &walk,
            &pool,
            control,
        )
    });
    let mut result = match outcome {
        Ok(result) => result,
        Err(WalkForwardError::Invalid(error)) => bail!("invalid walk-forward: {error}"),
        Err(WalkForwardError::Cancelled) => {
            bail!("cancelled after {finished} runs of the walk-forward; nothing printed")
        }
    };
    result
        .results
        .truncate(args.sweep.listed(result.results.len()));
    report::print(args.sweep.format, &result, |out| {
        report::walk_forward(out, &loaded, &spec, &result)
    })?;
    Ok(())
}
