//! `ai_analysis` jobs: the figures of a finished job that ground the analysis, the prompt that
//! carries them, and the reading of the model's reply.
//!
//! Strata computes every figure from the stored result document; the model only chooses which
//! to cite and what to say about them, and a citation keeps Strata's value, never the model's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use engine::metrics::quantile;
use serde::Deserialize;
use serde_json::{Map, Value};
use strata_core::job::JobKind;

use super::strategy::{json_object, ReplyError};

/// Named figures of one job's result, each a number (or a short string such as a date or a
/// parameter set): what the model may cite.
pub(crate) type Figures = BTreeMap<String, Value>;

/// A written analysis.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Analysis {
    /// The text, plain paragraphs (Markdown allowed).
    pub(crate) text: String,
    /// The figures the text cites, with their values as Strata computed them (never the
    /// model's own numbers).
    pub(crate) cited: Figures,
}

/// How many of the deepest drawdowns get figures of their own.
const DEEPEST_DRAWDOWNS: usize = 3;

/// Euler–Mascheroni constant, for the expected maximum of normal draws.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// The figures of a finished job's result: for a backtest its metrics, trade statistics and
/// worst drawdowns; for a sweep the spread of the objective over the sets and signs of
/// overfitting; `Err` names what is missing from the document.
pub(crate) fn figures(kind: JobKind, spec: &Value, result: &Value) -> Result<Figures, String> {
    let mut figures = Figures::new();
    match kind {
        JobKind::Backtest => backtest_figures(result, &mut figures)?,
        JobKind::WalkForward => walk_forward_figures(spec, result, &mut figures)?,
        JobKind::Sweep => sweep_figures(spec, result, &mut figures)?,
        other => {
            return Err(format!(
                "an analysis covers backtests, sweeps and walk-forwards, not {other} jobs"
            ))
        }
    }
    Ok(figures)
}

/// The system prompt: an analyst's brief, the reply's JSON shape, and that every number it
/// uses must be one of the figures, cited by name.
pub(crate) fn system_prompt() -> String {
    "You are an experienced quantitative reviewer. You write a short analysis of one finished \
     job of Strata, a backtester: a backtest (one strategy over one data set), a parameter sweep \
     (many parameter sets of one strategy, ranked by an objective metric), or a walk-forward \
     (the best set of each in-sample window run on the out-of-sample window after it).\n\n\
     # What to look at\n\n\
     - Risk before return: the depth, length and recovery of the deepest drawdowns \
     (drawdown_1_* is the deepest), volatility, and the Sharpe, Sortino and Calmar ratios.\n\
     - Trade statistics: how many trades there are (with few trades every ratio is unreliable), \
     the win rate against the payoff ratio, the best and worst trades, losing streaks, time \
     in the market (exposure), and what costs took (fees_paid).\n\
     - For a sweep: the spread of the objective over the sets (median, p10, p90, std), how far \
     the best stands above the median, and whether that is more than luck gives. \
     chance_best_objective is the best objective expected from luck alone among this many sets \
     with this spread; best_vs_chance is the best set's lead over the median divided by \
     chance's. Near or below 1, the best set is what selecting the luckiest of many would give, \
     and its figures overstate what to expect on new data; well above 1 it stands out, which \
     still needs enough trades to mean anything. Say whether the best set's neighbours in the \
     grid do nearly as well (a robust region) or much worse (an isolated peak).\n\
     - For a walk-forward: the gap between in-sample and out-of-sample objectives, the \
     walk-forward efficiency (out-of-sample mean over in-sample mean), the share of windows \
     with a positive out-of-sample return, and whether the chosen parameters keep changing.\n\n\
     # Conventions of the figures\n\n\
     Returns, drawdowns, rates, shares and exposure are fractions (0.12 is 12 %); max_drawdown \
     and drawdown depths are <= 0. Lengths and durations are in bars unless the name ends in \
     _days. Cash figures (final_equity, expectancy, fees_paid, average_win, \
     average_loss, *_pnl) are in the data's currency. \
     Annualised figures use the data's bars per year.\n\n\
     # Rules\n\n\
     - Be plain and specific, in a few short paragraphs: what the figures show, and what they \
     cannot show. No investment advice, no recommendation to trade, no forecast.\n\
     - Every number you write must be one of the figures you are given (you may write a \
     fraction as a percentage); compute no numbers of your own. List every figure you use, by \
     its exact name, in \"cites\".\n\
     - Reply with exactly one JSON object and nothing else:\n\n\
     {\"analysis\": \"text (paragraphs; may use Markdown)\", \"cites\": [\"figure_name\", ...]}\n\n\
     Any text outside the JSON object is ignored.\n"
        .to_owned()
}

/// The user message: the job's kind, strategy and data, and its figures.
pub(crate) fn first_message(kind: JobKind, spec: &Value, figures: &Figures) -> String {
    let kind = match kind {
        JobKind::WalkForward => "walk-forward".to_owned(),
        JobKind::Sweep => "parameter sweep".to_owned(),
        other => other.to_string(),
    };
    let mut message = format!("Job: {kind}\n");
    // Indexing a missing key gives null, whose fields are all missing too.
    let strategy = &spec["strategy"];
    if let Some(template) = strategy.get("template").and_then(Value::as_str) {
        let _ = writeln!(message, "Strategy: template {template}");
    }
    for field in ["entry", "exit"] {
        if let Some(source) = strategy.get(field).and_then(Value::as_str) {
            let _ = writeln!(message, "{}: {source}", capitalised(field));
        }
    }
    if let Some(params) = strategy.get("params").and_then(Value::as_object) {
        let _ = writeln!(message, "Parameters: {}", params_text(params));
    }
    let direction = spec.get("direction").and_then(Value::as_str);
    let _ = writeln!(message, "Direction: {}", direction.unwrap_or("long"));
    let data = &spec["data"];
    let mut described = Vec::new();
    for (key, label) in [
        ("dataset", "dataset"),
        ("timeframe", "timeframe"),
        ("start", "from"),
        ("end", "to"),
    ] {
        if let Some(value) = data.get(key).and_then(Value::as_str) {
            described.push(format!("{label} {value}"));
        }
    }
    if !described.is_empty() {
        let _ = writeln!(message, "Data: {}", described.join(", "));
    }
    for key in [
        "execution",
        "precision",
        "grid",
        "constraint",
        "samples",
        "walk_forward",
    ] {
        if let Some(value) = spec.get(key).filter(|v| !v.is_null()) {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            let _ = writeln!(message, "{}: {text}", capitalised(key).replace('_', " "));
        }
    }
    message.push_str("\nFigures:\n");
    for (name, value) in figures {
        let _ = writeln!(message, "{name} = {}", shown(value));
    }
    message
}

