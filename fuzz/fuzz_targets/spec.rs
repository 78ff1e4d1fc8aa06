//! The job spec: any JSON as a backtest spec, planned as a single run and as a sweep (which
//! validates every field and compiles the strategy; nothing is loaded).
#![no_main]

use engine::spec::BacktestSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<BacktestSpec>(data) else {
        return;
    };
    // Errors are listed to users field by field: rendering them is fuzzed too.
    for plan in [spec.plan(), spec.plan_sweep()] {
        if let Err(errors) = plan {
            let _ = errors.to_string();
        }
    }
});
