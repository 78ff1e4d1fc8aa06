//! The expression language: parse any text, bind it with values for its parameters, and
//! evaluate what binds over a few bars.
#![no_main]

use engine::data::Bars;
use engine::expr::{parse, Params, SeriesCache};
use libfuzzer_sys::fuzz_target;

/// Parameter values to substitute, chosen by the first byte: ordinary periods and the edges
/// (zero, negative, fractional, huge, not a number).
const VALUES: [f64; 10] = [
    2.0,
    14.0,
    0.0,
    -1.0,
    0.5,
    1.0,
    1e9,
    f64::NAN,
    3.0,
    f64::INFINITY,
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, text)) = data.split_first() else {
        return;
    };
    let Ok(source) = std::str::from_utf8(text) else {
        return;
    };
    // Errors are shown to users with a caret under their column: rendering them is fuzzed too.
    let ast = match parse(source) {
        Ok(ast) => ast,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let params: Params = ast
        .parameters()
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, VALUES[(choice as usize + i) % VALUES.len()]))
        .collect();
    let condition = match ast.bind(&params) {
        Ok(condition) => condition,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let bars = bars(24);
    let signal = condition.evaluate(&bars, &SeriesCache::new());
    assert_eq!(signal.len(), bars.len());
});

/// `n` daily bars of a price that rises, falls and gaps, so crosses and comparisons flip.
fn bars(n: usize) -> Bars {
    let mut bars = Bars::with_capacity(n);
    for i in 0..n {
        let close = 100.0 + 10.0 * ((i as f64) * 0.7).sin() + (i % 5) as f64;
        let open = close - 1.0 + (i % 3) as f64;
        let high = open.max(close) + 0.5;
        let low = open.min(close) - 0.5;
        bars.push(
            i as i64 * 86_400_000_000_000,
            open,
            high,
            low,
            close,
            1000.0 + i as f64,
        );
    }
    bars
}
