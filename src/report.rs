//! Human-readable reports for the terminal.

use std::io::{self, Write};
use std::path::Path;

use engine::data::{format_time_short, Bars};
use engine::execution::Trade;
use engine::spec::Plan;
use engine::BacktestResult;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable report.
    Table,
    /// Exactly one JSON document on stdout.
    Json,
}

/// How many trades the table report lists (the JSON has them all).
const TRADES_SHOWN: usize = 10;

/// Prints a backtest: what ran, the metrics, and the last trades.
pub fn backtest(
    out: &mut impl Write,
    path: &Path,
    bars: &Bars,
    plan: &Plan,
    result: &BacktestResult,
) -> io::Result<()> {
    let s = &plan.strategy;
    let params: Vec<String> = s.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let name = s.template.clone().unwrap_or_else(|| "custom".to_owned());
    writeln!(out, "strategy   {name} ({})", params.join(", "))?;
    writeln!(out, "  entry    {}", s.entry)?;
    writeln!(out, "  exit     {}", s.exit)?;
    writeln!(
        out,
        "data       {}: {} bars, {} .. {}",
        path.display(),
        bars.len(),
        format_time_short(bars.time[0]),
        format_time_short(bars.time[bars.len() - 1])
    )?;
    let e = &plan.execution;
    writeln!(
        out,
        "execution  {}, fill {}, fees {}, fixed fee {}, slippage {} bps, cash {}, size {}",
        label(&e.direction),
        label(&e.fill),
        e.fees,
        e.fixed_fee,
        e.slippage_bps,
        e.initial_cash,
        e.size
    )?;
    writeln!(out)?;

    let m = &result.metrics;
    let pct = |x: f64| {
        if x.is_finite() {
            format!("{:.2} %", x * 100.0)
        } else {
            "-".to_owned()
        }
    };
    let num = |x: f64| {
        if x.is_finite() {
            format!("{x:.2}")
        } else {
            "-".to_owned()
        }
    };
    let rows = [
        ("final_equity", num(m.final_equity)),
        ("total_return", pct(m.total_return)),
        ("cagr", pct(m.cagr)),
        ("volatility", pct(m.volatility)),
        ("sharpe", num(m.sharpe)),
        ("sortino", num(m.sortino)),
        ("calmar", num(m.calmar)),
        ("max_drawdown", pct(m.max_drawdown)),
        (
            "max_drawdown_duration",
            format!("{} bars", m.max_drawdown_duration),
        ),
        ("trades", m.trades.to_string()),
        ("win_rate", pct(m.win_rate)),
        ("profit_factor", num(m.profit_factor)),
        ("expectancy", num(m.expectancy)),
        ("exposure", pct(m.exposure)),
        ("fees_paid", num(m.fees_paid)),
        ("bars", m.bars.to_string()),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<22} {value:>16}")?;
    }

    let trades = &result.trades;
    if !trades.is_empty() {
        let shown = trades.len().min(TRADES_SHOWN);
        writeln!(out)?;
        writeln!(out, "last {shown} of {} trades", trades.len())?;
        writeln!(
            out,
            "{:<6} {:<16} {:>12} {:<16} {:>12} {:>12} {:>9}  reason",
            "side", "entry", "price", "exit", "price", "pnl", "return"
        )?;
        for t in &trades[trades.len() - shown..] {
            trade_row(out, t)?;
        }
    }
    Ok(())
}

fn trade_row(out: &mut impl Write, t: &Trade) -> io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<16} {:>12.4} {:<16} {:>12.4} {:>12.2} {:>8.2}%  {}",
        label(&t.side),
        format_time_short(t.entry_time),
        t.entry_price,
        format_time_short(t.exit_time),
        t.exit_price,
        t.pnl,
        t.return_ * 100.0,
        label(&t.exit_reason),
    )
}

/// The snake_case name an enum value has in JSON (`long_short`, `stop_loss`), for tables.
fn label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
