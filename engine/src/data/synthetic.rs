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

/// A Parquet file of `groups` row groups of `per_group` identical bars (2010-01-01, price 1),
/// written a group at a time so writing holds one group: a few MB on disk that decode to
/// `per_group x groups x 48` bytes. An upload of this shape once took an api to 17.6 GB; the
/// limits' tests (engine, api, the abuse suite) write it to show it is refused from its footer.
pub fn constant_bars_parquet(
    path: &std::path::Path,
    per_group: usize,
    groups: usize,
) -> Result<(), super::DataError> {
    use polars::prelude::*;
    let write_error = |source| super::DataError::Polars {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let time = Int64Chunked::full("time".into(), 1_262_304_000_000_000_000, per_group)
        .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
        .into_column();
    let mut columns = vec![time];
    for name in ["open", "high", "low", "close", "volume"] {
        columns.push(Float64Chunked::full(name.into(), 1.0, per_group).into_column());
    }
    let frame = DataFrame::new(per_group, columns).map_err(write_error)?;
    let file =
        std::fs::File::create(path).map_err(|source| super::write::write_error(path, source))?;
    let mut writer = ParquetWriter::new(file)
        .with_row_group_size(Some(per_group.max(1)))
        .batched(frame.schema())
        .map_err(write_error)?;
    for _ in 0..groups {
        writer.write_batch(&frame).map_err(write_error)?;
    }
    writer.finish().map_err(write_error)?;
    Ok(())
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
