//! Where a job's data lives: bundled examples by file stem, uploads under the data directory.

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Prefix of a job's `data_path` that points into the bundled examples.
const BUNDLED: &str = "bundled/";

/// The bundled example data set `name` means (`GOOG` -> `bundled/GOOG.csv`), as a job's
/// `data_path` stores it. Names compare ignoring ASCII case, as everywhere (see
/// [`bundled_named`]).
pub fn bundled(config: &Config, name: &str) -> Option<String> {
    bundled_named(config, name).map(|(_, data_path)| data_path)
}

/// The bundled example `name` means, as (its own name, its `data_path`): names compare
/// ignoring ASCII case (`goog` is `GOOG`), the exact spelling first should two examples differ
/// only by case.
pub fn bundled_named(config: &Config, name: &str) -> Option<(String, String)> {
    let all = bundled_all(config);
    let (stem, path) = all
        .iter()
        .find(|(stem, _)| stem == name)
        .or_else(|| all.iter().find(|(stem, _)| stem.eq_ignore_ascii_case(name)))?;
    let file = path.file_name()?.to_str()?;
    Some((stem.clone(), format!("{BUNDLED}{file}")))
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
