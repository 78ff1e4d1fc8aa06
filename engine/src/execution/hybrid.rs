//! Hybrid precision: bars, plus a simulated price path inside the volatile bars where the bar
//! alone cannot say whether the stop or the target came first.
//!
//! Everything bar precision decides unambiguously stays as [`BarRange`] decides it: a gap at the
//! open fills at the open, a single level inside the bar fills at the level. Only when both the
//! stop and the target lie inside a *volatile* bar does a seeded path decide:
//!
//! - **Volatile**: the bar's range (high − low) exceeds `threshold` × the mean range of the
//!   previous `lookback` bars (fewer at the start of the data; the first bar is never volatile).
//!   In a calm bar the order matters little and bar precision's conservative "stop first" stands.
//! - **The path**: [`STEPS`] steps from the open to the close that touches the high and the low.
//!   Which extreme comes first is drawn with probability proportional to the *other* order's
//!   detour: going open → high → low → close travels `(high − open) + (close − low)` beyond the
//!   range, open → low → high → close travels `(open − low) + (high − close)`, and the shorter
//!   route is the likelier one. So a bar that opens near its high most likely touched the high
//!   first, and a bar that closes near its high (a bullish bar) most likely touched the low
//!   first — the usual open-low-high-close reading of an up bar. The two extremes are placed at
//!   two distinct random steps, and the four anchor points (open, first extreme, second extreme,
//!   close) are joined by Brownian bridges clamped to `[low, high]`.
//! - **The fill**: the path is walked from the open; the first level it reaches fills at that
//!   level (a stop then pays slippage in the simulator, as at bar precision).
//!
//! The random numbers of bar `i` come from ChaCha8 keyed by the seed, on stream `i`: a bar's path
//! depends only on (seed, bar), never on which bars were simulated before it, so results are the
//! same on any number of threads, in sweeps, and in walk-forward windows. The bridges' steps are
//! uniform with unit variance rather than Gaussian, so a path needs only `+`, `×` and `√` — exact
//! in IEEE 754 on every platform, where `ln` and `cos` of a platform's libm may differ in the last
//! bit — which keeps results byte-identical on any machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{BarRange, ExitReason, Intrabar, ProtectiveExit, Side};
use crate::data::Bars;

/// Steps of a simulated path inside one bar.
pub const STEPS: usize = 128;

/// Settings of hybrid precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridSettings {
    /// Seed of the simulated paths; the same seed gives the same paths.
    pub seed: u64,
    /// A bar is volatile when its range exceeds this multiple of the recent mean range.
    pub threshold: f64,
    /// How many previous bars the recent mean range is taken over (0: no bar is volatile).
    pub lookback: usize,
}

impl Default for HybridSettings {
    fn default() -> Self {
        HybridSettings {
            seed: 0,
            threshold: 1.5,
            lookback: 20,
        }
    }
}

/// Hybrid precision as an [`Intrabar`] price source (see the module doc).
#[derive(Debug, Clone)]
pub struct Hybrid<'a> {
    settings: HybridSettings,
    /// For a window copied out of longer bars (walk-forward): those bars and where the window
    /// starts in them, so bar `i` of the window is judged and seeded as bar `start + i`.
    history: Option<(&'a Bars, usize)>,
    /// The path of the bar being simulated, reused from bar to bar.
    path: Vec<f64>,
    simulated_bars: usize,
}

impl Hybrid<'static> {
    /// Hybrid precision over the bars the simulator is given.
    pub fn new(settings: HybridSettings) -> Hybrid<'static> {
        Hybrid {
            settings,
            history: None,
            path: vec![0.0; STEPS + 1],
            simulated_bars: 0,
        }
    }
}

