//! Bars loaded for earlier jobs, kept so the next job on the same data set skips the file.
//!
//! A key is the file, its size and modification time, and the load options (range and
//! timeframe): a re-uploaded or edited file is read again. The cache is bounded by entries and
//! by bars, and forgets the least recently used first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use engine::data::{self, Bars, DataError, LoadOptions};

/// Most data sets kept.
const MAX_ENTRIES: usize = 32;
/// Most bars kept over all entries (about 48 bytes each).
const MAX_BARS: usize = 4_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    /// The load options, as their debug text (they hold only numbers and a timeframe).
    options: String,
}

struct Entry {
    bars: Arc<Bars>,
    used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    clock: u64,
    bars: usize,
}

/// Loaded bars by file, size, modification time and load options.
#[derive(Default)]
pub(crate) struct BarsCache {
    inner: Mutex<Inner>,
}

impl BarsCache {
    /// The bars of `path` as `options` asks, from the cache or from the file. Blocking: call it
    /// on an engine thread.
    pub(crate) fn load(&self, path: &Path, options: &LoadOptions) -> Result<Arc<Bars>, DataError> {
        let Ok(meta) = std::fs::metadata(path) else {
            // Let the loader say what is wrong with the path.
            return data::load(path, options).map(Arc::new);
        };
        let key = Key {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
            options: format!("{options:?}"),
        };
        {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            if let Some(entry) = inner.entries.get_mut(&key) {
                entry.used = now;
                return Ok(Arc::clone(&entry.bars));
            }
        }
        let bars = Arc::new(data::load(path, options)?);
        self.insert(key, Arc::clone(&bars));
        Ok(bars)
    }

    fn insert(&self, key: Key, bars: Arc<Bars>) {
        if bars.len() > MAX_BARS {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        // An older version of the same file and options is dead weight now.
        let stale: Vec<Key> = inner
            .entries
            .keys()
            .filter(|k| k.path == key.path && k.options == key.options)
            .cloned()
            .collect();
        for k in stale {
            inner.remove(&k);
        }
        while !inner.entries.is_empty()
            && (inner.entries.len() >= MAX_ENTRIES || inner.bars + bars.len() > MAX_BARS)
        {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => inner.remove(&k),
                None => break,
            }
        }
        inner.bars += bars.len();
        inner.entries.insert(key, Entry { bars, used });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The cache holds no invariant a panic could break half-way.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key) {
            self.bars -= entry.bars.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_csv(path: &Path, rows: usize) {
        let mut text = String::from("time,open,high,low,close,volume\n");
        for i in 0..rows {
            let day = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                + chrono::Duration::days(i as i64);
            text.push_str(&format!("{day},10,11,9,10.5,100\n"));
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_second_load_is_served_from_the_cache_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.csv");
        write_csv(&path, 10);
        let cache = BarsCache::default();
        let options = LoadOptions::default();
        let first = cache.load(&path, &options).unwrap();
        let second = cache.load(&path, &options).unwrap();
        assert!(Arc::ptr_eq(&first, &second));

        write_csv(&path, 12);
        let third = cache.load(&path, &options).unwrap();
        assert_eq!(third.len(), 12);
        assert_eq!(cache.lock().entries.len(), 1, "the old version is dropped");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let cache = BarsCache::default();
        let err = cache
            .load(Path::new("/nonexistent/bars.csv"), &LoadOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/bars.csv"), "{err}");
    }
}
