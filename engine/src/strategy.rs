//! Strategies: entry and exit expressions with parameter values, from a template or written out.

use std::collections::{BTreeMap, BTreeSet};

use crate::data::Bars;
use crate::expr::{self, Condition, ExprError, Params, SeriesCache};
use crate::limits::MAX_INDICATOR_COLUMNS;
use crate::spec::{SpecError, StrategySpec};
use crate::templates;

/// A strategy as written: its expressions and the parameter values to run them with.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    /// The template it came from, if any.
    pub template: Option<String>,
    /// Entry condition source.
    pub entry: String,
    /// Exit condition source.
    pub exit: String,
    /// Parameter values: the template's defaults overridden by the user's.
    pub params: Params,
}

/// Entry and exit conditions bound to parameter values, ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledStrategy {
    /// Entry condition.
    pub entry: Condition,
    /// Exit condition.
    pub exit: Condition,
}

/// One entry and one exit flag per bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Signals {
    /// True where the entry condition holds at the bar's close.
    pub entries: Vec<bool>,
    /// True where the exit condition holds at the bar's close.
    pub exits: Vec<bool>,
}

impl Strategy {
    /// Resolves a spec's template and overrides into expressions and parameter values.
    pub fn from_spec(spec: &StrategySpec) -> Result<Strategy, SpecError> {
        let template = match &spec.template {
            Some(name) => Some(templates::find(name).ok_or_else(|| {
                SpecError::new(
                    "strategy.template",
                    format!(
                        "unknown template '{name}'{}; available: {}",
                        crate::suggest::did_you_mean(
                            name,
                            templates::TEMPLATES.iter().map(|t| t.name)
                        ),
                        templates::names()
                    ),
                )
            })?),
            None => None,
        };
        let pick = |own: &Option<String>, field: &str, from_template: Option<&str>| {
            own.clone()
                .or(from_template.map(str::to_owned))
                .ok_or_else(|| {
                    SpecError::new(
                        field,
                        "missing: give a template or both entry and exit expressions".to_owned(),
                    )
                })
        };
        let entry = pick(&spec.entry, "strategy.entry", template.map(|t| t.entry))?;
        let exit = pick(&spec.exit, "strategy.exit", template.map(|t| t.exit))?;
        let mut params: Params = template
            .map(|t| t.params.iter().map(|&(k, v)| (k.to_owned(), v)).collect())
            .unwrap_or_default();
        params.extend(spec.params.iter().map(|(k, v)| (k.clone(), *v)));
        Ok(Strategy {
            template: spec.template.clone(),
            entry,
            exit,
            params,
        })
    }

    /// Parses and binds both expressions; every problem names its field and column.
    pub fn compile(&self) -> Result<CompiledStrategy, Vec<SpecError>> {
        let mut errors = Vec::new();
        let entry =
            expr::parse(&self.entry).map_err(|e| SpecError::expression("strategy.entry", e));
        let exit = expr::parse(&self.exit).map_err(|e| SpecError::expression("strategy.exit", e));
        // A parameter no expression uses is almost always a typo ("fsat"): say so.
        if let (Ok(entry), Ok(exit)) = (&entry, &exit) {
            let used: BTreeSet<String> = entry
                .parameters()
                .union(&exit.parameters())
                .cloned()
                .collect();
            for name in self.params.keys().filter(|k| !used.contains(*k)) {
                let known = used.iter().cloned().collect::<Vec<_>>().join(", ");
                let known = if known.is_empty() {
                    "none".to_owned()
                } else {
                    known
                };
                errors.push(SpecError::new(
                    format!("strategy.params.{name}"),
                    format!("unknown parameter '{name}': this strategy's parameters are {known}"),
                ));
            }
        }
        let bind =
            |ast: Result<expr::Ast, SpecError>, field: &str| -> Result<Condition, SpecError> {
                ast?.bind(&self.params)
                    .map_err(|e: ExprError| SpecError::expression(field, e))
            };
        let entry = bind(entry, "strategy.entry");
        let exit = bind(exit, "strategy.exit");
        match (entry, exit) {
            (Ok(entry), Ok(exit)) if errors.is_empty() => {
                let compiled = CompiledStrategy { entry, exit };
                // Each expression is within the limit when it binds; together they may not be.
                let columns: usize = compiled.indicator_columns().values().sum();
                if columns > MAX_INDICATOR_COLUMNS {
                    return Err(vec![SpecError::new(
                        "strategy",
                        format!(
                            "entry and exit use {columns} distinct indicator columns between \
                             them, more than the {MAX_INDICATOR_COLUMNS} one strategy may compute"
                        ),
                    )]);
                }
                Ok(compiled)
            }
            (entry, exit) => {
                errors.extend(entry.err());
                errors.extend(exit.err());
                Err(errors)
            }
        }
    }
}

impl CompiledStrategy {
    /// The distinct indicator calls of entry and exit together, by cache key, with the columns
    /// each keeps in the indicator cache (three for MACD and Bollinger bands).
    pub fn indicator_columns(&self) -> BTreeMap<&str, usize> {
        self.entry
            .indicator_columns()
            .chain(self.exit.indicator_columns())
            .collect()
    }

    /// Evaluates both conditions over `bars`, sharing indicators through `cache`.
    pub fn signals(&self, bars: &Bars, cache: &SeriesCache) -> Signals {
        Signals {
            entries: self.entry.evaluate(bars, cache),
            exits: self.exit.evaluate(bars, cache),
        }
    }
}
