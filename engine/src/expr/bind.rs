//! Binding: resolves names against the series and the parameters, checks every call against the
//! function table (arity, argument kinds, integer periods) and the operand types, folds numbers,
//! and builds the evaluation graph of a [`Condition`], sharing identical sub-expressions.

use std::collections::HashMap;

use super::ast::{Ast, BinOp, Node, NodeKind};
use super::error::ExprError;
use super::eval::{Condition, Field, Id, IndicatorCall, Op};
use super::Params;
use crate::indicators;
use crate::limits::MAX_INDICATOR_COLUMNS;
use crate::suggest::did_you_mean;

/// The series an expression can name, in the order error messages list them.
pub(crate) const SERIES: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// Largest period or shift accepted (a guard against absurd values, not a data limit).
const MAX_PERIOD: f64 = 1e9;

/// Type of a bound sub-expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// A constant or a parameter; its value is known at bind time.
    Number,
    /// One number per bar.
    Numbers,
    /// One condition per bar (a constant `true`/`false` counts as one, broadcast).
    Bools,
}

impl Ty {
    fn describe(self) -> &'static str {
        match self {
            Ty::Number => "a number",
            Ty::Numbers => "a number series",
            Ty::Bools => "a boolean series",
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, Ty::Number | Ty::Numbers)
    }
}

/// What an argument of a function must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// A number series (the input of an indicator).
    Series,
    /// A number or a number series.
    Value,
    /// A number, a number series or a boolean series.
    Any,
    /// A number that is a positive integer.
    Period,
    /// A number that is a non-negative integer.
    Count,
    /// Any finite number.
    Real,
}

/// The built-in each function name stands for.
#[derive(Debug, Clone, Copy)]
enum Builtin {
    /// A one-series, one-period indicator.
    Window(fn(&[f64], usize) -> Vec<f64>),
    /// MACD; the output is 0 line, 1 signal, 2 histogram.
    Macd(usize),
    /// Bollinger bands; the output is 0 mid, 1 upper, 2 lower.
    Bollinger(usize),
    Atr,
    CrossAbove,
    CrossBelow,
    Shift,
    Abs,
    Min,
    Max,
}

/// One entry of the function table.
struct Function {
    name: &'static str,
    params: &'static [(&'static str, Arg)],
    builtin: Builtin,
}

const SERIES_PERIOD: &[(&str, Arg)] = &[("series", Arg::Series), ("period", Arg::Period)];
const MACD_ARGS: &[(&str, Arg)] = &[
    ("series", Arg::Series),
    ("fast", Arg::Period),
    ("slow", Arg::Period),
    ("signal", Arg::Period),
];
const BOLLINGER_ARGS: &[(&str, Arg)] = &[
    ("series", Arg::Series),
    ("period", Arg::Period),
    ("k", Arg::Real),
];
const TWO_VALUES: &[(&str, Arg)] = &[("a", Arg::Value), ("b", Arg::Value)];

/// Every function of the language, in the order error messages list them.
const FUNCTIONS: &[Function] = &[
    window("sma", indicators::sma),
    window("ema", indicators::ema),
    window("wma", indicators::wma),
    window("rsi", indicators::rsi),
    window("stdev", indicators::stdev),
    window("highest", indicators::highest),
    window("lowest", indicators::lowest),
    window("roc", indicators::roc),
    window("zscore", indicators::zscore),
    Function {
        name: "macd",
        params: MACD_ARGS,
        builtin: Builtin::Macd(0),
    },
    Function {
        name: "macd_signal",
        params: MACD_ARGS,
        builtin: Builtin::Macd(1),
    },
    Function {
        name: "macd_hist",
        params: MACD_ARGS,
        builtin: Builtin::Macd(2),
    },
    Function {
        name: "bollinger_mid",
        params: BOLLINGER_ARGS,
        builtin: Builtin::Bollinger(0),
    },
    Function {
        name: "bollinger_upper",
        params: BOLLINGER_ARGS,
        builtin: Builtin::Bollinger(1),
    },
    Function {
        name: "bollinger_lower",
        params: BOLLINGER_ARGS,
        builtin: Builtin::Bollinger(2),
    },
    Function {
        name: "atr",
        params: &[("period", Arg::Period)],
        builtin: Builtin::Atr,
    },
    Function {
        name: "cross_above",
        params: TWO_VALUES,
        builtin: Builtin::CrossAbove,
    },
    Function {
        name: "cross_below",
        params: TWO_VALUES,
        builtin: Builtin::CrossBelow,
    },
    Function {
        name: "shift",
        params: &[("x", Arg::Any), ("n", Arg::Count)],
        builtin: Builtin::Shift,
    },
    Function {
        name: "abs",
        params: &[("x", Arg::Value)],
        builtin: Builtin::Abs,
    },
    Function {
        name: "min",
        params: TWO_VALUES,
        builtin: Builtin::Min,
    },
    Function {
        name: "max",
        params: TWO_VALUES,
        builtin: Builtin::Max,
    },
];

