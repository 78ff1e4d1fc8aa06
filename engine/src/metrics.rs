//! Performance metrics, computed once from the equity curve and the trade list.
//!
//! Conventions (fractions, not percents):
//! - bar returns: `r[0] = equity[0] / initial_cash - 1`, `r[t] = equity[t] / equity[t-1] - 1`,
//!   and 0 for the bars after a liquidation left a bust account at 0 (see `crate::execution`);
//! - `periods_per_year` comes from the data's own bar spacing (bars per year over the span of
//!   the data) unless given; `years = bars / periods_per_year`;
//! - `volatility = std(r) * sqrt(ppy)` with the sample standard deviation (ddof = 1);
//! - `sharpe = mean(r) / std(r) * sqrt(ppy)`, risk-free rate 0;
//! - `sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(ppy)`;
//! - `cagr = (final_equity / initial_cash)^(1 / years) - 1`; `calmar = cagr / |max_drawdown|`;
//! - `max_drawdown`: the largest fall of equity from its running peak, `<= 0`, over the equity
//!   curve at bar closes (as vectorbt); `max_drawdown_duration`: the longest run of bars spent
//!   below a previous peak, in bars;
//! - `trades` counts every trade, the one still open at the end included; `win_rate`,
//!   `profit_factor` and `expectancy` use closed trades only (a win has `pnl > 0`);
//!   `profit_factor = gross profit / gross loss`; `expectancy` = mean `pnl` per closed trade;
//! - `exposure`: fraction of bars that closed with a position held.
//!
//! A metric with no meaningful value (a Sharpe ratio of a flat curve, a win rate with no closed
//! trade, a profit factor with no loss) is NaN in Rust and `null` in JSON.

use serde::{Serialize, Serializer};

use crate::execution::Trade;

/// The summary of one backtest; field names are part of Strata's public contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Equity at the last bar's close.
    #[serde(serialize_with = "finite_or_null")]
    pub final_equity: f64,
    /// `final_equity / initial_cash - 1`.
    #[serde(serialize_with = "finite_or_null")]
    pub total_return: f64,
    /// Compound annual growth rate.
    #[serde(serialize_with = "finite_or_null")]
    pub cagr: f64,
    /// Annualised standard deviation of bar returns.
    #[serde(serialize_with = "finite_or_null")]
    pub volatility: f64,
    /// Annualised mean bar return over its standard deviation.
    #[serde(serialize_with = "finite_or_null")]
    pub sharpe: f64,
    /// Annualised mean bar return over its downside deviation.
    #[serde(serialize_with = "finite_or_null")]
    pub sortino: f64,
    /// CAGR over the magnitude of the maximum drawdown.
    #[serde(serialize_with = "finite_or_null")]
    pub calmar: f64,
    /// Largest peak-to-trough fall of equity, as a fraction `<= 0`.
    #[serde(serialize_with = "finite_or_null")]
    pub max_drawdown: f64,
    /// Longest stretch below a previous equity peak, in bars.
    pub max_drawdown_duration: usize,
    /// Number of trades, including one still open at the end.
    pub trades: usize,
    /// Fraction of closed trades with a positive pnl.
    #[serde(serialize_with = "finite_or_null")]
    pub win_rate: f64,
    /// Gross profit over gross loss of closed trades.
    #[serde(serialize_with = "finite_or_null")]
    pub profit_factor: f64,
    /// Mean pnl per closed trade, in cash.
    #[serde(serialize_with = "finite_or_null")]
    pub expectancy: f64,
    /// Fraction of bars that closed with a position held.
    #[serde(serialize_with = "finite_or_null")]
    pub exposure: f64,
    /// Total fees paid, in cash.
    #[serde(serialize_with = "finite_or_null")]
    pub fees_paid: f64,
    /// Number of bars simulated.
    pub bars: usize,
}