/// Reads a reply into an analysis whose citations are all among `figures`.
pub(crate) fn read_reply(reply: &str, figures: &Figures) -> Result<Analysis, ReplyError> {
    let again = "Reply with the corrected JSON only: {\"analysis\": \"...\", \"cites\": [...]}.";
    let Some(Value::Object(fields)) = json_object(reply) else {
        return Err(ReplyError::Repairable(format!(
            "Your reply was not a JSON object. {again}"
        )));
    };
    let text = fields
        .get("analysis")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| {
            ReplyError::Repairable(format!("Your reply has no \"analysis\" text. {again}"))
        })?;
    let names: Vec<String> = match fields.get("cites") {
        Some(Value::Array(cites)) => cites
            .iter()
            .map(|cite| {
                cite.as_str()
                    .map_or_else(|| cite.to_string(), |name| name.trim().to_owned())
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        return Err(ReplyError::Repairable(format!(
            "Your analysis cites no figures: cite the figures you use, by their exact names, in \
             \"cites\". {again}"
        )));
    }
    let unknown: Vec<&str> = names
        .iter()
        .filter(|name| !figures.contains_key(name.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let valid: Vec<&str> = figures.keys().map(String::as_str).collect();
        return Err(ReplyError::Repairable(format!(
            "These cites are not figures: {}. The figures are: {}. Use only their numbers, \
             cited by these names. {again}",
            unknown.join(", "),
            valid.join(", ")
        )));
    }
    let cited = names
        .into_iter()
        .map(|name| {
            let value = figures[&name].clone();
            (name, value)
        })
        .collect();
    Ok(Analysis {
        text: text.to_owned(),
        cited,
    })
}

// ---------------------------------------------------------------------------------------------
// Backtests
// ---------------------------------------------------------------------------------------------

/// A backtest document: `{"metrics": {...}, "trades": [...], "equity": {...}, ...}`.
fn backtest_figures(result: &Value, figures: &mut Figures) -> Result<(), String> {
    let metrics = result
        .get("metrics")
        .and_then(Value::as_object)
        .ok_or("the result has no metrics: it is not a backtest's")?;
    let trades = result
        .get("trades")
        .and_then(Value::as_array)
        .ok_or("the result has no trade list: it is not a backtest's")?;
    let equity = result
        .get("equity")
        .ok_or("the result has no equity curve: it is not a backtest's")?;
    copy_numbers(metrics, "", figures);
    trade_figures(trades, figures)?;
    let curve = Curve::read(equity)?;
    if let (Some(first), Some(last)) = (curve.time.first(), curve.time.last()) {
        put_text(figures, "first_bar", first.clone());
        put_text(figures, "last_bar", last.clone());
    }
    drawdown_figures(&curve, "", figures);
    if let Some(mode) = result.pointer("/precision/mode").and_then(Value::as_str) {
        put_text(figures, "precision", mode.to_owned());
    }
    Ok(())
}

/// One trade record of a backtest document (the fields the statistics use).
#[derive(Debug, Deserialize)]
struct TradeRecord {
    /// Net of fees, in cash; null when not finite.
    pnl: Option<f64>,
    /// `pnl` over the entry value.
    #[serde(rename = "return")]
    return_: Option<f64>,
    /// `signal`, `stop_loss`, `take_profit`, `liquidation` or `open`.
    exit_reason: String,
    entry_bar: Option<u64>,
    exit_bar: Option<u64>,
}

/// Trade statistics over the closed trades, in trade order (wins have `pnl > 0`, as for
/// `win_rate`; a trade of exactly zero is neither a win nor a loss and breaks a streak).
fn trade_figures(trades: &[Value], figures: &mut Figures) -> Result<(), String> {
    let mut records = Vec::with_capacity(trades.len());
    for (i, trade) in trades.iter().enumerate() {
        let record = TradeRecord::deserialize(trade)
            .map_err(|e| format!("trade {} of the result cannot be read: {e}", i + 1))?;
        records.push(record);
    }
    let (closed, open): (Vec<&TradeRecord>, Vec<&TradeRecord>) =
        records.iter().partition(|t| t.exit_reason != "open");
    put_count(figures, "closed_trades", closed.len());
    put_count(figures, "open_trades", open.len());
    for reason in ["signal", "stop_loss", "take_profit", "liquidation"] {
        let exits = closed.iter().filter(|t| t.exit_reason == reason).count();
        put_count(figures, &format!("{reason}_exits"), exits);
    }

    let pnl = |t: &&TradeRecord| t.pnl.unwrap_or(f64::NAN);
    let wins: Vec<&TradeRecord> = closed.iter().copied().filter(|t| pnl(t) > 0.0).collect();
    let losses: Vec<&TradeRecord> = closed.iter().copied().filter(|t| pnl(t) < 0.0).collect();
    put_count(figures, "winning_trades", wins.len());
    put_count(figures, "losing_trades", losses.len());
    let average_win = mean(wins.iter().map(pnl));
    let average_loss = mean(losses.iter().map(pnl));
    put(figures, "average_win", average_win);
    put(figures, "average_loss", average_loss);
    put(
        figures,
        "average_win_return",
        mean(wins.iter().map(|t| t.return_.unwrap_or(f64::NAN))),
    );
    put(
        figures,
        "average_loss_return",
        mean(losses.iter().map(|t| t.return_.unwrap_or(f64::NAN))),
    );
    put(figures, "payoff_ratio", average_win / average_loss.abs());

    let returns = closed.iter().filter_map(|t| t.return_);
    put(
        figures,
        "best_trade_return",
        returns.clone().fold(f64::NAN, f64::max),
    );
    put(
        figures,
        "worst_trade_return",
        returns.fold(f64::NAN, f64::min),
    );
    let pnls = closed.iter().filter_map(|t| t.pnl);
    put(
        figures,
        "best_trade_pnl",
        pnls.clone().fold(f64::NAN, f64::max),
    );
    put(figures, "worst_trade_pnl", pnls.fold(f64::NAN, f64::min));

    let (mut winning, mut losing, mut longest_winning, mut longest_losing) = (0, 0, 0, 0);
    for trade in &closed {
        let p = pnl(trade);
        winning = if p > 0.0 { winning + 1 } else { 0 };
        losing = if p < 0.0 { losing + 1 } else { 0 };
        longest_winning = longest_winning.max(winning);
        longest_losing = longest_losing.max(losing);
    }
    put_count(figures, "longest_winning_streak", longest_winning);
    put_count(figures, "longest_losing_streak", longest_losing);

    let held = closed
        .iter()
        .filter_map(|t| match (t.entry_bar, t.exit_bar) {
            (Some(entry), Some(exit)) => Some(exit.saturating_sub(entry) as f64),
            _ => None,
        });
    put(figures, "average_bars_held", mean(held));
    Ok(())
}

/// An equity curve of a document: times as written (RFC 3339) and values.
struct Curve {
    time: Vec<String>,
    value: Vec<f64>,
}

impl Curve {
    /// `{"time": [...], "value": [...], ...}`; a value that is not a number (JSON has no NaN)
    /// is read as NaN, and drawdowns are then left out rather than guessed.
    fn read(equity: &Value) -> Result<Curve, String> {
        let (Some(time), Some(value)) = (
            equity.get("time").and_then(Value::as_array),
            equity.get("value").and_then(Value::as_array),
        ) else {
            return Err("the result's equity curve has no time and value columns".to_owned());
        };
        if time.len() != value.len() {
            return Err(format!(
                "the result's equity curve has {} times for {} values",
                time.len(),
                value.len()
            ));
        }
        Ok(Curve {
            time: time
                .iter()
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
                .collect(),
            value: value
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::NAN))
                .collect(),
        })
    }
}

