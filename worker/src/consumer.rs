//! The apalis workers that consume the tier queues, sharing one limit of jobs at once.
//!
//! Each tier has its own apalis worker. A worker fetches a message only while it holds a
//! permit of the process-wide semaphore, and gives the permit back when its queue turns out
//! empty: an idle tier never sits on a slot, and the semaphore's FIFO order takes turns between
//! the tiers that have work, so none starves.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{BackendExt, Data, Task, WorkerBuilder, WorkerContext};
use apalis_core::backend::{Backend, BackendConfig, WireFormatBackend};
use strata_core::job::JobMessage;
use strata_core::Tier;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::Worker;

/// How often an idle worker asks Redis for messages.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// Most messages one fetch takes from Redis.
const MAX_BATCH: usize = 16;

/// The permit of the job it came with, released when the job ends (or when the task is dropped
/// unrun).
#[derive(Clone)]
struct Permit(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Permit {
    fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

type Acquiring = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A backend that yields a message only with a permit of `limit`, which rides along with it.
struct Gated<B> {
    inner: B,
    limit: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    acquiring: Option<Acquiring>,
}

impl<B> Gated<B> {
    fn new(inner: B, limit: Arc<Semaphore>) -> Gated<B> {
        Gated {
            inner,
            limit,
            permit: None,
            acquiring: None,
        }
    }

    /// Ready once this backend holds a permit: `false` if the limit was closed.
    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.permit.is_some() {
            return Poll::Ready(true);
        }
        if self.acquiring.is_none() {
            match Arc::clone(&self.limit).try_acquire_owned() {
                Ok(permit) => {
                    self.permit = Some(permit);
                    return Poll::Ready(true);
                }
                Err(TryAcquireError::NoPermits) => {
                    self.acquiring = Some(Box::pin(Arc::clone(&self.limit).acquire_owned()));
                }
                Err(TryAcquireError::Closed) => return Poll::Ready(false),
            }
        }
        let Some(acquiring) = self.acquiring.as_mut() else {
            return Poll::Pending;
        };
        let outcome = std::task::ready!(acquiring.as_mut().poll(cx));
        self.acquiring = None;
        self.permit = outcome.ok();
        Poll::Ready(self.permit.is_some())
    }
}

impl<B, Args> Backend for Gated<B>
where
    B: Backend<Task = Task<Args>>,
{
    type Task = B::Task;
    type Error = B::Error;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx, worker)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        // The limit is never closed while workers run.
        if !std::task::ready!(self.poll_permit(cx)) {
            return Poll::Ready(None);
        }
        match self.inner.poll_next(cx, worker) {
            Poll::Ready(Some(Ok(mut task))) => {
                let permit = Permit(Arc::new(Mutex::new(self.permit.take())));
                task.inject_data(permit);
                Poll::Ready(Some(Ok(task)))
            }
            other => {
                // Nothing to run yet: let a tier with work have the slot meanwhile.
                self.permit = None;
                other
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.permit = None;
        self.acquiring = None;
        self.inner.poll_close(cx, worker)
    }
}

apalis_core::delegate_config!(Gated<B>, inner);
apalis_core::delegate_codec!(Gated<B>, inner);

/// Runs one delivered message. Outcomes live in PostgreSQL, so the message is always acked.
///
/// The job runs in a task of its own, holding the permit: if this consumer fails and drops its
/// handlers, the job still finishes and records its outcome.
async fn handle(
    message: JobMessage,
    worker: Data<Arc<Worker>>,
    permit: Option<Data<Permit>>,
) -> Result<(), Infallible> {
    let permit = permit.and_then(|p| p.take());
    let worker = Arc::clone(&worker);
    let id = message.id;
    let job = tokio::spawn(async move {
        let _permit = permit;
        crate::jobs::process(&worker, message).await;
    });
    if let Err(e) = job.await {
        error!(job_id = %id, error = %e, "the job's task ended abnormally");
    }
    Ok(())
}

/// The running consumers: one supervised apalis worker per tier.
pub(crate) struct Consumers {
    handles: Vec<JoinHandle<()>>,
    current: Vec<Arc<Mutex<Option<WorkerContext>>>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts consuming every tier's queue, at most `worker.config.worker.concurrency` jobs at once.
pub(crate) fn start(worker: &Arc<Worker>) -> Consumers {
    let concurrency = worker.config.worker.concurrency.max(1);
    let limit = Arc::new(Semaphore::new(concurrency));
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    let mut current = Vec::new();
    for tier in Tier::ALL {
        let slot = Arc::new(Mutex::new(None));
        current.push(Arc::clone(&slot));
        handles.push(tokio::spawn(supervise(
            Arc::clone(worker),
            tier,
            Arc::clone(&limit),
            slot,
            Arc::clone(&stopping),
        )));
    }
    Consumers {
        handles,
        current,
        stopping,
    }
}

/// Runs the tier's apalis worker, and a fresh one whenever it fails (Redis went away, ...).
async fn supervise(
    worker: Arc<Worker>,
    tier: Tier,
    limit: Arc<Semaphore>,
    current: Arc<Mutex<Option<WorkerContext>>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let batch = worker.config.worker.concurrency.clamp(1, MAX_BATCH);
    for generation in 0u64.. {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        // A name apalis has not seen: it refuses a name registered moments ago.
        let name = format!("{}-{}-{generation}", worker.id, tier.as_str());
        let context = WorkerContext::new(&name);
        *current.lock().unwrap_or_else(PoisonError::into_inner) = Some(context.clone());
        let storage = worker.queues.storage(tier);
        let config = storage.get_config().clone().batch_size(batch);
        let backend = Gated::new(
            storage.with_config(config).poll_with_interval(POLL_EVERY),
            Arc::clone(&limit),
        );
        let consumer = WorkerBuilder::new(&context)
            .backend(backend)
            .data(Arc::clone(&worker))
            .build(handle);
        let outcome = consumer.run().await;
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match outcome {
            Ok(()) => warn!(consumer = %name, "the queue's consumer stopped; starting it again"),
            Err(e) => {
                error!(consumer = %name, error = %e, "the queue's consumer failed; starting it again in 1 s");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl Consumers {
    /// Stops fetching messages; running jobs go on.
    pub(crate) async fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        for slot in &self.current {
            let context = slot.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let Some(context) = context else { continue };
            // A worker that has not started yet refuses; it starts within moments.
            for _ in 0..100 {
                if context.stop().is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Waits up to `grace` for the consumers to finish their running jobs; `true` if they did.
    pub(crate) async fn wait(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        while !self.handles.iter().all(JoinHandle::is_finished) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Gives up on whatever still runs.
    pub(crate) fn abort(&self) {
        for handle in &self.handles {
            handle.abort();
        }
    }
}
