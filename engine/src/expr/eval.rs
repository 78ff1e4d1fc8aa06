//! Evaluation of a bound [`Condition`] over whole columns: one pass per node, children first.

use std::fmt;
use std::sync::Arc;

use super::ast::BinOp;
use super::bind::{nan_max, nan_min, not_equal};
use super::cache::SeriesCache;
use crate::data::Bars;
use crate::indicators;

/// Index of a node in a condition's graph.
pub(crate) type Id = usize;

/// A column of the bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl Field {
    /// The field a series name stands for.
    pub(crate) fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "open" => Field::Open,
            "high" => Field::High,
            "low" => Field::Low,
            "close" => Field::Close,
            "volume" => Field::Volume,
            _ => return None,
        })
    }

    fn column(self, bars: &Bars) -> &[f64] {
        match self {
            Field::Open => &bars.open,
            Field::High => &bars.high,
            Field::Low => &bars.low,
            Field::Close => &bars.close,
            Field::Volume => &bars.volume,
        }
    }
}

/// An indicator call with its integer arguments checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IndicatorCall {
    /// `f(series, period)`: sma, ema, wma, rsi, stdev, highest, lowest, roc, zscore.
    Window(fn(&[f64], usize) -> Vec<f64>, usize),
    Macd {
        fast: usize,
        slow: usize,
        signal: usize,
    },
    Bollinger {
        period: usize,
        k: f64,
    },
    /// Average true range over the bars' high, low and close.
    Atr(usize),
}

impl IndicatorCall {
    /// Columns one call computes and the cache keeps: three for MACD and Bollinger bands.
    pub(crate) fn columns(self) -> usize {
        match self {
            IndicatorCall::Window(..) | IndicatorCall::Atr(_) => 1,
            IndicatorCall::Macd { .. } | IndicatorCall::Bollinger { .. } => 3,
        }
    }

    /// Every output of the call, in the order `Op::Indicator::output` indexes them.
    fn compute(self, input: &[f64], bars: &Bars, n: usize) -> Vec<Vec<f64>> {
        match self {
            IndicatorCall::Window(f, period) => vec![f(input, period)],
            IndicatorCall::Macd { fast, slow, signal } => {
                let m = indicators::macd(input, fast, slow, signal);
                vec![m.line, m.signal, m.histogram]
            }
            IndicatorCall::Bollinger { period, k } => {
                let b = indicators::bollinger(input, period, k);
                vec![b.mid, b.upper, b.lower]
            }
            IndicatorCall::Atr(period) => {
                let high = fit(Field::High.column(bars), n);
                let low = fit(Field::Low.column(bars), n);
                let close = fit(Field::Close.column(bars), n);
                vec![indicators::atr(
                    high.as_slice(),
                    low.as_slice(),
                    close.as_slice(),
                    period,
                )]
            }
        }
    }
}

/// One node of the evaluation graph; its children have smaller ids.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// A constant or parameter (broadcast where a series is needed).
    Number(f64),
    /// `true` or `false`, broadcast to every bar.
    Flag(bool),
    Series(Field),
    Neg(Id),
    Not(Id),
    /// Arithmetic, comparison, `and` or `or`.
    Binary(BinOp, Id, Id),
    Indicator {
        call: IndicatorCall,
        /// The input series (none for atr, which reads the bars).
        input: Option<Id>,
        /// Which output of the call (MACD and Bollinger bands have three).
        output: usize,
        /// Key of the call in the [`SeriesCache`].
        cache_key: String,
    },
    Cross {
        above: bool,
        a: Id,
        b: Id,
    },
    Shift {
        x: Id,
        n: usize,
    },
    Abs(Id),
    Min(Id, Id),
    Max(Id, Id),
}

impl Op {
    fn children(&self) -> [Option<Id>; 2] {
        match *self {
            Op::Number(_) | Op::Flag(_) | Op::Series(_) => [None, None],
            Op::Neg(x) | Op::Not(x) | Op::Abs(x) | Op::Shift { x, .. } => [Some(x), None],
            Op::Indicator { input, .. } => [input, None],
            Op::Binary(_, a, b) | Op::Cross { a, b, .. } | Op::Min(a, b) | Op::Max(a, b) => {
                [Some(a), Some(b)]
            }
        }
    }
}

