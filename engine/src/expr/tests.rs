//! Tests of the expression language: parsing, every error, evaluation, indicators, the cache.

use super::*;
use crate::data::Bars;
use crate::indicators;

fn params(pairs: &[(&str, f64)]) -> Params {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn sma_params() -> Params {
    params(&[("fast", 10.0), ("slow", 20.0)])
}

/// The fully parenthesised form of a parsed expression.
fn tree(source: &str) -> String {
    match parse(source) {
        Ok(ast) => ast.to_string(),
        Err(e) => panic!("{source:?} should parse:\n{e}"),
    }
}

/// The error of compiling `source`, which must fail.
fn error(source: &str, params: &Params) -> ExprError {
    match compile(source, params) {
        Ok(c) => panic!("{source:?} should not compile, got {c}"),
        Err(e) => e,
    }
}

/// Asserts that `source` fails at `column` with a message containing every part of `parts`.
#[track_caller]
fn assert_error(source: &str, params: &Params, column: usize, parts: &[&str]) {
    let e = error(source, params);
    for part in parts {
        assert!(
            e.message.contains(part),
            "message of {source:?} lacks {part:?}:\n{e}"
        );
    }
    assert_eq!(e.column, column, "column of {source:?}:\n{e}");
    assert_eq!(e.source, source);
}

/// Bars with the given closes; open is the previous close, high/low 1 above/below.
fn bars_from_close(close: &[f64]) -> Bars {
    let n = close.len();
    let open: Vec<f64> = (0..n)
        .map(|i| if i == 0 { close[0] } else { close[i - 1] })
        .collect();
    Bars {
        time: (0..n as i64).collect(),
        open,
        high: close.iter().map(|c| c + 1.0).collect(),
        low: close.iter().map(|c| c - 1.0).collect(),
        close: close.to_vec(),
        volume: vec![100.0; n],
    }
}

/// A deterministic random walk of `n` bars with a consistent high and low.
fn walk(n: usize) -> Bars {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut price = 100.0;
    let mut close = Vec::with_capacity(n);
    let mut high = Vec::with_capacity(n);
    let mut low = Vec::with_capacity(n);
    for _ in 0..n {
        state = xorshift(state);
        price *= 1.0 + ((state % 2001) as f64 - 1000.0) / 50_000.0;
        close.push(price);
        high.push(price * (1.0 + (state % 7) as f64 / 1000.0));
        low.push(price * (1.0 - (state % 5) as f64 / 1000.0));
    }
    let mut bars = bars_from_close(&close);
    bars.high = high;
    bars.low = low;
    bars
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn eval(source: &str, params: &Params, bars: &Bars) -> Vec<bool> {
    compile(source, params)
        .unwrap_or_else(|e| panic!("{source:?}:\n{e}"))
        .evaluate(bars, &SeriesCache::new())
}

fn numbers(source: &str, params: &Params, bars: &Bars) -> Vec<f64> {
    parse(source)
        .and_then(|ast| ast.bind_numeric(params))
        .unwrap_or_else(|e| panic!("{source:?}:\n{e}"))
        .evaluate_numbers(bars, &SeriesCache::new())
}

/// Equal element by element, NaN equal to NaN.
#[track_caller]
fn assert_same(actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a.is_nan() && e.is_nan()) || a == e,
            "at {i}: {a} != {e}\nactual:   {actual:?}\nexpected: {expected:?}"
        );
    }
}

const T: bool = true;
const F: bool = false;
const NAN: f64 = f64::NAN;

// ---------------------------------------------------------------------------------------------
// Parsing

#[test]
fn parses_precedence_from_or_down_to_unary() {
    assert_eq!(tree("a or b and c"), "(a or (b and c))");
    assert_eq!(tree("a and b or c"), "((a and b) or c)");
    assert_eq!(tree("not a and b"), "((not a) and b)");
    assert_eq!(tree("not a < b"), "(not (a < b))");
    assert_eq!(tree("not not a"), "(not (not a))");
    assert_eq!(
        tree("a + b * c < d - e / f"),
        "((a + (b * c)) < (d - (e / f)))"
    );
    assert_eq!(tree("-a * b"), "((-a) * b)");
    assert_eq!(tree("- -a"), "(-(-a))");
    assert_eq!(tree("a * -b"), "(a * (-b))");
    assert_eq!(tree("(a + b) * c"), "((a + b) * c)");
    assert_eq!(
        tree("x > 1 and y < 2 or not z == 3"),
        "(((x > 1) and (y < 2)) or (not (z == 3)))"
    );
}

#[test]
fn binary_operators_associate_left() {
    assert_eq!(tree("a - b - c"), "((a - b) - c)");
    assert_eq!(tree("a / b / c"), "((a / b) / c)");
    assert_eq!(tree("a - b + c"), "((a - b) + c)");
    assert_eq!(tree("a or b or c"), "((a or b) or c)");
    assert_eq!(tree("a and b and c"), "((a and b) and c)");
}

#[test]
fn parses_numbers_calls_and_keywords() {
    assert_eq!(tree("10"), "10");
    assert_eq!(tree("0.5"), "0.5");
    assert_eq!(tree(".5"), "0.5");
    assert_eq!(tree("1e-3"), "0.001");
    assert_eq!(tree("2.5E+2"), "250");
    assert_eq!(tree("true or false"), "(true or false)");
    assert_eq!(
        tree("cross_above(sma(close, fast), sma(close, slow)) and rsi(close, 14) < 70"),
        "(cross_above(sma(close, fast), sma(close, slow)) and (rsi(close, 14) < 70))"
    );
    assert_eq!(tree("f()"), "f()");
    assert_eq!(tree("  \tclose\n>\r\n1 "), "(close > 1)");
}