/// One fall of equity from a peak and, unless still under water at the end, its recovery.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Drawdown {
    /// Bar of the peak it fell from.
    peak: usize,
    /// Bar of the lowest equity before recovery.
    trough: usize,
    /// First bar back at or above the peak.
    recovery: Option<usize>,
    /// `trough / peak - 1`, `< 0`.
    depth: f64,
}

/// Every drawdown of `equity`, in time order. A new peak is a value at or above the running
/// peak, as for `max_drawdown`, so the deepest depth here equals that metric.
fn drawdowns(equity: &[f64]) -> Vec<Drawdown> {
    let mut found = Vec::new();
    let Some(&first) = equity.first() else {
        return found;
    };
    let (mut peak, mut peak_value) = (0, first);
    let mut trough: Option<usize> = None;
    for (i, &value) in equity.iter().enumerate().skip(1) {
        if value >= peak_value {
            if let Some(t) = trough.take() {
                found.push(Drawdown {
                    peak,
                    trough: t,
                    recovery: Some(i),
                    depth: equity[t] / peak_value - 1.0,
                });
            }
            (peak, peak_value) = (i, value);
        } else if trough.is_none_or(|t| value < equity[t]) {
            trough = Some(i);
        }
    }
    if let Some(t) = trough {
        found.push(Drawdown {
            peak,
            trough: t,
            recovery: None,
            depth: equity[t] / peak_value - 1.0,
        });
    }
    found
}

/// `drawdown_1_*` (the deepest) to `drawdown_3_*`: depth, the peak, trough and recovery bars'
/// times, bars spent below the peak, and calendar days from the peak to the recovery (or to
/// the last bar).
fn drawdown_figures(curve: &Curve, prefix: &str, figures: &mut Figures) {
    if curve.value.iter().any(|v| !v.is_finite()) {
        return;
    }
    let mut deepest = drawdowns(&curve.value);
    deepest.sort_by(|a, b| a.depth.total_cmp(&b.depth));
    let last = curve.value.len().saturating_sub(1);
    for (rank, drawdown) in deepest.iter().take(DEEPEST_DRAWDOWNS).enumerate() {
        let name = |what: &str| format!("{prefix}drawdown_{}_{what}", rank + 1);
        put(figures, &name("depth"), drawdown.depth);
        put_text(figures, &name("peak"), curve.time[drawdown.peak].clone());
        put_text(
            figures,
            &name("trough"),
            curve.time[drawdown.trough].clone(),
        );
        let recovery = match drawdown.recovery {
            Some(bar) => curve.time[bar].clone(),
            None => "not recovered".to_owned(),
        };
        put_text(figures, &name("recovery"), recovery);
        let under_water = match drawdown.recovery {
            Some(bar) => bar - drawdown.peak - 1,
            None => last - drawdown.peak,
        };
        put_count(figures, &name("bars"), under_water);
        let end = drawdown.recovery.unwrap_or(last);
        if let Some(days) = days_between(&curve.time[drawdown.peak], &curve.time[end]) {
            put(figures, &name("days"), days);
        }
    }
}

/// Calendar days between two RFC 3339 times, to a tenth of a day.
fn days_between(from: &str, to: &str) -> Option<f64> {
    let from = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let to = chrono::DateTime::parse_from_rfc3339(to).ok()?;
    let days = (to - from).num_seconds() as f64 / 86_400.0;
    Some((days * 10.0).round() / 10.0)
}

// ---------------------------------------------------------------------------------------------
// Sweeps
// ---------------------------------------------------------------------------------------------

/// The objective a sweep spec ranks by, and whether lower is better.
struct Objective {
    metric: String,
    minimize: bool,
}

