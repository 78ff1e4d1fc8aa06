//! Walk-forward analysis: sweep each in-sample window, run its best set on the out-of-sample
//! window that follows, and stitch the out-of-sample runs into one compounding equity curve.

use std::ops::Range;

use serde::{Deserialize, Serialize, Serializer};

use super::run::{sweep_stage, Parsed, Progress, Stage};
use super::{finite_or_null, Cancelled, Control, SetResult, SweepSpec};
use crate::data::{
    format_duration, format_time_short, serialize_time, serialize_times, Bars, NANOS_PER_DAY,
    NANOS_PER_HOUR, NANOS_PER_MINUTE, NANOS_PER_WEEK,
};
use crate::execution::{Execution, Trade};
use crate::expr::{Params, SeriesCache};
use crate::limits::MAX_WALK_FORWARD_WINDOWS;
use crate::metrics::{MetricInputs, Metrics};
use crate::spec::SpecError;
use crate::strategy::Strategy;

/// The windows of a walk-forward: lengths as a bar count (`500` or `"500"`) or a duration
/// (`"365d"`, `"12w"`, `"36h"`, `"90m"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalkForwardSpec {
    /// Length of each in-sample window, where the sets are swept.
    #[serde(deserialize_with = "length")]
    pub in_sample: String,
    /// Length of each out-of-sample window, where the in-sample winner is run.
    #[serde(deserialize_with = "length")]
    pub out_of_sample: String,
    /// How far each window moves on; the out-of-sample length when absent.
    #[serde(default, deserialize_with = "optional_length")]
    pub step: Option<String>,
    /// Every in-sample window starts at the first bar (it grows) instead of sliding.
    #[serde(default)]
    pub anchored: bool,
}

/// A window length as JSON: text, or a bar count as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum LengthText {
    Bars(u64),
    Text(String),
}

impl From<LengthText> for String {
    fn from(length: LengthText) -> String {
        match length {
            LengthText::Bars(bars) => bars.to_string(),
            LengthText::Text(text) => text,
        }
    }
}

fn length<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    LengthText::deserialize(d).map(String::from)
}

fn optional_length<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<LengthText>::deserialize(d).map(|length| length.map(String::from))
}

