//! Prometheus metrics shared by api and worker: each process registers what it records.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::queue::{Queue, Queues};
use crate::Store;

/// Job counters and histograms; the api records submissions, workers the rest.
#[derive(Clone)]
pub struct JobMetrics {
    /// Jobs accepted, by kind and tier.
    pub submitted: IntCounterVec,
    /// Jobs a worker started, by kind and tier.
    pub started: IntCounterVec,
    /// Jobs finished, by kind, tier and outcome (succeeded, failed, cancelled; released to
    /// the queue at shutdown, retried after a passing failure, lost to another worker, error
    /// when the outcome could not be written).
    pub finished: IntCounterVec,
    /// Seconds from start to finish, by kind.
    pub duration: HistogramVec,
    /// Jobs waiting, by queue: `backlog` in PostgreSQL and `ready` in Redis.
    pub queue_depth: IntGaugeVec,
    /// Bars run through the engine (a sweep counts bars once per parameter set).
    pub bars: IntCounter,
}

impl JobMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<JobMetrics> {
        let metrics = JobMetrics {
            submitted: IntCounterVec::new(
                Opts::new("strata_jobs_submitted_total", "Jobs accepted by the api"),
                &["kind", "tier"],
            )?,
            started: IntCounterVec::new(
                Opts::new("strata_jobs_started_total", "Jobs started by a worker"),
                &["kind", "tier"],
            )?,
            finished: IntCounterVec::new(
                Opts::new("strata_jobs_finished_total", "Jobs finished, by outcome"),
                &["kind", "tier", "outcome"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("strata_job_duration_seconds", "Job run time").buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0,
                ]),
                &["kind"],
            )?,
            queue_depth: IntGaugeVec::new(
                Opts::new("strata_queue_depth", "Jobs waiting, by queue and place"),
                &["queue", "place"],
            )?,
            bars: IntCounter::new("strata_bars_processed_total", "Bars run through the engine")?,
        };
        registry.register(Box::new(metrics.submitted.clone()))?;
        registry.register(Box::new(metrics.started.clone()))?;
        registry.register(Box::new(metrics.finished.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.bars.clone()))?;
        Ok(metrics)
    }
}

impl JobMetrics {
    /// Sets `strata_queue_depth{queue, place}`: `backlog` in PostgreSQL, `ready` in Redis. An
    /// unreachable store or queue leaves the last values.
    pub async fn refresh_queue_depth(&self, store: &Store, queues: &Queues) {
        if let Ok(backlog) = store.backlog().await {
            for queue in Queue::ALL {
                let n = backlog
                    .iter()
                    .find(|(q, _)| *q == queue)
                    .map_or(0, |(_, n)| *n);
                self.queue_depth
                    .with_label_values(&[queue.as_str(), "backlog"])
                    .set(n);
            }
        }
        for queue in Queue::ALL {
            if let Ok(n) = queues.ready(queue).await {
                self.queue_depth
                    .with_label_values(&[queue.as_str(), "ready"])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}

/// The registry's metrics in Prometheus' text format.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metrics.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buffer);
    String::from_utf8(buffer).unwrap_or_default()
}