impl Objective {
    fn of(spec: &Value) -> Objective {
        Objective {
            metric: spec.get("objective").and_then(Value::as_str).map_or_else(
                || engine::sweep::SweepSpec::default().objective,
                str::to_owned,
            ),
            minimize: spec
                .get("minimize")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// The objective in a metrics object; NaN when absent or null.
    fn value(&self, metrics: &Value) -> f64 {
        metrics
            .get(&self.metric)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    }

    /// +1 when higher is better, -1 when lower is: turns "better" into "larger".
    fn sign(&self) -> f64 {
        if self.minimize {
            -1.0
        } else {
            1.0
        }
    }

    fn put(&self, figures: &mut Figures) {
        put_text(figures, "objective", self.metric.clone());
        let ranking = if self.minimize {
            "lowest first"
        } else {
            "highest first"
        };
        put_text(figures, "objective_ranking", ranking.to_owned());
    }
}

/// One parameter set of a sweep document.
struct SetRow<'a> {
    params: BTreeMap<String, f64>,
    metrics: &'a Value,
    objective: f64,
}

/// A sweep document: `{"results": [{"params", "metrics"}, ...] ranked best first, "best"}`.
fn sweep_figures(spec: &Value, result: &Value, figures: &mut Figures) -> Result<(), String> {
    let results = result
        .get("results")
        .and_then(Value::as_array)
        .ok_or("the result has no parameter sets: it is not a sweep's")?;
    let objective = Objective::of(spec);
    let rows: Vec<SetRow> = results
        .iter()
        .map(|set| {
            let metrics = set.get("metrics").unwrap_or(&Value::Null);
            SetRow {
                params: numbers(set.get("params")),
                metrics,
                objective: objective.value(metrics),
            }
        })
        .collect();
    objective.put(figures);
    put_count(figures, "sets", rows.len());
    let Some(best) = rows.first() else {
        return Ok(());
    };

    let mut values: Vec<f64> = rows
        .iter()
        .map(|r| r.objective)
        .filter(|v| v.is_finite())
        .collect();
    values.sort_by(f64::total_cmp);
    put_count(figures, "sets_with_objective", values.len());
    let sign = objective.sign();
    let median = quantile(&values, 0.5);
    let std = sample_std(&values);
    put(figures, "objective_best", best.objective);
    put(figures, "objective_median", median);
    put(figures, "objective_mean", mean(values.iter().copied()));
    put(figures, "objective_std", std);
    put(figures, "objective_p10", quantile(&values, 0.1));
    put(figures, "objective_p90", quantile(&values, 0.9));
    let worst = if objective.minimize {
        values.last()
    } else {
        values.first()
    };
    put(
        figures,
        "objective_worst",
        worst.copied().unwrap_or(f64::NAN),
    );
    put(figures, "best_minus_median", best.objective - median);
    let share = |count: usize| count as f64 / rows.len() as f64;
    let positive = rows.iter().filter(|r| r.objective > 0.0).count();
    put(figures, "share_positive_objective", share(positive));
    let profitable = rows
        .iter()
        .filter(|r| r.metrics.get("total_return").and_then(Value::as_f64) > Some(0.0))
        .count();
    put(figures, "share_positive_return", share(profitable));

    // Selection bias: the best of N sets drawn from this spread would lead the median by about
    // std × E[max of N standard normals] even if no set were better than another.
    let luck = std * expected_max_of_normals(values.len());
    put(figures, "chance_best_objective", median + sign * luck);
    put(
        figures,
        "best_vs_chance",
        sign * (best.objective - median) / luck,
    );

    let best_params: Vec<String> = best
        .params
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    put_text(figures, "best_params", best_params.join(", "));
    for (name, &value) in &best.params {
        put(figures, &format!("best_param_{name}"), value);
    }
    if let Some(metrics) = best.metrics.as_object() {
        copy_numbers(metrics, "best_", figures);
    }
    neighbourhood_figures(&rows, best, &objective, figures);
    Ok(())
}

/// The best set's neighbours: sets one grid step away from it in exactly one parameter. A
/// robust optimum has neighbours that do nearly as well; an isolated peak is likely noise.
fn neighbourhood_figures(
    rows: &[SetRow],
    best: &SetRow,
    objective: &Objective,
    figures: &mut Figures,
) {
    // Each parameter's grid: its distinct values over the sets, ascending.
    let mut grid: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for row in rows {
        for (name, &value) in &row.params {
            grid.entry(name.as_str()).or_default().push(value);
        }
    }
    for values in grid.values_mut() {
        values.sort_by(f64::total_cmp);
        values.dedup();
    }
    let one_step = |name: &str, a: f64, b: f64| {
        let values = &grid[name];
        let position = |v: f64| values.iter().position(|&x| x == v);
        matches!((position(a), position(b)), (Some(i), Some(j)) if i.abs_diff(j) == 1)
    };
    let is_neighbour = |row: &SetRow| {
        if row.params.len() != best.params.len() {
            return false;
        }
        let mut differing = None;
        for (name, &value) in &row.params {
            let Some(&own) = best.params.get(name) else {
                return false;
            };
            if value != own {
                if differing.is_some() {
                    return false;
                }
                differing = Some((name.as_str(), own, value));
            }
        }
        differing.is_some_and(|(name, own, value)| one_step(name, own, value))
    };
    let values: Vec<f64> = rows
        .iter()
        .filter(|row| is_neighbour(row))
        .map(|row| row.objective)
        .collect();
    put_count(figures, "best_neighbours", values.len());
    let finite = values.iter().copied().filter(|v| v.is_finite());
    put(
        figures,
        "best_neighbours_mean_objective",
        mean(finite.clone()),
    );
    let worst = if objective.minimize {
        finite.fold(f64::NAN, f64::max)
    } else {
        finite.fold(f64::NAN, f64::min)
    };
    put(figures, "best_neighbours_worst_objective", worst);
}

// ---------------------------------------------------------------------------------------------
// Walk-forward
// ---------------------------------------------------------------------------------------------

/// A walk-forward document: `{"windows": [{"params", "in_sample_objective", "out_of_sample":
/// {metrics}}, ...], "out_of_sample": {"metrics", "equity"}, ...}`.
fn walk_forward_figures(spec: &Value, result: &Value, figures: &mut Figures) -> Result<(), String> {
    let windows = result
        .get("windows")
        .and_then(Value::as_array)
        .ok_or("the result's windows are not a list")?;
    let stitched = &result["out_of_sample"];
    let objective = Objective::of(spec);
    objective.put(figures);
    put_count(figures, "windows", windows.len());

    let in_sample: Vec<f64> = windows
        .iter()
        .map(|w| {
            w.get("in_sample_objective")
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN)
        })
        .collect();
    let out_of_sample: Vec<f64> = windows
        .iter()
        .map(|w| objective.value(w.get("out_of_sample").unwrap_or(&Value::Null)))
        .collect();
    let in_mean = mean(in_sample.iter().copied().filter(|v| v.is_finite()));
    let out_mean = mean(out_of_sample.iter().copied().filter(|v| v.is_finite()));
    put(figures, "in_sample_objective_mean", in_mean);
    put(figures, "out_of_sample_objective_mean", out_mean);
    put(figures, "in_vs_out_of_sample_gap", in_mean - out_mean);
    // The ratio reads as "share of the in-sample edge kept" only for a positive objective
    // where higher is better.
    if !objective.minimize && in_mean > 0.0 {
        put(figures, "walk_forward_efficiency", out_mean / in_mean);
    }
    if !windows.is_empty() {
        let positive = windows
            .iter()
            .filter(|w| {
                w.pointer("/out_of_sample/total_return")
                    .and_then(Value::as_f64)
                    > Some(0.0)
            })
            .count();
        put(
            figures,
            "share_windows_positive_return",
            positive as f64 / windows.len() as f64,
        );
    }
    let mut chosen: Vec<String> = windows
        .iter()
        .map(|w| w.get("params").map_or_else(String::new, Value::to_string))
        .collect();
    chosen.sort();
    chosen.dedup();
    put_count(figures, "distinct_chosen_sets", chosen.len());

