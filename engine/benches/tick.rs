//! Tick precision: an `sma_cross` strategy reading the top of book every millisecond (1 ms bars
//! cut from the trades), market orders walking a 20-level book after 50 µs of latency, over
//! 10,000,000 seeded synthetic events (`engine::tick::datagen::book`). Throughput is events
//! replayed per second on one core; the target is at least 10 million. "book_replay" is the
//! floor: the same events applied to a bare `Book`, nothing else.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use engine::execution::Execution;
use engine::spec::StrategySpec;
use engine::strategy::Strategy;
use engine::tick::book::Book;
use engine::tick::{datagen, run_tick_backtest, BarClock, OrderType, TickSettings};

// The allocator of the `strata` binary, so the figures are the ones a user gets.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const EVENTS: usize = 10_000_000;
const LEVELS: usize = 20;

fn tick(c: &mut Criterion) {
    let ticks = datagen::book(EVENTS, LEVELS, 42);
    let strategy = Strategy::from_spec(&StrategySpec {
        template: Some("sma_cross".into()),
        params: [("fast".to_owned(), 10.0), ("slow".to_owned(), 50.0)].into(),
        ..StrategySpec::default()
    })
    .unwrap()
    .compile()
    .unwrap();
    let execution = Execution {
        fees: 0.0002,
        ..Execution::default()
    };
    let settings = TickSettings {
        latency: 50_000,
        orders: OrderType::Market,
        clock: BarClock::Every(1_000_000),
    };

    let mut group = c.benchmark_group("tick_10m_events");
    group.throughput(Throughput::Elements(ticks.len() as u64));
    // A run takes a third of a second: ten equal samples of a few runs each are plenty.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(12));
    group.bench_function("sma_cross_1ms_market", |b| {
        b.iter(|| run_tick_backtest(&ticks, &strategy, &execution, &settings, None));
    });
    group.bench_function("book_replay", |b| {
        b.iter(|| {
            let mut book = Book::new();
            for ((&kind, &price), &size) in ticks.kind.iter().zip(&ticks.price).zip(&ticks.size) {
                book.apply(kind, price, size);
            }
            book.mid()
        });
    });
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
