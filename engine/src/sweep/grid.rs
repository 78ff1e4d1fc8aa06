//! From a [`SweepSpec`] to parameter sets: grid values, the cartesian product in grid order, a
//! seeded random sample of it, and the constraint on parameters.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SweepSpec;
use crate::expr::{self, Ast, ExprError, Params, SERIES_NAMES};
use crate::limits::{
    MAX_CONSTRAINT_BYTES, MAX_GRID_SETS, MAX_GRID_VALUES, MAX_INDICATOR_COLUMNS,
    MAX_JOB_INDICATOR_COLUMNS,
};
use crate::metrics::METRIC_NAMES;
use crate::spec::SpecError;
use crate::strategy::{CompiledStrategy, Strategy};

/// With `samples`, how many sets are drawn per wanted set before a rarely true constraint is
/// given up on (the sets found so far are used).
const DRAWS_PER_SAMPLE: u64 = 1_000;

/// Counting what a constraint keeps examines at most this many grid sets per set the caller's
/// limit allows: a grid a hundred times larger than the limit is refused without evaluating
/// its constraint (see [`SetCount::TooManyToCount`]).
pub const EXAMINED_PER_ALLOWED_SET: u64 = 100;

/// How often (in sets) long loops look at the stop flag.
const STOP_CHECK_EVERY: u64 = 4096;

/// The error of a validation stopped by its caller (its deadline passed, or the request went).
fn stopped() -> Vec<SpecError> {
    vec![SpecError::new(
        "grid",
        "validation of the grid was stopped before it finished",
    )]
}

/// One parameter's values: `"5:50:5"` (start:stop:step, stop included when it lands on the
/// grid), `"20,50,100"` or `[20, 50, 100]` (a list), or `10` / `"10"` (one value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GridValues {
    /// A range or a list as text.
    Text(String),
    /// A list of numbers.
    List(Vec<f64>),
    /// A single number.
    One(f64),
}

impl GridValues {
    /// How many values [`values`](Self::values) gives, worked out without producing them (a
    /// range's length arithmetically, a list's by counting its items); errors name the field
    /// `grid.<name>`. The values themselves are checked later.
    pub fn count(&self, name: &str) -> Result<usize, SpecError> {
        let error = |message: String| SpecError::new(format!("grid.{name}"), message);
        let len = match self {
            GridValues::Text(text) if text.contains(':') => {
                let (start, stop, step) = parse_range(text).map_err(error)?;
                range_len(start, stop, step).map_err(error)?
            }
            GridValues::Text(text) => {
                // Each item is checked here, so a bad one is reported with the other problems.
                let usage =
                    || format!("expected start:stop:step or a list like 20,50,100, got '{text}'");
                let mut items = 0;
                for item in text.split(',') {
                    item.trim().parse::<f64>().map_err(|_| error(usage()))?;
                    items += 1;
                }
                items
            }
            GridValues::List(list) => list.len(),
            GridValues::One(_) => 1,
        };
        if len == 0 {
            return Err(error("the list of values is empty".to_owned()));
        }
        if len > MAX_GRID_VALUES {
            return Err(error(format!(
                "the list has {len} values, more than the {MAX_GRID_VALUES} allowed"
            )));
        }
        Ok(len)
    }

    /// The values, in the order given (a range ascending); errors name the field `grid.<name>`.
    pub fn values(&self, name: &str) -> Result<Vec<f64>, SpecError> {
        self.count(name)?;
        let error = |message: String| SpecError::new(format!("grid.{name}"), message);
        let values = match self {
            GridValues::Text(text) => parse_text(text).map_err(error)?,
            GridValues::List(list) => list.clone(),
            GridValues::One(value) => vec![*value],
        };
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(error(format!("values must be finite numbers, got {bad}")));
        }
        // By bit pattern, in one pass: a quadratic search took seconds on a long range. Values
        // are finite here; -0 is 0.
        let mut seen = HashSet::with_capacity(values.len());
        for value in &values {
            let bits = if *value == 0.0 { 0 } else { value.to_bits() };
            if !seen.insert(bits) {
                return Err(error(format!("the value {value} is listed twice")));
            }
        }
        Ok(values)
    }
}

/// The `start:stop:step` of a range.
fn parse_range(text: &str) -> Result<(f64, f64, f64), String> {
    let usage = || format!("expected start:stop:step or a list like 20,50,100, got '{text}'");
    let number = |part: &str| part.trim().parse::<f64>().map_err(|_| usage());
    let parts: Vec<&str> = text.splitn(4, ':').collect();
    let [start, stop, step] = parts[..] else {
        return Err(usage());
    };
    let (start, stop, step) = (number(start)?, number(stop)?, number(step)?);
    if !(start.is_finite() && stop.is_finite() && step.is_finite()) {
        return Err(usage());
    }
    Ok((start, stop, step))
}

/// A range `start:stop:step`, a comma-separated list, or one number.
fn parse_text(text: &str) -> Result<Vec<f64>, String> {
    if text.contains(':') {
        let (start, stop, step) = parse_range(text)?;
        range(start, stop, step)
    } else {
        let usage = || format!("expected start:stop:step or a list like 20,50,100, got '{text}'");
        text.split(',')
            .map(|part| part.trim().parse::<f64>().map_err(|_| usage()))
            .collect()
    }
}