/// A bound, type-checked expression that evaluates to one boolean per bar.
///
/// Identical sub-expressions are one node, evaluated once per call of
/// [`evaluate`](Condition::evaluate); indicators are shared further through the
/// [`SeriesCache`]. `Display` prints the canonical form, e.g. `cross_above(sma(close,10),
/// sma(close,20))`.
#[derive(Debug, Clone)]
pub struct Condition {
    ops: Vec<Op>,
    root: Id,
    canonical: String,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// A numeric column, borrowed from the bars, shared with the cache or owned.
enum Numbers<'a> {
    Borrowed(&'a [f64]),
    Shared(Arc<Vec<f64>>),
    Owned(Vec<f64>),
}

impl Numbers<'_> {
    fn as_slice(&self) -> &[f64] {
        match self {
            Numbers::Borrowed(s) => s,
            Numbers::Shared(s) => s,
            Numbers::Owned(s) => s,
        }
    }
}

/// The value of a node during one evaluation.
enum Value<'a> {
    Number(f64),
    Numbers(Numbers<'a>),
    Flag(bool),
    Flags(Vec<bool>),
}

/// A numeric operand: one number for every bar, or a column.
#[derive(Clone, Copy)]
enum Num<'v> {
    Scalar(f64),
    Column(&'v [f64]),
}

/// A boolean operand: one flag for every bar, or a column.
#[derive(Clone, Copy)]
enum Flags<'v> {
    Scalar(bool),
    Column(&'v [bool]),
}

impl Value<'_> {
    fn num(&self) -> Num<'_> {
        match self {
            Value::Number(v) => Num::Scalar(*v),
            Value::Numbers(col) => Num::Column(col.as_slice()),
            // Binding rules out booleans where numbers are wanted.
            Value::Flag(_) | Value::Flags(_) => Num::Scalar(f64::NAN),
        }
    }

    fn flags(&self) -> Flags<'_> {
        match self {
            Value::Flag(b) => Flags::Scalar(*b),
            Value::Flags(col) => Flags::Column(col),
            Value::Number(_) | Value::Numbers(_) => Flags::Scalar(false),
        }
    }
}

impl Condition {
    pub(crate) fn new(ops: Vec<Op>, root: Id, canonical: String) -> Self {
        Condition {
            ops,
            root,
            canonical,
        }
    }

    /// One boolean per bar; indicators are taken from `cache` or computed and added to it.
    ///
    /// `cache` must only ever have been used with these same `bars`. The result has one value
    /// per bar: the length of the longest column of `bars` (columns of a valid `Bars` all have
    /// the same length; a shorter one would read as NaN past its end).
    pub fn evaluate(&self, bars: &Bars, cache: &SeriesCache) -> Vec<bool> {
        let (root, n) = self.run(bars, cache);
        match root {
            Some(Value::Flags(flags)) => flags,
            Some(Value::Flag(flag)) => vec![flag; n],
            // Binding guarantees a boolean root.
            _ => vec![false; n],
        }
    }

    /// The value of a condition that needs no bars: one on numbers and parameters only, such as
    /// `fast < slow` (folded when binding). `None` when it depends on a series.
    pub fn constant(&self) -> Option<bool> {
        match self.ops.get(self.root) {
            Some(Op::Flag(value)) => Some(*value),
            _ => None,
        }
    }

    /// The distinct indicator calls this condition computes, by their cache key (e.g.
    /// `sma(close,10)`), with the columns each keeps in the [`SeriesCache`] (three for MACD and
    /// Bollinger bands): what evaluating it adds to the cache.
    pub fn indicator_columns(&self) -> impl Iterator<Item = (&str, usize)> {
        let mut seen = std::collections::HashSet::new();
        self.ops.iter().filter_map(move |op| match op {
            Op::Indicator {
                call, cache_key, ..
            } if seen.insert(cache_key.as_str()) => Some((cache_key.as_str(), call.columns())),
            _ => None,
        })
    }

