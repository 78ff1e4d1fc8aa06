//! What the file-loading targets share: the fuzz input written to a file in memory.

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
