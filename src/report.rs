//! Human-readable reports for the terminal.

use std::io::{self, Write};
use std::path::Path;

use engine::data::{format_time_short, Bars};
use engine::execution::{ExitReason, Trade};
use engine::spec::Plan;
use engine::{BacktestResult, PrecisionReport};

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable report.
    Table,
    /// Exactly one JSON document on stdout.
    Json,
}

/// Prints `value` on stdout as exactly one JSON document, or as the report `table` writes.
pub fn print<T: serde::Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match format {
        Format::Json => {
            serde_json::to_writer(&mut out, value)?;
            writeln!(out)?;
        }
        Format::Table => table(&mut out)?,
    }
    out.flush()
}

/// How many trades the table report lists (the JSON has them all).
const TRADES_SHOWN: usize = 10;

/// Prints a backtest: what ran, the metrics, and the last trades.
pub fn backtest(
    out: &mut dyn Write,
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
    if e.maintenance_margin > 0.0 {
        writeln!(out, "margin     maintenance {}", e.maintenance_margin)?;
    }
    writeln!(out, "precision  {}", precision_text(&result.precision))?;
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
    let liquidated = trades
        .last()
        .is_some_and(|t| t.exit_reason == ExitReason::Liquidation);
    if liquidated && m.final_equity == 0.0 {
        writeln!(out)?;
        writeln!(
            out,
            "bust: the last trade was liquidated with no equity left; nothing traded after it"
        )?;
    }
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

fn trade_row(out: &mut dyn Write, t: &Trade) -> io::Result<()> {
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

/// What a backtest's precision line says: `hybrid, seed 7, threshold 1.5, 3 bars simulated`.
fn precision_text(precision: &PrecisionReport) -> String {
    match precision {
        PrecisionReport::Bar => "bar".to_owned(),
        PrecisionReport::Hybrid {
            seed,
            threshold,
            simulated_bars,
        } => format!(
            "hybrid, seed {seed}, threshold {threshold}, {simulated_bars} {} simulated",
            if *simulated_bars == 1 { "bar" } else { "bars" }
        ),
        PrecisionReport::Tick(r) => {
            let ms = |ns: f64| ns / 1e6;
            let mut text = format!(
                "tick, {} events ({} trades, {} book updates), latency {} ms\n\
                 fills      {} from {} orders ({} market, {} limit); slippage vs the decision \
                 mid {:.2} bps mean, {:.2} p50, {:.2} p95; impact {:.2} bps",
                r.events,
                r.trades,
                r.book_updates,
                ms(r.latency_ns as f64),
                r.fill_count,
                r.orders,
                r.market_orders,
                r.limit_orders,
                r.slippage_bps.mean,
                r.slippage_bps.p50,
                r.slippage_bps.p95,
                r.market_impact_bps,
            );
            if r.limit_orders > 0 {
                text.push_str(&format!(
                    "\nlimits     {:.1} % filled, rested {:.1} ms mean, {:.1} ms p95",
                    r.limit_fill_ratio * 100.0,
                    ms(r.rested_mean_ns),
                    ms(r.rested_p95_ns),
                ));
            }
            if r.unfilled_quantity > 0.0 {
                text.push_str(&format!("; {} never filled", r.unfilled_quantity));
            }
            text
        }
    }
}

/// The snake_case name an enum value has in JSON (`long_short`, `stop_loss`), for tables.
fn label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The columns of a ranked table: the objective first, then the figures a quant scans.
fn ranked_columns(objective: &str) -> Vec<&str> {
    let mut columns = vec![objective];
    for name in [
        "total_return",
        "sharpe",
        "max_drawdown",
        "trades",
        "win_rate",
    ] {
        if name != objective {
            columns.push(name);
        }
    }
    columns
}

/// A metric as a table shows it: fractions as percents, counts as integers.
fn metric_cell(metrics: &engine::metrics::Metrics, name: &str) -> String {
    let Some(value) = metrics.get(name) else {
        return "-".to_owned();
    };
    if !value.is_finite() {
        return "-".to_owned();
    }
    match name {
        "total_return" | "cagr" | "volatility" | "max_drawdown" | "win_rate" | "exposure" => {
            format!("{:.2} %", value * 100.0)
        }
        "trades" | "bars" | "max_drawdown_duration" => format!("{value:.0}"),
        _ => format!("{value:.3}"),
    }
}

fn params_text(params: &engine::expr::Params) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ranked_table(
    out: &mut dyn Write,
    objective: &str,
    grid: &[&String],
    results: &[engine::sweep::SetResult],
) -> io::Result<()> {
    let columns = ranked_columns(objective);
    write!(out, "{:>4}", "rank")?;
    for name in grid {
        write!(out, " {name:>10}")?;
    }
    for name in &columns {
        write!(out, " {name:>13}")?;
    }
    writeln!(out)?;
    for (rank, set) in results.iter().enumerate() {
        write!(out, "{:>4}", rank + 1)?;
        for name in grid {
            let value = set
                .params
                .get(name.as_str())
                .map_or("-".to_owned(), |v| v.to_string());
            write!(out, " {value:>10}")?;
        }
        for name in &columns {
            write!(out, " {:>13}", metric_cell(&set.metrics, name))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Prints a sweep: what ran, the ranked sets, the best one and the heatmap.
pub fn sweep(
    out: &mut dyn Write,
    loaded: &crate::spec_args::Loaded,
    spec: &engine::sweep::SweepSpec,
    total: usize,
    result: &engine::sweep::SweepResult,
    heatmap: Option<&engine::sweep::Heatmap>,
) -> io::Result<()> {
    let bars = &loaded.bars;
    let strategy = loaded.plan.strategy.template.as_deref().unwrap_or("custom");
    let direction = if spec.minimize {
        "lowest first"
    } else {
        "highest first"
    };
    writeln!(
        out,
        "sweep      {strategy}: {total} parameter sets, ranked by {} ({direction})",
        spec.objective
    )?;
    if let Some(constraint) = &spec.constraint {
        writeln!(out, "  where    {constraint}")?;
    }
    if let Some(h) = &loaded.plan.execution.hybrid {
        writeln!(
            out,
            "precision  hybrid, seed {}, threshold {}",
            h.seed, h.threshold
        )?;
    }
    writeln!(
        out,
        "data       {}: {} bars, {} .. {}",
        loaded.path.display(),
        bars.len(),
        format_time_short(bars.time[0]),
        format_time_short(bars.time[bars.len() - 1])
    )?;
    writeln!(out)?;
    let grid: Vec<&String> = spec.grid.keys().collect();
    ranked_table(out, &spec.objective, &grid, &result.results)?;
    if let Some(best) = &result.best {
        writeln!(out)?;
        writeln!(
            out,
            "best       {}: {} {}",
            params_text(&best.params),
            spec.objective,
            metric_cell(&best.metrics, &spec.objective)
        )?;
    }
    if let Some(map) = heatmap {
        writeln!(out)?;
        writeln!(
            out,
            "{} by {} (rows) and {} (columns)",
            spec.objective, map.y, map.x
        )?;
        write!(out, "{:>10}", "")?;
        for x in &map.x_values {
            write!(out, " {x:>8}")?;
        }
        writeln!(out)?;
        for (y, row) in map.y_values.iter().zip(&map.values) {
            write!(out, "{y:>10}")?;
            for value in row {
                if value.is_finite() {
                    write!(out, " {value:>8.3}")?;
                } else {
                    write!(out, " {:>8}", "-")?;
                }
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Prints a walk-forward analysis: each window's choice and the stitched out-of-sample result.
pub fn walk_forward(
    out: &mut dyn Write,
    loaded: &crate::spec_args::Loaded,
    spec: &engine::sweep::SweepSpec,
    result: &engine::sweep::WalkForwardResult,
) -> io::Result<()> {
    let strategy = loaded.plan.strategy.template.as_deref().unwrap_or("custom");
    writeln!(
        out,
        "walk-forward  {strategy} on {}: {} windows, chosen by in-sample {}",
        loaded.path.display(),
        result.windows.len(),
        spec.objective
    )?;
    if let Some(h) = &loaded.plan.execution.hybrid {
        writeln!(
            out,
            "precision     hybrid, seed {}, threshold {}",
            h.seed, h.threshold
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:>3}  {:<27}  {:<27}  {:<24} {:>10} {:>12} {:>10}",
        "#", "in sample", "out of sample", "chosen", "in obj", "oos return", "oos sharpe"
    )?;
    for (i, w) in result.windows.iter().enumerate() {
        let span = |a: i64, b: i64| format!("{} .. {}", format_time_short(a), format_time_short(b));
        let objective = if w.in_sample_objective.is_finite() {
            format!("{:.3}", w.in_sample_objective)
        } else {
            "-".to_owned()
        };
        writeln!(
            out,
            "{:>3}  {:<27}  {:<27}  {:<24} {:>10} {:>12} {:>10}",
            i + 1,
            span(w.in_sample_start, w.in_sample_end),
            span(w.out_of_sample_start, w.out_of_sample_end),
            params_text(&w.params),
            objective,
            metric_cell(&w.out_of_sample, "total_return"),
            metric_cell(&w.out_of_sample, "sharpe"),
        )?;
    }
    let m = &result.out_of_sample.metrics;
    writeln!(out)?;
    writeln!(out, "stitched out-of-sample")?;
    for name in engine::metrics::METRIC_NAMES {
        writeln!(out, "{name:<22} {:>16}", metric_cell(m, name))?;
    }
    Ok(())
}