    /// Evaluates a numeric expression (bound with `bind_numeric`), for tests.
    #[cfg(test)]
    pub(crate) fn evaluate_numbers(&self, bars: &Bars, cache: &SeriesCache) -> Vec<f64> {
        let (root, n) = self.run(bars, cache);
        match root {
            Some(Value::Numbers(col)) => col.as_slice().to_vec(),
            Some(Value::Number(v)) => vec![v; n],
            _ => panic!("not a numeric expression: {self}"),
        }
    }

    /// Number of distinct nodes (sub-expressions) in the graph, for tests.
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        self.ops.len()
    }

    /// The root's value and the number of bars.
    fn run<'a>(&self, bars: &'a Bars, cache: &SeriesCache) -> (Option<Value<'a>>, usize) {
        let n = [
            bars.time.len(),
            bars.open.len(),
            bars.high.len(),
            bars.low.len(),
            bars.close.len(),
            bars.volume.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let count = self.ops.len();
        let mut slots: Vec<Option<Value>> = (0..count).map(|_| None).collect();

        // Parents have larger ids than their children, so one descending pass finds the nodes
        // the root needs; an indicator already in the cache does not need its input.
        let mut needed = vec![false; count];
        let mut uses = vec![0usize; count];
        needed[self.root] = true;
        for id in (0..count).rev() {
            if !needed[id] {
                continue;
            }
            if let Op::Indicator {
                output, cache_key, ..
            } = &self.ops[id]
            {
                if let Some(column) = cache.get(cache_key, *output) {
                    slots[id] = Some(Value::Numbers(fit_shared(column, n)));
                    continue;
                }
            }
            for child in self.ops[id].children().into_iter().flatten() {
                needed[child] = true;
                uses[child] += 1;
            }
        }

        // One ascending pass computes them; a column is dropped after its last use.
        for id in 0..count {
            if !needed[id] || slots[id].is_some() {
                continue;
            }
            let (done, rest) = slots.split_at_mut(id);
            let value = self.compute(&self.ops[id], done, bars, cache, n);
            rest[0] = Some(value);
            for child in self.ops[id].children().into_iter().flatten() {
                uses[child] -= 1;
                if uses[child] == 0 {
                    slots[child] = None;
                }
            }
        }
        (slots[self.root].take(), n)
    }

    /// The value of `op`, whose children are in `done`.
    fn compute<'a>(
        &self,
        op: &Op,
        done: &[Option<Value<'a>>],
        bars: &'a Bars,
        cache: &SeriesCache,
        n: usize,
    ) -> Value<'a> {
        let nan = Value::Number(f64::NAN);
        let get = |id: Id| done.get(id).and_then(Option::as_ref).unwrap_or(&nan);
        match op {
            Op::Number(v) => Value::Number(*v),
            Op::Flag(b) => Value::Flag(*b),
            Op::Series(field) => Value::Numbers(fit(field.column(bars), n)),
            Op::Neg(x) => Value::Numbers(Numbers::Owned(map_num(get(*x).num(), n, |v| -v))),
            Op::Abs(x) => Value::Numbers(Numbers::Owned(map_num(get(*x).num(), n, f64::abs))),
            Op::Not(x) => Value::Flags(match get(*x).flags() {
                Flags::Scalar(b) => vec![!b; n],
                Flags::Column(c) => c.iter().map(|b| !b).collect(),
            }),
            Op::Binary(op, a, b) => binary(*op, get(*a), get(*b), n),
            Op::Min(a, b) => Value::Numbers(Numbers::Owned(zip_num(
                get(*a).num(),
                get(*b).num(),
                n,
                nan_min,
            ))),
            Op::Max(a, b) => Value::Numbers(Numbers::Owned(zip_num(
                get(*a).num(),
                get(*b).num(),
                n,
                nan_max,
            ))),
            Op::Cross { above, a, b } => {
                let (a, b) = (get(*a).num(), get(*b).num());
                Value::Flags(if *above {
                    cross(a, b, n, |x, y| x > y, |x, y| x <= y)
                } else {
                    cross(a, b, n, |x, y| x < y, |x, y| x >= y)
                })
            }
            Op::Shift { x, n: by } => match get(*x) {
                Value::Flag(_) | Value::Flags(_) => {
                    Value::Flags(shift_flags(get(*x).flags(), *by, n))
                }
                other => Value::Numbers(Numbers::Owned(shift_num(other.num(), *by, n))),
            },
            Op::Indicator {
                call,
                input,
                output,
                cache_key,
            } => {
                let scalar_input;
                let source: &[f64] = match input.map(|id| get(id).num()) {
                    Some(Num::Column(c)) => c,
                    // Binding only lets number series in; a scalar is broadcast to be safe.
                    Some(Num::Scalar(v)) => {
                        scalar_input = vec![v; n];
                        &scalar_input
                    }
                    None => &[],
                };
                let column =
                    cache.get_or_compute(cache_key, *output, || call.compute(source, bars, n));
                match column {
                    Some(column) => Value::Numbers(fit_shared(column, n)),
                    None => Value::Numbers(Numbers::Owned(vec![f64::NAN; n])),
                }
            }
        }
    }
}

