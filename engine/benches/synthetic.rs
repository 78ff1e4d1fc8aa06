//! Seeded synthetic bars for benchmarks: a random walk with consistent OHLC.

use engine::Bars;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` one-minute bars of a multiplicative random walk starting at 100, the same for a seed.
pub fn random_walk(n: usize, seed: u64) -> Bars {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bars = Bars::default();
    let mut price = 100.0_f64;
    for i in 0..n {
        let open = price;
        let close = open * (1.0 + rng.random_range(-0.01..0.01));
        let high = open.max(close) * (1.0 + rng.random_range(0.0..0.005));
        let low = open.min(close) * (1.0 - rng.random_range(0.0..0.005));
        bars.time
            .push(1_600_000_000_000_000_000 + i as i64 * 60_000_000_000);
        bars.open.push(open);
        bars.high.push(high);
        bars.low.push(low);
        bars.close.push(close);
        bars.volume.push(rng.random_range(1.0..1000.0));
        price = close;
    }
    bars
}
