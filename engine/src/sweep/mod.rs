//! Parameter sweeps and walk-forward analysis: many parameter sets of one strategy over one
//! set of bars.
//!
//! - [`SweepSpec`] is what a user asks for: a grid of values per parameter (`"5:50:5"`,
//!   `[20, 50, 100]`, `10`), optionally a random sample of it, a constraint on the parameters
//!   (`fast < slow`) and the objective that ranks the sets. [`SweepSpec::parameter_sets`] turns
//!   it into the full parameter sets to run, in grid order, checking everything first.
//! - [`run_sweep`] runs the sets in parallel on a caller's rayon pool over one [`Bars`]: every
//!   indicator is computed once and shared through one [`SeriesCache`](crate::expr::SeriesCache),
//!   and each set keeps only its [`Metrics`] (and, for the `top` K sets, its equity values), so
//!   memory grows with bars + sets, never bars x sets. Results are ranked by the objective, NaN
//!   last, ties in grid order; they are the same whatever the number of threads.
//! - [`run_walk_forward`] sweeps each in-sample window, runs the best set on the following
//!   out-of-sample window and stitches the out-of-sample equity into one compounding curve.
//! - [`Control`] carries the worker's hooks: a progress callback and a cancellation flag.
//!
//! ```json
//! {
//!   "grid": { "fast": "5:50:5", "slow": [20, 50, 100, 200] },
//!   "samples": 20, "seed": 7,
//!   "constraint": "fast < slow",
//!   "objective": "sharpe", "minimize": false,
//!   "top": 3
//! }
//! ```

mod grid;
mod run;
mod walk_forward;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize, Serializer};

use crate::expr::Params;
use crate::metrics::Metrics;

pub use grid::{Expanded, GridValues, SetCount, EXAMINED_PER_ALLOWED_SET};
pub use run::{run_sweep, run_sweep_with_cache};
pub use walk_forward::{
    run_walk_forward, EquityCurveOwned, OutOfSample, WalkForwardError, WalkForwardResult,
    WalkForwardSpec, Window,
};

/// A sweep request: the grid, how much of it to run, and how to rank the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Values per parameter; a parameter not in the grid keeps the strategy's value.
    pub grid: BTreeMap<String, GridValues>,
    /// Run this many distinct sets drawn at random instead of the whole grid.
    #[serde(default)]
    pub samples: Option<usize>,
    /// Seed of the random draw (0 when absent).
    #[serde(default)]
    pub seed: Option<u64>,
    /// A condition on parameters only, e.g. `fast < slow`; sets where it is false are dropped.
    #[serde(default)]
    pub constraint: Option<String>,
    /// The metric that ranks the sets, one of [`METRIC_NAMES`](crate::metrics::METRIC_NAMES).
    #[serde(default = "default_objective")]
    pub objective: String,
    /// Rank by the smallest objective instead of the largest.
    #[serde(default)]
    pub minimize: bool,
    /// Keep the equity values of this many best sets (none when absent or 0).
    #[serde(default)]
    pub top: Option<usize>,
}

fn default_objective() -> String {
    "sharpe".to_owned()
}

impl Default for SweepSpec {
    fn default() -> Self {
        SweepSpec {
            grid: BTreeMap::new(),
            samples: None,
            seed: None,
            constraint: None,
            objective: default_objective(),
            minimize: false,
            top: None,
        }
    }
}

impl SweepSpec {
    /// The metric and direction that rank the sets.
    pub fn objective(&self) -> Objective {
        Objective {
            metric: self.objective.clone(),
            minimize: self.minimize,
        }
    }
}

/// The metric that ranks parameter sets, and whether smaller is better.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objective {
    /// One of [`METRIC_NAMES`](crate::metrics::METRIC_NAMES).
    pub metric: String,
    /// True to rank the smallest value first.
    pub minimize: bool,
}

impl Objective {
    /// The objective's value in `metrics` (NaN for an unknown metric name).
    pub fn value(&self, metrics: &Metrics) -> f64 {
        metrics.get(&self.metric).unwrap_or(f64::NAN)
    }

