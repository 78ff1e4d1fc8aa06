//! The rayon pool engine work runs on, so the tokio threads only ever wait on I/O.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tokio::sync::oneshot;

/// A rayon pool for engine work, answering over a oneshot channel.
#[derive(Clone)]
pub(crate) struct EnginePool {
    pool: Arc<rayon::ThreadPool>,
}

/// Engine code panicked; the message is the panic's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Panicked(pub String);

impl EnginePool {
    /// A pool of `threads` threads (0: one per core).
    pub(crate) fn new(threads: usize) -> Result<EnginePool, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("strata-engine-{i}"))
            .build()?;
        Ok(EnginePool {
            pool: Arc::new(pool),
        })
    }

    /// How many threads the pool has.
    pub(crate) fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `work` on the pool (it may fan out on the pool it is given) and waits for its
    /// answer without blocking the caller's thread; a panic comes back as [`Panicked`].
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, Panicked>
    where
        T: Send + 'static,
        F: FnOnce(&rayon::ThreadPool) -> T + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let pool = Arc::clone(&self.pool);
        self.pool.spawn(move || {
            // A panic must not escape a rayon job (rayon would abort the process).
            let outcome = catch_unwind(AssertUnwindSafe(|| work(&pool)));
            let _ = answer.send(outcome.map_err(|payload| Panicked(panic_message(&*payload))));
        });
        answered.await.unwrap_or_else(|_| {
            Err(Panicked(
                "the engine thread ended without answering".to_owned(),
            ))
        })
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_comes_back_as_an_error_and_the_pool_goes_on() {
        let pool = EnginePool::new(1).unwrap();
        let err = pool
            .run(|_| -> u32 { panic!("boom at bar 7") })
            .await
            .unwrap_err();
        assert_eq!(err.0, "boom at bar 7");
        assert_eq!(pool.run(|_| 2 + 2).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn work_runs_on_an_engine_thread() {
        let pool = EnginePool::new(2).unwrap();
        let name = pool
            .run(|_| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("strata-engine-")));
    }
}
