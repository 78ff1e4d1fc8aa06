//! Where a job's data lives: bundled examples by file stem, uploads under the data directory.

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Prefix of a job's `data_path` that points into the bundled examples.
const BUNDLED: &str = "bundled/";

/// The bundled example data set named `stem` (`GOOG` -> `examples/data/GOOG.csv`), if any.
pub fn bundled(config: &Config, stem: &str) -> Option<String> {
    let entries = std::fs::read_dir(&config.bundled_dir).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_stem().and_then(|s| s.to_str()) == Some(stem)
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("csv" | "parquet")
                )
        })
        .and_then(|p| p.file_name()?.to_str().map(|f| format!("{BUNDLED}{f}")))
}

/// Every bundled example as (stem, file).
pub fn bundled_all(config: &Config) -> Vec<(String, PathBuf)> {
    let mut all: Vec<(String, PathBuf)> = std::fs::read_dir(&config.bundled_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("csv" | "parquet")
            )
        })
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_owned(), p)))
        .collect();
    all.sort();
    all
}

/// The file a job's `data_path` names, on this machine.
pub fn locate(config: &Config, data_path: &str) -> PathBuf {
    match data_path.strip_prefix(BUNDLED) {
        Some(file) => config.bundled_dir.join(file),
        None => config.data_dir.join(data_path),
    }
}

/// Where an upload is stored, relative to the data directory.
pub fn upload_path(owner: &str, id: uuid::Uuid) -> String {
    // The owner is hashed so any `sub` (slashes, dots) makes a safe directory name.
    let owner_dir = format!("{:016x}", fnv1a(owner.as_bytes()));
    Path::new("datasets")
        .join(owner_dir)
        .join(format!("{id}.parquet"))
        .to_string_lossy()
        .into_owned()
}

/// FNV-1a: stable across builds and machines, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