impl WalkForwardSpec {
    /// Checks the lengths' syntax (the data decides later whether the windows fit): every
    /// problem, each naming its field.
    pub fn check(&self) -> Result<(), Vec<SpecError>> {
        let lengths = [
            ("in_sample", Some(&self.in_sample)),
            ("out_of_sample", Some(&self.out_of_sample)),
            ("step", self.step.as_ref()),
        ];
        let errors: Vec<SpecError> = lengths
            .into_iter()
            .filter_map(|(field, text)| Length::parse(text?, field).err())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl WalkForwardSpec {
    /// Checks, before the data is loaded, that `bars` bars from `first` to `last` (ns, the last
    /// bar lasting `spacing`) leave room for a complete window, and for about
    /// [`MAX_WALK_FORWARD_WINDOWS`] at most: the api's check at submission. Room is judged by a
    /// lower bound (lengths in bars need that many bars, durations that much time), so a job
    /// that would run is never refused. For the count, durations are turned into bars at the
    /// data's average spacing: exact for lengths in bars and close for durations; the run
    /// checks both again on the bars themselves.
    pub fn check_windows(
        &self,
        bars: u64,
        first: i64,
        last: i64,
        spacing: Option<i64>,
    ) -> Result<(), SpecError> {
        let in_sample = Length::parse(&self.in_sample, "in_sample")?;
        let out_of_sample = Length::parse(&self.out_of_sample, "out_of_sample")?;
        let step = match &self.step {
            Some(step) => Length::parse(step, "step")?,
            None => out_of_sample,
        };
        // Each part of a window holds one bar at least.
        let bars_needed = |length: Length| match length {
            Length::Bars(count) => count.max(1) as u64,
            Length::Duration(_) => 1,
        };
        let time_needed = |length: Length| match length {
            Length::Bars(_) => 0,
            Length::Duration(nanos) => i128::from(nanos),
        };
        // In i128: times span the whole i64 range.
        let span = i128::from(last) - i128::from(first) + i128::from(spacing.unwrap_or(0).max(0));
        if bars_needed(in_sample).saturating_add(bars_needed(out_of_sample)) > bars
            || time_needed(in_sample) + time_needed(out_of_sample) > span
        {
            return Err(no_complete_window(self, Some((bars, first, last))));
        }
        // Nanoseconds per bar on average; a single bar counts as one nanosecond apart.
        let spacing = if bars > 1 {
            (last.saturating_sub(first) / (bars as i64 - 1).max(1)).max(1)
        } else {
            1
        };
        let in_bars = |length: Length| -> u64 {
            match length {
                Length::Bars(count) => count as u64,
                Length::Duration(nanos) => (nanos / spacing).max(1) as u64,
            }
        };
        let (in_sample, out_of_sample, step) =
            (in_bars(in_sample), in_bars(out_of_sample), in_bars(step));
        let Some(room) = bars.checked_sub(in_sample.saturating_add(out_of_sample)) else {
            return Ok(());
        };
        let windows = room / step.max(1) + 1;
        if windows > MAX_WALK_FORWARD_WINDOWS as u64 {
            return Err(too_many_windows(format!("about {windows}"), bars));
        }
        Ok(())
    }
}

/// The error of a walk-forward whose lengths leave no complete window in `data`: its bar count,
/// first and last time (ns), or `None` for no bars.
fn no_complete_window(walk: &WalkForwardSpec, data: Option<(u64, i64, i64)>) -> SpecError {
    let data = match data {
        Some((bars, first, last)) => format!(
            "the data has {bars} bars from {} to {} (span {})",
            format_time_short(first),
            format_time_short(last),
            if last > first {
                format_duration(last - first)
            } else {
                "0".to_owned()
            }
        ),
        None => "the data has no bars".to_owned(),
    };
    SpecError::new(
        "walk_forward",
        format!(
            "in_sample '{}' and out_of_sample '{}' leave no complete window: {data}",
            walk.in_sample, walk.out_of_sample
        ),
    )
}

/// The error of a walk-forward with more than [`MAX_WALK_FORWARD_WINDOWS`] windows.
fn too_many_windows(windows: String, bars: u64) -> SpecError {
    SpecError::new(
        "walk_forward",
        format!(
            "{windows} windows fit the data's {bars} bars, more than the \
             {MAX_WALK_FORWARD_WINDOWS} a walk-forward runs (each sweeps every parameter set); \
             lengthen step or out_of_sample"
        ),
    )
}

/// Why a walk-forward did not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WalkForwardError {
    /// The windows do not fit the data, or a length does not parse.
    #[error("{0}")]
    Invalid(SpecError),
    /// Stopped by the cancel flag.
    #[error("cancelled")]
    Cancelled,
}

impl From<Cancelled> for WalkForwardError {
    fn from(_: Cancelled) -> Self {
        WalkForwardError::Cancelled
    }
}

/// What a walk-forward produces.
#[derive(Debug, Clone, Serialize)]
pub struct WalkForwardResult {
    /// Each window's chosen set with its out-of-sample metrics, ranked by the objective (NaN
    /// last, ties in window order).
    pub results: Vec<SetResult>,
    /// The first of `results`, if any.
    pub best: Option<SetResult>,
    /// Every window, in time order.
    pub windows: Vec<Window>,
    /// The out-of-sample runs stitched together.
    pub out_of_sample: OutOfSample,
}

/// One in-sample window, the set chosen there, and how that set did out of sample.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Time of the first in-sample bar.
    #[serde(serialize_with = "serialize_time")]
    pub in_sample_start: i64,
    /// Time of the last in-sample bar.
    #[serde(serialize_with = "serialize_time")]
    pub in_sample_end: i64,
    /// Time of the first out-of-sample bar.
    #[serde(serialize_with = "serialize_time")]
    pub out_of_sample_start: i64,
    /// Time of the last out-of-sample bar.
    #[serde(serialize_with = "serialize_time")]
    pub out_of_sample_end: i64,
    /// The set with the best in-sample objective.
    #[serde(serialize_with = "crate::expr::serialize_params")]
    pub params: Params,
    /// Its in-sample objective value.
    #[serde(serialize_with = "finite_or_null")]
    pub in_sample_objective: f64,
    /// Its metrics over the out-of-sample window.
    pub out_of_sample: Metrics,
}

