//! Building blocks shared by the windowed indicators: a compensated running sum that skips
//! missing values, rolling second moments that never subtract, and a monotonic deque.
//!
//! Each block is stepped once per bar with the whole source slice and the bar's index, so the
//! indicators that share one (sma and bollinger's mid, say) produce bit-identical numbers.

/// Neumaier (improved Kahan) compensated sum: `total()` is within about one ulp of the exact sum
/// of everything added (plus `n * eps^2 * sum(|terms|)`, negligible even after billions of
/// price-sized terms), however many were added and later subtracted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    /// Adds `x` (a negative `x` removes it), carrying the rounding error in the compensation.
    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        // Whichever operand is larger in magnitude is exact in `t`; recover the lost low bits of
        // the other one.
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// The running sum and its compensation, for loops that carry them in locals.
    #[inline]
    pub(crate) fn parts(&self) -> (f64, f64) {
        (self.sum, self.compensation)
    }

    /// The compensated total.
    #[inline]
    pub(crate) fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Running sum of the window ending at the current bar; missing values are counted, not summed,
/// so a NaN spoils only the windows that contain it instead of the rest of the series.
#[derive(Debug)]
pub(crate) struct WindowSum {
    period: usize,
    sum: CompensatedSum,
    /// Number of finite values currently in the window.
    valid: usize,
}

impl WindowSum {
    /// An empty window of `period` bars.
    pub(crate) fn new(period: usize) -> Self {
        Self {
            period,
            sum: CompensatedSum::default(),
            valid: 0,
        }
    }

    /// Slides the window to end at bar `t` (bars must be stepped in order 0, 1, 2, ...) and
    /// returns its sum if it holds `period` finite values.
    #[inline]
    pub(crate) fn step(&mut self, src: &[f64], t: usize) -> Option<f64> {
        if t >= self.period {
            let leaving = src[t - self.period];
            if leaving.is_finite() {
                self.sum.add(-leaving);
                self.valid -= 1;
                if self.valid == 0 {
                    // Nothing left in the window: drop any residual rounding.
                    self.sum = CompensatedSum::default();
                }
            }
        }
        let x = src[t];
        if x.is_finite() {
            self.sum.add(x);
            self.valid += 1;
        }
        (self.valid == self.period).then(|| self.sum.total())
    }
}

/// Count, mean and sum of squared deviations (M2) of a run of values.
///
/// The mean is kept relative to `shift`, the first value pushed: with prices around 1000 and
/// deviations around 1e-6, a mean held as ~1000 would be rounded to ~1e-13, a relative error of
/// 1e-7 in every deviation; held as an offset from a nearby value it is rounded to ~1e-22.
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    n: usize,
    shift: f64,
    /// Mean of `x - shift`.
    mean: f64,
    m2: f64,
}

impl Moments {
    /// These moments with `x` added (Welford's update); `inv_n` is `1 / (self.n + 1)`, looked up
    /// rather than divided for on every bar.
    #[inline]
    fn push(self, x: f64, inv_n: f64) -> Self {
        if self.n == 0 {
            return Self {
                n: 1,
                shift: x,
                mean: 0.0,
                m2: 0.0,
            };
        }
        let y = x - self.shift;
        let delta = y - self.mean;
        let mean = self.mean + delta * inv_n;
        Self {
            n: self.n + 1,
            shift: self.shift,
            mean,
            m2: self.m2 + delta * (y - mean),
        }
    }

    /// M2 of the union of two disjoint runs (Chan et al.'s pairwise update); `inv_total` is
    /// `1 / (self.n + other.n)`.
    #[inline]
    fn merged_m2(self, other: Self, inv_total: f64) -> f64 {
        if self.n == 0 {
            return other.m2;
        }
        if other.n == 0 {
            return self.m2;
        }
        let delta = (other.shift - self.shift) + (other.mean - self.mean);
        let weight = (self.n as f64) * (other.n as f64) * inv_total;
        self.m2 + other.m2 + delta * delta * weight
    }
}

