//! A parameter sweep: sma_cross over 1,000,000 synthetic bars with 45 parameter sets (windows
//! 5, 30, ..., 230, every pair fast < slow) on a two-thread pool. Figures in BENCHMARKS.md;
//! `sweep_1m.sh` beside this file measures the whole process (loading, peak memory).

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::execution::Execution;
use engine::spec::StrategySpec;
use engine::strategy::Strategy;
use engine::sweep::{run_sweep, Control, GridValues, SweepSpec};

// The allocator of the `strata` binary, so the figures are the ones a user gets.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn sweep(c: &mut Criterion) {
    let bars = engine::data::synthetic::random_walk(1_000_000, 42);
    let strategy = Strategy::from_spec(&StrategySpec {
        template: Some("sma_cross".into()),
        ..StrategySpec::default()
    })
    .unwrap();
    let windows = GridValues::Text("5:230:25".into());
    let spec = SweepSpec {
        grid: BTreeMap::from([("fast".into(), windows.clone()), ("slow".into(), windows)]),
        samples: None,
        seed: None,
        constraint: Some("fast < slow".into()),
        objective: "sharpe".into(),
        minimize: false,
        top: None,
    };
    let sets = spec.parameter_sets(&strategy).unwrap();
    assert_eq!(sets.len(), 45);
    let execution = Execution {
        fees: 0.001,
        ..Execution::default()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();

    let mut group = c.benchmark_group("sweep_sma_cross_1m_bars_45_sets");
    group.throughput(Throughput::Elements(45 * 1_000_000));
    group.sample_size(10);
    group.bench_function("two_threads", |b| {
        b.iter(|| {
            run_sweep(
                &bars,
                &strategy,
                &sets,
                &execution,
                None,
                &spec,
                &pool,
                &Control::default(),
            )
            .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, sweep);
criterion_main!(benches);