/// The stitched out-of-sample result.
#[derive(Debug, Clone, Serialize)]
pub struct OutOfSample {
    /// Metrics of the stitched curve with every out-of-sample trade.
    pub metrics: Metrics,
    /// Equity at the close of every out-of-sample bar.
    pub equity: EquityCurveOwned,
}

/// Equity at each bar's close, with its own times: `{"time": [RFC 3339...], "value": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EquityCurveOwned {
    /// Bar times, nanoseconds since the epoch.
    #[serde(serialize_with = "times")]
    pub time: Vec<i64>,
    /// Equity at the bar's close.
    pub value: Vec<f64>,
}

fn times<S: Serializer>(times: &[i64], serializer: S) -> Result<S::Ok, S::Error> {
    serialize_times(times, serializer)
}

/// A window length: so many bars, or so much time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Bars(usize),
    Duration(i64),
}

impl Length {
    /// `500` (bars) or `<count><unit>` with unit m, h, d or w.
    fn parse(text: &str, field: &str) -> Result<Length, SpecError> {
        let invalid = || {
            SpecError::new(
                format!("walk_forward.{field}"),
                format!(
                    "expected a bar count (500) or a duration with unit m, h, d or w (365d, 12w, \
                     36h), got '{text}'"
                ),
            )
        };
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (count, unit) = t.split_at(split);
        let count: i64 = count.parse().map_err(|_| invalid())?;
        if count == 0 {
            return Err(SpecError::new(
                format!("walk_forward.{field}"),
                format!("must be > 0, got '{text}'"),
            ));
        }
        let unit = match unit {
            "" => {
                return usize::try_from(count)
                    .map(Length::Bars)
                    .map_err(|_| invalid())
            }
            "m" => NANOS_PER_MINUTE,
            "h" => NANOS_PER_HOUR,
            "d" => NANOS_PER_DAY,
            "w" => NANOS_PER_WEEK,
            _ => return Err(invalid()),
        };
        count
            .checked_mul(unit)
            .map(Length::Duration)
            .ok_or_else(invalid)
    }
}

/// A position in the data: a bar index and the time the position stands for (the bar's time,
/// or the exact end of a duration, which keeps duration windows on a fixed calendar grid).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    index: usize,
    time: i64,
}

/// The bars' times and where the data ends: the last bar's time plus the bar spacing.
struct Timeline<'a> {
    time: &'a [i64],
    end: i64,
}

impl Timeline<'_> {
    /// The position `length` after `from`; `None` past the end of the data.
    fn advance(&self, from: Cursor, length: Length) -> Option<Cursor> {
        match length {
            Length::Bars(count) => {
                let index = from
                    .index
                    .checked_add(count)
                    .filter(|&i| i <= self.time.len())?;
                let time = self.time.get(index).copied().unwrap_or(self.end);
                Some(Cursor { index, time })
            }
            Length::Duration(nanos) => {
                let time = from.time.checked_add(nanos).filter(|&t| t <= self.end)?;
                let index = self.time.partition_point(|&t| t < time);
                Some(Cursor { index, time })
            }
        }
    }
}

/// The bar ranges of one window.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    in_sample: Range<usize>,
    out_of_sample: Range<usize>,
}