const fn window(name: &'static str, f: fn(&[f64], usize) -> Vec<f64>) -> Function {
    Function {
        name,
        params: SERIES_PERIOD,
        builtin: Builtin::Window(f),
    }
}

impl Function {
    /// `sma(series, period)`.
    fn signature(&self) -> String {
        let names: Vec<&str> = self.params.iter().map(|(name, _)| *name).collect();
        format!("{}({})", self.name, names.join(", "))
    }
}

/// The names of all functions, for "expected one of" and "did you mean".
pub(crate) fn function_names() -> Vec<&'static str> {
    FUNCTIONS.iter().map(|f| f.name).collect()
}

impl Ast {
    /// Checks names, arity, types and integer periods against `params` and builds the
    /// evaluable [`Condition`]; the expression must be a condition (a boolean series).
    pub fn bind(&self, params: &Params) -> Result<Condition, ExprError> {
        let (condition, ty) = self.bind_any(params)?;
        if ty != Ty::Bools {
            return Err(ExprError::new(
                &self.source,
                self.root.column,
                format!(
                    "the expression must be a condition (a boolean series), found {}",
                    ty.describe()
                ),
            ));
        }
        Ok(condition)
    }

    /// Binds without requiring a boolean result (numeric roots are evaluated by tests).
    fn bind_any(&self, params: &Params) -> Result<(Condition, Ty), ExprError> {
        let mut binder = Binder {
            source: &self.source,
            params,
            ops: Vec::new(),
            keys: Vec::new(),
            ids: HashMap::new(),
            indicators: HashMap::new(),
        };
        let root = binder.bind(&self.root)?;
        let canonical = binder.keys[root.id].clone();
        Ok((Condition::new(binder.ops, root.id, canonical), root.ty))
    }

    /// Binds an expression of any type, for tests of numeric sub-expressions.
    #[cfg(test)]
    pub(crate) fn bind_numeric(&self, params: &Params) -> Result<Condition, ExprError> {
        Ok(self.bind_any(params)?.0)
    }
}

/// A bound sub-expression: its node in the graph and its type.
#[derive(Debug, Clone, Copy)]
struct Bound {
    id: Id,
    ty: Ty,
}

struct Binder<'a> {
    source: &'a str,
    params: &'a Params,
    /// The graph, children before parents.
    ops: Vec<Op>,
    /// Canonical form of each node, e.g. `sma(close,10)`.
    keys: Vec<String>,
    /// Canonical form to node, so that each distinct sub-expression is one node.
    ids: HashMap<String, Id>,
    /// Distinct indicator calls so far (cache keys) and the columns each computes.
    indicators: HashMap<String, usize>,
}