/// How many values `start:stop:step` has, refusing more than [`MAX_GRID_VALUES`].
fn range_len(start: f64, stop: f64, step: f64) -> Result<usize, String> {
    if step <= 0.0 {
        return Err(format!("step must be > 0, got {step}"));
    }
    if stop < start {
        return Err(format!("stop must be >= start, got {start}:{stop}"));
    }
    // A stop within 1e-9 steps of a grid point is that grid point (0.1:0.3:0.1 has three).
    let steps = ((stop - start) / step + 1e-9).floor();
    if steps >= MAX_GRID_VALUES as f64 {
        return Err(format!(
            "the range has {} values, more than the {MAX_GRID_VALUES} allowed",
            steps + 1.0
        ));
    }
    Ok(steps as usize + 1)
}

/// `start + i * step` for every `i` up to `stop`; integer stepping, so no error accumulates.
fn range(start: f64, stop: f64, step: f64) -> Result<Vec<f64>, String> {
    let count = range_len(start, stop, step)?;
    Ok((0..count)
        .map(|i| {
            let value = start + i as f64 * step;
            if (value - stop).abs() < 1e-9 * step {
                stop
            } else {
                tidy(value)
            }
        })
        .collect())
}

/// Rounds to 15 significant digits: `0.1 + 6 * 0.1` is 0.7, not 0.7000000000000001.
fn tidy(value: f64) -> f64 {
    format!("{value:.14e}").parse().unwrap_or(value)
}

/// The cartesian product of the grid, indexable: parameters by name, the last varying fastest.
struct Grid {
    /// The strategy's parameter values, which the grid overrides.
    base: Params,
    /// Each grid parameter with its values, sorted by name.
    axes: Vec<(String, Vec<f64>)>,
}

impl Grid {
    /// The set at position `index` of the product, with every parameter's value.
    fn set(&self, mut index: u64) -> Params {
        let mut params = self.base.clone();
        for (name, values) in self.axes.iter().rev() {
            let len = values.len() as u64;
            params.insert(name.clone(), values[(index % len) as usize]);
            index /= len;
        }
        params
    }
}

/// A sweep's parameter sets, and what they ask of the indicator cache together.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    /// The sets to run, in grid order.
    pub sets: Vec<Params>,
    /// Distinct indicator columns the sets compute between them: what the job's indicator
    /// cache holds once every set has run (MACD and Bollinger bands count three each).
    pub indicator_columns: usize,
}

impl SweepSpec {
    /// The parameter sets to run, in grid order: the strategy's parameters overridden by each
    /// grid point, those failing the constraint dropped, a random sample when `samples` is set.
    ///
    /// Checks everything a run needs first, and reports every problem: grid names against the
    /// strategy's parameters, grid values, the objective, the constraint (with its column), and
    /// that the entry and exit expressions bind with every set (periods must be integers).
    pub fn parameter_sets(&self, strategy: &Strategy) -> Result<Vec<Params>, Vec<SpecError>> {
        self.expand(strategy, &AtomicBool::new(false))
            .map(|expanded| expanded.sets)
    }