/// Every complete window over `bars`, in time order.
///
/// Window `k` starts `k` steps after the first bar; its in-sample part covers `in_sample` from
/// there (from bar 0 when anchored), its out-of-sample part the `out_of_sample` after that. A
/// duration covers the bars whose times fall in `[start, start + duration)`; a window is
/// complete when the data reaches its end (the last bar counts as lasting one bar spacing).
/// Windows with no bar in either part (a gap in the data) are skipped.
fn windows(bars: &Bars, walk: &WalkForwardSpec) -> Result<Vec<Span>, SpecError> {
    let in_sample = Length::parse(&walk.in_sample, "in_sample")?;
    let out_of_sample = Length::parse(&walk.out_of_sample, "out_of_sample")?;
    let step = match &walk.step {
        Some(step) => Length::parse(step, "step")?,
        None => out_of_sample,
    };
    let mut spans: Vec<Span> = Vec::new();
    if let (Some(&first), Some(&last)) = (bars.time.first(), bars.time.last()) {
        let timeline = Timeline {
            time: &bars.time,
            end: last.saturating_add(bars.spacing().unwrap_or(0)),
        };
        let mut start = Cursor {
            index: 0,
            time: first,
        };
        while let Some(in_sample_end) = timeline.advance(start, in_sample) {
            let Some(out_of_sample_end) = timeline.advance(in_sample_end, out_of_sample) else {
                break;
            };
            let span = Span {
                in_sample: if walk.anchored { 0 } else { start.index }..in_sample_end.index,
                out_of_sample: in_sample_end.index..out_of_sample_end.index,
            };
            if !span.in_sample.is_empty() && !span.out_of_sample.is_empty() {
                if let Some(previous) = spans.last() {
                    if span.out_of_sample.start < previous.out_of_sample.end {
                        return Err(SpecError::new(
                            "walk_forward.step",
                            format!(
                                "out-of-sample windows overlap (the one starting {} begins before \
                                 the previous one ends): the step must be at least the \
                                 out-of-sample length '{}'",
                                format_time_short(bars.time[span.out_of_sample.start]),
                                walk.out_of_sample
                            ),
                        ));
                    }
                }
                spans.push(span);
                if spans.len() > MAX_WALK_FORWARD_WINDOWS {
                    return Err(too_many_windows(
                        format!("more than {MAX_WALK_FORWARD_WINDOWS}"),
                        bars.len() as u64,
                    ));
                }
            }
            let Some(next) = timeline.advance(start, step) else {
                break;
            };
            start = next;
        }
    }
    if spans.is_empty() {
        let data = match (bars.time.first(), bars.time.last()) {
            (Some(&first), Some(&last)) => Some((bars.len() as u64, first, last)),
            _ => None,
        };
        return Err(no_complete_window(walk, data));
    }
    Ok(spans)
}