    if let Some(metrics) = stitched.get("metrics").and_then(Value::as_object) {
        copy_numbers(metrics, "out_of_sample_", figures);
    }
    if let Some(equity) = stitched.get("equity") {
        drawdown_figures(&Curve::read(equity)?, "out_of_sample_", figures);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Statistics and helpers
// ---------------------------------------------------------------------------------------------

/// The expected maximum of `n` independent standard normal draws, by the approximation
/// `(1 - γ) Φ⁻¹(1 - 1/n) + γ Φ⁻¹(1 - 1/(n e))` of Bailey and López de Prado's deflated Sharpe
/// ratio. It is within 3 % of the exact value from 10 draws up (2.53 against 2.51 for 100),
/// where the classic `sqrt(2 ln n)` overstates it by a fifth or more (3.03 for 100), which would
/// make every sweep's best look like chance. NaN for fewer than two draws.
fn expected_max_of_normals(n: usize) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    let n = n as f64;
    (1.0 - EULER_GAMMA) * normal_quantile(1.0 - 1.0 / n)
        + EULER_GAMMA * normal_quantile(1.0 - 1.0 / (n * std::f64::consts::E))
}

/// The standard normal quantile `Φ⁻¹(p)` for `0 < p < 1`, by Acklam's rational approximation
/// (relative error below 1.2e-9).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const TAIL: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    if p < TAIL {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - TAIL {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The sample standard deviation (divided by n - 1); NaN below two values.
fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return f64::NAN;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// The mean; NaN when there are no values.
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(sum, count), v| (sum + v, count + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// The numeric fields of an object (a parameter set), by name.
fn numbers(object: Option<&Value>) -> BTreeMap<String, f64> {
    object
        .and_then(Value::as_object)
        .map(|fields| {
            fields
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every finite number of `object` as a figure named `prefix` + its key; nulls (a metric with
/// no meaningful value) are left out.
fn copy_numbers(object: &Map<String, Value>, prefix: &str, figures: &mut Figures) {
    for (name, value) in object {
        if value.as_f64().is_some_and(f64::is_finite) {
            figures.insert(format!("{prefix}{name}"), value.clone());
        }
    }
}

/// A number figure, left out when it is not finite (no data for it).
fn put(figures: &mut Figures, name: &str, value: f64) {
    if value.is_finite() {
        figures.insert(name.to_owned(), Value::from(value));
    }
}

fn put_count(figures: &mut Figures, name: &str, count: usize) {
    figures.insert(name.to_owned(), Value::from(count as u64));
}

fn put_text(figures: &mut Figures, name: &str, text: String) {
    figures.insert(name.to_owned(), Value::String(text));
}

/// A figure as the model reads it: numbers to six significant digits, text as it is.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) if number.is_f64() => {
            let v = number.as_f64().unwrap_or(f64::NAN);
            let magnitude = if v == 0.0 {
                0
            } else {
                v.abs().log10().floor() as i32
            };
            let decimals = (5 - magnitude).clamp(0, 12) as usize;
            let text = format!("{v:.decimals$}");
            if text.contains('.') {
                text.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                text
            }
        }
        other => other.to_string(),
    }
}

/// Parameters as `fast = 10, slow = 20`.
fn params_text(params: &Map<String, Value>) -> String {
    params
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use engine::data::synthetic::random_walk;
    use engine::sweep::{run_sweep, run_walk_forward, Control, WalkForwardSpec};
    use serde_json::json;
    use strata_core::job::{parse_backtest, parse_sweep};

    use super::*;

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    }

    /// A backtest run as the worker runs it, stored and read back as the worker stores it.
    fn backtest_document(spec: &Value) -> Value {
        let plan = parse_backtest(spec).unwrap().plan().unwrap();
        let bars = random_walk(5_000, 11);
        let result = engine::run_backtest(&bars, &plan.compiled, &plan.execution, None);
        serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap()
    }

    /// A sweep run as `jobs::sweep` runs it, stored and read back.
    fn sweep_document(spec: &Value) -> Value {
        let (backtest, sweep) = parse_sweep(spec).unwrap();
        let plan = backtest.plan_sweep().unwrap();
        let sets = sweep.parameter_sets(&plan.strategy).unwrap();
        let bars = random_walk(5_000, 11);
        let result = run_sweep(
            &bars,
            &plan.strategy,
            &sets,
            &plan.execution,
            plan.periods_per_year,
            &sweep,
            &pool(),
            &Control::default(),
        )
        .unwrap();
        serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap()
    }

    fn sweep_spec() -> Value {
        json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"template": "sma_cross"},
            "grid": {"fast": [5, 10, 15, 20, 25], "slow": [40, 60, 80, 100]},
            "objective": "sharpe"
        })
    }

    fn number(figures: &Figures, name: &str) -> f64 {
        figures
            .get(name)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("no figure {name}"))
    }

    fn text<'a>(figures: &'a Figures, name: &str) -> &'a str {
        figures
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no figure {name}"))
    }

    fn repairable(result: Result<Analysis, ReplyError>) -> String {
        match result {
            Err(ReplyError::Repairable(message)) => message,
            other => panic!("expected a repairable error, got {other:?}"),
        }
    }

    #[test]
    fn drawdowns_and_trade_statistics_by_hand() {
        let time: Vec<String> = (1..=9).map(|d| format!("2024-01-0{d}T00:00:00Z")).collect();
        let trade = |pnl: f64, ret: f64, reason: &str, entry: u64, exit: u64| {
            json!({"pnl": pnl, "return": ret, "exit_reason": reason, "entry_bar": entry,
                   "exit_bar": exit, "side": "long"})
        };
        let document = json!({
            "metrics": {"sharpe": 1.25, "max_drawdown": -0.25, "win_rate": null, "trades": 7},
            "trades": [
                trade(10.0, 0.10, "signal", 0, 2),
                trade(-5.0, -0.05, "stop_loss", 3, 4),
                trade(-3.0, -0.03, "signal", 4, 8),
                trade(8.0, 0.08, "take_profit", 8, 10),
                trade(-2.0, -0.02, "signal", 11, 12),
                trade(0.0, 0.0, "signal", 12, 13),
                trade(-1.0, -0.01, "open", 13, 20),
            ],
            "equity": {"time": time, "value": [100, 110, 99, 105, 120, 90, 95, 130, 125]},
            "precision": {"mode": "bar"}
        });
        let figures = figures(JobKind::Backtest, &json!({}), &document).unwrap();
        assert_eq!(number(&figures, "sharpe"), 1.25);
        assert_eq!(number(&figures, "trades"), 7.0);
        assert!(
            !figures.contains_key("win_rate"),
            "null metrics are left out"
        );
        assert_eq!(text(&figures, "precision"), "bar");

        assert_eq!(number(&figures, "closed_trades"), 6.0);
        assert_eq!(number(&figures, "open_trades"), 1.0);
        assert_eq!(number(&figures, "winning_trades"), 2.0);
        assert_eq!(number(&figures, "losing_trades"), 3.0);
        assert_eq!(number(&figures, "average_win"), 9.0);
        assert!((number(&figures, "average_loss") + 10.0 / 3.0).abs() < 1e-12);
        assert!((number(&figures, "payoff_ratio") - 2.7).abs() < 1e-12);
        assert!((number(&figures, "average_win_return") - 0.09).abs() < 1e-12);
        assert_eq!(number(&figures, "best_trade_pnl"), 10.0);
        assert_eq!(number(&figures, "worst_trade_return"), -0.05);
        assert_eq!(number(&figures, "longest_losing_streak"), 2.0);
        assert_eq!(number(&figures, "longest_winning_streak"), 1.0);
        // (2 + 1 + 4 + 2 + 1 + 1) bars over six closed trades.
        assert!((number(&figures, "average_bars_held") - 11.0 / 6.0).abs() < 1e-12);
        assert_eq!(number(&figures, "stop_loss_exits"), 1.0);
        assert_eq!(number(&figures, "take_profit_exits"), 1.0);
        assert_eq!(number(&figures, "signal_exits"), 4.0);
        assert_eq!(number(&figures, "liquidation_exits"), 0.0);

        // Equity 100 110 99 105 120 90 95 130 125: falls of 110 -> 99 (bars 1..4), 120 -> 90
        // (bars 4..7) and 130 -> 125 (from bar 7, not recovered), deepest first.
        assert_eq!(number(&figures, "drawdown_1_depth"), 90.0 / 120.0 - 1.0);
        assert_eq!(text(&figures, "drawdown_1_peak"), "2024-01-05T00:00:00Z");
        assert_eq!(text(&figures, "drawdown_1_trough"), "2024-01-06T00:00:00Z");
        assert_eq!(
            text(&figures, "drawdown_1_recovery"),
            "2024-01-08T00:00:00Z"
        );
        assert_eq!(number(&figures, "drawdown_1_bars"), 2.0);
        assert_eq!(number(&figures, "drawdown_1_days"), 3.0);
        assert_eq!(number(&figures, "drawdown_2_depth"), 99.0 / 110.0 - 1.0);
        assert_eq!(text(&figures, "drawdown_2_peak"), "2024-01-02T00:00:00Z");
        assert_eq!(number(&figures, "drawdown_2_bars"), 2.0);
        assert_eq!(number(&figures, "drawdown_3_depth"), 125.0 / 130.0 - 1.0);
        assert_eq!(text(&figures, "drawdown_3_recovery"), "not recovered");
        assert_eq!(number(&figures, "drawdown_3_bars"), 1.0);
        assert_eq!(number(&figures, "drawdown_3_days"), 1.0);
        assert_eq!(text(&figures, "first_bar"), "2024-01-01T00:00:00Z");
        assert_eq!(text(&figures, "last_bar"), "2024-01-09T00:00:00Z");
        assert!(figures
            .values()
            .all(|v| v.is_string() || v.as_f64().is_some_and(f64::is_finite)));
    }

    #[test]
    fn figures_of_a_real_backtest() {
        let spec = json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"template": "sma_cross", "params": {"fast": 20, "slow": 100}},
            "execution": {"stop_loss": 0.01, "fees": 0.0005}
        });
        let document = backtest_document(&spec);
        let metrics = &document["metrics"];
        let figures = figures(JobKind::Backtest, &spec, &document).unwrap();
        for name in engine::metrics::METRIC_NAMES {
            if metrics[name].is_number() {
                assert_eq!(figures[name], metrics[name], "{name}");
            }
        }
        assert!(number(&figures, "trades") > 10.0);
        // The deepest drawdown is the max_drawdown metric, found the same way.
        let deepest = number(&figures, "drawdown_1_depth");
        assert!((deepest - number(&figures, "max_drawdown")).abs() < 1e-12);
        assert!(number(&figures, "drawdown_2_depth") >= deepest);
        // Trade statistics agree with the trade list and the metrics.
        let trades = document["trades"].as_array().unwrap();
        assert_eq!(
            number(&figures, "closed_trades") + number(&figures, "open_trades"),
            trades.len() as f64
        );
        let winners = number(&figures, "winning_trades");
        assert!(
            (winners / number(&figures, "closed_trades") - number(&figures, "win_rate")).abs()
                < 1e-12
        );
        assert!(number(&figures, "stop_loss_exits") > 0.0);
        let closed_pnl: Vec<f64> = trades
            .iter()
            .filter(|t| t["exit_reason"] != "open")
            .map(|t| t["pnl"].as_f64().unwrap())
            .collect();
        let worst = closed_pnl.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(number(&figures, "worst_trade_pnl"), worst);

        let message = first_message(JobKind::Backtest, &spec, &figures);
        assert!(
            message.contains("Strategy: template sma_cross"),
            "{message}"
        );
        assert!(
            message.contains("Parameters: fast = 20, slow = 100"),
            "{message}"
        );
        assert!(message.contains("Data: dataset GOOG"), "{message}");
        assert!(message.contains("\ndrawdown_1_peak = "), "{message}");
        assert!(message.contains(&format!("\nsharpe = {}", shown(&figures["sharpe"]))));
    }

    #[test]
    fn figures_of_a_real_sweep() {
        let spec = sweep_spec();
        let document = sweep_document(&spec);
        let figures = figures(JobKind::Sweep, &spec, &document).unwrap();
        assert_eq!(text(&figures, "objective"), "sharpe");
        assert_eq!(text(&figures, "objective_ranking"), "highest first");
        assert_eq!(number(&figures, "sets"), 20.0);

        let mut sharpes: Vec<f64> = document["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["metrics"]["sharpe"].as_f64().unwrap())
            .collect();
        sharpes.sort_by(f64::total_cmp);
        let median = (sharpes[9] + sharpes[10]) / 2.0;
        assert_eq!(number(&figures, "objective_best"), sharpes[19]);
        assert_eq!(number(&figures, "objective_worst"), sharpes[0]);
        assert!((number(&figures, "objective_median") - median).abs() < 1e-12);
        // numpy's linear p10 of 20 values: rank 1.9.
        let p10 = sharpes[1] + 0.9 * (sharpes[2] - sharpes[1]);
        assert!((number(&figures, "objective_p10") - p10).abs() < 1e-12);
        assert!(number(&figures, "objective_std") > 0.0);
        assert!((number(&figures, "best_minus_median") - (sharpes[19] - median)).abs() < 1e-12);

        let luck = number(&figures, "objective_std") * expected_max_of_normals(20);
        assert!((number(&figures, "chance_best_objective") - (median + luck)).abs() < 1e-12);
        assert!((number(&figures, "best_vs_chance") - (sharpes[19] - median) / luck).abs() < 1e-12);
        let share = number(&figures, "share_positive_objective");
        assert_eq!(
            share,
            sharpes.iter().filter(|&&s| s > 0.0).count() as f64 / 20.0
        );

        let best = &document["best"];
        assert_eq!(
            text(&figures, "best_params"),
            format!(
                "fast={}, slow={}",
                best["params"]["fast"].as_f64().unwrap(),
                best["params"]["slow"].as_f64().unwrap()
            )
        );
        assert_eq!(
            figures["best_total_return"],
            best["metrics"]["total_return"]
        );
        assert_eq!(
            number(&figures, "best_param_fast"),
            best["params"]["fast"].as_f64().unwrap()
        );
        // On a full 5 x 4 grid the best set has two to four neighbours.
        let neighbours = number(&figures, "best_neighbours");
        assert!((2.0..=4.0).contains(&neighbours), "{neighbours}");
        assert!(number(&figures, "best_neighbours_worst_objective") <= sharpes[19]);

        let message = first_message(JobKind::Sweep, &spec, &figures);
        assert!(message.starts_with("Job: parameter sweep\n"), "{message}");
        assert!(
            message.contains("Grid: {\"fast\":[5,10,15,20,25]"),
            "{message}"
        );
        assert!(message.contains("\nbest_vs_chance = "), "{message}");
    }

    #[test]
    fn a_minimised_objective_ranks_the_other_way() {
        let mut spec = sweep_spec();
        spec["objective"] = json!("volatility");
        spec["minimize"] = json!(true);
        let document = sweep_document(&spec);
        let figures = figures(JobKind::Sweep, &spec, &document).unwrap();
        assert_eq!(text(&figures, "objective_ranking"), "lowest first");
        let best = number(&figures, "objective_best");
        assert!(best <= number(&figures, "objective_median"));
        assert!(number(&figures, "objective_worst") >= number(&figures, "objective_median"));
        assert!(number(&figures, "chance_best_objective") < number(&figures, "objective_median"));
        assert!(number(&figures, "best_neighbours_worst_objective") >= best);
    }

    #[test]
    fn figures_of_a_walk_forward() {
        let spec = sweep_spec();
        let (backtest, sweep) = parse_sweep(&spec).unwrap();
        let plan = backtest.plan_sweep().unwrap();
        let sets = sweep.parameter_sets(&plan.strategy).unwrap();
        let walk = WalkForwardSpec {
            in_sample: "1500".to_owned(),
            out_of_sample: "500".to_owned(),
            step: None,
            anchored: false,
        };
        let result = run_walk_forward(
            &random_walk(5_000, 11),
            &plan.strategy,
            &sets,
            &plan.execution,
            None,
            &sweep,
            &walk,
            &pool(),
            &Control::default(),
        )
        .unwrap();
        let document: Value =
            serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap();
        let figures = figures(JobKind::WalkForward, &spec, &document).unwrap();
        let windows = document["windows"].as_array().unwrap();
        assert_eq!(number(&figures, "windows"), windows.len() as f64);
        assert!(windows.len() >= 5);
        let in_sample: Vec<f64> = windows
            .iter()
            .map(|w| w["in_sample_objective"].as_f64().unwrap())
            .collect();
        let in_mean = in_sample.iter().sum::<f64>() / in_sample.len() as f64;
        assert!((number(&figures, "in_sample_objective_mean") - in_mean).abs() < 1e-12);
        let out_mean = number(&figures, "out_of_sample_objective_mean");
        assert!((number(&figures, "in_vs_out_of_sample_gap") - (in_mean - out_mean)).abs() < 1e-12);
        if in_mean > 0.0 {
            assert!(
                (number(&figures, "walk_forward_efficiency") - out_mean / in_mean).abs() < 1e-12
            );
        }
        assert_eq!(
            figures["out_of_sample_total_return"],
            document["out_of_sample"]["metrics"]["total_return"]
        );
        assert!(number(&figures, "out_of_sample_drawdown_1_depth") < 0.0);
        assert!(number(&figures, "distinct_chosen_sets") >= 1.0);
        assert!(figures.contains_key("share_windows_positive_return"));
        assert!(
            !figures.contains_key("objective_std"),
            "not a sweep's spread"
        );
        let message = first_message(JobKind::WalkForward, &spec, &figures);
        assert!(message.starts_with("Job: walk-forward\n"), "{message}");
    }

    #[test]
    fn a_document_of_another_kind_is_refused() {
        let sweep = json!({"results": [], "best": null});
        let backtest = json!({"metrics": {}, "trades": [], "equity": {"time": [], "value": []}});
        assert_eq!(
            figures(JobKind::Backtest, &json!({}), &sweep).unwrap_err(),
            "the result has no metrics: it is not a backtest's"
        );
        assert_eq!(
            figures(JobKind::Sweep, &json!({}), &backtest).unwrap_err(),
            "the result has no parameter sets: it is not a sweep's"
        );
        assert!(figures(JobKind::AiStrategy, &json!({}), &backtest).is_err());
    }

    #[test]
    fn the_expected_maximum_of_normals_is_close_to_the_exact_one() {
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((normal_quantile(0.001) + 3.090_232_306).abs() < 1e-8);
        assert_eq!(normal_quantile(0.5), 0.0);
        // Exact expectations of the maximum of 10, 100 and 1000 standard normals.
        for (n, exact) in [(10, 1.538_753), (100, 2.507_594), (1000, 3.241_436)] {
            let approximation = expected_max_of_normals(n);
            assert!(
                (approximation / exact - 1.0).abs() < 0.03,
                "{n}: {approximation}"
            );
        }
        assert!(expected_max_of_normals(1).is_nan());
    }

    #[test]
    fn a_good_reply_keeps_strata_values() {
        let figures = Figures::from([
            ("sharpe".to_owned(), json!(1.234)),
            ("max_drawdown".to_owned(), json!(-0.2)),
            ("trades".to_owned(), json!(40)),
        ]);
        let reply = "Here you go:\n```json\n{\"analysis\": \"A Sharpe ratio of 1.23 {so} with a \
                     20 % drawdown.\", \"cites\": [\"sharpe\", \"max_drawdown\"], \"extra\": 1}\n```";
        let analysis = read_reply(reply, &figures).unwrap();
        assert_eq!(
            analysis.text,
            "A Sharpe ratio of 1.23 {so} with a 20 % drawdown."
        );
        assert_eq!(
            analysis.cited,
            Figures::from([
                ("sharpe".to_owned(), json!(1.234)),
                ("max_drawdown".to_owned(), json!(-0.2)),
            ])
        );
    }

    #[test]
    fn bad_replies_are_repairable() {
        let figures = Figures::from([
            ("sharpe".to_owned(), json!(1.234)),
            ("trades".to_owned(), json!(40)),
        ]);
        let message = repairable(read_reply(
            r#"{"analysis": "Good.", "cites": ["sharpe", "alpha", "beta"]}"#,
            &figures,
        ));
        assert!(
            message.contains("These cites are not figures: alpha, beta."),
            "{message}"
        );
        assert!(
            message.contains("The figures are: sharpe, trades."),
            "{message}"
        );
        let message = repairable(read_reply("The strategy looks robust.", &figures));
        assert!(
            message.starts_with("Your reply was not a JSON object."),
            "{message}"
        );
        let message = repairable(read_reply(
            r#"{"analysis": "Good.", "cites": []}"#,
            &figures,
        ));
        assert!(message.contains("cite the figures you use"), "{message}");
        let message = repairable(read_reply(
            r#"{"analysis": "  ", "cites": ["sharpe"]}"#,
            &figures,
        ));
        assert!(message.contains("no \"analysis\" text"), "{message}");
    }

    #[test]
    fn figures_are_shown_to_six_significant_digits() {
        assert_eq!(shown(&json!(1.234_567_89)), "1.23457");
        assert_eq!(shown(&json!(-0.000_123_456_78)), "-0.000123457");
        assert_eq!(shown(&json!(12_345.678_9)), "12345.7");
        assert_eq!(shown(&json!(40)), "40");
        assert_eq!(shown(&json!(0.5)), "0.5");
        assert_eq!(shown(&json!("fast=10, slow=50")), "fast=10, slow=50");
        assert!(system_prompt().contains("{\"analysis\": \"text (paragraphs; may use Markdown)\", \"cites\": [\"figure_name\", ...]}"));
    }
}
