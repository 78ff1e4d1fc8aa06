//! Strategy templates: named entry/exit expressions with default parameters.
//!
//! A template is data, nothing more: `--strategy sma_cross --param fast=5` is the same as
//! writing its expressions out with `fast = 5, slow = 20`.

/// A named strategy: entry and exit expressions and their default parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Template {
    /// The name users pass as `--strategy` or `strategy.template`.
    pub name: &'static str,
    /// One line for `strata strategies`.
    pub description: &'static str,
    /// Entry condition.
    pub entry: &'static str,
    /// Exit condition.
    pub exit: &'static str,
    /// Parameters and their defaults.
    pub params: &'static [(&'static str, f64)],
}

/// Every template Strata ships, in the order `strata strategies` lists them.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "sma_cross",
        description: "Trend following: the fast simple moving average crosses the slow one",
        entry: "cross_above(sma(close, fast), sma(close, slow))",
        exit: "cross_below(sma(close, fast), sma(close, slow))",
        params: &[("fast", 10.0), ("slow", 20.0)],
    },
    Template {
        name: "ema_cross",
        description: "Trend following: the fast exponential moving average crosses the slow one",
        entry: "cross_above(ema(close, fast), ema(close, slow))",
        exit: "cross_below(ema(close, fast), ema(close, slow))",
        params: &[("fast", 12.0), ("slow", 26.0)],
    },
    Template {
        name: "rsi_reversion",
        description: "Mean reversion: buy when RSI falls below `lower`, sell when it rises above `upper`",
        entry: "cross_below(rsi(close, period), lower)",
        exit: "cross_above(rsi(close, period), upper)",
        params: &[("period", 14.0), ("lower", 30.0), ("upper", 70.0)],
    },
    Template {
        name: "bollinger_reversion",
        description: "Mean reversion: buy a close below the lower band, sell back at the middle band",
        entry: "cross_below(close, bollinger_lower(close, period, k))",
        exit: "cross_above(close, bollinger_mid(close, period, k))",
        params: &[("period", 20.0), ("k", 2.0)],
    },
    Template {
        name: "macd_cross",
        description: "Momentum: the MACD line crosses its signal line",
        entry: "cross_above(macd(close, fast, slow, signal), macd_signal(close, fast, slow, signal))",
        exit: "cross_below(macd(close, fast, slow, signal), macd_signal(close, fast, slow, signal))",
        params: &[("fast", 12.0), ("slow", 26.0), ("signal", 9.0)],
    },
    Template {
        name: "donchian_breakout",
        description: "Breakout: close above the previous `entry_period`-bar high, exit below the `exit_period`-bar low",
        entry: "close > shift(highest(high, entry_period), 1)",
        exit: "close < shift(lowest(low, exit_period), 1)",
        params: &[("entry_period", 20.0), ("exit_period", 10.0)],
    },
    Template {
        name: "buy_and_hold",
        description: "Benchmark: enter on the first bar and hold to the end",
        entry: "true",
        exit: "false",
        params: &[],
    },
];

/// The template called `name`, if Strata has one.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// The template names, comma-separated, for error messages.
pub fn names() -> String {
    TEMPLATES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}
