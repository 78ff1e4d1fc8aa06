//! Running parameter sets in parallel over one set of bars, sharing every indicator.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use super::{Cancelled, Control, Objective, SetResult, SweepResult, SweepSpec};
use crate::data::Bars;
use crate::execution::{simulate, BarRange, Execution, Hybrid, Simulation};
use crate::expr::{self, Ast, Params, SeriesCache};
use crate::metrics::{MetricInputs, Metrics};
use crate::spec::SpecError;
use crate::strategy::{CompiledStrategy, Strategy};

/// Runs every parameter set of `sets` over `bars` in parallel on `pool` and ranks them by the
/// objective of `spec` (NaN last, ties in the order of `sets`).
///
/// Each set is `strategy` with that set's parameters; a set whose expressions do not bind is
/// left out (sets from [`SweepSpec::parameter_sets`] always bind). `periods_per_year: None`
/// infers it from `bars`. Only metrics are kept, plus the equity values of the `spec.top` best
/// sets. The result is the same whatever the pool's number of threads.
// The signature mirrors `run_backtest` plus what a sweep adds; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn run_sweep(
    bars: &Bars,
    strategy: &Strategy,
    sets: &[Params],
    execution: &Execution,
    periods_per_year: Option<f64>,
    spec: &SweepSpec,
    pool: &rayon::ThreadPool,
    control: &Control,
) -> Result<SweepResult, Cancelled> {
    let cache = SeriesCache::new();
    run_sweep_with_cache(
        bars,
        strategy,
        sets,
        execution,
        periods_per_year,
        spec,
        pool,
        control,
        &cache,
    )
}

/// [`run_sweep`] with a caller's indicator cache, e.g. to reuse indicators across sweeps of the
/// same bars or to inspect what was computed. `cache` must only ever have served these `bars`.
#[allow(clippy::too_many_arguments)]
pub fn run_sweep_with_cache(
    bars: &Bars,
    strategy: &Strategy,
    sets: &[Params],
    execution: &Execution,
    periods_per_year: Option<f64>,
    spec: &SweepSpec,
    pool: &rayon::ThreadPool,
    control: &Control,
    cache: &SeriesCache,
) -> Result<SweepResult, Cancelled> {
    let progress = Progress::new(control, sets.len());
    let Ok(parsed) = Parsed::new(strategy) else {
        return Ok(SweepResult {
            results: Vec::new(),
            best: None,
        });
    };
    let stage = Stage {
        history: bars,
        window: None,
        cache,
        execution,
        periods_per_year: periods_per_year
            .or_else(|| bars.periods_per_year())
            .unwrap_or(f64::NAN),
    };
    let ranked = sweep_stage(
        &stage,
        &parsed,
        sets,
        &spec.objective(),
        spec.top.unwrap_or(0),
        pool,
        &progress,
    )?;
    let results: Vec<SetResult> = ranked
        .into_iter()
        .map(|outcome| SetResult {
            params: sets[outcome.index].clone(),
            metrics: outcome.metrics,
            equity: outcome.equity,
        })
        .collect();
    Ok(SweepResult {
        best: results.first().cloned(),
        results,
    })
}

/// The strategy's expressions, parsed once and bound per parameter set.
pub(crate) struct Parsed {
    entry: Ast,
    exit: Ast,
}

impl Parsed {
    /// Parses the entry and exit expressions of `strategy`.
    pub(crate) fn new(strategy: &Strategy) -> Result<Parsed, SpecError> {
        Ok(Parsed {
            entry: expr::parse(&strategy.entry)
                .map_err(|e| SpecError::expression("strategy.entry", e))?,
            exit: expr::parse(&strategy.exit)
                .map_err(|e| SpecError::expression("strategy.exit", e))?,
        })
    }

    /// Both conditions bound to `params`, or `None` if either does not bind.
    pub(crate) fn bind(&self, params: &Params) -> Option<CompiledStrategy> {
        Some(CompiledStrategy {
            entry: self.entry.bind(params).ok()?,
            exit: self.exit.bind(params).ok()?,
        })
    }
}

