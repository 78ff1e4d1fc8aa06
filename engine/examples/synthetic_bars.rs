//! Writes seeded synthetic one-minute bars to a Parquet file, for benchmarks of whole runs:
//! `cargo run --release -p engine --example synthetic_bars -- BARS SEED FILE.parquet`.

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bars, seed, path] = &args[..] else {
        eprintln!("usage: synthetic_bars BARS SEED FILE.parquet");
        std::process::exit(2);
    };
    let (Ok(bars), Ok(seed)) = (bars.parse::<usize>(), seed.parse::<u64>()) else {
        eprintln!("BARS and SEED must be whole numbers");
        std::process::exit(2);
    };
    let path = PathBuf::from(path);
    if let Err(error) = engine::data::synthetic::random_walk(bars, seed).write_parquet(&path) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
