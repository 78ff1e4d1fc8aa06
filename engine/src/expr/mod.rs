//! The strategy expression language: entry and exit conditions such as
//! `cross_above(sma(close, fast), sma(close, slow)) and rsi(close, 14) < 70`.
//!
//! An expression is [`parse`]d (syntax only), then [bound](Ast::bind) to a set of parameters
//! (names, arity, types and integer periods are checked, parameters substituted), and the
//! resulting [`Condition`] is [evaluated](Condition::evaluate) over whole columns of
//! [`Bars`](crate::data::Bars) to one boolean per bar. [`compile`] does the first two steps.
//! Every error is an [`ExprError`] pointing at the column of the offending token;
//! [`Ast::parameters`] lists the parameters an expression needs.
//!
//! The language reference below is also [`LANGUAGE`], the text the AI strategy prompt quotes,
//! so users and the model read one source.
//!
#![doc = include_str!("language.md")]
//!
//! # Evaluation
//!
//! Evaluation is vectorised: one pass over the columns per node, with the indicators of
//! [`indicators`](crate::indicators). Each distinct sub-expression of a condition is evaluated
//! once. Indicator columns are kept in a [`SeriesCache`] keyed by their canonical form after
//! substitution (`sma(close,10)`), so an entry and an exit, or the conditions of many parameter
//! sets, evaluated with one cache over the same bars compute each distinct indicator once.
//!
//! ```
//! use engine::data::Bars;
//! use engine::expr::{compile, Params, SeriesCache};
//!
//! let params = Params::from([("fast".to_string(), 2.0), ("slow".to_string(), 3.0)]);
//! let entry = compile("cross_above(sma(close, fast), sma(close, slow))", &params).unwrap();
//! let exit = compile("cross_below(sma(close, fast), sma(close, slow))", &params).unwrap();
//! let close = vec![5.0, 4.0, 3.0, 4.0, 6.0, 5.0, 3.0, 2.0];
//! let bars = Bars { time: (0..8).collect(), close, ..Bars::default() };
//! let cache = SeriesCache::new();
//! assert_eq!(entry.evaluate(&bars, &cache).len(), 8);
//! exit.evaluate(&bars, &cache);
//! assert_eq!(cache.len(), 2); // sma(close,2) and sma(close,3), each computed once
//! ```

mod ast;
mod bind;
mod cache;
mod error;
mod eval;
mod lexer;
mod parser;

#[cfg(test)]
mod tests;

pub use ast::Ast;
pub use cache::SeriesCache;
pub use error::ExprError;
pub use eval::Condition;

/// Parameter values by name, substituted into an expression when it is bound.
pub type Params = std::collections::BTreeMap<String, f64>;

/// Serializes parameter values as JSON numbers, whole ones as integers (`"fast": 10`, not
/// `10.0`): periods are whole numbers, and read back as the user wrote them.
pub fn serialize_params<S: serde::Serializer>(
    params: &Params,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    // Beyond 2^53 not every whole number is an f64, and such a value is no period anyway.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let mut map = serializer.serialize_map(Some(params.len()))?;
    for (name, &value) in params {
        if value.fract() == 0.0 && value.abs() <= EXACT {
            map.serialize_entry(name, &(value as i64))?;
        } else {
            map.serialize_entry(name, &value)?;
        }
    }
    map.end()
}

/// Parses an expression (syntax only; names and types are checked by [`Ast::bind`]).
pub fn parse(source: &str) -> Result<Ast, ExprError> {
    parser::parse(source)
}

/// Parses and binds an expression: the [`Condition`] to evaluate, or the first error.
pub fn compile(source: &str, params: &Params) -> Result<Condition, ExprError> {
    parse(source)?.bind(params)
}

/// The language reference, as users and the AI strategy prompt read it.
pub const LANGUAGE: &str = include_str!("language.md");

/// The names of the series an expression can use: open, high, low, close, volume.
pub const SERIES_NAMES: [&str; 5] = bind::SERIES;

/// The names of the functions of the language, in documentation order.
pub fn function_names() -> Vec<&'static str> {
    bind::function_names()
}
