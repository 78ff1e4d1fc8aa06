//! Seeded synthetic bars, for benchmarks and tests that need many bars of realistic shape.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Bars;

/// `n` one-minute bars of a multiplicative random walk starting at 100 (moves of up to 1 % a
/// bar, highs and lows up to 0.5 % beyond the body), the same for the same seed on any machine.
pub fn random_walk(n: usize, seed: u64) -> Bars {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bars = Bars::with_capacity(n);
    let mut price = 100.0_f64;
    for i in 0..n {
        let open = price;
        let close = open * (1.0 + rng.random_range(-0.01..0.01));
        let high = open.max(close) * (1.0 + rng.random_range(0.0..0.005));
        let low = open.min(close) * (1.0 - rng.random_range(0.0..0.005));
        let volume = rng.random_range(1.0..1000.0);
        bars.push(
            1_600_000_000_000_000_000 + i as i64 * 60_000_000_000,
            open,
            high,
            low,
            close,
            volume,
        );
        price = close;
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_walk_is_valid_and_reproducible() {
        let bars = random_walk(10_000, 7);
        assert_eq!(bars.len(), 10_000);
        bars.validate().unwrap();
        assert_eq!(bars, random_walk(10_000, 7));
        assert_ne!(bars.close, random_walk(10_000, 8).close);
        assert_eq!(bars.open[0], 100.0);
    }
}