impl Binder<'_> {
    fn error(&self, column: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.source, column, message)
    }

    /// Adds `op` under its canonical form `key`, or returns the node already there.
    fn add(&mut self, key: String, op: Op, ty: Ty) -> Bound {
        if let Some(&id) = self.ids.get(&key) {
            return Bound { id, ty };
        }
        let id = self.ops.len();
        self.ops.push(op);
        self.ids.insert(key.clone(), id);
        self.keys.push(key);
        Bound { id, ty }
    }

    fn number(&mut self, value: f64) -> Bound {
        // -0 and 0 are the same key.
        let value = if value == 0.0 { 0.0 } else { value };
        self.add(format_number(value), Op::Number(value), Ty::Number)
    }

    fn flag(&mut self, value: bool) -> Bound {
        self.add(value.to_string(), Op::Flag(value), Ty::Bools)
    }

    /// The value of a node of type `Number`.
    fn value(&self, bound: Bound) -> Option<f64> {
        match self.ops[bound.id] {
            Op::Number(v) => Some(v),
            _ => None,
        }
    }

    fn flag_value(&self, bound: Bound) -> Option<bool> {
        match self.ops[bound.id] {
            Op::Flag(v) => Some(v),
            _ => None,
        }
    }

    fn bind(&mut self, node: &Node) -> Result<Bound, ExprError> {
        match &node.kind {
            NodeKind::Number(v) => Ok(self.number(*v)),
            NodeKind::Bool(b) => Ok(self.flag(*b)),
            NodeKind::Name(name) => self.name(name, node.column),
            NodeKind::Neg(x) => {
                let operand = self.bind(x)?;
                if !operand.ty.is_numeric() {
                    return Err(self.error(
                        x.start,
                        format!(
                            "'-' needs a number operand, found {}",
                            operand.ty.describe()
                        ),
                    ));
                }
                if let Some(v) = self.value(operand) {
                    return Ok(self.number(-v));
                }
                let key = format!("(-{})", self.keys[operand.id]);
                Ok(self.add(key, Op::Neg(operand.id), Ty::Numbers))
            }
            NodeKind::Not(x) => {
                let operand = self.bind(x)?;
                if operand.ty != Ty::Bools {
                    return Err(self.error(
                        x.start,
                        format!(
                            "'not' needs a boolean operand (a condition), found {}",
                            operand.ty.describe()
                        ),
                    ));
                }
                if let Some(b) = self.flag_value(operand) {
                    return Ok(self.flag(!b));
                }
                let key = format!("(not {})", self.keys[operand.id]);
                Ok(self.add(key, Op::Not(operand.id), Ty::Bools))
            }
            NodeKind::Binary(op, a, b) => self.binary(*op, a, b),
            NodeKind::Call { name, args, close } => self.call(node, name, args, *close),
        }
    }

    fn name(&mut self, name: &str, column: usize) -> Result<Bound, ExprError> {
        if let Some(field) = Field::from_name(name) {
            return Ok(self.add(name.to_string(), Op::Series(field), Ty::Numbers));
        }
        if let Some(&value) = self.params.get(name) {
            return Ok(self.number(value));
        }
        if let Some(function) = FUNCTIONS.iter().find(|f| f.name == name) {
            return Err(self.error(
                column,
                format!(
                    "'{name}' is a function; call it with its arguments: {}",
                    function.signature()
                ),
            ));
        }
        let param_names: Vec<&str> = self.params.keys().map(String::as_str).collect();
        let params = if param_names.is_empty() {
            "none given".to_string()
        } else {
            param_names.join(", ")
        };
        let candidates = SERIES.iter().copied().chain(param_names.iter().copied());
        Err(self.error(
            column,
            format!(
                "unknown name '{name}'; expected a series ({}) or a parameter ({params}){}",
                SERIES.join(", "),
                did_you_mean(name, candidates)
            ),
        ))
    }

    fn binary(&mut self, op: BinOp, a: &Node, b: &Node) -> Result<Bound, ExprError> {
        let lhs = self.bind(a)?;
        let rhs = self.bind(b)?;
        let (wanted, ok): (&str, fn(Ty) -> bool) = match op {
            BinOp::And | BinOp::Or => ("boolean operands", |t| t == Ty::Bools),
            _ => ("number operands", Ty::is_numeric),
        };
        for (operand, node) in [(lhs, a), (rhs, b)] {
            if !ok(operand.ty) {
                return Err(self.error(
                    node.start,
                    format!(
                        "'{}' needs {wanted}, found {}",
                        op.symbol(),
                        operand.ty.describe()
                    ),
                ));
            }
        }
        // Fold constants: numbers are known at bind time, and so are true/false.
        if let (Some(x), Some(y)) = (self.value(lhs), self.value(rhs)) {
            return Ok(match op {
                BinOp::Add => self.number(x + y),
                BinOp::Sub => self.number(x - y),
                BinOp::Mul => self.number(x * y),
                BinOp::Div => self.number(x / y),
                _ => self.flag(compare(op, x, y)),
            });
        }
        if let (Some(x), Some(y)) = (self.flag_value(lhs), self.flag_value(rhs)) {
            return Ok(self.flag(if op == BinOp::And { x && y } else { x || y }));
        }
        let ty = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => Ty::Numbers,
            _ => Ty::Bools,
        };
        let spaced = matches!(op, BinOp::And | BinOp::Or);
        let key = if spaced {
            format!(
                "({} {} {})",
                self.keys[lhs.id],
                op.symbol(),
                self.keys[rhs.id]
            )
        } else {
            format!(
                "({}{}{})",
                self.keys[lhs.id],
                op.symbol(),
                self.keys[rhs.id]
            )
        };
        Ok(self.add(key, Op::Binary(op, lhs.id, rhs.id), ty))
    }

    fn call(
        &mut self,
        node: &Node,
        name: &str,
        args: &[Node],
        close: usize,
    ) -> Result<Bound, ExprError> {
        let Some(function) = FUNCTIONS.iter().find(|f| f.name == name) else {
            return Err(self.unknown_function(name, node.column));
        };
        let arity = function.params.len();
        if args.len() != arity {
            let column = args.get(arity).map_or(close, |extra| extra.start);
            let names: Vec<&str> = function.params.iter().map(|(n, _)| *n).collect();
            return Err(self.error(
                column,
                format!(
                    "{name} takes {arity} argument{} ({}), got {}",
                    if arity == 1 { "" } else { "s" },
                    names.join(", "),
                    args.len()
                ),
            ));
        }
        // Bind and check every argument; integers are kept for the periods.
        let mut bound = Vec::with_capacity(arity);
        let mut ints = Vec::with_capacity(arity);
        for (arg, &(param, kind)) in args.iter().zip(function.params) {
            let b = self.bind(arg)?;
            let label = if param.len() == 1 {
                format!("{name}'s argument '{param}'")
            } else {
                format!("{name}'s {param}")
            };
            let found = b.ty.describe();
            let type_ok = match kind {
                Arg::Series => b.ty == Ty::Numbers,
                Arg::Value => b.ty.is_numeric(),
                Arg::Any => true,
                Arg::Period | Arg::Count | Arg::Real => b.ty == Ty::Number,
            };
            if !type_ok {
                let wanted = match kind {
                    Arg::Series => "a number series",
                    Arg::Value => "a number or a number series",
                    Arg::Any => "a number or a series",
                    Arg::Period | Arg::Count | Arg::Real => "a number",
                };
                let why = match kind {
                    Arg::Period | Arg::Count | Arg::Real => {
                        "; it must be a constant or a parameter, known before the run"
                    }
                    _ => "",
                };
                return Err(self.error(
                    arg.start,
                    format!("{label} must be {wanted}, found {found}{why}"),
                ));
            }
            let int = match (kind, self.value(b)) {
                (Arg::Period, Some(v)) => Some(self.integer(v, 1, &label, "a positive", arg)?),
                (Arg::Count, Some(v)) => Some(self.integer(v, 0, &label, "a non-negative", arg)?),
                (Arg::Real, Some(v)) if !v.is_finite() => {
                    return Err(self.error(
                        arg.start,
                        format!("{label} must be a finite number, got {}", format_number(v)),
                    ));
                }
                _ => None,
            };
            bound.push(b);
            ints.push(int.unwrap_or(0));
        }
        let key_of = |binder: &Self, i: usize| -> String {
            match binder.value(bound[i]) {
                Some(v) => format_number(v),
                None => binder.keys[bound[i].id].clone(),
            }
        };
        let all_keys: Vec<String> = (0..arity).map(|i| key_of(self, i)).collect();
        let key = format!("{name}({})", all_keys.join(","));
        let arg = |i: usize| bound[i].id;
        let (op, ty) = match function.builtin {
            Builtin::Window(f) => (
                indicator(
                    IndicatorCall::Window(f, ints[1]),
                    Some(arg(0)),
                    0,
                    key.clone(),
                ),
                Ty::Numbers,
            ),
            Builtin::Macd(output) => {
                let call = IndicatorCall::Macd {
                    fast: ints[1],
                    slow: ints[2],
                    signal: ints[3],
                };
                let cache_key = format!("macd({})", all_keys.join(","));
                (
                    indicator(call, Some(arg(0)), output, cache_key),
                    Ty::Numbers,
                )
            }
            Builtin::Bollinger(output) => {
                let k = self.value(bound[2]).unwrap_or(f64::NAN);
                let call = IndicatorCall::Bollinger { period: ints[1], k };
                let cache_key = format!("bollinger({})", all_keys.join(","));
                (
                    indicator(call, Some(arg(0)), output, cache_key),
                    Ty::Numbers,
                )
            }
            Builtin::Atr => (
                indicator(IndicatorCall::Atr(ints[0]), None, 0, key.clone()),
                Ty::Numbers,
            ),
            Builtin::CrossAbove | Builtin::CrossBelow => (
                Op::Cross {
                    above: matches!(function.builtin, Builtin::CrossAbove),
                    a: arg(0),
                    b: arg(1),
                },
                Ty::Bools,
            ),
            Builtin::Shift => {
                let ty = if bound[0].ty == Ty::Bools {
                    Ty::Bools
                } else {
                    Ty::Numbers
                };
                (
                    Op::Shift {
                        x: arg(0),
                        n: ints[1],
                    },
                    ty,
                )
            }
            Builtin::Abs => {
                if let Some(v) = self.value(bound[0]) {
                    return Ok(self.number(v.abs()));
                }
                (Op::Abs(arg(0)), Ty::Numbers)
            }
            Builtin::Min | Builtin::Max => {
                let is_min = matches!(function.builtin, Builtin::Min);
                if let (Some(x), Some(y)) = (self.value(bound[0]), self.value(bound[1])) {
                    return Ok(self.number(if is_min { nan_min(x, y) } else { nan_max(x, y) }));
                }
                let op = if is_min {
                    Op::Min(arg(0), arg(1))
                } else {
                    Op::Max(arg(0), arg(1))
                };
                (op, Ty::Numbers)
            }
        };
        if let Op::Indicator {
            call, cache_key, ..
        } = &op
        {
            self.count_columns(cache_key, call.columns(), node.column)?;
        }
        Ok(self.add(key, op, ty))
    }

    /// Counts a call's indicator columns once per distinct call (`cache_key`), refusing an
    /// expression whose calls hold more than [`MAX_INDICATOR_COLUMNS`] between them: the cache
    /// keeps every one for the whole job.
    fn count_columns(
        &mut self,
        cache_key: &str,
        columns: usize,
        column: usize,
    ) -> Result<(), ExprError> {
        if self.indicators.contains_key(cache_key) {
            return Ok(());
        }
        let total = self.indicators.values().sum::<usize>() + columns;
        if total > MAX_INDICATOR_COLUMNS {
            return Err(self.error(
                column,
                format!(
                    "too many indicators: {cache_key} would be indicator column {total}, more \
                     than the {MAX_INDICATOR_COLUMNS} distinct columns one strategy may compute"
                ),
            ));
        }
        self.indicators.insert(cache_key.to_owned(), columns);
        Ok(())
    }

    /// Checks that `v` is an integer of at least `min` (and at most [`MAX_PERIOD`]).
    fn integer(
        &self,
        v: f64,
        min: usize,
        label: &str,
        wanted: &str,
        arg: &Node,
    ) -> Result<usize, ExprError> {
        if v.fract() == 0.0 && v >= min as f64 && v <= MAX_PERIOD {
            return Ok(v as usize);
        }
        let message = if v.fract() == 0.0 && v > MAX_PERIOD {
            format!(
                "{label} is too large: {}; the limit is {}",
                format_number(v),
                format_number(MAX_PERIOD)
            )
        } else {
            format!("{label} must be {wanted} integer, got {}", format_number(v))
        };
        Err(self.error(arg.start, message))
    }

    fn unknown_function(&self, name: &str, column: usize) -> ExprError {
        let names = function_names();
        let message = if SERIES.contains(&name) {
            format!("'{name}' is a series, not a function; use it without parentheses")
        } else if self.params.contains_key(name) {
            format!("'{name}' is a parameter, not a function; use it without parentheses")
        } else {
            format!(
                "unknown function '{name}'; expected one of: {}{}",
                names.join(", "),
                did_you_mean(name, names.iter().copied())
            )
        };
        self.error(column, message)
    }
}

