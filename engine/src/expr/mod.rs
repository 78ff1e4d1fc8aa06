//! The strategy expression language: entry and exit conditions such as
//! `cross_above(sma(close, fast), sma(close, slow)) and rsi(close, 14) < 70`.
//!
//! An expression is [`parse`]d (syntax only), then [bound](Ast::bind) to a set of parameters
//! (names, arity, types and integer periods are checked, parameters substituted), and the
//! resulting [`Condition`] is [evaluated](Condition::evaluate) over whole columns of
//! [`Bars`](crate::data::Bars) to one boolean per bar. [`compile`] does the first two steps.
//! Every error is an [`ExprError`] pointing at the column of the offending token.
//!
//! # Grammar
//!
//! From the lowest precedence to the highest:
//!
//! ```text
//! expr       := or
//! or         := and ("or" and)*
//! and        := not ("and" not)*
//! not        := "not" not | comparison
//! comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?   -- no chaining: a < b < c is an error
//! sum        := product (("+" | "-") product)*
//! product    := unary (("*" | "/") unary)*
//! unary      := "-" unary | primary
//! primary    := number | "true" | "false" | name | name "(" [expr ("," expr)*] ")" | "(" expr ")"
//! number     := digits ["." digits] [("e" | "E") ["+" | "-"] digits]     -- also ".5"
//! name       := (letter | "_") (letter | digit | "_")*
//! ```
//!
//! Binary operators are left-associative. `and`, `or`, `not`, `true` and `false` are keywords
//! (lowercase; there is no `&&`, `||` or `!`). A name is a series (`open`, `high`, `low`,
//! `close`, `volume`) or a parameter; [`Ast::parameters`] lists the parameters an expression
//! needs.
//!
//! # Types
//!
//! Every sub-expression is a *number* (a constant or a parameter, known when binding), a
//! *number series* or a *boolean series* (`true` and `false` are boolean series, the same on
//! every bar). Numbers broadcast against series. Arithmetic (`+ - * /`, unary `-`) and
//! comparisons take numbers or number series; `and`, `or`, `not` take boolean series; an entry
//! or exit expression must be a boolean series. Arithmetic on numbers alone is folded when
//! binding, so `sma(close, fast * 2)` is fine.
//!
//! # Functions
//!
//! | function | result |
//! |---|---|
//! | `sma`, `ema`, `wma`, `rsi`, `stdev`, `highest`, `lowest`, `roc`, `zscore` `(series, period)` | the indicator of that name |
//! | `macd(series, fast, slow, signal)` | the MACD line |
//! | `macd_signal(series, fast, slow, signal)`, `macd_hist(...)` | its signal line, its histogram |
//! | `bollinger_mid`, `bollinger_upper`, `bollinger_lower` `(series, period, k)` | a Bollinger band |
//! | `atr(period)` | average true range of the bars' high, low and close |
//! | `cross_above(a, b)`, `cross_below(a, b)` | boolean series; `a`, `b` numbers or number series |
//! | `shift(x, n)` | `x` (number or boolean series) `n` bars ago |
//! | `abs(x)`, `min(a, b)`, `max(a, b)` | elementwise |
//!
//! `series` is a number series (any numeric expression: `sma(close - open, 5)`). Periods and
//! `signal` must be numbers (constants or parameters, not series) that are positive integers;
//! `shift`'s `n` a non-negative integer; Bollinger's `k` any finite number.
//!
//! # Semantics
//!
//! Evaluation is vectorised: one pass over the columns per node.
//! - Arithmetic is elementwise IEEE: NaN propagates, division by zero gives ±inf or NaN.
//! - A comparison with a NaN operand is false, `!=` included (numpy gives true for `!=`).
//! - `cross_above(a, b)[t] = a[t] > b[t] and a[t-1] <= b[t-1]`; false at `t = 0` and whenever
//!   any of the four values is NaN. `cross_below(a, b)[t] = a[t] < b[t] and a[t-1] >= b[t-1]`.
//!   (These match vectorbt's crossed_above / crossed_below.)
//! - `shift(x, n)[t] = x[t-n]`, NaN (or false for a boolean series) for `t < n`; there are no
//!   negative shifts, so no look-ahead.
//! - `min` and `max` are NaN when either operand is NaN; `abs` keeps NaN.
//! - Indicators output NaN during their warm-up and skip leading NaN inputs (see
//!   [`indicators`](crate::indicators)).
//!
//! Each distinct sub-expression of a condition is evaluated once. Indicator columns are kept in
//! a [`SeriesCache`] keyed by their canonical form after substitution (`sma(close,10)`), so an
//! entry and an exit, or the conditions of many parameter sets, evaluated with one cache over
//! the same bars compute each distinct indicator once.
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

/// Parses an expression (syntax only; names and types are checked by [`Ast::bind`]).
pub fn parse(source: &str) -> Result<Ast, ExprError> {
    parser::parse(source)
}

/// Parses and binds an expression: the [`Condition`] to evaluate, or the first error.
pub fn compile(source: &str, params: &Params) -> Result<Condition, ExprError> {
    parse(source)?.bind(params)
}

/// The names of the series an expression can use: open, high, low, close, volume.
pub const SERIES_NAMES: [&str; 5] = bind::SERIES;

/// The names of the functions of the language, in documentation order.
pub fn function_names() -> Vec<&'static str> {
    bind::function_names()
}