/// Where parameter sets run: signals over `history` through the shared `cache`, simulation over
/// `window` (bars copied out of `history` from a start index) or, without one, all of `history`.
///
/// Every indicator of the language is causal (its value at a bar uses that bar and earlier ones
/// only), so signals over the whole history, cut to a window, are the signals computed on the
/// bars up to the window's end: warmed up by the earlier history, blind to the later one.
pub(crate) struct Stage<'a> {
    /// The bars signals are computed over.
    pub history: &'a Bars,
    /// The bars simulated and where they start in `history`; `None` for all of it.
    pub window: Option<(&'a Bars, usize)>,
    /// Indicators over `history`, shared by every set.
    pub cache: &'a SeriesCache,
    /// Fills, costs, sizing and starting cash; bar or hybrid precision.
    pub execution: &'a Execution,
    /// Bars per year for the metrics.
    pub periods_per_year: f64,
}

/// One set's run: its metrics and what the simulation produced.
pub(crate) struct Run {
    /// Metrics of the simulated bars.
    pub metrics: Metrics,
    /// Equity, trades, fees and exposure of the simulated bars.
    pub simulation: Simulation,
}

impl Stage<'_> {
    /// Runs one bound strategy: signals, simulation of the window, metrics.
    pub(crate) fn run(&self, strategy: &CompiledStrategy) -> Run {
        let signals = strategy.signals(self.history, self.cache);
        let (bars, start) = self.window.unwrap_or((self.history, 0));
        let range = start..start + bars.len();
        let (entries, exits) = (&signals.entries[range.clone()], &signals.exits[range]);
        let simulation = match self.execution.hybrid {
            // Judged and seeded as the same bars of `history`, so a window's bars are decided
            // as in one backtest over all of it.
            Some(settings) => simulate(
                bars,
                entries,
                exits,
                self.execution,
                &mut Hybrid::in_window(settings, self.history, start),
            ),
            None => simulate(bars, entries, exits, self.execution, &mut BarRange),
        };
        let metrics = Metrics::compute(MetricInputs {
            equity: &simulation.equity,
            initial_cash: self.execution.initial_cash,
            trades: &simulation.trades,
            fees_paid: simulation.fees_paid,
            exposure_bars: simulation.exposure_bars,
            periods_per_year: self.periods_per_year,
        });
        Run {
            metrics,
            simulation,
        }
    }
}

/// Progress reports and the cancel flag, shared by the threads of a run.
pub(crate) struct Progress<'a> {
    control: &'a Control<'a>,
    total: usize,
    /// Units done so far; the lock also keeps reports in order and one at a time.
    done: Mutex<usize>,
}

impl<'a> Progress<'a> {
    /// Reports against `total` units of work.
    pub(crate) fn new(control: &'a Control<'a>, total: usize) -> Self {
        Progress {
            control,
            total,
            done: Mutex::new(0),
        }
    }

    /// `Err(Cancelled)` once the cancel flag is set.
    pub(crate) fn check(&self) -> Result<(), Cancelled> {
        match self.control.cancel {
            Some(flag) if flag.load(AtomicOrdering::Relaxed) => Err(Cancelled),
            _ => Ok(()),
        }
    }

    /// One more unit done.
    pub(crate) fn step(&self) {
        if let Some(report) = self.control.progress {
            let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
            *done += 1;
            report(*done, self.total);
        }
    }
}

/// One set's place in a ranking.
pub(crate) struct Outcome {
    /// Its index in the sets.
    pub index: usize,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its equity values, when it is among the best `top`.
    pub equity: Option<Vec<f64>>,
}

