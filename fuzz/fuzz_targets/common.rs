//! What the file-loading targets share: the fuzz input written to a file in memory, and the
//! panic handling of the Parquet targets.
// Each target includes this module and uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;

/// Writes `data` to a file named for this process and `name` under /dev/shm (a memory file
/// system, so no disk writes at tens of thousands of runs a second), calls `read` on its path
/// and removes it. The loaders read paths only, hence the file.
pub fn with_file<T>(name: &str, data: &[u8], read: impl FnOnce(&std::path::Path) -> T) -> T {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("strata-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("write the fuzz input");
    let result = read(&path);
    let _ = std::fs::remove_file(&path);
    result
}

/// The last panic's message, kept by the hook of [`let_panics_unwind`] for [`or_abort`].
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Replaces libfuzzer-sys's panic hook, which aborts before a panic can unwind, by one that
/// keeps the message and lets it unwind. The engine turns polars' panics on damaged Parquet
/// into errors (`data::load::unpanicked`), and that is the behaviour these targets must see;
/// a panic nothing catches still ends in [`or_abort`], which prints it and aborts: a crash, as
/// before. Call it from the target's `init`.
pub fn let_panics_unwind() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }));
}

/// Runs one input; a panic that unwinds out of it is printed and aborts the process, which is
/// how libFuzzer records a crash.
pub fn or_abort(run: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
        let message = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
        eprintln!("{}", message.as_deref().unwrap_or("panicked"));
        std::process::abort();
    }
}