/// The inputs metrics are computed from.
#[derive(Debug, Clone, Copy)]
pub struct MetricInputs<'a> {
    /// Equity at each bar's close.
    pub equity: &'a [f64],
    /// Cash at the start.
    pub initial_cash: f64,
    /// All trades, the open one included.
    pub trades: &'a [Trade],
    /// Total fees paid.
    pub fees_paid: f64,
    /// Bars that closed with a position held.
    pub exposure_bars: usize,
    /// Bars per year used to annualise.
    pub periods_per_year: f64,
}

/// Names of the metrics, in the order of [`Metrics`]; the objective of a sweep is one of them.
pub const METRIC_NAMES: [&str; 16] = [
    "final_equity",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "trades",
    "win_rate",
    "profit_factor",
    "expectancy",
    "exposure",
    "fees_paid",
    "bars",
];

impl Metrics {
    /// Computes every metric in one pass over the equity curve and one over the trades.
    pub fn compute(inputs: MetricInputs<'_>) -> Metrics {
        let MetricInputs {
            equity,
            initial_cash,
            trades,
            fees_paid,
            exposure_bars,
            periods_per_year: ppy,
        } = inputs;
        let bars = equity.len();
        let final_equity = equity.last().copied().unwrap_or(initial_cash);
        let total_return = final_equity / initial_cash - 1.0;

        // Sums of returns (shifted by the first return, so the one-pass variance keeps full
        // precision) and of squared downside returns, in four lanes so the divisions and adds
        // run side by side instead of one after another.
        let shift = equity.first().map_or(0.0, |&v| v / initial_cash - 1.0);
        // A bust account's equity stays at 0 after the liquidation that emptied it: those
        // bars are flat (return 0), not 0 / 0. Only a curve ending at 0 can hold such bars.
        let living = if final_equity <= 0.0 {
            equity
                .iter()
                .position(|&v| v <= 0.0)
                .map_or(bars, |k| k + 1)
        } else {
            bars
        };
        let flat = (bars - living) as f64;
        let (mut sum, mut sum_sq, mut downside_sq) = ([0.0_f64; 4], [0.0_f64; 4], [0.0_f64; 4]);
        let mut previous = initial_cash;
        let chunks = equity[..living].chunks_exact(4);
        let rest = chunks.remainder();
        for chunk in chunks {
            let r = [
                chunk[0] / previous - 1.0,
                chunk[1] / chunk[0] - 1.0,
                chunk[2] / chunk[1] - 1.0,
                chunk[3] / chunk[2] - 1.0,
            ];
            previous = chunk[3];
            for lane in 0..4 {
                let d = r[lane] - shift;
                sum[lane] += d;
                sum_sq[lane] += d * d;
                downside_sq[lane] += r[lane].min(0.0) * r[lane].min(0.0);
            }
        }
        for &value in rest {
            let r = value / previous - 1.0;
            previous = value;
            sum[0] += r - shift;
            sum_sq[0] += (r - shift) * (r - shift);
            downside_sq[0] += r.min(0.0) * r.min(0.0);
        }
        sum[0] -= flat * shift;
        sum_sq[0] += flat * shift * shift;
        let (sum, sum_sq, downside_sq): (f64, f64, f64) = (
            sum.iter().sum(),
            sum_sq.iter().sum(),
            downside_sq.iter().sum(),
        );

        let mut peak = f64::NEG_INFINITY;
        let (mut max_drawdown, mut underwater, mut longest_underwater) = (0.0_f64, 0usize, 0usize);
        for &value in equity {
            if value >= peak {
                peak = value;
                underwater = 0;
            } else {
                underwater += 1;
                longest_underwater = longest_underwater.max(underwater);
                // Divide only for a candidate deeper than the deepest so far.
                if value < peak * (1.0 + max_drawdown) {
                    max_drawdown = value / peak - 1.0;
                }
            }
        }
        let n = bars as f64;
        let mean = shift + sum / n;
        let std = if bars > 1 {
            ((sum_sq - sum * sum / n).max(0.0) / (n - 1.0)).sqrt()
        } else {
            f64::NAN
        };
        let downside = (downside_sq / bars as f64).sqrt();
        let annual = ppy.sqrt();
        let ratio = |numerator: f64, denominator: f64| {
            if denominator > 0.0 {
                numerator / denominator * annual
            } else {
                f64::NAN
            }
        };
        let years = bars as f64 / ppy;
        let cagr = if final_equity <= 0.0 {
            -1.0
        } else {
            (final_equity / initial_cash).powf(1.0 / years) - 1.0
        };
        let calmar = if max_drawdown < 0.0 {
            cagr / -max_drawdown
        } else {
            f64::NAN
        };

        let (mut closed, mut wins, mut gross_profit, mut gross_loss, mut pnl_sum) =
            (0, 0, 0.0, 0.0, 0.0);
        for trade in trades.iter().filter(|t| t.is_closed()) {
            closed += 1;
            pnl_sum += trade.pnl;
            if trade.pnl > 0.0 {
                wins += 1;
                gross_profit += trade.pnl;
            } else {
                gross_loss -= trade.pnl;
            }
        }
        let per_closed = |x: f64| {
            if closed > 0 {
                x / closed as f64
            } else {
                f64::NAN
            }
        };

        Metrics {
            final_equity,
            total_return,
            cagr,
            volatility: std * annual,
            sharpe: ratio(mean, std),
            sortino: ratio(mean, downside),
            calmar,
            max_drawdown,
            max_drawdown_duration: longest_underwater,
            trades: trades.len(),
            win_rate: per_closed(wins as f64),
            profit_factor: if gross_loss > 0.0 {
                gross_profit / gross_loss
            } else {
                f64::NAN
            },
            expectancy: per_closed(pnl_sum),
            exposure: if bars > 0 {
                exposure_bars as f64 / bars as f64
            } else {
                f64::NAN
            },
            fees_paid,
            bars,
        }
    }

