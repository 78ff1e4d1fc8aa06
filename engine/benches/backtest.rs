//! One sma_cross backtest over 1,000,000 synthetic bars: the engine alone (bars in memory), and
//! with the Parquet file read included. Figures are recorded in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::data::{self, LoadOptions};
use engine::execution::{Execution, Fill};
use engine::run_backtest;
use engine::spec::StrategySpec;
use engine::strategy::Strategy;

// The allocator of the `strata` binary, so the figures are the ones a user gets.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const BARS: usize = 1_000_000;

fn sma_cross() -> engine::strategy::CompiledStrategy {
    let spec = StrategySpec {
        template: Some("sma_cross".into()),
        params: [("fast".to_owned(), 10.0), ("slow".to_owned(), 50.0)].into(),
        ..StrategySpec::default()
    };
    Strategy::from_spec(&spec).unwrap().compile().unwrap()
}

fn backtest(c: &mut Criterion) {
    let bars = engine::data::synthetic::random_walk(BARS, 42);
    let strategy = sma_cross();
    let execution = Execution {
        fill: Fill::NextOpen,
        fees: 0.001,
        ..Execution::default()
    };

    let mut group = c.benchmark_group("sma_cross_1m_bars");
    group.throughput(Throughput::Elements(BARS as u64));
    group.sample_size(20);
    group.bench_function("engine", |b| {
        b.iter(|| run_backtest(&bars, &strategy, &execution, None));
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bars.parquet");
    bars.write_parquet(&path).unwrap();
    group.bench_function("parquet_and_engine", |b| {
        b.iter(|| {
            let loaded = data::load(&path, &LoadOptions::default()).unwrap();
            run_backtest(&loaded, &strategy, &execution, None).metrics
        });
    });
    group.finish();
}

criterion_group!(benches, backtest);
criterion_main!(benches);