/// `column` as exactly `n` values: borrowed when it has them, else padded with NaN or cut.
fn fit(column: &[f64], n: usize) -> Numbers<'_> {
    if column.len() == n {
        Numbers::Borrowed(column)
    } else {
        Numbers::Owned(resized(column, n))
    }
}

/// Like [`fit`], for a column from the cache.
fn fit_shared<'a>(column: Arc<Vec<f64>>, n: usize) -> Numbers<'a> {
    if column.len() == n {
        Numbers::Shared(column)
    } else {
        Numbers::Owned(resized(&column, n))
    }
}

fn resized(column: &[f64], n: usize) -> Vec<f64> {
    let mut out: Vec<f64> = column.iter().copied().take(n).collect();
    out.resize(n, f64::NAN);
    out
}

/// Arithmetic, comparison, `and` or `or` of two operands.
fn binary<'a>(op: BinOp, a: &Value<'_>, b: &Value<'_>, n: usize) -> Value<'a> {
    let (x, y) = (a.num(), b.num());
    let owned = |column: Vec<f64>| Value::Numbers(Numbers::Owned(column));
    match op {
        BinOp::Add => owned(zip_num(x, y, n, |x, y| x + y)),
        BinOp::Sub => owned(zip_num(x, y, n, |x, y| x - y)),
        BinOp::Mul => owned(zip_num(x, y, n, |x, y| x * y)),
        BinOp::Div => owned(zip_num(x, y, n, |x, y| x / y)),
        BinOp::Lt => Value::Flags(zip_num(x, y, n, |x, y| x < y)),
        BinOp::Le => Value::Flags(zip_num(x, y, n, |x, y| x <= y)),
        BinOp::Gt => Value::Flags(zip_num(x, y, n, |x, y| x > y)),
        BinOp::Ge => Value::Flags(zip_num(x, y, n, |x, y| x >= y)),
        BinOp::Eq => Value::Flags(zip_num(x, y, n, |x, y| x == y)),
        // Unlike numpy, `!=` with a NaN operand is false too, like every other comparison.
        BinOp::Ne => Value::Flags(zip_num(x, y, n, not_equal)),
        BinOp::And => Value::Flags(zip_flags(a.flags(), b.flags(), n, |x, y| x & y)),
        BinOp::Or => Value::Flags(zip_flags(a.flags(), b.flags(), n, |x, y| x | y)),
    }
}

fn map_num(x: Num<'_>, n: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
    match x {
        Num::Scalar(v) => vec![f(v); n],
        Num::Column(c) => c.iter().map(|&v| f(v)).collect(),
    }
}

/// `f` elementwise over two numeric operands, broadcasting scalars.
fn zip_num<T: Clone>(a: Num<'_>, b: Num<'_>, n: usize, f: impl Fn(f64, f64) -> T) -> Vec<T> {
    match (a, b) {
        (Num::Scalar(x), Num::Scalar(y)) => vec![f(x, y); n],
        (Num::Column(x), Num::Scalar(y)) => x.iter().map(|&x| f(x, y)).collect(),
        (Num::Scalar(x), Num::Column(y)) => y.iter().map(|&y| f(x, y)).collect(),
        (Num::Column(x), Num::Column(y)) => x.iter().zip(y).map(|(&x, &y)| f(x, y)).collect(),
    }
}