/// Runs every set on `stage` in parallel on `pool` and ranks them, best first; keeps the equity
/// values of the `top` best. Sets that do not bind are left out.
pub(crate) fn sweep_stage(
    stage: &Stage,
    parsed: &Parsed,
    sets: &[Params],
    objective: &Objective,
    top: usize,
    pool: &rayon::ThreadPool,
    progress: &Progress,
) -> Result<Vec<Outcome>, Cancelled> {
    // `top` is the user's number: the curves kept are never more than the sets.
    let leaders = Mutex::new(Leaders::new(objective, top.min(sets.len())));
    let metrics: Vec<Option<Metrics>> = pool.install(|| {
        sets.par_iter()
            .enumerate()
            .map(|(index, params)| {
                progress.check()?;
                let metrics = parsed.bind(params).map(|strategy| {
                    let run = stage.run(&strategy);
                    if top > 0 {
                        let value = objective.value(&run.metrics);
                        leaders
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .offer(value, index, run.simulation.equity);
                    }
                    run.metrics
                });
                progress.step();
                Ok(metrics)
            })
            .collect::<Result<_, Cancelled>>()
    })?;
    let mut ranked: Vec<(usize, f64, Metrics)> = metrics
        .into_iter()
        .enumerate()
        .filter_map(|(index, m)| m.map(|m| (index, objective.value(&m), m)))
        .collect();
    // A stable sort: equal objectives stay in set order.
    ranked.sort_by(|a, b| objective.compare(a.1, b.1));
    let mut kept: HashMap<usize, Vec<f64>> = leaders
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .kept
        .into_iter()
        .map(|leader| (leader.index, leader.equity))
        .collect();
    Ok(ranked
        .into_iter()
        .map(|(index, _, metrics)| Outcome {
            index,
            metrics,
            equity: kept.remove(&index),
        })
        .collect())
}

/// The equity values of the best `capacity` sets seen so far.
///
/// Ranking by objective then index is a total order, so the sets kept at the end are the best
/// `capacity` whatever order the threads offer them in; other curves are dropped at once. A
/// heap with the worst kept set on top makes each offer cost `log(capacity)`, so a large `top`
/// over many sets stays cheap.
struct Leaders<'a> {
    objective: &'a Objective,
    capacity: usize,
    kept: BinaryHeap<Leader<'a>>,
}

/// One kept set: its objective value, index and equity; ordered best first.
struct Leader<'a> {
    objective: &'a Objective,
    value: f64,
    index: usize,
    equity: Vec<f64>,
}

impl Ord for Leader<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.objective
            .compare(self.value, other.value)
            .then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Leader<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Leader<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Leader<'_> {}

impl<'a> Leaders<'a> {
    fn new(objective: &'a Objective, capacity: usize) -> Self {
        Leaders {
            objective,
            capacity,
            kept: BinaryHeap::with_capacity(capacity),
        }
    }

    fn offer(&mut self, value: f64, index: usize, equity: Vec<f64>) {
        if self.capacity == 0 {
            return;
        }
        let leader = Leader {
            objective: self.objective,
            value,
            index,
            equity,
        };
        if self.kept.len() < self.capacity {
            self.kept.push(leader);
            return;
        }
        if let Some(mut worst) = self.kept.peek_mut() {
            if leader < *worst {
                *worst = leader;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaders_keep_the_best_whatever_the_order_offered() {
        let objective = Objective {
            metric: "sharpe".to_owned(),
            minimize: false,
        };
        let offers = [
            (0.5, 0),
            (f64::NAN, 1),
            (2.0, 2),
            (1.0, 3),
            (2.0, 4),
            (-1.0, 5),
        ];
        let mut orders = vec![offers.to_vec()];
        orders.push(offers.iter().rev().copied().collect());
        orders.push(vec![
            offers[3], offers[1], offers[4], offers[0], offers[5], offers[2],
        ]);
        for order in orders {
            let mut leaders = Leaders::new(&objective, 3);
            for (value, index) in order {
                leaders.offer(value, index, vec![index as f64]);
            }
            let mut kept: Vec<usize> = leaders.kept.iter().map(|k| k.index).collect();
            kept.sort_unstable();
            // 2.0 (sets 2 and 4) and 1.0 (set 3).
            assert_eq!(kept, [2, 3, 4]);
        }
    }

    #[test]
    fn objectives_rank_best_first_and_nan_last() {
        let max = Objective {
            metric: "sharpe".to_owned(),
            minimize: false,
        };
        let min = Objective {
            minimize: true,
            ..max.clone()
        };
        let mut values = [1.0, f64::NAN, -2.0, 3.0, f64::INFINITY];
        values.sort_by(|a, b| max.compare(*a, *b));
        assert_eq!(values[..4], [f64::INFINITY, 3.0, 1.0, -2.0]);
        assert!(values[4].is_nan());
        values.sort_by(|a, b| min.compare(*a, *b));
        assert_eq!(values[..4], [-2.0, 1.0, 3.0, f64::INFINITY]);
        assert!(values[4].is_nan());
        assert!(max.compare(0.0, -0.0).is_eq());
    }
}
