//! From a [`SweepSpec`] to parameter sets: grid values, the cartesian product in grid order, a
//! seeded random sample of it, and the constraint on parameters.

use std::collections::{BTreeSet, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SweepSpec;
use crate::expr::{self, Ast, ExprError, Params, SERIES_NAMES};
use crate::metrics::METRIC_NAMES;
use crate::spec::SpecError;
use crate::strategy::Strategy;

/// Most values one parameter's range may produce (a guard against `0:1e9:1`).
const MAX_VALUES: usize = 1_000_000;

/// Most sets a sweep enumerates; a larger grid needs `samples`.
const MAX_SETS: u64 = 10_000_000;

/// With `samples`, how many sets are drawn per wanted set before a rarely true constraint is
/// given up on (the sets found so far are used).
const DRAWS_PER_SAMPLE: u64 = 1_000;

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
    /// The values, in the order given (a range ascending); errors name the field `grid.<name>`.
    pub fn values(&self, name: &str) -> Result<Vec<f64>, SpecError> {
        let error = |message: String| SpecError::new(format!("grid.{name}"), message);
        let values = match self {
            GridValues::Text(text) => parse_text(text).map_err(error)?,
            GridValues::List(list) => list.clone(),
            GridValues::One(value) => vec![*value],
        };
        if values.is_empty() {
            return Err(error("the list of values is empty".to_owned()));
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(error(format!("values must be finite numbers, got {bad}")));
        }
        for (i, value) in values.iter().enumerate() {
            if values[..i].contains(value) {
                return Err(error(format!("the value {value} is listed twice")));
            }
        }
        Ok(values)
    }
}

/// A range `start:stop:step`, a comma-separated list, or one number.
fn parse_text(text: &str) -> Result<Vec<f64>, String> {
    let usage = || format!("expected start:stop:step or a list like 20,50,100, got '{text}'");
    let number = |part: &str| part.trim().parse::<f64>().map_err(|_| usage());
    if text.contains(':') {
        let parts: Vec<&str> = text.split(':').collect();
        let [start, stop, step] = parts[..] else {
            return Err(usage());
        };
        let (start, stop, step) = (number(start)?, number(stop)?, number(step)?);
        if !(start.is_finite() && stop.is_finite() && step.is_finite()) {
            return Err(usage());
        }
        range(start, stop, step)
    } else {
        text.split(',').map(number).collect()
    }
}