/// `f` elementwise over two boolean operands, broadcasting scalars.
fn zip_flags(a: Flags<'_>, b: Flags<'_>, n: usize, f: impl Fn(bool, bool) -> bool) -> Vec<bool> {
    match (a, b) {
        (Flags::Scalar(x), Flags::Scalar(y)) => vec![f(x, y); n],
        (Flags::Column(x), Flags::Scalar(y)) => x.iter().map(|&x| f(x, y)).collect(),
        (Flags::Scalar(x), Flags::Column(y)) => y.iter().map(|&y| f(x, y)).collect(),
        (Flags::Column(x), Flags::Column(y)) => x.iter().zip(y).map(|(&x, &y)| f(x, y)).collect(),
    }
}

/// A numeric operand read bar by bar (a scalar reads the same at every bar).
trait Lane: Copy {
    fn at(self, t: usize) -> f64;
}

impl Lane for f64 {
    #[inline(always)]
    fn at(self, _: usize) -> f64 {
        self
    }
}

impl Lane for &[f64] {
    #[inline(always)]
    fn at(self, t: usize) -> f64 {
        self[t]
    }
}

/// `now(a[t], b[t]) && before(a[t-1], b[t-1])`, false at t = 0. Every comparison with a NaN is
/// false, so a NaN among the four values gives false.
fn cross(
    a: Num<'_>,
    b: Num<'_>,
    n: usize,
    now: impl Fn(f64, f64) -> bool,
    before: impl Fn(f64, f64) -> bool,
) -> Vec<bool> {
    fn kernel<A: Lane, B: Lane>(
        a: A,
        b: B,
        n: usize,
        now: impl Fn(f64, f64) -> bool,
        before: impl Fn(f64, f64) -> bool,
    ) -> Vec<bool> {
        let mut out = Vec::with_capacity(n);
        if n == 0 {
            return out;
        }
        out.push(false);
        out.extend((1..n).map(|t| now(a.at(t), b.at(t)) & before(a.at(t - 1), b.at(t - 1))));
        out
    }
    // Every column has exactly n values (see `fit`), so slicing to n never shortens a loop.
    let col = |c: &[f64]| -> usize { c.len().min(n) };
    match (a, b) {
        (Num::Scalar(x), Num::Scalar(y)) => kernel(x, y, n, now, before),
        (Num::Column(x), Num::Scalar(y)) => kernel(x, y, col(x), now, before),
        (Num::Scalar(x), Num::Column(y)) => kernel(x, y, col(y), now, before),
        // The common case (two indicators) without index checks in the loop.
        (Num::Column(x), Num::Column(y)) => {
            let mut out = Vec::with_capacity(n);
            if n > 0 {
                out.push(false);
            }
            out.extend(
                x.windows(2)
                    .zip(y.windows(2))
                    .map(|(x, y)| now(x[1], y[1]) & before(x[0], y[0])),
            );
            out
        }
    }
}

/// `x[t - by]`, NaN for `t < by`.
fn shift_num(x: Num<'_>, by: usize, n: usize) -> Vec<f64> {
    let lead = by.min(n);
    let mut out = vec![f64::NAN; lead];
    match x {
        Num::Scalar(v) => out.resize(n, v),
        Num::Column(c) => out.extend_from_slice(&c[..c.len().min(n - lead)]),
    }
    out
}

/// `x[t - by]`, false for `t < by`.
fn shift_flags(x: Flags<'_>, by: usize, n: usize) -> Vec<bool> {
    let lead = by.min(n);
    let mut out = vec![false; lead];
    match x {
        Flags::Scalar(v) => out.resize(n, v),
        Flags::Column(c) => out.extend_from_slice(&c[..c.len().min(n - lead)]),
    }
    out
}