/// Runs a walk-forward: in each window, sweeps `sets` over the in-sample bars, picks the best by
/// the objective of `sweep`, and runs it over the out-of-sample bars.
///
/// Signals always come from the whole history up to the bar (indicators are warmed up by the
/// bars before a window); only the window's bars are simulated. The first out-of-sample window
/// starts with `execution.initial_cash`, each next one with the previous one's final equity (a
/// position open at a window's end is valued at its last close, as in a backtest, and the next
/// window starts flat), so the stitched curve compounds. `periods_per_year: None` infers it
/// from all of `bars`, and that one value serves every window. A window where no set has a
/// finite objective takes the first set. Progress counts every in-sample set and every
/// out-of-sample run: `windows x (sets + 1)` in all.
#[allow(clippy::too_many_arguments)]
pub fn run_walk_forward(
    bars: &Bars,
    strategy: &Strategy,
    sets: &[Params],
    execution: &Execution,
    periods_per_year: Option<f64>,
    sweep: &SweepSpec,
    walk: &WalkForwardSpec,
    pool: &rayon::ThreadPool,
    control: &Control,
) -> Result<WalkForwardResult, WalkForwardError> {
    let spans = windows(bars, walk).map_err(WalkForwardError::Invalid)?;
    let parsed = Parsed::new(strategy).map_err(WalkForwardError::Invalid)?;
    if sets.is_empty() {
        return Err(WalkForwardError::Invalid(SpecError::new(
            "grid",
            "no parameter sets to choose from",
        )));
    }
    let objective = sweep.objective();
    let periods_per_year = periods_per_year
        .or_else(|| bars.periods_per_year())
        .unwrap_or(f64::NAN);
    let cache = SeriesCache::new();
    let progress = Progress::new(control, spans.len() * (sets.len() + 1));
    let unbound = |params: &Params| {
        WalkForwardError::Invalid(SpecError::new(
            "strategy",
            format!(
                "the strategy does not bind with {}",
                super::grid::describe(params)
            ),
        ))
    };

    let mut windows = Vec::with_capacity(spans.len());
    let mut chosen = Vec::with_capacity(spans.len());
    let mut stitched = EquityCurveOwned::default();
    let mut trades: Vec<Trade> = Vec::new();
    let (mut fees_paid, mut exposure_bars) = (0.0, 0);
    let mut cash = execution.initial_cash;
    for span in spans {
        let in_sample_bars = bars.slice(span.in_sample.clone());
        let in_sample = Stage {
            history: bars,
            window: Some((&in_sample_bars, span.in_sample.start)),
            cache: &cache,
            execution,
            periods_per_year,
        };
        let ranked = sweep_stage(&in_sample, &parsed, sets, &objective, 0, pool, &progress)?;
        drop(in_sample_bars);
        let best = ranked.first().ok_or_else(|| unbound(&sets[0]))?;
        let params = &sets[best.index];

        progress.check()?;
        let out_of_sample_bars = bars.slice(span.out_of_sample.clone());
        let window_execution = Execution {
            initial_cash: cash,
            ..execution.clone()
        };
        let out_of_sample = Stage {
            history: bars,
            window: Some((&out_of_sample_bars, span.out_of_sample.start)),
            cache: &cache,
            execution: &window_execution,
            periods_per_year,
        };
        let compiled = parsed.bind(params).ok_or_else(|| unbound(params))?;
        let run = out_of_sample.run(&compiled);
        progress.step();

        cash = run.metrics.final_equity;
        fees_paid += run.simulation.fees_paid;
        exposure_bars += run.simulation.exposure_bars;
        stitched
            .time
            .extend_from_slice(&bars.time[span.out_of_sample.clone()]);
        stitched.value.extend_from_slice(&run.simulation.equity);
        // Bar indices of the whole data, not of the window.
        trades.extend(run.simulation.trades.into_iter().map(|t| Trade {
            entry_bar: t.entry_bar + span.out_of_sample.start,
            exit_bar: t.exit_bar + span.out_of_sample.start,
            ..t
        }));
        windows.push(Window {
            in_sample_start: bars.time[span.in_sample.start],
            in_sample_end: bars.time[span.in_sample.end - 1],
            out_of_sample_start: bars.time[span.out_of_sample.start],
            out_of_sample_end: bars.time[span.out_of_sample.end - 1],
            params: params.clone(),
            in_sample_objective: objective.value(&best.metrics),
            out_of_sample: run.metrics.clone(),
        });
        chosen.push(SetResult {
            params: params.clone(),
            metrics: run.metrics,
            equity: None,
        });
    }

    let metrics = Metrics::compute(MetricInputs {
        equity: &stitched.value,
        initial_cash: execution.initial_cash,
        trades: &trades,
        fees_paid,
        exposure_bars,
        periods_per_year,
    });
    // A stable sort: equal objectives stay in window order.
    chosen.sort_by(|a, b| {
        objective.compare(objective.value(&a.metrics), objective.value(&b.metrics))
    });
    Ok(WalkForwardResult {
        best: chosen.first().cloned(),
        results: chosen,
        windows,
        out_of_sample: OutOfSample {
            metrics,
            equity: stitched,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` bars one day apart from 2020-01-01 (a Wednesday).
    fn daily(n: usize) -> Bars {
        let start = 1_577_836_800 * 1_000_000_000_i64;
        let mut bars = Bars::default();
        for i in 0..n {
            let price = 100.0 + (i as f64 / 5.0).sin() * 10.0;
            bars.push(
                start + i as i64 * NANOS_PER_DAY,
                price,
                price + 1.0,
                price - 1.0,
                price,
                1.0,
            );
        }
        bars
    }

    fn walk(
        in_sample: &str,
        out_of_sample: &str,
        step: Option<&str>,
        anchored: bool,
    ) -> WalkForwardSpec {
        WalkForwardSpec {
            in_sample: in_sample.to_owned(),
            out_of_sample: out_of_sample.to_owned(),
            step: step.map(str::to_owned),
            anchored,
        }
    }

    fn ranges(spans: &[Span]) -> Vec<(Range<usize>, Range<usize>)> {
        spans
            .iter()
            .map(|s| (s.in_sample.clone(), s.out_of_sample.clone()))
            .collect()
    }

    #[test]
    fn rolling_windows_in_bars() {
        let spans = windows(&daily(100), &walk("40", "20", None, false)).unwrap();
        assert_eq!(
            ranges(&spans),
            [(0..40, 40..60), (20..60, 60..80), (40..80, 80..100)]
        );
        let spans = windows(&daily(100), &walk("40", "20", Some("30"), false)).unwrap();
        assert_eq!(ranges(&spans), [(0..40, 40..60), (30..70, 70..90)]);
    }

    #[test]
    fn more_windows_than_the_limit_are_refused_before_and_during_the_run() {
        let bars = daily(MAX_WALK_FORWARD_WINDOWS + 20);
        // One-bar windows: one per bar, past the limit.
        let error = windows(&bars, &walk("1", "1", None, false)).unwrap_err();
        assert_eq!(error.field, "walk_forward");
        assert!(
            error.message.starts_with(&format!(
                "more than {MAX_WALK_FORWARD_WINDOWS} windows fit the data's 1020 bars"
            )),
            "{}",
            error.message
        );
        // The same, counted at submission from the bar count and the data's first and last time.
        let (first, last) = (bars.time[0], *bars.time.last().unwrap());
        let check =
            |walk: &WalkForwardSpec| walk.check_windows(1020, first, last, Some(NANOS_PER_DAY));
        let error = check(&walk("1", "1", None, false)).unwrap_err();
        assert!(
            error.message.starts_with("about 1019 windows"),
            "{}",
            error.message
        );
        let error = check(&walk("1d", "1d", None, false)).unwrap_err();
        assert!(
            error.message.starts_with("about 1019 windows"),
            "{}",
            error.message
        );
        // Windows of 20 bars or 3 weeks fit.
        assert_eq!(check(&walk("40", "20", None, false)), Ok(()));
        assert_eq!(check(&walk("12w", "3w", None, false)), Ok(()));
        assert_eq!(
            windows(&bars, &walk("40", "20", None, false))
                .unwrap()
                .len(),
            49
        );
    }

    #[test]
    fn a_data_set_too_short_for_one_window_is_found_before_loading() {
        let bars = daily(100);
        let (first, last) = (bars.time[0], *bars.time.last().unwrap());
        let check =
            |walk: &WalkForwardSpec| walk.check_windows(100, first, last, Some(NANOS_PER_DAY));
        // The submission's error is the run's, word for word.
        for (in_sample, out_of_sample) in [("90", "20"), ("80d", "30d"), ("100", "1d")] {
            let walk = walk(in_sample, out_of_sample, None, false);
            let run = windows(&bars, &walk).unwrap_err();
            assert!(
                run.message.contains("leave no complete window"),
                "{}",
                run.message
            );
            assert_eq!(check(&walk), Err(run), "{in_sample} + {out_of_sample}");
        }
        // Windows that take the data exactly, the last bar lasting a day, pass both.
        for (in_sample, out_of_sample) in [("80", "20"), ("80d", "20d"), ("99", "1d")] {
            let walk = walk(in_sample, out_of_sample, None, false);
            assert_eq!(windows(&bars, &walk).unwrap().len(), 1, "{in_sample}");
            assert_eq!(check(&walk), Ok(()), "{in_sample} + {out_of_sample}");
        }
    }

    #[test]
    fn anchored_windows_start_at_the_first_bar() {
        let spans = windows(&daily(100), &walk("40", "20", None, true)).unwrap();
        assert_eq!(
            ranges(&spans),
            [(0..40, 40..60), (0..60, 60..80), (0..80, 80..100)]
        );
    }

    #[test]
    fn duration_windows_follow_the_timestamps() {
        // Weekdays only: 5 bars a week.
        let all = daily(140);
        let keep: Vec<usize> = (0..all.len())
            .filter(|&i| {
                // 2020-01-01 is a Wednesday: day i is a weekend when (i + 2) % 7 is 4 or 5.
                !matches!((i + 2) % 7, 4 | 5)
            })
            .collect();
        let mut bars = Bars::default();
        for &i in &keep {
            bars.push(
                all.time[i],
                all.open[i],
                all.high[i],
                all.low[i],
                all.close[i],
                1.0,
            );
        }
        let spans = windows(&bars, &walk("4w", "2w", None, false)).unwrap();
        // 20 bars in 4 weeks, 10 in 2; windows move by 2 weeks = 10 bars.
        assert_eq!(
            spans[0],
            Span {
                in_sample: 0..20,
                out_of_sample: 20..30
            }
        );
        assert_eq!(
            spans[1],
            Span {
                in_sample: 10..30,
                out_of_sample: 30..40
            }
        );
        assert_eq!(spans.len(), 8);
        assert!(spans
            .windows(2)
            .all(|w| w[0].out_of_sample.end == w[1].out_of_sample.start));
        // Each window's times fall in [start, start + duration).
        let t0 = bars.time[0];
        for (k, span) in spans.iter().enumerate() {
            let start = t0 + k as i64 * 2 * NANOS_PER_WEEK;
            let split = start + 4 * NANOS_PER_WEEK;
            assert!(bars.time[span.in_sample.clone()]
                .iter()
                .all(|&t| t >= start && t < split));
            assert!(bars.time[span.out_of_sample.clone()]
                .iter()
                .all(|&t| t >= split && t < split + 2 * NANOS_PER_WEEK));
        }
        let anchored = windows(&bars, &walk("4w", "2w", None, true)).unwrap();
        assert_eq!(
            anchored[1],
            Span {
                in_sample: 0..30,
                out_of_sample: 30..40
            }
        );
    }

    #[test]
    fn lengths_beyond_the_data_are_an_error() {
        let error = windows(&daily(100), &walk("90", "20", None, false)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "walk_forward: in_sample '90' and out_of_sample '20' leave no complete window: the \
             data has 100 bars from 2020-01-01 to 2020-04-09 (span 99d)"
        );
        let error = windows(&daily(100), &walk("365d", "30d", None, false)).unwrap_err();
        assert!(
            error.to_string().contains("the data has 100 bars"),
            "{error}"
        );
        let error = windows(&Bars::default(), &walk("1", "1", None, false)).unwrap_err();
        assert!(
            error.to_string().ends_with("the data has no bars"),
            "{error}"
        );
    }

    #[test]
    fn bad_lengths_are_errors() {
        let message = |w: WalkForwardSpec| windows(&daily(10), &w).unwrap_err().to_string();
        assert_eq!(
            message(walk("1y", "5", None, false)),
            "walk_forward.in_sample: expected a bar count (500) or a duration with unit m, h, d \
             or w (365d, 12w, 36h), got '1y'"
        );
        assert_eq!(
            message(walk("5", "0", None, false)),
            "walk_forward.out_of_sample: must be > 0, got '0'"
        );
        assert!(message(walk("5", "2", Some("-1"), false)).starts_with("walk_forward.step:"));
        assert!(message(walk("4", "3", Some("1"), false))
            .starts_with("walk_forward.step: out-of-sample windows overlap"));
    }

    #[test]
    fn lengths_parse_as_bars_or_durations() {
        assert_eq!(Length::parse("500", "x").unwrap(), Length::Bars(500));
        assert_eq!(
            Length::parse(" 365d ", "x").unwrap(),
            Length::Duration(365 * NANOS_PER_DAY)
        );
        assert_eq!(
            Length::parse("12w", "x").unwrap(),
            Length::Duration(12 * NANOS_PER_WEEK)
        );
        assert_eq!(
            Length::parse("36h", "x").unwrap(),
            Length::Duration(36 * NANOS_PER_HOUR)
        );
        assert_eq!(
            Length::parse("90m", "x").unwrap(),
            Length::Duration(90 * NANOS_PER_MINUTE)
        );
    }
}