/// Rolling sum of squared deviations from the window mean (M2), for the population variance.
///
/// The textbook running update (add the new value, subtract the leaving one) lets rounding
/// errors pile up, and after a volatile stretch leaves the window they can exceed the variance
/// of a calm one, even making it negative. This uses the two-stack sliding-window aggregation
/// instead: the window is split into a front part, whose suffix moments are precomputed, and a
/// back part, whose moments are built up as bars arrive; the window's moments merge the two.
/// Nothing is ever subtracted, so each result is as accurate as a fresh Welford pass over the
/// window (a constant window gives exactly 0), and each bar is pushed once and moved to the
/// front once: O(1) amortised per bar whatever the period.
#[derive(Debug)]
pub(crate) struct WindowMoments {
    period: usize,
    /// `reciprocals[k] = 1 / k`, for `k` in `1..=period`.
    reciprocals: Vec<f64>,
    /// `suffix[i - front_base]` holds the moments of `src[i..back_start]`, for `i` in the front.
    suffix: Vec<Moments>,
    front_base: usize,
    /// First bar of the window. The window is `src[start..=t]`; it never holds a missing value.
    start: usize,
    /// First bar of the back part; the front is `src[start..back_start]`.
    back_start: usize,
    back: Moments,
}

impl WindowMoments {
    /// An empty window of `period` bars (allocates its tables once).
    pub(crate) fn new(period: usize) -> Self {
        Self {
            period,
            reciprocals: (0..=period).map(|k| 1.0 / k as f64).collect(),
            suffix: vec![Moments::default(); period],
            front_base: 0,
            start: 0,
            back_start: 0,
            back: Moments::default(),
        }
    }

    /// Slides the window to end at bar `t` (bars must be stepped in order 0, 1, 2, ...) and
    /// returns its M2 if it holds `period` finite values.
    #[inline]
    pub(crate) fn step(&mut self, src: &[f64], t: usize) -> Option<f64> {
        let x = src[t];
        if !x.is_finite() {
            // Every window containing bar t is missing; start afresh after it.
            self.start = t + 1;
            self.back_start = t + 1;
            self.back = Moments::default();
            return None;
        }
        if t - self.start == self.period {
            // The window already holds `period` bars: the oldest one leaves.
            if self.start == self.back_start {
                self.flip(src, t);
            }
            self.start += 1;
        }
        // The back never holds more than `period` bars, so the lookup is in range.
        self.back = self.back.push(x, self.reciprocals[self.back.n + 1]);
        if t + 1 - self.start < self.period {
            return None;
        }
        let front = if self.start < self.back_start {
            self.suffix[self.start - self.front_base]
        } else {
            Moments::default()
        };
        Some(front.merged_m2(self.back, self.reciprocals[self.period]))
    }

    /// Moves the back part (`src[start..t]`) to the front, computing its suffix moments.
    fn flip(&mut self, src: &[f64], t: usize) {
        self.front_base = self.start;
        let mut acc = Moments::default();
        for (slot, &x) in self.suffix[..t - self.start]
            .iter_mut()
            .zip(&src[self.start..t])
            .rev()
        {
            acc = acc.push(x, self.reciprocals[acc.n + 1]);
            *slot = acc;
        }
        self.back_start = t;
        self.back = Moments::default();
    }
}

/// Calls `emit(t, mean, population_stdev)` for every window of `period` finite values; the mean
/// is bit-identical to [`super::sma`]'s.
#[inline]
pub(crate) fn for_each_mean_stdev(
    src: &[f64],
    period: usize,
    mut emit: impl FnMut(usize, f64, f64),
) {
    if period == 0 || period > src.len() {
        return;
    }
    let p = period as f64;
    let mut sum = WindowSum::new(period);
    let mut moments = WindowMoments::new(period);
    for t in 0..src.len() {
        let s = sum.step(src, t);
        let m2 = moments.step(src, t);
        if let (Some(s), Some(m2)) = (s, m2) {
            emit(t, s / p, (m2 / p).sqrt());
        }
    }
}