#[test]
fn records_the_columns_of_tokens() {
    let ast = parse("x > 1 and  sma(close, 10) < 2").unwrap();
    let root = &ast.root;
    assert_eq!(root.column, 7); // 'and'
    let ast::NodeKind::Binary(_, lhs, rhs) = &root.kind else {
        panic!("not binary")
    };
    assert_eq!((lhs.start, lhs.column), (1, 3));
    assert_eq!((rhs.start, rhs.column), (12, 27));
    let ast::NodeKind::Binary(_, call, _) = &rhs.kind else {
        panic!("not binary")
    };
    assert_eq!(call.column, 12);
    let ast::NodeKind::Call { args, close, .. } = &call.kind else {
        panic!("not a call")
    };
    assert_eq!((args[0].start, args[1].start, *close), (16, 23, 25));
    // A parenthesised expression starts at its '('.
    let ast = parse("x and (a < b)").unwrap();
    let ast::NodeKind::Binary(_, _, rhs) = &ast.root.kind else {
        panic!("not binary")
    };
    assert_eq!((rhs.start, rhs.column), (7, 10));
}

#[test]
fn lists_parameters_but_not_series_or_functions() {
    let ast =
        parse("cross_above(sma(close, fast), sma(volume, slow)) and rsi(high, n) < limit").unwrap();
    let names: Vec<String> = ast.parameters().into_iter().collect();
    assert_eq!(names, ["fast", "limit", "n", "slow"]);
    assert!(parse("close > open").unwrap().parameters().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Errors: message and column

#[test]
fn error_display_shows_column_source_and_caret() {
    let e = error(
        "cross_above(smaa(close, fast), sma(close, slow))",
        &sma_params(),
    );
    assert_eq!(e.column, 13);
    let expected = "column 13: unknown function 'smaa'; expected one of: sma, ema, wma, rsi, \
                    stdev, highest, lowest, roc, zscore, macd, macd_signal, macd_hist, \
                    bollinger_mid, bollinger_upper, bollinger_lower, atr, cross_above, \
                    cross_below, shift, abs, min, max; did you mean 'sma'?\n  \
                    cross_above(smaa(close, fast), sma(close, slow))\n              ^";
    assert_eq!(e.to_string(), expected);
}

#[test]
fn error_caret_counts_characters_and_keeps_tabs() {
    let e = error("\té > 1", &Params::new());
    assert_eq!(e.column, 2);
    assert_eq!(e.to_string().lines().nth(2), Some("  \t^"));
    let e = error("close > 1 and\nx", &Params::new());
    assert_eq!(e.column, 15);
    assert_eq!(
        e.to_string().lines().skip(1).collect::<Vec<_>>(),
        ["  close > 1 and x", "                ^"]
    );
}

#[test]
fn unexpected_characters_name_the_fix() {
    let p = Params::new();
    assert_error(
        "close > 1 && close < 2",
        &p,
        11,
        &["unexpected character '&'", "'and'"],
    );
    assert_error(
        "close > 1 || close < 2",
        &p,
        11,
        &["unexpected character '|'", "'or'"],
    );
    assert_error(
        "!(close > 1)",
        &p,
        1,
        &["unexpected character '!'", "'not'"],
    );
    assert_error("close = 1", &p, 7, &["unexpected character '='", "'=='"]);
    assert_error(
        "close # 1",
        &p,
        7,
        &[
            "unexpected character '#'",
            "expected a number, a name, an operator",
        ],
    );
    assert_error(
        "close > 1.",
        &p,
        11,
        &["expected a digit after the decimal point"],
    );
    assert_error(
        "close > 1e+",
        &p,
        12,
        &["expected the digits of the exponent"],
    );
    assert_error("close > 1e999", &p, 9, &["number '1e999' is too large"]);
}

#[test]
fn unexpected_tokens_and_end_say_what_was_expected() {
    let p = Params::new();
    assert_error(
        "close >",
        &p,
        8,
        &[
            "unexpected end of expression",
            "expected a number, a name, a function call",
        ],
    );
    assert_error("", &p, 1, &["empty expression", "expected a condition"]);
    assert_error("   ", &p, 1, &["empty expression"]);
    assert_error(
        "close > > 1",
        &p,
        9,
        &["unexpected '>'", "expected a number"],
    );
    assert_error(
        "close > 1 open",
        &p,
        11,
        &[
            "unexpected name 'open'",
            "expected an operator",
            "end of the expression",
        ],
    );
    assert_error(
        "close > 1 AND open < 2",
        &p,
        11,
        &["keywords are lowercase: 'and'"],
    );
    assert_error("close > 1)", &p, 10, &["unexpected ')'", "no '(' to close"]);
    assert_error(
        "sma(close,) > 1",
        &p,
        11,
        &["unexpected ')'", "expected a number"],
    );
    assert_error(
        "sma(close 10) > 1",
        &p,
        11,
        &[
            "unexpected number 10",
            "expected ',' or ')' in the arguments of sma",
        ],
    );
}

#[test]
fn unclosed_parentheses_point_at_the_open_one() {
    let p = sma_params();
    assert_error(
        "(close > 1",
        &p,
        1,
        &["unclosed parenthesis", "expected ')'"],
    );
    assert_error(
        "close > 1 and (open < 2 or (high > 3)",
        &p,
        15,
        &["unclosed parenthesis"],
    );
    assert_error(
        "cross_above(sma(close, fast), sma(close, slow)",
        &p,
        12,
        &[
            "unclosed parenthesis",
            "cross_above(",
            "expected ',' or ')'",
        ],
    );
    assert_error(
        "(close > 1 open",
        &p,
        12,
        &[
            "unexpected name 'open'",
            "expected ')' to close the '(' at column 1",
        ],
    );
}

#[test]
fn chained_comparisons_are_refused_at_the_second_operator() {
    let p = params(&[("a", 1.0), ("b", 2.0)]);
    assert_error(
        "a < close < b",
        &p,
        11,
        &[
            "comparisons cannot be chained",
            "'<' follows '<'",
            "'a < b and b < c'",
        ],
    );
    assert_error(
        "close == 1 != b",
        &p,
        12,
        &["cannot be chained", "'!=' follows '=='"],
    );
    // Parenthesised, it is a comparison of a boolean: a type error instead.
    assert_error(
        "(a < close) < b",
        &p,
        1,
        &["'<' needs number operands, found a boolean series"],
    );
}

#[test]
fn unknown_functions_list_the_functions_and_suggest() {
    let p = sma_params();
    assert_error(
        "smaa(close, 10) > 1",
        &p,
        1,
        &[
            "unknown function 'smaa'",
            "expected one of: sma, ema,",
            "did you mean 'sma'?",
        ],
    );
    assert_error("close > SMA(close, 3)", &p, 9, &["did you mean 'sma'?"]);
    assert_error(
        "cross_abov(close, 1)",
        &p,
        1,
        &["did you mean 'cross_above'?"],
    );
    let e = error("frobnicate(close) > 1", &p);
    assert!(e
        .message
        .starts_with("unknown function 'frobnicate'; expected one of: sma"));
    assert!(!e.message.contains("did you mean"), "{e}");
    assert_error(
        "close(1) > 2",
        &p,
        1,
        &["'close' is a series, not a function"],
    );
    assert_error(
        "fast(1) > 2",
        &p,
        1,
        &["'fast' is a parameter, not a function"],
    );
}

#[test]
fn wrong_argument_counts_point_at_the_extra_argument_or_the_parenthesis() {
    let p = sma_params();
    assert_error(
        "sma(close, 10, 3) > 1",
        &p,
        16,
        &["sma takes 2 arguments (series, period), got 3"],
    );
    assert_error(
        "sma(close) > 1",
        &p,
        10,
        &["sma takes 2 arguments (series, period), got 1"],
    );
    assert_error("sma() > 1", &p, 5, &["got 0"]);
    assert_error(
        "atr(14, 2) > 1",
        &p,
        9,
        &["atr takes 1 argument (period), got 2"],
    );
    assert_error(
        "macd(close, 12, 26) > 0",
        &p,
        19,
        &["macd takes 4 arguments (series, fast, slow, signal), got 3"],
    );
    assert_error(
        "close > bollinger_upper(close, 20)",
        &p,
        34,
        &["bollinger_upper takes 3 arguments (series, period, k), got 2"],
    );
}

#[test]
fn unknown_names_list_series_and_parameters_and_suggest() {
    assert_error(
        "cross_above(sma(close, fsat), sma(close, slow))",
        &sma_params(),
        24,
        &[
            "unknown name 'fsat'; expected a series (open, high, low, close, volume) or a \
           parameter (fast, slow); did you mean 'fast'?",
        ],
    );
    assert_error(
        "clsoe > 1",
        &Params::new(),
        1,
        &["parameter (none given)", "did you mean 'close'?"],
    );
    assert_error(
        "close > sma",
        &Params::new(),
        9,
        &["'sma' is a function", "sma(series, period)"],
    );
}

#[test]
fn type_mismatches_name_what_was_found() {
    let p = sma_params();
    assert_error(
        "close and close > 1",
        &p,
        1,
        &["'and' needs boolean operands, found a number series"],
    );
    assert_error(
        "close > 1 or fast",
        &p,
        14,
        &["'or' needs boolean operands, found a number"],
    );
    assert_error(
        "not close",
        &p,
        5,
        &["'not' needs a boolean operand", "found a number series"],
    );
    assert_error(
        "-(close > 1) > 0",
        &p,
        2,
        &["'-' needs a number operand, found a boolean series"],
    );
    assert_error(
        "(close > 1) + 1 > 0",
        &p,
        1,
        &["'+' needs number operands, found a boolean series"],
    );
    assert_error(
        "sma(close, slow / close) > 1",
        &p,
        12,
        &[
            "sma's period must be a number, found a number series",
            "constant or a parameter",
        ],
    );
    assert_error(
        "sma(close > 1, 3) > 1",
        &p,
        5,
        &["sma's series must be a number series, found a boolean series"],
    );
    assert_error(
        "sma(fast, 3) > 1",
        &p,
        5,
        &["sma's series must be a number series, found a number"],
    );
    assert_error(
        "cross_above(close, close > 1)",
        &p,
        20,
        &["cross_above's argument 'b' must be a number or a number series, found a boolean series"],
    );
    assert_error(
        "abs(true) > 1",
        &p,
        5,
        &["abs's argument 'x' must be a number"],
    );
    assert_error(
        "shift(close > 1, close) ",
        &p,
        18,
        &["shift's argument 'n' must be a number, found a number series"],
    );
}

#[test]
fn the_result_must_be_a_condition() {
    let p = sma_params();
    assert_error(
        "sma(close, fast)",
        &p,
        1,
        &["must be a condition (a boolean series), found a number series"],
    );
    assert_error("close - open", &p, 7, &["found a number series"]);
    assert_error("fast", &p, 1, &["found a number"]);
    assert!(compile("true", &p).is_ok());
    assert!(compile("fast < slow", &p).is_ok());
}

#[test]
fn periods_must_be_positive_integers_at_bind_time() {
    let p = params(&[("fast", 2.5), ("zero", 0.0), ("ten", 10.0)]);
    assert_error(
        "sma(close, 2.5) > 1",
        &p,
        12,
        &["sma's period must be a positive integer, got 2.5"],
    );
    assert_error(
        "sma(close, fast) > 1",
        &p,
        12,
        &["sma's period must be a positive integer, got 2.5"],
    );
    assert_error(
        "ema(close, zero) > 1",
        &p,
        12,
        &["ema's period must be a positive integer, got 0"],
    );
    assert_error(
        "rsi(close, -14) > 1",
        &p,
        12,
        &["rsi's period must be a positive integer, got -14"],
    );
    assert_error(
        "atr(ten / 4) > 1",
        &p,
        5,
        &["atr's period must be a positive integer, got 2.5"],
    );
    assert_error(
        "macd(close, 12, 26, 0.5) > 0",
        &p,
        21,
        &["macd's signal must be a positive integer, got 0.5"],
    );
    assert_error(
        "sma(close, 1e12) > 1",
        &p,
        12,
        &["sma's period is too large: 1e12"],
    );
    assert_error(
        "shift(close, -1) > 1",
        &p,
        14,
        &["shift's argument 'n' must be a non-negative integer, got -1"],
    );
    assert_error(
        "close > bollinger_upper(close, 20, 1 / 0)",
        &p,
        36,
        &["bollinger_upper's argument 'k' must be a finite number, got inf"],
    );
    // Arithmetic on parameters is folded before the check.
    assert!(compile("sma(close, ten * 2) > sma(close, ten / 2)", &p).is_ok());
    assert!(compile("shift(close, 0) > 1", &p).is_ok());
    assert!(compile("close > bollinger_lower(close, 20, -0.5)", &p).is_ok());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let p = Params::new();
    // 300 levels, past the 200 allowed, in fewer bytes than an expression may have.
    let deep = format!("{}close{} > 1", "(".repeat(300), ")".repeat(300));
    let e = error(&deep, &p);
    assert!(e.message.contains("nested too deeply"), "{}", e.message);
    let minus = format!("{}close > 1", "-".repeat(300));
    assert!(error(&minus, &p).message.contains("nested too deeply"));
    let nots = format!("{}true", "not ".repeat(300));
    assert!(error(&nots, &p).message.contains("nested too deeply"));
    let calls = format!("{}close{} > 1", "abs(".repeat(300), ")".repeat(300));
    assert!(error(&calls, &p).message.contains("nested too deeply"));
    let chain = format!("close{} > 1", " + close".repeat(300));
    assert!(error(&chain, &p).message.contains("nested too deeply"));
    // Realistic depth is fine.
    let ok = format!("{}close{} > 1", "(".repeat(50), ")".repeat(50));
    assert!(compile(&ok, &p).is_ok());
}

#[test]
fn expressions_longer_than_the_limit_are_refused_before_parsing() {
    use crate::limits::MAX_EXPRESSION_BYTES;
    let p = Params::new();
    // A 100,000-level nesting is refused for its length, without recursing.
    let deep = format!("{}close{} > 1", "(".repeat(100_000), ")".repeat(100_000));
    let e = error(&deep, &p);
    assert_eq!(
        e.message,
        format!(
            "the expression is 200009 bytes long, more than the {MAX_EXPRESSION_BYTES} allowed"
        )
    );
    assert_eq!(e.column, MAX_EXPRESSION_BYTES + 1);
    // Exactly at the limit parses; columns count characters, not bytes.
    let padded = format!("close > 1{}", " ".repeat(MAX_EXPRESSION_BYTES - 9));
    assert!(compile(&padded, &p).is_ok());
    let wide = format!("close > 1 {}", "é".repeat(MAX_EXPRESSION_BYTES / 2));
    let e = error(&wide, &p);
    assert_eq!(
        e.column,
        10 + (MAX_EXPRESSION_BYTES - 10) / 2 + 1,
        "{}",
        e.message
    );
}

#[test]
fn distinct_indicator_columns_are_limited_at_bind_time() {
    use crate::limits::MAX_INDICATOR_COLUMNS;
    let p = Params::new();
    // A balanced max(...) tree of sma calls: as deep as it is wide in log2, few bytes each.
    fn tree_of(calls: &[String]) -> String {
        match calls {
            [one] => one.clone(),
            many => {
                let (a, b) = many.split_at(many.len() / 2);
                format!("max({},{})", tree_of(a), tree_of(b))
            }
        }
    }
    let calls = |n: usize| {
        (1..=n)
            .map(|i| format!("sma(close,{i})"))
            .collect::<Vec<_>>()
    };
    let at_limit = format!("{} > 0", tree_of(&calls(MAX_INDICATOR_COLUMNS)));
    assert!(at_limit.len() < crate::limits::MAX_EXPRESSION_BYTES);
    assert!(compile(&at_limit, &p).is_ok());
    let over = format!("{} > 0", tree_of(&calls(MAX_INDICATOR_COLUMNS + 1)));
    let e = error(&over, &p);
    assert_eq!(
        e.message,
        format!(
            "too many indicators: sma(close,{}) would be indicator column {}, more than the \
             {MAX_INDICATOR_COLUMNS} distinct columns one strategy may compute",
            MAX_INDICATOR_COLUMNS + 1,
            MAX_INDICATOR_COLUMNS + 1
        )
    );
    let column = over
        .find(&format!("sma(close,{})", MAX_INDICATOR_COLUMNS + 1))
        .unwrap()
        + 1;
    assert_eq!(e.column, column);
    // The same call again is the same column; MACD counts three.
    let repeated = format!("{} > 0", tree_of(&vec!["sma(close,5)".to_owned(); 300]));
    assert!(compile(&repeated, &p).is_ok());
    let macds: Vec<String> = (1..=86).map(|i| format!("macd(close,{i},30,9)")).collect();
    let e = error(&format!("{} > 0", tree_of(&macds)), &p);
    assert!(
        e.message.contains("would be indicator column 258"),
        "{}",
        e.message
    );
}

#[test]
fn garbled_input_never_panics() {
    let fragments = [
        "close",
        "open",
        "high",
        "low",
        "volume",
        "fast",
        "slow",
        "sma",
        "ema",
        "macd",
        "shift",
        "cross_above",
        "bollinger_upper",
        "atr",
        "abs",
        "min",
        "(",
        ")",
        ",",
        "+",
        "-",
        "*",
        "/",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "!=",
        "=",
        "!",
        "&&",
        "and",
        "or",
        "not",
        "true",
        "false",
        "0",
        "1",
        "2",
        "3",
        "14",
        "2.5",
        "1e-3",
        "1e",
        ".",
        "1e999",
        " ",
        "\t",
        "é",
        "日",
        "\"",
        "#",
        "_",
        "0.0",
        "-1",
        "1/0",
    ];
    let p = sma_params();
    let bars = walk(40);
    let cache = SeriesCache::new();
    let mut state = 42u64;
    let mut ok = 0;
    for _ in 0..20_000 {
        state = xorshift(state);
        let len = (state % 14) as usize;
        let mut source = String::new();
        for _ in 0..len {
            state = xorshift(state);
            source.push_str(fragments[(state % fragments.len() as u64) as usize]);
            if state & 0x100 != 0 {
                source.push(' ');
            }
        }
        match compile(&source, &p) {
            Ok(condition) => {
                ok += 1;
                assert_eq!(
                    condition.evaluate(&bars, &cache).len(),
                    bars.len(),
                    "{source}"
                );
            }
            Err(e) => {
                assert!(
                    e.column >= 1 && e.column <= source.chars().count() + 1,
                    "{e}"
                );
                let _ = e.to_string();
            }
        }
    }
    // Also raw random characters, including multi-byte ones.
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz_0123456789.+-*/<>=!(),& |eé日\n\t"
        .chars()
        .collect();
    for _ in 0..20_000 {
        state = xorshift(state);
        let len = (state % 30) as usize;
        let source: String = (0..len)
            .map(|_| {
                state = xorshift(state);
                alphabet[(state % alphabet.len() as u64) as usize]
            })
            .collect();
        if let Ok(condition) = compile(&source, &p) {
            assert_eq!(condition.evaluate(&bars, &cache).len(), bars.len());
        }
    }
    assert!(
        ok > 0,
        "the generator should produce some valid expressions"
    );
}

// ---------------------------------------------------------------------------------------------
// Evaluation

#[test]
fn arithmetic_is_elementwise_ieee() {
    let bars = bars_from_close(&[1.0, 2.0, NAN, 4.0, 0.0]);
    let p = params(&[("k", 3.0)]);
    assert_same(&numbers("close + 1", &p, &bars), &[2.0, 3.0, NAN, 5.0, 1.0]);
    assert_same(
        &numbers("close * k - 1", &p, &bars),
        &[2.0, 5.0, NAN, 11.0, -1.0],
    );
    assert_same(
        &numbers("close - open", &p, &bars),
        &[0.0, 1.0, NAN, NAN, -4.0],
    );
    assert_same(
        &numbers("-close", &p, &bars),
        &[-1.0, -2.0, NAN, -4.0, -0.0],
    );
    assert_same(
        &numbers("k / close", &p, &bars),
        &[3.0, 1.5, NAN, 0.75, f64::INFINITY],
    );
    assert_same(
        &numbers("close / close", &p, &bars),
        &[1.0, 1.0, NAN, 1.0, NAN],
    );
    assert_same(
        &numbers("-k / close", &p, &bars),
        &[-3.0, -1.5, NAN, -0.75, f64::NEG_INFINITY],
    );
    assert_same(&numbers("1 + 2 * 3 - k", &p, &bars), &[4.0; 5]);
    assert_same(&numbers("(1 + 2) * 3", &p, &bars), &[9.0; 5]);
}

#[test]
fn comparisons_with_nan_are_false() {
    let bars = bars_from_close(&[1.0, 2.0, NAN, 4.0]);
    let p = Params::new();
    assert_eq!(eval("close > 1.5", &p, &bars), [F, T, F, T]);
    assert_eq!(eval("close >= 2", &p, &bars), [F, T, F, T]);
    assert_eq!(eval("close < 2", &p, &bars), [T, F, F, F]);
    assert_eq!(eval("close <= 2", &p, &bars), [T, T, F, F]);
    assert_eq!(eval("close == 2", &p, &bars), [F, T, F, F]);
    assert_eq!(eval("close != 2", &p, &bars), [T, F, F, T]);
    assert_eq!(eval("close == close", &p, &bars), [T, T, F, T]);
    assert_eq!(eval("close != close", &p, &bars), [F, F, F, F]);
    assert_eq!(eval("2 < close", &p, &bars), [F, F, F, T]);
}

#[test]
fn and_or_not_combine_conditions() {
    let bars = bars_from_close(&[1.0, 2.0, 3.0, NAN, 5.0]);
    let p = Params::new();
    assert_eq!(eval("close > 1 and close < 5", &p, &bars), [F, T, T, F, F]);
    assert_eq!(eval("close < 2 or close > 4", &p, &bars), [T, F, F, F, T]);
    // not of a comparison with NaN is true, as in numpy (~(nan > 1)).
    assert_eq!(eval("not close > 2", &p, &bars), [T, T, F, T, F]);
    assert_eq!(
        eval("not (close > 2 or close < 2)", &p, &bars),
        [F, T, F, T, F]
    );
    assert_eq!(eval("true", &p, &bars), [T; 5]);
    assert_eq!(eval("false", &p, &bars), [F; 5]);
    assert_eq!(eval("true and close > 2", &p, &bars), [F, F, T, F, T]);
    assert_eq!(eval("false or close > 2", &p, &bars), [F, F, T, F, T]);
    assert_eq!(eval("not true or false", &p, &bars), [F; 5]);
    assert_eq!(eval("1 < 2", &p, &bars), [T; 5]);
}

#[test]
fn cross_above_follows_the_exact_rule() {
    // a against the constant 2: equal then above is a cross; NaN before or at t is not.
    let bars = bars_from_close(&[3.0, 2.0, 2.0, 3.0, 1.0, NAN, 3.0, 1.0, 2.5]);
    let p = Params::new();
    assert_eq!(
        eval("cross_above(close, 2)", &p, &bars),
        [F, F, F, T, F, F, F, F, T]
    );
    // Swapping the operands: b crosses above a.
    assert_eq!(
        eval("cross_above(2, close)", &p, &bars),
        [F, F, F, F, T, F, F, T, F]
    );
    // A cross at t = 0 is impossible; constants never cross.
    assert_eq!(eval("cross_above(close, 0)", &p, &bars), [F; 9]);
    assert_eq!(eval("cross_above(1, 0)", &p, &bars), [F; 9]);
}

#[test]
fn cross_below_follows_the_exact_rule() {
    let bars = bars_from_close(&[1.0, 2.0, 2.0, 1.0, 3.0, NAN, 1.0, 3.0, 1.5]);
    let p = Params::new();
    assert_eq!(
        eval("cross_below(close, 2)", &p, &bars),
        [F, F, F, T, F, F, F, F, T]
    );
}

#[test]
fn cross_of_two_series_with_nan_in_either() {
    let a = [1.0, 3.0, 2.0, 4.0, NAN, 5.0, 1.0, 6.0, 6.0];
    let b = [2.0, 2.0, 3.0, 3.0, 3.0, 4.0, NAN, 5.0, 6.0];
    let mut bars = bars_from_close(&a);
    bars.open = b.to_vec();
    let p = Params::new();
    assert_eq!(
        eval("cross_above(close, open)", &p, &bars),
        [F, T, F, T, F, F, F, F, F]
    );
    assert_eq!(
        eval("cross_below(close, open)", &p, &bars),
        [F, F, T, F, F, F, F, F, F]
    );
    // Against a reference loop of the rule itself.
    let reference: Vec<bool> = (0..a.len())
        .map(|t| t > 0 && a[t] > b[t] && a[t - 1] <= b[t - 1])
        .collect();
    assert_eq!(eval("cross_above(close, open)", &p, &bars), reference);
}

#[test]
fn shift_moves_numbers_and_conditions_forward() {
    let bars = bars_from_close(&[1.0, 2.0, NAN, 4.0, 5.0]);
    let p = params(&[("two", 2.0)]);
    assert_same(
        &numbers("shift(close, 2)", &p, &bars),
        &[NAN, NAN, 1.0, 2.0, NAN],
    );
    assert_same(
        &numbers("shift(close, 0)", &p, &bars),
        &[1.0, 2.0, NAN, 4.0, 5.0],
    );
    assert_same(&numbers("shift(close, 9)", &p, &bars), &[NAN; 5]);
    assert_same(
        &numbers("shift(two, 1)", &p, &bars),
        &[NAN, 2.0, 2.0, 2.0, 2.0],
    );
    assert_eq!(eval("shift(close > 1.5, two)", &p, &bars), [F, F, F, T, F]);
    assert_eq!(eval("shift(true, 1)", &p, &bars), [F, T, T, T, T]);
    assert_eq!(eval("shift(close > 0, 7)", &p, &bars), [F; 5]);
    assert_eq!(eval("close > shift(close, 1)", &p, &bars), [F, T, F, F, T]);
}

#[test]
fn abs_min_max_are_elementwise_and_keep_nan() {
    let bars = bars_from_close(&[-1.0, 2.0, NAN, -4.0]);
    let p = Params::new();
    assert_same(&numbers("abs(close)", &p, &bars), &[1.0, 2.0, NAN, 4.0]);
    assert_same(
        &numbers("min(close, 0)", &p, &bars),
        &[-1.0, 0.0, NAN, -4.0],
    );
    assert_same(&numbers("max(close, 0)", &p, &bars), &[0.0, 2.0, NAN, 0.0]);
    assert_same(&numbers("max(0, close)", &p, &bars), &[0.0, 2.0, NAN, 0.0]);
    assert_same(
        &numbers("min(close, open)", &p, &bars),
        &[-1.0, -1.0, NAN, NAN],
    );
    assert_same(&numbers("max(-3, abs(-2))", &p, &bars), &[2.0; 4]);
}

#[test]
fn every_indicator_function_calls_its_indicator_with_its_arguments_in_order() {
    let bars = walk(60);
    let c = &bars.close;
    let p = params(&[("n", 5.0)]);
    type Indicator = fn(&[f64], usize) -> Vec<f64>;
    let windows: [(&str, Indicator); 9] = [
        ("sma", indicators::sma),
        ("ema", indicators::ema),
        ("wma", indicators::wma),
        ("rsi", indicators::rsi),
        ("stdev", indicators::stdev),
        ("highest", indicators::highest),
        ("lowest", indicators::lowest),
        ("roc", indicators::roc),
        ("zscore", indicators::zscore),
    ];
    for (name, f) in windows {
        assert_same(&numbers(&format!("{name}(close, n)"), &p, &bars), &f(c, 5));
        assert_same(
            &numbers(&format!("{name}(high, 3)"), &p, &bars),
            &f(&bars.high, 3),
        );
    }
    let m = indicators::macd(c, 3, 8, 4);
    assert_same(&numbers("macd(close, 3, 8, 4)", &p, &bars), &m.line);
    assert_same(
        &numbers("macd_signal(close, 3, 8, 4)", &p, &bars),
        &m.signal,
    );
    assert_same(
        &numbers("macd_hist(close, 3, 8, 4)", &p, &bars),
        &m.histogram,
    );
    let b = indicators::bollinger(c, 7, 1.5);
    assert_same(&numbers("bollinger_mid(close, 7, 1.5)", &p, &bars), &b.mid);
    assert_same(
        &numbers("bollinger_upper(close, 7, 1.5)", &p, &bars),
        &b.upper,
    );
    assert_same(
        &numbers("bollinger_lower(close, 7, 1.5)", &p, &bars),
        &b.lower,
    );
    let atr = indicators::atr(&bars.high, &bars.low, c, 4);
    assert_same(&numbers("atr(4)", &p, &bars), &atr);
    // An expression as the input series, and an indicator of an indicator.
    let spread: Vec<f64> = c.iter().zip(&bars.open).map(|(c, o)| c - o).collect();
    assert_same(
        &numbers("sma(close - open, 4)", &p, &bars),
        &indicators::sma(&spread, 4),
    );
    let rsi = indicators::rsi(c, 6);
    assert_same(
        &numbers("ema(rsi(close, 6), 3)", &p, &bars),
        &indicators::ema(&rsi, 3),
    );
}

#[test]
fn sma_cross_matches_a_direct_computation() {
    let bars = walk(300);
    let fast = indicators::sma(&bars.close, 10);
    let slow = indicators::sma(&bars.close, 20);
    let expected: Vec<bool> = (0..bars.len())
        .map(|t| t > 0 && fast[t] > slow[t] && fast[t - 1] <= slow[t - 1])
        .collect();
    let entry = eval(
        "cross_above(sma(close, fast), sma(close, slow))",
        &sma_params(),
        &bars,
    );
    assert_eq!(entry, expected);
    assert!(
        entry.iter().any(|&x| x),
        "the walk should cross at least once"
    );
}

#[test]
fn empty_and_ragged_bars_do_not_panic() {
    let p = sma_params();
    let source = "cross_above(sma(close, fast), sma(close, slow)) and atr(3) > 0 or \
                  shift(close > open, 2) and max(high, low) > 0";
    let condition = compile(source, &p).unwrap();
    assert!(condition
        .evaluate(&Bars::default(), &SeriesCache::new())
        .is_empty());
    let mut ragged = walk(30);
    ragged.open.truncate(10);
    ragged.volume.clear();
    assert_eq!(condition.evaluate(&ragged, &SeriesCache::new()).len(), 30);
}

// ---------------------------------------------------------------------------------------------
// Sharing: within a condition, between conditions, between parameter sets

#[test]
fn identical_sub_expressions_are_one_node() {
    let p = sma_params();
    let once = compile("sma(close, fast) > 1", &p).unwrap();
    let twice = compile("sma(close, fast) > 1 and sma(close, 10) > 1", &p).unwrap();
    // close, 10, sma, 1, > ... and the second conjunct is the same node.
    assert_eq!(once.node_count(), 5);
    assert_eq!(twice.node_count(), 6);
    assert_eq!(
        twice.to_string(),
        "((sma(close,10)>1) and (sma(close,10)>1))"
    );
}

#[test]
fn entry_and_exit_share_each_sma_through_the_cache() {
    let p = sma_params();
    let entry = compile("cross_above(sma(close, fast), sma(close, slow))", &p).unwrap();
    let exit = compile("cross_below(sma(close, fast), sma(close, slow))", &p).unwrap();
    assert_eq!(
        entry.to_string(),
        "cross_above(sma(close,10),sma(close,20))"
    );
    let bars = walk(200);
    let cache = SeriesCache::new();
    assert!(cache.is_empty());
    let entries = entry.evaluate(&bars, &cache);
    assert_eq!(cache.len(), 2);
    let exits = exit.evaluate(&bars, &cache);
    assert_eq!(cache.keys(), ["sma(close,10)", "sma(close,20)"]);
    // The same results as without sharing.
    assert_eq!(entries, entry.evaluate(&bars, &SeriesCache::new()));
    assert_eq!(exits, exit.evaluate(&bars, &SeriesCache::new()));
    // A third condition adds only what is new.
    compile(
        "sma(close, 10) > sma(close, 20) and rsi(close, 14) < 70",
        &p,
    )
    .unwrap()
    .evaluate(&bars, &cache);
    assert_eq!(
        cache.keys(),
        ["rsi(close,14)", "sma(close,10)", "sma(close,20)"]
    );
}

#[test]
fn macd_and_bollinger_outputs_share_one_computation() {
    let bars = walk(100);
    let cache = SeriesCache::new();
    let p = Params::new();
    for source in [
        "macd(close, 12, 26, 9) > macd_signal(close, 12, 26, 9)",
        "macd_hist(close, 12, 26, 9) > 0",
        "close > bollinger_upper(close, 20, 2) or close < bollinger_lower(close, 20, 2.0)",
    ] {
        compile(source, &p).unwrap().evaluate(&bars, &cache);
    }
    assert_eq!(
        cache.keys(),
        ["bollinger(close,20,2)", "macd(close,12,26,9)"]
    );
}

#[test]
fn parameter_sets_binding_one_ast_share_indicators() {
    let ast = parse("cross_above(sma(close, fast), sma(close, slow))").unwrap();
    let bars = walk(500);
    let cache = SeriesCache::new();
    let sets = [(5.0, 20.0), (10.0, 20.0), (5.0, 30.0), (10.0, 30.0)];
    for (fast, slow) in sets {
        let p = params(&[("fast", fast), ("slow", slow)]);
        let shared = ast.bind(&p).unwrap().evaluate(&bars, &cache);
        let alone = ast.bind(&p).unwrap().evaluate(&bars, &SeriesCache::new());
        assert_eq!(shared, alone);
    }
    // Four distinct windows, not eight computations.
    assert_eq!(
        cache.keys(),
        [
            "sma(close,10)",
            "sma(close,20)",
            "sma(close,30)",
            "sma(close,5)"
        ]
    );
}

#[test]
fn one_cache_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SeriesCache>();
    assert_send_sync::<Condition>();
    assert_send_sync::<Ast>();

    let ast =
        parse("cross_above(ema(close, fast), sma(close, slow)) and rsi(close, 14) < 70").unwrap();
    let bars = walk(2_000);
    let cache = SeriesCache::new();
    let sets: Vec<Params> = (0..16)
        .map(|i| {
            params(&[
                ("fast", 5.0 + (i % 4) as f64),
                ("slow", 20.0 + (i / 4) as f64),
            ])
        })
        .collect();
    let results: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sets
            .iter()
            .map(|p| {
                let (ast, bars, cache) = (&ast, &bars, &cache);
                scope.spawn(move || ast.bind(p).unwrap().evaluate(bars, cache))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (p, shared) in sets.iter().zip(&results) {
        assert_eq!(
            *shared,
            ast.bind(p).unwrap().evaluate(&bars, &SeriesCache::new())
        );
    }
    // 4 emas + 4 smas + 1 rsi, each computed once whatever the interleaving.
    assert_eq!(cache.len(), 9);
}

#[test]
fn a_million_bars_evaluate_in_milliseconds() {
    let bars = walk(1_000_000);
    let p = sma_params();
    let entry = compile("cross_above(sma(close, fast), sma(close, slow))", &p).unwrap();
    let exit = compile("cross_below(sma(close, fast), sma(close, slow))", &p).unwrap();
    let cache = SeriesCache::new();
    let started = std::time::Instant::now();
    entry.evaluate(&bars, &cache);
    exit.evaluate(&bars, &cache);
    let cold = started.elapsed();
    let started = std::time::Instant::now();
    let entries = entry.evaluate(&bars, &cache);
    let exits = exit.evaluate(&bars, &cache);
    let warm = started.elapsed();
    eprintln!("1,000,000 bars, sma_cross entry + exit: {cold:?} with the smas, {warm:?} cached");
    assert_eq!((entries.len(), exits.len()), (1_000_000, 1_000_000));
    // Generous bound so a loaded CI machine does not fail; expect a few milliseconds.
    assert!(warm.as_millis() < 200, "took {warm:?}");
}

#[test]
fn conditions_on_numbers_alone_are_constant() {
    let p = params(&[("fast", 10.0), ("slow", 20.0)]);
    let constant = |source: &str| compile(source, &p).unwrap().constant();
    assert_eq!(constant("fast < slow"), Some(true));
    assert_eq!(constant("fast * 3 < slow or fast == 0"), Some(false));
    assert_eq!(constant("not (slow - fast >= 10)"), Some(false));
    assert_eq!(constant("true"), Some(true));
    assert_eq!(constant("close > fast"), None);
    assert_eq!(constant("abs(fast - slow) > 5"), Some(true));
    assert_eq!(constant("sma(close, fast) > slow"), None);
}