    /// The metric called `name` (one of [`METRIC_NAMES`]), as a number.
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "final_equity" => self.final_equity,
            "total_return" => self.total_return,
            "cagr" => self.cagr,
            "volatility" => self.volatility,
            "sharpe" => self.sharpe,
            "sortino" => self.sortino,
            "calmar" => self.calmar,
            "max_drawdown" => self.max_drawdown,
            "max_drawdown_duration" => self.max_drawdown_duration as f64,
            "trades" => self.trades as f64,
            "win_rate" => self.win_rate,
            "profit_factor" => self.profit_factor,
            "expectancy" => self.expectancy,
            "exposure" => self.exposure,
            "fees_paid" => self.fees_paid,
            "bars" => self.bars as f64,
            _ => return None,
        })
    }
}

/// JSON has no NaN or infinity: such a metric is `null`.
fn finite_or_null<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_none()
    }
}

/// The `q` quantile of sorted values, interpolating linearly between ranks (numpy's default);
/// NaN when there are none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => {
            let rank = q * (n - 1) as f64;
            let (below, above) = (rank.floor() as usize, rank.ceil() as usize);
            sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::{ExitReason, Side};

    fn trade(pnl: f64, exit_reason: ExitReason) -> Trade {
        Trade {
            side: Side::Long,
            entry_time: 0,
            entry_bar: 0,
            entry_price: 1.0,
            exit_time: 0,
            exit_bar: 0,
            exit_price: 1.0,
            quantity: 1.0,
            fees: 0.0,
            pnl,
            return_: pnl,
            exit_reason,
        }
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0)
    }

    #[test]
    fn metrics_match_numpy_on_a_small_curve() {
        // Expected values from numpy (see the module doc for the formulas):
        // r = diff([1000] + equity) / previous; std with ddof = 1; ppy = 252.
        let equity = [1000.0, 1100.0, 1050.0, 1200.0, 900.0, 950.0, 1300.0];
        let trades = [
            trade(100.0, ExitReason::Signal),
            trade(-50.0, ExitReason::StopLoss),
            trade(250.0, ExitReason::TakeProfit),
            trade(-10.0, ExitReason::Open),
        ];
        let m = Metrics::compute(MetricInputs {
            equity: &equity,
            initial_cash: 1000.0,
            trades: &trades,
            fees_paid: 3.5,
            exposure_bars: 4,
            periods_per_year: 252.0,
        });
        assert_eq!(m.final_equity, 1300.0);
        assert!(close(m.total_return, 0.3));
        assert!(close(m.volatility, 2.998640572849738), "{}", m.volatility);
        assert!(close(m.sharpe, 4.4585708344913755), "{}", m.sharpe);
        assert!(close(m.sortino, 8.769331814797072), "{}", m.sortino);
        assert!((m.cagr - 12645.218552730363).abs() < 1e-6, "{}", m.cagr);
        assert_eq!(m.max_drawdown, -0.25);
        assert!((m.calmar - 50580.87421092145).abs() < 1e-5);
        assert_eq!(m.max_drawdown_duration, 2);
        assert_eq!(m.trades, 4);
        assert!(close(m.win_rate, 2.0 / 3.0));
        assert!(close(m.profit_factor, 350.0 / 50.0));
        assert!(close(m.expectancy, 100.0));
        assert!(close(m.exposure, 4.0 / 7.0));
        assert_eq!(m.fees_paid, 3.5);
        assert_eq!(m.bars, 7);
    }

    #[test]
    fn a_bust_account_has_flat_returns_after_it_reaches_zero() {
        // r = [0, -0.5, -1, 0, 0]: mean -0.3, sample std sqrt(0.8 / 4), downside sqrt(1.25 / 5).
        let equity = [1000.0, 500.0, 0.0, 0.0, 0.0];
        let m = Metrics::compute(MetricInputs {
            equity: &equity,
            initial_cash: 1000.0,
            trades: &[trade(-1000.0, ExitReason::Liquidation)],
            fees_paid: 0.0,
            exposure_bars: 2,
            periods_per_year: 1.0,
        });
        assert!(
            close(m.volatility, (0.8_f64 / 4.0).sqrt()),
            "{}",
            m.volatility
        );
        assert!(
            close(m.sharpe, -0.3 / (0.8_f64 / 4.0).sqrt()),
            "{}",
            m.sharpe
        );
        assert!(close(m.sortino, -0.3 / 0.25_f64.sqrt()), "{}", m.sortino);
        assert_eq!((m.max_drawdown, m.cagr, m.total_return), (-1.0, -1.0, -1.0));
    }

    #[test]
    fn undefined_metrics_are_nan_and_null_in_json() {
        let equity = [1000.0; 4];
        let m = Metrics::compute(MetricInputs {
            equity: &equity,
            initial_cash: 1000.0,
            trades: &[],
            fees_paid: 0.0,
            exposure_bars: 0,
            periods_per_year: 252.0,
        });
        assert!(
            m.sharpe.is_nan()
                && m.win_rate.is_nan()
                && m.profit_factor.is_nan()
                && m.calmar.is_nan()
        );
        assert_eq!(m.max_drawdown, 0.0);
        assert_eq!(m.max_drawdown_duration, 0);
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["sharpe"].is_null() && json["win_rate"].is_null());
        assert_eq!(json["total_return"], 0.0);
        assert_eq!(json["trades"], 0);
    }

    #[test]
    fn every_metric_name_is_a_field() {
        let m = Metrics::compute(MetricInputs {
            equity: &[1.0, 2.0],
            initial_cash: 1.0,
            trades: &[],
            fees_paid: 0.0,
            exposure_bars: 0,
            periods_per_year: 1.0,
        });
        let json = serde_json::to_value(&m).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut names = METRIC_NAMES.to_vec();
        names.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, names);
        assert!(METRIC_NAMES.iter().all(|n| m.get(n).is_some()));
        assert_eq!(m.get("bogus"), None);
    }
}