/// Rolling extreme of each window of `period` bars: `prefer(a, b)` is true when `a` should win
/// over `b` or tie with it (`>=` for the maximum). Windows holding a missing (non-finite) value
/// are NaN.
///
/// A monotonic deque: it holds the bars that may still become a window's extreme, oldest first,
/// each strictly better than every later one; the front is the current extreme. Each bar enters
/// and leaves once, so the cost is O(n) whatever the period. The deque is a ring buffer sized
/// once, before the loop.
pub(crate) fn rolling_extreme(
    src: &[f64],
    period: usize,
    prefer: impl Fn(f64, f64) -> bool,
) -> Vec<f64> {
    let n = src.len();
    let mut out = vec![f64::NAN; n];
    if period == 0 || period > n {
        return out;
    }
    // Up to `period + 1` candidates (the window before sliding, plus the new bar); a power of two
    // so positions wrap with a mask.
    let capacity = (period + 1).next_power_of_two();
    let mask = capacity - 1;
    let mut ring = vec![(0usize, 0.0f64); capacity];
    // Candidates sit at positions head..tail (counters, wrapped with `mask` when indexing).
    let mut head = 0usize;
    let mut tail = 0usize;
    // One past the most recent missing value: windows starting before it contain one.
    let mut clean_from = 0;
    for (t, &x) in src.iter().enumerate() {
        if !x.is_finite() {
            clean_from = t + 1;
            head = tail;
            continue;
        }
        while tail > head && prefer(x, ring[(tail - 1) & mask].1) {
            tail -= 1;
        }
        ring[tail & mask] = (t, x);
        tail += 1;
        if t + 1 < period {
            continue;
        }
        let window_start = t + 1 - period;
        // The window moved by one bar, so at most the front candidate fell out of it.
        if ring[head & mask].0 < window_start {
            head += 1;
        }
        if window_start >= clean_from {
            out[t] = ring[head & mask].1;
        }
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::random_walk;

    #[test]
    fn compensated_sum_recovers_what_plain_addition_loses() {
        // 1e16 + 1 + 1 - 1e16: plain f64 addition gives 0 (each 1 is below half an ulp of 1e16);
        // the compensated sum gives the exact 2.
        let mut s = CompensatedSum::default();
        for x in [1e16, 1.0, 1.0, -1e16] {
            s.add(x);
        }
        assert_eq!(s.total(), 2.0);
    }

    #[test]
    fn window_moments_match_a_fresh_two_pass_computation() {
        // Volatile then calm: the case where subtracting running updates goes wrong.
        let mut src = random_walk(3_000, 7);
        for (i, x) in src.iter_mut().enumerate() {
            if i < 1_500 {
                *x *= 1e4;
            } else {
                *x = 1000.0 + (*x - 1000.0) * 1e-6;
            }
        }
        let period = 37;
        let mut moments = WindowMoments::new(period);
        for t in 0..src.len() {
            let got = moments.step(&src, t);
            if t + 1 < period {
                assert!(got.is_none());
                continue;
            }
            let w = &src[t + 1 - period..=t];
            let mean = w.iter().sum::<f64>() / period as f64;
            let m2: f64 = w.iter().map(|v| (v - mean) * (v - mean)).sum();
            let got = got.unwrap();
            assert!((got - m2).abs() <= 1e-12 * m2, "t={t}: {got} vs {m2}");
        }
    }

    #[test]
    fn window_moments_restart_after_a_missing_value_and_give_zero_for_a_constant_window() {
        let src = [1.5, 1.5, f64::NAN, 2.25, 2.25, 2.25, 3.0];
        let mut m = WindowMoments::new(2);
        let got: Vec<Option<f64>> = (0..src.len()).map(|t| m.step(&src, t)).collect();
        // Windows: [1.5,1.5] -> 0; any window with the NaN -> None; [2.25,2.25] -> exactly 0;
        // [2.25,3.0]: mean 2.625, M2 = 2 * 0.375^2 = 0.28125.
        assert_eq!(
            got,
            [
                None,
                Some(0.0),
                None,
                None,
                Some(0.0),
                Some(0.0),
                Some(0.28125)
            ]
        );
    }
}
