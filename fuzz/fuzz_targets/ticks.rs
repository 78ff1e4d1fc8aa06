//! The tick loader: any bytes as a trades-and-book file, Parquet when they start with its
//! magic `PAR1`, CSV otherwise; what loads is loaded again from its middle (which replays the
//! book up to there).
#![no_main]

mod common;

use engine::data::LoadOptions;
use engine::tick::load;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: common::let_panics_unwind(), |data: &[u8]| {
    common::or_abort(|| {
        let name = if data.starts_with(b"PAR1") {
            "ticks.parquet"
        } else {
            "ticks.csv"
        };
        common::with_file(name, data, |path| {
            let ticks = match load(path, &LoadOptions::default()) {
                Ok(ticks) => ticks,
                Err(error) => {
                    let _ = error.to_string();
                    return;
                }
            };
            if let Some(&middle) = ticks.time.get(ticks.len() / 2) {
                let options = LoadOptions {
                    start: Some(middle),
                    ..LoadOptions::default()
                };
                if let Err(error) = load(path, &options) {
                    let _ = error.to_string();
                }
            }
        });
    });
});
