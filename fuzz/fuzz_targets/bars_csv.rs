//! The CSV bar loader: any bytes as a `.csv` file, then what loads resampled to a day.
#![no_main]

mod common;

use engine::data::{load, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let loaded = common::with_file("bars.csv", data, |path| load(path, &LoadOptions::default()));
    // Errors name rows and values to users: rendering them is fuzzed too.
    match loaded {
        Ok(bars) => {
            let _ = bars.resample("1d".parse().expect("a valid timeframe"));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