    /// [`parameter_sets`](Self::parameter_sets), plus the distinct indicator columns the sets
    /// use together (refused past [`MAX_JOB_INDICATOR_COLUMNS`]). Gives up with an error on
    /// `grid` soon after `stop` is set: the api stops a validation whose deadline passed.
    pub fn expand(
        &self,
        strategy: &Strategy,
        stop: &AtomicBool,
    ) -> Result<Expanded, Vec<SpecError>> {
        let Checked {
            grid,
            size,
            constraint,
            entry,
            exit,
        } = self.check(strategy)?;
        let keep = |index: u64| {
            constraint.as_ref().is_none_or(|c| {
                c.bind(&grid.set(index))
                    .is_ok_and(|bound| bound.constant() == Some(true))
            })
        };
        let indices: Vec<u64> = match self.samples {
            Some(wanted) if (wanted as u64) < size => {
                sample(size, wanted, self.seed.unwrap_or(0), keep, stop)?
            }
            _ => {
                let mut kept = Vec::new();
                for index in 0..size {
                    if index % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                        return Err(stopped());
                    }
                    if keep(index) {
                        kept.push(index);
                    }
                }
                kept
            }
        };
        if indices.is_empty() {
            let source = self.constraint.as_deref().unwrap_or_default();
            let which = match self.samples {
                Some(wanted) if (wanted as u64) < size => format!(
                    "{} sets drawn from the grid of {size}",
                    size.min((wanted as u64).saturating_mul(DRAWS_PER_SAMPLE))
                ),
                _ => format!("{size} sets of the grid"),
            };
            return Err(vec![SpecError::new(
                "constraint",
                format!("no parameter set is left: '{source}' is false for all {which}"),
            )]);
        }
        let sets: Vec<Params> = indices.into_iter().map(|i| grid.set(i)).collect();
        let mut columns = Columns::default();
        for (n, set) in sets.iter().enumerate() {
            if n as u64 % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            // The first set that does not bind (a fractional period, say) is reported.
            let bind = |ast: &Ast, field: &str| {
                ast.bind(set).map_err(|e| {
                    SpecError::expression(
                        field,
                        ExprError {
                            message: format!("{} (with {})", e.message, describe(set)),
                            ..e
                        },
                    )
                })
            };
            let compiled = match (bind(&entry, "strategy.entry"), bind(&exit, "strategy.exit")) {
                (Ok(entry), Ok(exit)) => CompiledStrategy { entry, exit },
                (entry, exit) => return Err(entry.err().into_iter().chain(exit.err()).collect()),
            };
            columns.add(&compiled, set)?;
        }
        Ok(Expanded {
            sets,
            indicator_columns: columns.total,
        })
    }

    /// How many sets [`parameter_sets`](Self::parameter_sets) would give, counted without
    /// building them and given up past `limit`: a quota check that costs little for a grid far
    /// beyond it. The grid's size comes from the lengths of its lists and ranges, worked out
    /// without producing their values; a constraint is evaluated only over a grid of at most
    /// [`EXAMINED_PER_ALLOWED_SET`] times `limit` sets, and counting stops once more than
    /// `limit` pass it, or soon after `stop` is set. With `samples`, the count is the number
    /// wanted (an upper bound).
    pub fn count_sets(
        &self,
        strategy: &Strategy,
        limit: u64,
        stop: &AtomicBool,
    ) -> Result<SetCount, Vec<SpecError>> {
        let shape = self.shape(strategy)?;
        let size = shape.size;
        if let Some(wanted) = self.samples.filter(|&wanted| (wanted as u64) < size) {
            return Ok(SetCount::Exactly(wanted as u64));
        }
        if self.constraint.is_none() {
            return Ok(SetCount::Exactly(size));
        }
        if size <= limit {
            // Whatever the constraint keeps is within the limit: no need to evaluate it here.
            return Ok(SetCount::AtMost(size));
        }
        if size > limit.saturating_mul(EXAMINED_PER_ALLOWED_SET) {
            return Ok(SetCount::TooManyToCount(size));
        }
        let Checked {
            grid, constraint, ..
        } = self.check_shaped(strategy, shape)?;
        let Some(constraint) = constraint else {
            return Ok(SetCount::Exactly(size));
        };
        let mut kept = 0;
        for index in 0..size {
            if index % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            if constraint
                .bind(&grid.set(index))
                .is_ok_and(|bound| bound.constant() == Some(true))
            {
                kept += 1;
                if kept > limit {
                    return Ok(SetCount::MoreThan(limit));
                }
            }
        }
        Ok(SetCount::Exactly(kept))
    }

    /// Checks the expressions, the objective, `samples` and the grid's names and lengths, and
    /// works out the grid's size; no grid value is produced yet.
    fn shape(&self, strategy: &Strategy) -> Result<Shape, Vec<SpecError>> {
        let mut errors = Vec::new();
        let mut parse = |source: &str, field: &str| {
            expr::parse(source)
                .map_err(|e| errors.push(SpecError::expression(field, e)))
                .ok()
        };
        let entry = parse(&strategy.entry, "strategy.entry");
        let exit = parse(&strategy.exit, "strategy.exit");
        let constraint = match self.constraint.as_deref() {
            Some(source) if source.len() > MAX_CONSTRAINT_BYTES => {
                errors.push(SpecError::new(
                    "constraint",
                    format!(
                        "the constraint is {} bytes long, more than the {MAX_CONSTRAINT_BYTES} \
                         allowed",
                        source.len()
                    ),
                ));
                None
            }
            Some(source) => parse(source, "constraint"),
            None => None,
        };
        if !METRIC_NAMES.contains(&self.objective.as_str()) {
            errors.push(SpecError::new(
                "objective",
                format!(
                    "unknown metric '{}'; available: {}",
                    self.objective,
                    METRIC_NAMES.join(", ")
                ),
            ));
        }
        match self.samples {
            Some(0) => errors.push(SpecError::new("samples", "must be >= 1, got 0")),
            Some(wanted) if wanted as u64 > MAX_GRID_SETS => errors.push(SpecError::new(
                "samples",
                format!("at most {MAX_GRID_SETS} sets are drawn, got {wanted}"),
            )),
            _ => {}
        }
        let known: Option<BTreeSet<String>> = match (&entry, &exit) {
            (Some(entry), Some(exit)) => Some(&entry.parameters() | &exit.parameters()),
            _ => None,
        };
        let mut lengths = Vec::with_capacity(self.grid.len());
        for (name, values) in &self.grid {
            if let Some(known) = known.as_ref().filter(|known| !known.contains(name)) {
                let list = known.iter().cloned().collect::<Vec<_>>().join(", ");
                errors.push(SpecError::new(
                    format!("grid.{name}"),
                    format!(
                        "unknown parameter '{name}': this strategy's parameters are {}",
                        if list.is_empty() { "none" } else { &list }
                    ),
                ));
                continue;
            }
            match values.count(name) {
                Ok(len) => lengths.push(len as u64),
                Err(e) => errors.push(e),
            }
        }
        let (Some(entry), Some(exit), true) = (entry, exit, errors.is_empty()) else {
            return Err(errors);
        };
        let size = lengths
            .iter()
            .try_fold(1u64, |size, &len| size.checked_mul(len))
            .ok_or_else(|| {
                vec![SpecError::new(
                    "grid",
                    "the grid has more than 2^64 parameter sets",
                )]
            })?;
        if size > MAX_GRID_SETS && self.samples.is_none_or(|wanted| wanted as u64 >= size) {
            return Err(vec![SpecError::new(
                "grid",
                format!(
                    "the grid has {size} parameter sets, more than the {MAX_GRID_SETS} a sweep \
                     runs; use samples to draw some of them"
                ),
            )]);
        }
        Ok(Shape {
            entry,
            exit,
            constraint,
            size,
        })
    }

    /// Checks the grid, the objective and the constraint; the grid ready to enumerate.
    fn check(&self, strategy: &Strategy) -> Result<Checked, Vec<SpecError>> {
        let shape = self.shape(strategy)?;
        self.check_shaped(strategy, shape)
    }

    /// [`check`](Self::check) once [`shape`](Self::shape) passed: the grid's values (each list
    /// within [`MAX_GRID_VALUES`] by now) and the constraint.
    fn check_shaped(&self, strategy: &Strategy, shape: Shape) -> Result<Checked, Vec<SpecError>> {
        let mut errors = Vec::new();
        let mut axes = Vec::with_capacity(self.grid.len());
        for (name, values) in &self.grid {
            match values.values(name) {
                Ok(values) => axes.push((name.clone(), values)),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let grid = Grid {
            base: strategy.params.clone(),
            axes,
        };
        if let Some(constraint) = &shape.constraint {
            check_constraint(constraint, &grid.set(0)).map_err(|e| vec![e])?;
        }
        Ok(Checked {
            grid,
            size: shape.size,
            constraint: shape.constraint,
            entry: shape.entry,
            exit: shape.exit,
        })
    }
}

/// A sweep spec whose expressions parsed and whose grid's size is known.
struct Shape {
    entry: Ast,
    exit: Ast,
    constraint: Option<Ast>,
    /// Sets in the whole grid, before the constraint.
    size: u64,
}

/// The distinct indicator columns of a sweep's sets, counted as they are bound.
#[derive(Default)]
struct Columns {
    /// Cache keys seen so far.
    seen: HashSet<String>,
    /// Columns they hold between them.
    total: usize,
}

impl Columns {
    /// Adds one set's calls; refuses a set beyond [`MAX_INDICATOR_COLUMNS`] (entry and exit
    /// together) and a sweep beyond [`MAX_JOB_INDICATOR_COLUMNS`].
    fn add(&mut self, strategy: &CompiledStrategy, set: &Params) -> Result<(), Vec<SpecError>> {
        let own = strategy.indicator_columns();
        let per_set: usize = own.values().sum();
        if per_set > MAX_INDICATOR_COLUMNS {
            return Err(vec![SpecError::new(
                "strategy",
                format!(
                    "entry and exit use {per_set} distinct indicator columns with {}, more than \
                     the {MAX_INDICATOR_COLUMNS} one strategy may compute",
                    describe(set)
                ),
            )]);
        }
        for (key, columns) in own {
            if !self.seen.contains(key) {
                self.seen.insert(key.to_owned());
                self.total += columns;
            }
        }
        if self.total > MAX_JOB_INDICATOR_COLUMNS {
            return Err(vec![SpecError::new(
                "grid",
                format!(
                    "the parameter sets use more than {MAX_JOB_INDICATOR_COLUMNS} distinct \
                     indicator columns between them (each is kept for the whole job); narrow \
                     the grid of the parameters the indicators take"
                ),
            )]);
        }
        Ok(())
    }
}

/// A sweep spec whose grid, objective and constraint passed their checks.
struct Checked {
    grid: Grid,
    /// Sets in the whole grid, before the constraint.
    size: u64,
    constraint: Option<Ast>,
    entry: Ast,
    exit: Ast,
}

/// The number of parameter sets of a sweep, as far as it was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCount {
    /// This many.
    Exactly(u64),
    /// At most this many: the whole grid, before a constraint that was not evaluated.
    AtMost(u64),
    /// More than this many (counting stopped there).
    MoreThan(u64),
    /// A constrained grid of this many sets, too large to evaluate its constraint over for the
    /// limit asked ([`EXAMINED_PER_ALLOWED_SET`] times it).
    TooManyToCount(u64),
}