fn indicator(call: IndicatorCall, input: Option<Id>, output: usize, cache_key: String) -> Op {
    Op::Indicator {
        call,
        input,
        output,
        cache_key,
    }
}

/// `x op y` for a comparison, false when either is NaN (`!=` included).
fn compare(op: BinOp, x: f64, y: f64) -> bool {
    match op {
        BinOp::Lt => x < y,
        BinOp::Le => x <= y,
        BinOp::Gt => x > y,
        BinOp::Ge => x >= y,
        BinOp::Eq => x == y,
        BinOp::Ne => not_equal(x, y),
        _ => false,
    }
}

/// `x != y`, but false when either is NaN, like every other comparison of the language.
pub(crate) fn not_equal(x: f64, y: f64) -> bool {
    x != y && !x.is_nan() && !y.is_nan()
}

/// The smaller of two numbers, NaN if either is NaN.
pub(crate) fn nan_min(x: f64, y: f64) -> f64 {
    if x <= y {
        x
    } else if y < x {
        y
    } else {
        f64::NAN
    }
}

/// The larger of two numbers, NaN if either is NaN.
pub(crate) fn nan_max(x: f64, y: f64) -> f64 {
    if x >= y {
        x
    } else if y > x {
        y
    } else {
        f64::NAN
    }
}

/// A number as canonical forms and messages show it: `10`, `0.5`, `1e20`.
pub(crate) fn format_number(v: f64) -> String {
    if v.is_finite() && v != 0.0 && !(1e-6..1e9).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_short() {
        assert_eq!(format_number(10.0), "10");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(-3.0), "-3");
        assert_eq!(format_number(1e20), "1e20");
        assert_eq!(format_number(1e9), "1e9");
        assert_eq!(format_number(123_456_789.0), "123456789");
        assert_eq!(format_number(f64::NAN), "NaN");
    }
}
