//! A memo of indicator columns shared by every condition evaluated over one set of bars.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// The outputs of one indicator call (one column, or three for MACD and Bollinger bands).
type Outputs = Vec<Arc<Vec<f64>>>;

/// Indicator columns already computed, keyed by their canonical bound form, e.g.
/// `sma(close,10)` (parameters substituted), `macd(close,12,26,9)` (line, signal and histogram
/// together), `bollinger(close,20,2)`, `atr(14)`.
///
/// **One cache serves one [`Bars`](crate::data::Bars)**: keys name the computation, not the
/// data, so evaluating against other bars with the same cache would return stale columns.
///
/// Methods take `&self` and the cache is `Send + Sync`, so one cache can be shared by the
/// threads of a parameter sweep: each distinct indicator is computed once, by the first thread
/// that needs it, outside the map's lock (threads wanting the same column wait for that one
/// computation, other columns proceed). Only indicators are kept: cheap per-set columns such
/// as comparisons are not, so memory grows with the distinct indicators, not with the sets.
#[derive(Debug, Default)]
pub struct SeriesCache {
    entries: RwLock<HashMap<String, Arc<OnceLock<Outputs>>>>,
}

impl SeriesCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of indicator calls computed so far (MACD's three outputs count as one).
    pub fn len(&self) -> usize {
        self.read()
            .values()
            .filter(|cell| cell.get().is_some())
            .count()
    }

    /// True when nothing has been computed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The canonical forms of the computed indicator calls, sorted (for tests and diagnostics).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, cell)| cell.get().is_some())
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Output `output` of the call `key`, if it has been computed.
    pub(crate) fn get(&self, key: &str, output: usize) -> Option<Arc<Vec<f64>>> {
        let cell = self.read().get(key).cloned()?;
        cell.get()?.get(output).cloned()
    }

    /// Output `output` of the call `key`, computing all its outputs with `compute` if no one
    /// has yet. `compute` runs without the map's lock held.
    pub(crate) fn get_or_compute(
        &self,
        key: &str,
        output: usize,
        compute: impl FnOnce() -> Vec<Vec<f64>>,
    ) -> Option<Arc<Vec<f64>>> {
        let existing = self.read().get(key).cloned();
        let cell = match existing {
            Some(cell) => cell,
            None => {
                let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
                entries.entry(key.to_string()).or_default().clone()
            }
        };
        let outputs = cell.get_or_init(|| compute().into_iter().map(Arc::new).collect());
        outputs.get(output).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<OnceLock<Outputs>>>> {
        // A panic elsewhere while holding the lock cannot leave the map half-updated (inserts
        // are single calls), so a poisoned lock is still usable.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }
}
