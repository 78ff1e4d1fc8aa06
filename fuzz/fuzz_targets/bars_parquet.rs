//! The Parquet bar loader: any bytes as a `.parquet` file, read whole and with a time range
//! (the range is pushed down into the reader, a different path through it).
#![no_main]

mod common;

use engine::data::{load, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: common::let_panics_unwind(), |data: &[u8]| {
    common::or_abort(|| {
        common::with_file("bars.parquet", data, |path| {
            let bars = match load(path, &LoadOptions::default()) {
                Ok(bars) => bars,
                Err(error) => {
                    let _ = error.to_string();
                    return;
                }
            };
            let _ = bars.resample("1d".parse().expect("a valid timeframe"));
            if let (Some(&first), Some(&last)) = (bars.time.first(), bars.time.last()) {
                let middle = first / 2 + last / 2;
                let options = LoadOptions {
                    start: Some(middle),
                    end: Some(last),
                    timeframe: None,
                };
                if let Err(error) = load(path, &options) {
                    let _ = error.to_string();
                }
            }
        });
    });
});