/// `start + i * step` for every `i` up to `stop`; integer stepping, so no error accumulates.
fn range(start: f64, stop: f64, step: f64) -> Result<Vec<f64>, String> {
    if step <= 0.0 {
        return Err(format!("step must be > 0, got {step}"));
    }
    if stop < start {
        return Err(format!("stop must be >= start, got {start}:{stop}"));
    }
    // A stop within 1e-9 steps of a grid point is that grid point (0.1:0.3:0.1 has three).
    let steps = ((stop - start) / step + 1e-9).floor();
    if steps >= MAX_VALUES as f64 {
        return Err(format!(
            "the range has {} values, more than the {MAX_VALUES} allowed",
            steps + 1.0
        ));
    }
    let count = steps as usize + 1;
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
    /// Number of sets; `None` beyond `u64`.
    fn size(&self) -> Option<u64> {
        self.axes.iter().try_fold(1u64, |size, (_, values)| {
            size.checked_mul(values.len() as u64)
        })
    }

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

impl SweepSpec {
    /// The parameter sets to run, in grid order: the strategy's parameters overridden by each
    /// grid point, those failing the constraint dropped, a random sample when `samples` is set.
    ///
    /// Checks everything a run needs first, and reports every problem: grid names against the
    /// strategy's parameters, grid values, the objective, the constraint (with its column), and
    /// that the entry and exit expressions bind with every set (periods must be integers).
    pub fn parameter_sets(&self, strategy: &Strategy) -> Result<Vec<Params>, Vec<SpecError>> {
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
                sample(size, wanted, self.seed.unwrap_or(0), keep)
            }
            _ => (0..size).filter(|&i| keep(i)).collect(),
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
        // The first set that does not bind (a fractional period, say) is reported.
        let mut errors = Vec::new();
        for set in &sets {
            for (ast, field) in [(&entry, "strategy.entry"), (&exit, "strategy.exit")] {
                if let Err(e) = ast.bind(set) {
                    errors.push(SpecError::expression(
                        field,
                        ExprError {
                            message: format!("{} (with {})", e.message, describe(set)),
                            ..e
                        },
                    ));
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
        }
        Ok(sets)
    }

    /// How many sets [`parameter_sets`](Self::parameter_sets) would give, counted without
    /// building them and given up past `limit`: a quota check that costs little for a grid far
    /// beyond it. With `samples`, the count is the number wanted (an upper bound).
    pub fn count_sets(&self, strategy: &Strategy, limit: u64) -> Result<SetCount, Vec<SpecError>> {
        let Checked {
            grid,
            size,
            constraint,
            ..
        } = self.check(strategy)?;
        if let Some(wanted) = self.samples.filter(|&wanted| (wanted as u64) < size) {
            return Ok(SetCount::Exactly(wanted as u64));
        }
        let Some(constraint) = constraint else {
            return Ok(SetCount::Exactly(size));
        };
        let mut kept = 0;
        for index in 0..size {
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

    /// Checks the grid, the objective and the constraint; the grid ready to enumerate.
    fn check(&self, strategy: &Strategy) -> Result<Checked, Vec<SpecError>> {
        let mut errors = Vec::new();
        let mut parse = |source: &str, field: &str| {
            expr::parse(source)
                .map_err(|e| errors.push(SpecError::expression(field, e)))
                .ok()
        };
        let entry = parse(&strategy.entry, "strategy.entry");
        let exit = parse(&strategy.exit, "strategy.exit");
        let constraint = self
            .constraint
            .as_deref()
            .and_then(|source| parse(source, "constraint"));
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
        if self.samples == Some(0) {
            errors.push(SpecError::new("samples", "must be >= 1, got 0"));
        }
        let known: Option<BTreeSet<String>> = match (&entry, &exit) {
            (Some(entry), Some(exit)) => Some(&entry.parameters() | &exit.parameters()),
            _ => None,
        };
        let mut axes = Vec::with_capacity(self.grid.len());
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
            match values.values(name) {
                Ok(values) => axes.push((name.clone(), values)),
                Err(e) => errors.push(e),
            }
        }
        let (Some(entry), Some(exit), true) = (entry, exit, errors.is_empty()) else {
            return Err(errors);
        };
        let grid = Grid {
            base: strategy.params.clone(),
            axes,
        };
        let size = grid.size().ok_or_else(|| {
            vec![SpecError::new(
                "grid",
                "the grid has more than 2^64 parameter sets",
            )]
        })?;
        if let Some(constraint) = &constraint {
            check_constraint(constraint, &grid.set(0)).map_err(|e| vec![e])?;
        }
        if size > MAX_SETS && self.samples.is_none_or(|wanted| wanted as u64 >= size) {
            return Err(vec![SpecError::new(
                "grid",
                format!(
                    "the grid has {size} parameter sets, more than the {MAX_SETS} a sweep runs; \
                     use samples to draw some of them"
                ),
            )]);
        }
        Ok(Checked {
            grid,
            size,
            constraint,
            entry,
            exit,
        })
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
    /// More than this many (counting stopped there).
    MoreThan(u64),
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
fn sample(size: u64, wanted: usize, seed: u64, keep: impl Fn(u64) -> bool) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Positions whose content differs from the identity, as in an array shuffled in place.
    let mut moved: HashMap<u64, u64> = HashMap::new();
    let budget = size.min((wanted as u64).saturating_mul(DRAWS_PER_SAMPLE));
    let mut kept = Vec::with_capacity(wanted);
    for position in 0..budget {
        if kept.len() == wanted {
            break;
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
    kept
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
        let mut all = sample(1000, 1000, 5, |_| true);
        all.dedup();
        assert_eq!(all, (0..1000).collect::<Vec<u64>>());
        // Draws from a grid too large to list stay distinct and in range.
        let big = sample(u64::MAX, 1000, 5, |_| true);
        assert_eq!(big.len(), 1000);
        assert!(big.windows(2).all(|w| w[0] < w[1]));
        // Half of each half: roughly even (fixed seed, so exact).
        let low = sample(1000, 500, 11, |_| true)
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
        // 2,000 x 2,000 = 4,000,000 sets: counting must not enumerate them.
        let grid = spec(&[("fast", text("1:2000:1")), ("slow", text("1:2000:1"))]);
        assert_eq!(
            grid.count_sets(&strategy, 100),
            Ok(SetCount::Exactly(4_000_000))
        );
        let constrained = SweepSpec {
            constraint: Some("fast < slow".to_owned()),
            ..grid.clone()
        };
        assert_eq!(
            constrained.count_sets(&strategy, 100),
            Ok(SetCount::MoreThan(100))
        );
        let small = SweepSpec {
            constraint: Some("fast < slow".to_owned()),
            ..spec(&[("fast", text("5:20:5")), ("slow", text("10:30:10"))])
        };
        let built = small.parameter_sets(&strategy).unwrap().len() as u64;
        assert_eq!(
            small.count_sets(&strategy, 100),
            Ok(SetCount::Exactly(built))
        );
        let sampled = SweepSpec {
            samples: Some(50),
            ..grid
        };
        assert_eq!(
            sampled.count_sets(&strategy, 100),
            Ok(SetCount::Exactly(50))
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