/// `fast=5, slow=20`.
pub(crate) fn describe(params: &Params) -> String {
    params
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The constraint must bind with the grid's parameters to a condition known without bars.
fn check_constraint(constraint: &Ast, params: &Params) -> Result<(), SpecError> {
    let source = constraint.source();
    let bound = constraint
        .bind(params)
        .map_err(|e| SpecError::expression("constraint", e))?;
    if bound.constant().is_some() {
        return Ok(());
    }
    let (column, message) = match first_bar_dependent(source) {
        Some((column, name, true)) => (
            column,
            format!(
                "a constraint compares parameters and numbers only; '{name}' is computed from \
                 the bars"
            ),
        ),
        Some((column, name, false)) => (
            column,
            format!("a constraint compares parameters and numbers only; '{name}' is a series"),
        ),
        None => (
            1,
            "a constraint compares parameters and numbers only, e.g. fast < slow".to_owned(),
        ),
    };
    Err(SpecError::expression(
        "constraint",
        ExprError::new(source, column, message),
    ))
}

/// The first name in `source` that needs bars: a series, or a call of a function other than
/// `abs`, `min` and `max` (which fold over numbers); its 1-based column (in characters), its
/// name, and whether it is a call.
fn first_bar_dependent(source: &str) -> Option<(usize, String, bool)> {
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            let called = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
            let on_numbers = ["abs", "min", "max"].contains(&name.as_str());
            if (called && !on_numbers) || (!called && SERIES_NAMES.contains(&name.as_str())) {
                return Some((start + 1, name, called));
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number, exponent included (`1e5` is not the name `e5`).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Up to `wanted` distinct grid positions out of `size`, drawn uniformly without replacement
/// (a lazy Fisher-Yates shuffle seeded with `seed`), keeping those `keep` accepts; ascending.
fn sample(
    size: u64,
    wanted: usize,
    seed: u64,
    keep: impl Fn(u64) -> bool,
    stop: &AtomicBool,
) -> Result<Vec<u64>, Vec<SpecError>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Positions whose content differs from the identity, as in an array shuffled in place.
    let mut moved: HashMap<u64, u64> = HashMap::new();
    let budget = size.min((wanted as u64).saturating_mul(DRAWS_PER_SAMPLE));
    // `wanted` is the user's number: never allocate by it beyond what can be drawn.
    let mut kept = Vec::with_capacity(wanted.min(budget.min(MAX_GRID_SETS) as usize));
    for position in 0..budget {
        if kept.len() == wanted {
            break;
        }
        if position % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        let pick = rng.random_range(position..size);
        let drawn = moved.get(&pick).copied().unwrap_or(pick);
        let displaced = moved.remove(&position).unwrap_or(position);
        if pick != position {
            moved.insert(pick, displaced);
        }
        if keep(drawn) {
            kept.push(drawn);
        }
    }
    kept.sort_unstable();
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::StrategySpec;

    fn text(s: &str) -> GridValues {
        GridValues::Text(s.to_owned())
    }

    fn message(values: GridValues) -> String {
        values.values("fast").unwrap_err().to_string()
    }

    fn template(name: &str) -> Strategy {
        Strategy::from_spec(&StrategySpec {
            template: Some(name.to_owned()),
            ..StrategySpec::default()
        })
        .unwrap()
    }

    fn spec(grid: &[(&str, GridValues)]) -> SweepSpec {
        SweepSpec {
            grid: grid
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..SweepSpec::default()
        }
    }

    fn pairs(sets: &[Params], a: &str, b: &str) -> Vec<(f64, f64)> {
        sets.iter().map(|p| (p[a], p[b])).collect()
    }

    fn errors(spec: &SweepSpec, strategy: &Strategy) -> Vec<String> {
        spec.parameter_sets(strategy)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn ranges_include_the_stop_on_the_grid() {
        let v = |s: &str| text(s).values("x").unwrap();
        assert_eq!(
            v("5:50:5"),
            [5., 10., 15., 20., 25., 30., 35., 40., 45., 50.]
        );
        assert_eq!(v("5:52:5").last(), Some(&50.0));
        assert_eq!(v("0.5:2:0.5"), [0.5, 1.0, 1.5, 2.0]);
        assert_eq!(v("0.1:0.7:0.1"), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
        assert_eq!(v(" 10 : 10 : 3 "), [10.0]);
        assert_eq!(v("-1:1:1"), [-1.0, 0.0, 1.0]);
    }

    #[test]
    fn lists_and_single_values() {
        let v = |g: GridValues| g.values("x").unwrap();
        assert_eq!(v(text("20,50,100")), [20.0, 50.0, 100.0]);
        assert_eq!(v(text(" 100, 20 ")), [100.0, 20.0]);
        assert_eq!(v(text("10")), [10.0]);
        assert_eq!(v(GridValues::List(vec![3.0, 1.0])), [3.0, 1.0]);
        assert_eq!(v(GridValues::One(7.0)), [7.0]);
    }

    #[test]
    fn json_takes_a_string_a_list_or_a_number() {
        let grid: std::collections::BTreeMap<String, GridValues> =
            serde_json::from_str(r#"{"a": "5:50:5", "b": [20, 50.5], "c": 10}"#).unwrap();
        assert_eq!(grid["a"], text("5:50:5"));
        assert_eq!(grid["b"], GridValues::List(vec![20.0, 50.5]));
        assert_eq!(grid["c"], GridValues::One(10.0));
        let spec: SweepSpec = serde_json::from_str(r#"{"grid": {"fast": [5]}}"#).unwrap();
        assert_eq!(spec.objective, "sharpe");
        assert!(!spec.minimize && spec.samples.is_none() && spec.top.is_none());
        assert!(serde_json::from_str::<SweepSpec>(r#"{"grid": {}, "bogus": 1}"#).is_err());
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        assert_eq!(
            message(text("5:50:0")),
            "grid.fast: step must be > 0, got 0"
        );
        assert_eq!(
            message(text("abc")),
            "grid.fast: expected start:stop:step or a list like 20,50,100, got 'abc'"
        );
        assert_eq!(
            message(text("5:50")),
            "grid.fast: expected start:stop:step or a list like 20,50,100, got '5:50'"
        );
        assert_eq!(
            message(text("20,,50")),
            "grid.fast: expected start:stop:step or a list like 20,50,100, got '20,,50'"
        );
        assert_eq!(
            message(text("50:5:5")),
            "grid.fast: stop must be >= start, got 50:5"
        );
        assert_eq!(
            message(text("5:50:-5")),
            "grid.fast: step must be > 0, got -5"
        );
        assert_eq!(
            message(text("0:1e9:1")),
            "grid.fast: the range has 1000000001 values, more than the 1000000 allowed"
        );
        assert_eq!(
            message(GridValues::List(vec![])),
            "grid.fast: the list of values is empty"
        );
        assert_eq!(
            message(text("20,50,20")),
            "grid.fast: the value 20 is listed twice"
        );
        assert_eq!(
            message(text("nan")),
            "grid.fast: values must be finite numbers, got NaN"
        );
    }

    #[test]
    fn the_product_is_sorted_by_name_with_the_last_varying_fastest() {
        let strategy = template("sma_cross");
        let sets = spec(&[("slow", text("20,30,40")), ("fast", text("1,2"))])
            .parameter_sets(&strategy)
            .unwrap();
        assert_eq!(
            pairs(&sets, "fast", "slow"),
            [
                (1., 20.),
                (1., 30.),
                (1., 40.),
                (2., 20.),
                (2., 30.),
                (2., 40.)
            ]
        );
        // A parameter outside the grid keeps the strategy's value.
        let sets = spec(&[("fast", text("3:5:1"))])
            .parameter_sets(&strategy)
            .unwrap();
        assert_eq!(
            pairs(&sets, "fast", "slow"),
            [(3., 20.), (4., 20.), (5., 20.)]
        );
        // No grid at all: the strategy's own set.
        let sets = spec(&[]).parameter_sets(&strategy).unwrap();
        assert_eq!(pairs(&sets, "fast", "slow"), [(10., 20.)]);
    }

    #[test]
    fn samples_are_distinct_seeded_and_in_grid_order() {
        let strategy = template("sma_cross");
        let full = spec(&[("fast", text("1:40:1")), ("slow", text("50:300:10"))]);
        let all = full.parameter_sets(&strategy).unwrap();
        assert_eq!(all.len(), 40 * 26);
        let draw = |samples: usize, seed: u64| {
            SweepSpec {
                samples: Some(samples),
                seed: Some(seed),
                ..full.clone()
            }
            .parameter_sets(&strategy)
            .unwrap()
        };
        let a = draw(50, 7);
        assert_eq!(a.len(), 50);
        assert_eq!(a, draw(50, 7));
        assert_ne!(a, draw(50, 8));
        let positions: Vec<usize> = a
            .iter()
            .map(|set| {
                all.iter()
                    .position(|s| s == set)
                    .expect("a set of the grid")
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "distinct, in grid order"
        );
        assert_eq!(draw(all.len(), 1), all);
        assert_eq!(draw(5000, 1), all);
    }

    #[test]
    fn samples_draw_among_the_sets_the_constraint_keeps() {
        let strategy = template("sma_cross");
        let spec = SweepSpec {
            samples: Some(30),
            seed: Some(3),
            constraint: Some("slow >= 4 * fast".to_owned()),
            ..spec(&[("fast", text("1:40:1")), ("slow", text("1:40:1"))])
        };
        let sets = spec.parameter_sets(&strategy).unwrap();
        assert_eq!(sets.len(), 30);
        assert!(sets.iter().all(|p| p["slow"] >= 4.0 * p["fast"]));
    }

    #[test]
    fn sampling_is_uniform_without_replacement() {
        // Every position is drawn, exactly once, when all are wanted.
        let mut all = sample(1000, 1000, 5, |_| true, &AtomicBool::new(false)).unwrap();
        all.dedup();
        assert_eq!(all, (0..1000).collect::<Vec<u64>>());
        // Draws from a grid too large to list stay distinct and in range.
        let big = sample(u64::MAX, 1000, 5, |_| true, &AtomicBool::new(false)).unwrap();
        assert_eq!(big.len(), 1000);
        assert!(big.windows(2).all(|w| w[0] < w[1]));
        // Half of each half: roughly even (fixed seed, so exact).
        let low = sample(1000, 500, 11, |_| true, &AtomicBool::new(false))
            .unwrap()
            .iter()
            .filter(|&&i| i < 500)
            .count();
        assert!((200..300).contains(&low), "{low}");
    }

    #[test]
    fn the_constraint_drops_sets() {
        let strategy = template("sma_cross");
        let spec = SweepSpec {
            constraint: Some("fast < slow".to_owned()),
            ..spec(&[("fast", text("10:30:10")), ("slow", text("10:30:10"))])
        };
        let sets = spec.parameter_sets(&strategy).unwrap();
        assert_eq!(
            pairs(&sets, "fast", "slow"),
            [(10., 20.), (10., 30.), (20., 30.)]
        );
    }

    #[test]
    fn constraint_errors_point_at_the_column() {
        let strategy = template("sma_cross");
        let fails = |constraint: &str| {
            let spec = SweepSpec {
                constraint: Some(constraint.to_owned()),
                ..spec(&[("fast", text("10:30:10"))])
            };
            let errors = spec.parameter_sets(&strategy).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, "constraint");
            let e = errors[0]
                .expression
                .clone()
                .unwrap_or_else(|| panic!("{errors:?}"));
            (e.column, e.message)
        };
        let (column, message) = fails("fast <");
        assert_eq!(column, 7, "{message}");
        let (column, message) = fails("fast < slwo");
        assert_eq!(column, 8);
        assert!(message.contains("unknown name 'slwo'"), "{message}");
        assert!(message.contains("did you mean 'slow'"), "{message}");
        let (column, message) = fails("fast < close");
        assert_eq!(column, 8);
        assert_eq!(
            message,
            "a constraint compares parameters and numbers only; 'close' is a series"
        );
        let (column, message) = fails("fast < 2 * atr (14)");
        assert_eq!(column, 12);
        assert_eq!(
            message,
            "a constraint compares parameters and numbers only; 'atr' is computed from the bars"
        );
        let (column, message) = fails("fast - slow");
        assert_eq!(column, 6);
        assert!(message.contains("must be a condition"), "{message}");
    }

    #[test]
    fn constraints_may_use_arithmetic_and_functions_of_numbers() {
        let strategy = template("sma_cross");
        let spec = SweepSpec {
            constraint: Some("1e1 <= abs(fast - slow) and max(fast, 15) < 25".to_owned()),
            ..spec(&[("fast", text("10:30:10")), ("slow", text("10:30:10"))])
        };
        let sets = spec.parameter_sets(&strategy).unwrap();
        assert_eq!(
            pairs(&sets, "fast", "slow"),
            [(10., 20.), (10., 30.), (20., 10.), (20., 30.)]
        );
    }

    #[test]
    fn sets_are_counted_without_being_built_and_counting_stops_past_the_limit() {
        let strategy = template("sma_cross");
        let go = AtomicBool::new(false);
        // 1,000,000 x 1,000,000 sets, more than a sweep runs: refused from the lengths alone.
        let huge = spec(&[("fast", text("1:1000000:1")), ("slow", text("1:1000000:1"))]);
        let errors = huge.count_sets(&strategy, 100, &go).unwrap_err();
        assert_eq!(errors[0].field, "grid");
        assert!(errors[0].message.contains("1000000000000 parameter sets"));
        // 2,000 x 2,000 = 4,000,000 sets: counting must not enumerate them.
        let grid = spec(&[("fast", text("1:2000:1")), ("slow", text("1:2000:1"))]);
        assert_eq!(
            grid.count_sets(&strategy, 100, &go),
            Ok(SetCount::Exactly(4_000_000))
        );
        // With a constraint, a grid over 100 times the limit is not evaluated at all...
        let constrained = SweepSpec {
            constraint: Some("fast < slow".to_owned()),
            ..grid.clone()
        };
        assert_eq!(
            constrained.count_sets(&strategy, 100, &go),
            Ok(SetCount::TooManyToCount(4_000_000))
        );
        // ... a smaller one is counted until the limit is passed...
        assert_eq!(
            constrained.count_sets(&strategy, 100_000, &go),
            Ok(SetCount::MoreThan(100_000))
        );
        // ... and one within the limit needs no evaluation.
        let small = SweepSpec {
            constraint: Some("fast < slow".to_owned()),
            ..spec(&[("fast", text("5:20:5")), ("slow", text("10:30:10"))])
        };
        assert_eq!(
            small.count_sets(&strategy, 100, &go),
            Ok(SetCount::AtMost(12))
        );
        let built = small.parameter_sets(&strategy).unwrap().len() as u64;
        assert_eq!(
            small.count_sets(&strategy, 10, &go),
            Ok(SetCount::Exactly(built))
        );
        let sampled = SweepSpec {
            samples: Some(50),
            ..grid
        };
        assert_eq!(
            sampled.count_sets(&strategy, 100, &go),
            Ok(SetCount::Exactly(50))
        );
    }

    #[test]
    fn a_stopped_count_or_expansion_gives_up() {
        let strategy = template("sma_cross");
        let stop = AtomicBool::new(true);
        let constrained = SweepSpec {
            constraint: Some("fast > slow".to_owned()),
            ..spec(&[("fast", text("1:2000:1")), ("slow", text("1:2000:1"))])
        };
        let errors = constrained
            .count_sets(&strategy, 100_000, &stop)
            .unwrap_err();
        assert_eq!(errors[0].field, "grid");
        assert!(errors[0].message.contains("stopped"), "{errors:?}");
        let errors = constrained.expand(&strategy, &stop).unwrap_err();
        assert!(errors[0].message.contains("stopped"), "{errors:?}");
    }

    #[test]
    fn a_long_range_is_checked_for_duplicates_in_linear_time() {
        // A quadratic check took seconds here; a million values take milliseconds.
        let started = std::time::Instant::now();
        assert_eq!(text("1:1000000:1").values("x").unwrap().len(), 1_000_000);
        let mut list: Vec<f64> = (0..200_000).map(f64::from).collect();
        list.push(0.0);
        assert_eq!(
            message(GridValues::List(list)),
            "grid.fast: the value 0 is listed twice"
        );
        assert_eq!(
            message(GridValues::List(vec![0.0, -0.0])),
            "grid.fast: the value -0 is listed twice"
        );
        assert!(
            started.elapsed().as_secs_f64() < 2.0,
            "{:?}",
            started.elapsed()
        );
        // Lengths without values: a list's items, a range's steps.
        assert_eq!(text("1:1000000:1").count("x"), Ok(1_000_000));
        assert_eq!(text("5,6,7").count("x"), Ok(3));
        assert_eq!(
            GridValues::List(vec![1.0; MAX_GRID_VALUES + 1])
                .count("fast")
                .unwrap_err()
                .to_string(),
            format!(
                "grid.fast: the list has {} values, more than the {MAX_GRID_VALUES} allowed",
                MAX_GRID_VALUES + 1
            )
        );
    }

    #[test]
    fn huge_samples_and_long_constraints_are_refused() {
        let strategy = template("sma_cross");
        let sampled = SweepSpec {
            samples: Some(1 << 45),
            ..spec(&[("fast", text("1:1000:1")), ("slow", text("1:1000:1"))])
        };
        assert_eq!(
            errors(&sampled, &strategy),
            [format!(
                "samples: at most {MAX_GRID_SETS} sets are drawn, got 35184372088832"
            )]
        );
        let long = SweepSpec {
            constraint: Some(format!("fast < slow{}", " ".repeat(MAX_CONSTRAINT_BYTES))),
            ..spec(&[("fast", text("1:10:1"))])
        };
        let errors = errors(&long, &strategy);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(
                "constraint: the constraint is 1035 bytes long, more than the 1024 allowed"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn indicator_columns_are_counted_over_every_set() {
        let strategy = template("sma_cross");
        // fast 5..50 and slow 20..200 share 20 and 40: 10 + 10 - 2 columns.
        let expanded = spec(&[("fast", text("5:50:5")), ("slow", text("20:200:20"))])
            .expand(&strategy, &AtomicBool::new(false))
            .unwrap();
        assert_eq!(expanded.sets.len(), 100);
        assert_eq!(expanded.indicator_columns, 18);
        // Overlapping values are one column each.
        let expanded = spec(&[("fast", text("10:30:10")), ("slow", text("10:30:10"))])
            .expand(&strategy, &AtomicBool::new(false))
            .unwrap();
        assert_eq!(expanded.indicator_columns, 3);
        // MACD keeps three columns per distinct call.
        let macd = Strategy::from_spec(&StrategySpec {
            entry: Some("macd(close, fast, 26, 9) > macd_signal(close, fast, 26, 9)".to_owned()),
            exit: Some("macd_hist(close, fast, 26, 9) < 0".to_owned()),
            params: [("fast".to_owned(), 12.0)].into(),
            ..StrategySpec::default()
        })
        .unwrap();
        let expanded = spec(&[("fast", text("2:12:1"))])
            .expand(&macd, &AtomicBool::new(false))
            .unwrap();
        assert_eq!(expanded.indicator_columns, 33);
    }

    #[test]
    fn a_sweep_over_too_many_indicator_columns_is_refused() {
        // A new column in every set: 70,001 in all, past the job's limit.
        let strategy = Strategy::from_spec(&StrategySpec {
            entry: Some("sma(close, a) > sma(close, b)".to_owned()),
            exit: Some("close < 0".to_owned()),
            params: [("a".to_owned(), 1.0), ("b".to_owned(), 2.0)].into(),
            ..StrategySpec::default()
        })
        .unwrap();
        let wide = spec(&[("a", text("1:70000:1")), ("b", text("100000"))]);
        let errors = errors(&wide, &strategy);
        assert_eq!(
            errors,
            [format!(
                "grid: the parameter sets use more than {MAX_JOB_INDICATOR_COLUMNS} distinct \
                 indicator columns between them (each is kept for the whole job); narrow the \
                 grid of the parameters the indicators take"
            )]
        );
    }

    #[test]
    fn no_set_left_is_an_error() {
        let strategy = template("sma_cross");
        let spec = SweepSpec {
            constraint: Some("fast > slow".to_owned()),
            ..spec(&[("fast", text("5:10:5")), ("slow", text("20,30"))])
        };
        assert_eq!(
            errors(&spec, &strategy),
            [
                "constraint: no parameter set is left: 'fast > slow' is false for all 4 sets of \
              the grid"
            ]
        );
    }

    #[test]
    fn unknown_parameters_and_objectives_are_errors() {
        let strategy = template("sma_cross");
        let spec = SweepSpec {
            objective: "sharp".to_owned(),
            samples: Some(0),
            ..spec(&[("fsat", text("5:10:5")), ("slow", text("x"))])
        };
        assert_eq!(
            errors(&spec, &strategy),
            [
                format!(
                    "objective: unknown metric 'sharp'; available: {}",
                    METRIC_NAMES.join(", ")
                ),
                "samples: must be >= 1, got 0".to_owned(),
                "grid.fsat: unknown parameter 'fsat': this strategy's parameters are fast, slow"
                    .to_owned(),
                "grid.slow: expected start:stop:step or a list like 20,50,100, got 'x'".to_owned(),
            ]
        );
    }

    #[test]
    fn sets_that_do_not_bind_are_reported_with_their_values() {
        let strategy = template("sma_cross");
        let errors = spec(&[("fast", text("4:5:0.5"))])
            .parameter_sets(&strategy)
            .unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "strategy.entry");
        let e = errors[0].expression.as_ref().unwrap();
        assert!(
            e.message.ends_with("(with fast=4.5, slow=20)"),
            "{}",
            e.message
        );
        assert_eq!(e.column, 24);
    }

    #[test]
    fn too_large_a_grid_needs_samples() {
        let strategy = template("rsi_reversion");
        let big = spec(&[
            ("lower", text("1:1000:1")),
            ("period", text("2:1001:1")),
            ("upper", text("1:1000:1")),
        ]);
        assert_eq!(
            errors(&big, &strategy),
            [
                "grid: the grid has 1000000000 parameter sets, more than the 10000000 a sweep \
              runs; use samples to draw some of them"
            ]
        );
        let sampled = SweepSpec {
            samples: Some(100),
            seed: Some(1),
            constraint: Some("lower < upper".to_owned()),
            ..big
        };
        let sets = sampled.parameter_sets(&strategy).unwrap();
        assert_eq!(sets.len(), 100);
        assert!(sets.iter().all(|p| p["lower"] < p["upper"]));
    }
}