    /// Orders two values best first, NaN last; equal values compare equal (the caller breaks
    /// ties by grid order).
    pub fn compare(&self, a: f64, b: f64) -> Ordering {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                // partial_cmp, not total_cmp: -0.0 and 0.0 are the same value.
                let ascending = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
                if self.minimize {
                    ascending
                } else {
                    ascending.reverse()
                }
            }
        }
    }
}

/// Hooks for whoever runs a sweep: progress reports and cooperative cancellation.
#[derive(Clone, Copy, Default)]
pub struct Control<'a> {
    /// Called with (sets done, total) after each set, never concurrently, `done` increasing.
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    /// Checked before each set; once true the run stops and returns [`Cancelled`].
    pub cancel: Option<&'a AtomicBool>,
}

/// A run stopped by its [`Control::cancel`] flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// A sweep's outcome: every set's metrics, best first.
#[derive(Debug, Clone, Serialize)]
pub struct SweepResult {
    /// One result per parameter set, ranked by the objective (NaN last, ties in grid order).
    pub results: Vec<SetResult>,
    /// The first of `results`, if any.
    pub best: Option<SetResult>,
}

/// One parameter set and how it did.
#[derive(Debug, Clone, Serialize)]
pub struct SetResult {
    /// Every parameter's value (the strategy's defaults overridden by the grid).
    #[serde(serialize_with = "crate::expr::serialize_params")]
    pub params: Params,
    /// Its metrics.
    pub metrics: Metrics,
    /// Equity at each bar's close, for the `top` K sets only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equity: Option<Vec<f64>>,
}

/// The objective over a two-parameter grid, for a heatmap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heatmap {
    /// Parameter along the columns.
    pub x: String,
    /// Parameter along the rows.
    pub y: String,
    /// Distinct values of `x`, ascending.
    pub x_values: Vec<f64>,
    /// Distinct values of `y`, ascending.
    pub y_values: Vec<f64>,
    /// `values[row][column]`: the objective at `y_values[row]`, `x_values[column]`; NaN (null in
    /// JSON) where no set ran, e.g. one the constraint dropped.
    #[serde(serialize_with = "rows_finite_or_null")]
    pub values: Vec<Vec<f64>>,
}

impl SweepResult {
    /// The objective `objective` over parameters `x` and `y`; `None` unless every set has both
    /// and they are the only parameters that vary (each cell holds at most one set).
    pub fn heatmap(&self, x: &str, y: &str, objective: &str) -> Option<Heatmap> {
        if x == y || self.results.is_empty() {
            return None;
        }
        let mut points = Vec::with_capacity(self.results.len());
        for result in &self.results {
            let px = *result.params.get(x)?;
            let py = *result.params.get(y)?;
            points.push((px, py, result.metrics.get(objective)?));
        }
        let distinct = |pick: fn(&(f64, f64, f64)) -> f64| {
            let mut values: Vec<f64> = points.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values.dedup();
            values
        };
        let x_values = distinct(|p| p.0);
        let y_values = distinct(|p| p.1);
        let mut values = vec![vec![f64::NAN; x_values.len()]; y_values.len()];
        let mut filled = vec![vec![false; x_values.len()]; y_values.len()];
        for (px, py, value) in points {
            let column = x_values.binary_search_by(|v| v.total_cmp(&px)).ok()?;
            let row = y_values.binary_search_by(|v| v.total_cmp(&py)).ok()?;
            if std::mem::replace(&mut filled[row][column], true) {
                // A third parameter varies: one cell would hold several sets.
                return None;
            }
            values[row][column] = value;
        }
        Some(Heatmap {
            x: x.to_owned(),
            y: y.to_owned(),
            x_values,
            y_values,
            values,
        })
    }
}

/// JSON has no NaN or infinity: such a value is `null`.
fn finite_or_null<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_none()
    }
}

fn rows_finite_or_null<S: Serializer>(rows: &[Vec<f64>], serializer: S) -> Result<S::Ok, S::Error> {
    let finite = |v: &f64| v.is_finite().then_some(*v);
    serializer.collect_seq(
        rows.iter()
            .map(|row| row.iter().map(finite).collect::<Vec<_>>()),
    )
}