impl<'a> Hybrid<'a> {
    /// Hybrid precision over a window copied out of `history` from bar `start`: volatility and
    /// paths are those of the same bars in `history`, so the window's bars are decided exactly
    /// as in a run over all of `history` (and the window's first bar can be volatile).
    pub fn in_window(settings: HybridSettings, history: &'a Bars, start: usize) -> Hybrid<'a> {
        Hybrid {
            history: Some((history, start)),
            ..Hybrid::new(settings)
        }
    }

    /// Bars whose stop or target was decided by a simulated path so far.
    pub fn simulated_bars(&self) -> usize {
        self.simulated_bars
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &HybridSettings {
        &self.settings
    }

    /// Whether bar `i`'s range exceeds `threshold` × the mean range of up to `lookback` bars
    /// before it.
    ///
    /// Computed here, only for bars where both levels lie inside, rather than as a rolling mean
    /// over every bar: such bars are few, so O(lookback) each costs less than O(bars) up front,
    /// and summing the same bars in the same order gives the same mean wherever a run starts.
    fn is_volatile(&self, bars: &Bars, i: usize) -> bool {
        let count = i.min(self.settings.lookback);
        if count == 0 {
            return false;
        }
        let before = i - count..i;
        let sum: f64 = bars.high[before.clone()]
            .iter()
            .zip(&bars.low[before])
            .map(|(h, l)| h - l)
            .sum();
        bars.high[i] - bars.low[i] > self.settings.threshold * (sum / count as f64)
    }

    /// Fills `self.path` with bar `i`'s path: open to close through both extremes.
    fn simulate_path(&mut self, bars: &Bars, i: usize) {
        let (open, high, low, close) = (bars.open[i], bars.high[i], bars.low[i], bars.close[i]);
        let mut rng = ChaCha8Rng::seed_from_u64(self.settings.seed);
        rng.set_stream(i as u64);

        let range = high - low;
        // Each order's detour beyond the range; the shorter detour is the likelier order.
        let detour_low_first = (open - low) + (high - close);
        let p_high_first = if range > 0.0 {
            detour_low_first / (2.0 * range)
        } else {
            0.5
        };
        let high_first = rng.random::<f64>() < p_high_first;
        let (first, second) = if high_first { (high, low) } else { (low, high) };
        // Two distinct steps strictly inside the bar, uniformly.
        let a = rng.random_range(1..STEPS);
        let mut b = rng.random_range(1..STEPS - 1);
        if b >= a {
            b += 1;
        }
        let (t1, t2) = (a.min(b), a.max(b));

        let path = &mut self.path;
        path[0] = open;
        path[t1] = first;
        path[t2] = second;
        path[STEPS] = close;
        // Half the range over the whole bar: the bridges wander without drowning the anchors.
        let sigma = 0.5 * range / (STEPS as f64).sqrt();
        for (from, to) in [(0, t1), (t1, t2), (t2, STEPS)] {
            bridge(path, from, to, sigma, low, high, &mut rng);
        }
    }
}

/// Fills `path[from + 1..to]` with a Brownian bridge from `path[from]` to `path[to]`, steps of
/// standard deviation `sigma`, clamped to `[low, high]`.
fn bridge(
    path: &mut [f64],
    from: usize,
    to: usize,
    sigma: f64,
    low: f64,
    high: f64,
    rng: &mut ChaCha8Rng,
) {
    // Uniform on [-√3, √3]: mean 0, variance 1 (see the module doc for why not Gaussian).
    let half_width = 3.0_f64.sqrt() * sigma;
    let mut step = || (2.0 * rng.random::<f64>() - 1.0) * half_width;
    let (a, b) = (path[from], path[to]);
    // A free walk first, then the straight line from it to its end is swapped for the line from
    // `a` to `b`: the classic construction of a bridge from a random walk.
    let mut walk = 0.0;
    for point in &mut path[from + 1..to] {
        walk += step();
        *point = walk;
    }
    let end = walk + step();
    let length = (to - from) as f64;
    for (k, point) in path[from + 1..to].iter_mut().enumerate() {
        let f = (k + 1) as f64 / length;
        // max/min rather than clamp: clamp panics on bars whose low exceeds their high.
        *point = (a + (b - a) * f + (*point - f * end)).max(low).min(high);
    }
}

impl Intrabar for Hybrid<'_> {
    fn protective_exit(
        &mut self,
        bars: &Bars,
        i: usize,
        side: Side,
        stop: Option<f64>,
        target: Option<f64>,
    ) -> Option<ProtectiveExit> {
        let (bars, i) = match self.history {
            Some((history, start)) if start + i < history.len() => (history, start + i),
            _ => (bars, i),
        };
        let decided = BarRange.protective_exit(bars, i, side, stop, target);
        let (Some(stop), Some(target)) = (stop, target) else {
            return decided;
        };
        // The levels below and above the price, and what reaching each one means.
        let ((lower, lower_reason), (upper, upper_reason)) = match side {
            Side::Long => (
                (stop, ExitReason::StopLoss),
                (target, ExitReason::TakeProfit),
            ),
            Side::Short => (
                (target, ExitReason::TakeProfit),
                (stop, ExitReason::StopLoss),
            ),
        };
        let (open, high, low) = (bars.open[i], bars.high[i], bars.low[i]);
        // Opening at or through a level is a gap, and a bar reaching one level only is
        // unambiguous: both are bar precision's to decide.
        let ambiguous = lower < open && open < upper && low <= lower && upper <= high;
        if !ambiguous || !self.is_volatile(bars, i) {
            return decided;
        }
        self.simulate_path(bars, i);
        let hit = self.path[1..].iter().find_map(|&price| {
            if price <= lower {
                Some((lower_reason, lower))
            } else if price >= upper {
                Some((upper_reason, upper))
            } else {
                None
            }
        });
        match hit {
            Some((reason, price)) => {
                self.simulated_bars += 1;
                Some(ProtectiveExit { reason, price })
            }
            // Unreachable: the path touches the low and the high, which enclose both levels.
            None => decided,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::{run_backtest, PrecisionReport};
    use crate::execution::{simulate, Execution, Fill};
    use crate::spec::StrategySpec;
    use crate::strategy::Strategy;

    const DAY: i64 = 86_400_000_000_000;

    /// Bars from (open, high, low, close) rows, one day apart.
    fn bars(rows: &[(f64, f64, f64, f64)]) -> Bars {
        let mut bars = Bars::with_capacity(rows.len());
        for (i, &(open, high, low, close)) in rows.iter().enumerate() {
            bars.push(i as i64 * DAY, open, high, low, close, 1.0);
        }
        bars
    }

    /// Five calm bars of range 1 around 100, then `last`.
    fn calm_then(last: (f64, f64, f64, f64)) -> Bars {
        let mut rows = vec![(100.0, 100.5, 99.5, 100.0); 5];
        rows.push(last);
        bars(&rows)
    }

    /// A volatile bar (range 10 against a mean of 1) with a long's stop at 97 and target at 103
    /// both inside.
    fn volatile() -> Bars {
        calm_then((100.0, 105.0, 95.0, 100.0))
    }

    fn hybrid(seed: u64) -> Hybrid<'static> {
        Hybrid::new(HybridSettings {
            seed,
            ..HybridSettings::default()
        })
    }

    fn long_exit(intrabar: &mut impl Intrabar, bars: &Bars, i: usize) -> Option<ProtectiveExit> {
        intrabar.protective_exit(bars, i, Side::Long, Some(97.0), Some(103.0))
    }

    #[test]
    fn a_volatile_bar_is_decided_by_the_seeded_path() {
        let b = volatile();
        let reason = |seed| {
            let mut h = hybrid(seed);
            let exit = long_exit(&mut h, &b, 5).unwrap();
            assert_eq!(h.simulated_bars(), 1);
            match exit.reason {
                ExitReason::StopLoss => assert_eq!(exit.price, 97.0),
                ExitReason::TakeProfit => assert_eq!(exit.price, 103.0),
                other => panic!("unexpected {other:?}"),
            }
            exit.reason
        };
        let reasons: Vec<ExitReason> = (0..64).map(reason).collect();
        let target_seed = reasons.iter().position(|&r| r == ExitReason::TakeProfit);
        let stop_seed = reasons.iter().position(|&r| r == ExitReason::StopLoss);
        let (Some(target_seed), Some(stop_seed)) = (target_seed, stop_seed) else {
            panic!("64 seeds should give both outcomes: {reasons:?}");
        };
        assert_eq!(reason(target_seed as u64), ExitReason::TakeProfit);
        assert_eq!(reason(stop_seed as u64), ExitReason::StopLoss);
        // A symmetric bar (open = close mid-range): the outcomes are not lopsided.
        let targets = reasons
            .iter()
            .filter(|&&r| r == ExitReason::TakeProfit)
            .count();
        assert!((16..=48).contains(&targets), "{targets} of 64 targets");
    }

    #[test]
    fn the_same_seed_gives_the_same_path_and_fill() {
        let b = volatile();
        for seed in [0, 7, u64::MAX] {
            let (mut first, mut second) = (hybrid(seed), hybrid(seed));
            let a = long_exit(&mut first, &b, 5);
            // A path drawn for another bar in between changes nothing: bar 5's path depends on
            // (seed, 5) only.
            let _ = long_exit(&mut second, &calm_then((100.0, 105.0, 95.0, 101.0)), 5);
            let b2 = long_exit(&mut second, &b, 5);
            assert_eq!(a, b2);
            assert_eq!(first.path, {
                second.simulate_path(&b, 5);
                second.path.clone()
            });
        }
    }

    #[test]
    fn the_path_starts_at_the_open_ends_at_the_close_and_touches_both_extremes() {
        let b = calm_then((100.0, 105.0, 95.0, 102.0));
        let mut h = hybrid(3);
        h.simulate_path(&b, 5);
        assert_eq!(h.path.len(), STEPS + 1);
        assert_eq!((h.path[0], h.path[STEPS]), (100.0, 102.0));
        assert!(h.path.iter().all(|&p| (95.0..=105.0).contains(&p)));
        assert!(h.path.contains(&105.0) && h.path.contains(&95.0));
    }

    /// How many of `seeds` paths of `bar` (after calm bars) touch the high before the low.
    fn high_first(bar: (f64, f64, f64, f64), seeds: u64) -> u64 {
        let b = calm_then(bar);
        let mut h = hybrid(0);
        (0..seeds)
            .filter(|&seed| {
                h.settings.seed = seed;
                h.simulate_path(&b, 5);
                let high_at = h.path.iter().position(|&p| p == bar.1);
                let low_at = h.path.iter().position(|&p| p == bar.2);
                high_at < low_at
            })
            .count() as u64
    }

    #[test]
    fn the_order_of_extremes_leans_on_where_the_bar_opens_and_closes() {
        // Opens at its high: the high is touched first, always; opens at its low: never.
        assert_eq!(high_first((105.0, 105.0, 95.0, 100.0), 100), 100);
        assert_eq!(high_first((95.0, 105.0, 95.0, 100.0), 100), 0);
        // Opens mid-range and closes at the high (an up bar): the high first with probability
        // (5 + 0) / 20 = 1/4; closing at the low, 3/4. 400 draws: 100 or 300, sd 8.7.
        let up = high_first((100.0, 105.0, 95.0, 105.0), 400);
        let down = high_first((100.0, 105.0, 95.0, 95.0), 400);
        assert!((65..=135).contains(&up), "{up} of 400");
        assert!((265..=335).contains(&down), "{down} of 400");
    }

    #[test]
    fn a_calm_bar_is_decided_as_at_bar_precision() {
        // Range 1.2 against a mean of 1: below 1.5 x, so the stop is assumed first.
        let b = calm_then((100.0, 100.7, 99.5, 100.0));
        for seed in 0..16 {
            let mut h = hybrid(seed);
            let levels = (Some(99.6), Some(100.6));
            let exit = h.protective_exit(&b, 5, Side::Long, levels.0, levels.1);
            let bar = BarRange.protective_exit(&b, 5, Side::Long, levels.0, levels.1);
            assert_eq!(exit, bar);
            assert_eq!(exit.map(|e| e.reason), Some(ExitReason::StopLoss));
            assert_eq!(h.simulated_bars(), 0);
        }
        // The first bar has nothing to compare with: never volatile.
        let first = bars(&[(100.0, 105.0, 95.0, 100.0)]);
        let mut h = hybrid(0);
        assert_eq!(
            long_exit(&mut h, &first, 0),
            BarRange.protective_exit(&first, 0, Side::Long, Some(97.0), Some(103.0))
        );
        assert_eq!(h.simulated_bars(), 0);
    }

    #[test]
    fn a_threshold_counts_against_the_bars_there_are() {
        // Bar 1 has one predecessor of range 1; its range 1.4 is volatile at 1.3, not at 1.5.
        let b = bars(&[(100.0, 100.5, 99.5, 100.0), (100.0, 100.7, 99.3, 100.0)]);
        let mut strict = Hybrid::new(HybridSettings {
            threshold: 1.5,
            ..HybridSettings::default()
        });
        let mut loose = Hybrid::new(HybridSettings {
            threshold: 1.3,
            ..HybridSettings::default()
        });
        assert!(!strict.is_volatile(&b, 1));
        assert!(loose.is_volatile(&b, 1));
        let levels = (Some(99.5), Some(100.5));
        strict.protective_exit(&b, 1, Side::Long, levels.0, levels.1);
        loose.protective_exit(&b, 1, Side::Long, levels.0, levels.1);
        assert_eq!((strict.simulated_bars(), loose.simulated_bars()), (0, 1));
    }

    #[test]
    fn a_gap_at_the_open_fills_at_the_open() {
        // A volatile bar opening below the long's stop: the stop fills at the open, no path.
        let b = calm_then((96.0, 105.0, 95.0, 100.0));
        let mut h = hybrid(1);
        let exit = long_exit(&mut h, &b, 5).unwrap();
        assert_eq!((exit.reason, exit.price), (ExitReason::StopLoss, 96.0));
        // And above the target: the target fills at the better open.
        let b = calm_then((104.0, 105.0, 95.0, 100.0));
        let exit = long_exit(&mut h, &b, 5).unwrap();
        assert_eq!((exit.reason, exit.price), (ExitReason::TakeProfit, 104.0));
        assert_eq!(h.simulated_bars(), 0);
    }

    #[test]
    fn one_level_inside_a_volatile_bar_fills_at_that_level() {
        let b = volatile();
        let mut h = hybrid(1);
        let exit = h.protective_exit(&b, 5, Side::Long, Some(97.0), Some(110.0));
        assert_eq!(
            exit,
            Some(ProtectiveExit {
                reason: ExitReason::StopLoss,
                price: 97.0
            })
        );
        let exit = h.protective_exit(&b, 5, Side::Long, None, Some(103.0));
        assert_eq!(exit.map(|e| e.price), Some(103.0));
        assert_eq!(h.simulated_bars(), 0);
    }

    #[test]
    fn a_short_is_decided_by_the_same_path() {
        let b = volatile();
        for seed in 0..32 {
            let mut long = hybrid(seed);
            let mut short = hybrid(seed);
            // The same levels with the roles swapped: the level the path reaches first is the
            // same, so a long's stop is a short's target.
            let l = long_exit(&mut long, &b, 5).unwrap();
            let s = short
                .protective_exit(&b, 5, Side::Short, Some(103.0), Some(97.0))
                .unwrap();
            assert_eq!(l.price, s.price, "seed {seed}");
            assert_ne!(l.reason, s.reason);
        }
    }

    #[test]
    fn a_window_is_decided_as_the_same_bars_in_its_history() {
        let history = volatile();
        let window = history.slice(3..6);
        for seed in 0..16 {
            let mut whole = hybrid(seed);
            let mut part = Hybrid::in_window(
                HybridSettings {
                    seed,
                    ..HybridSettings::default()
                },
                &history,
                3,
            );
            assert_eq!(
                long_exit(&mut whole, &history, 5),
                long_exit(&mut part, &window, 2)
            );
            assert_eq!(part.simulated_bars(), 1);
        }
    }

    fn sma_cross() -> crate::strategy::CompiledStrategy {
        Strategy::from_spec(&StrategySpec {
            template: Some("sma_cross".to_owned()),
            ..StrategySpec::default()
        })
        .unwrap()
        .compile()
        .unwrap()
    }

    fn with_hybrid(execution: &Execution, seed: u64, threshold: f64) -> Execution {
        Execution {
            hybrid: Some(HybridSettings {
                seed,
                threshold,
                ..HybridSettings::default()
            }),
            ..execution.clone()
        }
    }

    #[test]
    fn without_stops_and_targets_hybrid_equals_bar_precision() {
        let bars = crate::data::synthetic::random_walk(20_000, 11);
        let strategy = sma_cross();
        let execution = Execution {
            fees: 0.001,
            ..Execution::default()
        };
        let bar = run_backtest(&bars, &strategy, &execution, None);
        let mut hybrid = run_backtest(&bars, &strategy, &with_hybrid(&execution, 5, 1.0), None);
        assert!(bar.metrics.trades > 100);
        assert_eq!(bar.precision, PrecisionReport::Bar);
        assert_eq!(
            hybrid.precision,
            PrecisionReport::Hybrid {
                seed: 5,
                threshold: 1.0,
                simulated_bars: 0
            }
        );
        hybrid.precision = PrecisionReport::Bar;
        assert_eq!(hybrid, bar);
    }

    #[test]
    fn with_stops_and_targets_hybrid_simulates_only_ambiguous_volatile_bars() {
        let bars = crate::data::synthetic::random_walk(20_000, 11);
        let strategy = sma_cross();
        let execution = Execution {
            fill: Fill::Close,
            stop_loss: Some(0.004),
            take_profit: Some(0.004),
            ..Execution::default()
        };
        let bar = run_backtest(&bars, &strategy, &execution, None);
        // No bar is 1000 x its neighbours: nothing is simulated and nothing changes.
        let mut calm = run_backtest(&bars, &strategy, &with_hybrid(&execution, 5, 1e3), None);
        assert!(matches!(
            calm.precision,
            PrecisionReport::Hybrid {
                simulated_bars: 0,
                ..
            }
        ));
        calm.precision = PrecisionReport::Bar;
        assert_eq!(calm, bar);

        // A low threshold: paths decide some bars, and some of those go to the target where bar
        // precision assumed the stop.
        let hybrid = run_backtest(&bars, &strategy, &with_hybrid(&execution, 5, 1.0), None);
        let PrecisionReport::Hybrid { simulated_bars, .. } = hybrid.precision else {
            panic!("{:?}", hybrid.precision);
        };
        assert!(simulated_bars > 0);
        let stops = |r: &crate::backtest::BacktestResult| {
            r.trades
                .iter()
                .filter(|t| t.exit_reason == ExitReason::StopLoss)
                .count()
        };
        assert!(stops(&hybrid) < stops(&bar));
        assert!(hybrid.metrics.final_equity > bar.metrics.final_equity);

        // Counted once per decided bar, the same as a direct simulation reports.
        let signals = strategy.signals(&bars, &crate::expr::SeriesCache::new());
        let settings = with_hybrid(&execution, 5, 1.0).hybrid.unwrap();
        let mut direct = Hybrid::new(settings);
        let simulation = simulate(
            &bars,
            &signals.entries,
            &signals.exits,
            &execution,
            &mut direct,
        );
        assert_eq!(direct.simulated_bars(), simulated_bars);
        assert_eq!(simulation.trades, hybrid.trades);

        // Deterministic: the same seed twice gives the same result; another seed differs.
        let again = run_backtest(&bars, &strategy, &with_hybrid(&execution, 5, 1.0), None);
        assert_eq!(again, hybrid);
        let other = run_backtest(&bars, &strategy, &with_hybrid(&execution, 6, 1.0), None);
        assert_ne!(other.trades, hybrid.trades);
    }
}
