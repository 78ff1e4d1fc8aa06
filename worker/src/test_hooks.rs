//! Hooks for tests of the built binaries, compiled only with the `test-hooks` feature (off by
//! default; the root package's tests turn it on).
//!
//! `STRATA_TEST_ABORT_ON=TEXT`: the worker process aborts as it starts a job whose spec contains
//! `TEXT`, as a job that runs it out of memory or crashes it would. `tests/poison.rs` uses it.

use strata_core::store::Claimed;

/// Called once a job is claimed, before it runs.
pub(crate) fn on_start(claimed: &Claimed) {
    let Some(marker) = std::env::var("STRATA_TEST_ABORT_ON")
        .ok()
        .filter(|m| !m.is_empty())
    else {
        return;
    };
    if claimed.spec.to_string().contains(&marker) {
        tracing::error!(
            job_id = %claimed.id,
            "test hook: aborting this worker process as it starts the job (STRATA_TEST_ABORT_ON)"
        );
        std::process::abort();
    }
}
