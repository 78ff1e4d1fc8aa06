//! The apalis workers that consume the queues: the tiers' share the worker's job slots; the `ai`
//! queue's have places of their own (`ai.concurrency`), as AI jobs wait on the network rather
//! than the engine.
//!
//! Each tier has its own apalis worker. It fetches its next message first, then waits with it
//! for one of the process's [`Slots`]: a tier with an empty queue never asks for a slot, a
//! fetch from Redis overlaps the wait, and while several tiers have a message in hand, jobs
//! start in the proportion of their weights (elite 6 : pro 3 : basic 1 by default), so elite is
//! served first and none starves. Holding one message while waiting is harmless: apalis already holds a
//! fetched batch, and a message a dead worker held is dispatched again by the reconciler.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{BackendExt, Data, Task, WorkerBuilder, WorkerContext};
use apalis_core::backend::{Backend, BackendConfig, WireFormatBackend};
use strata_core::job::JobMessage;
use strata_core::queue::Queue;
use strata_core::Tier;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::slots::Slots;
use crate::Worker;

/// How often an idle worker asks Redis for messages.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// Most messages one fetch takes from Redis.
const MAX_BATCH: usize = 16;

/// A job's hold on what its consumer waited for (a [`crate::slots::Slot`], or a place among the AI jobs),
/// released when dropped.
type Held = Box<dyn Send>;

/// What a consumer waits for before it hands a message on.
#[derive(Clone)]
enum Gate {
    /// One of the worker's job slots, which the tiers share by weight.
    Slot { slots: Arc<Slots>, tier: Tier },
    /// One of the places for AI jobs.
    Place(Arc<Semaphore>),
}

impl Gate {
    fn acquire(&self) -> Acquiring {
        match self {
            Gate::Slot { slots, tier } => {
                let slot = slots.acquire(*tier);
                Box::pin(async move { Box::new(slot.await) as Held })
            }
            Gate::Place(places) => {
                let places = Arc::clone(places);
                Box::pin(async move {
                    match places.acquire_owned().await {
                        Ok(place) => Box::new(place) as Held,
                        // The semaphore is never closed.
                        Err(_) => std::future::pending().await,
                    }
                })
            }
        }
    }
}

/// The hold of the job it came with, released when the job ends (or when the task is dropped
/// unrun).
#[derive(Clone)]
struct Permit(Arc<Mutex<Option<Held>>>);

impl Permit {
    fn take(&self) -> Option<Held> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

type Acquiring = Pin<Box<dyn Future<Output = Held> + Send>>;

/// A backend that yields a message only once its gate lets it through; the hold rides along
/// with the message.
struct Gated<B, T> {
    inner: B,
    gate: Gate,
    /// The message fetched and waiting at the gate.
    next: Option<T>,
    acquiring: Option<Acquiring>,
}

impl<B, T> Gated<B, T> {
    fn new(inner: B, gate: Gate) -> Gated<B, T> {
        Gated {
            inner,
            gate,
            next: None,
            acquiring: None,
        }
    }

    /// Ready with a hold for the message in hand.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<Held> {
        if self.acquiring.is_none() {
            self.acquiring = Some(self.gate.acquire());
        }
        let Some(acquiring) = self.acquiring.as_mut() else {
            return Poll::Pending;
        };
        let slot = std::task::ready!(acquiring.as_mut().poll(cx));
        self.acquiring = None;
        Poll::Ready(slot)
    }
}

impl<B, Args> Backend for Gated<B, Task<Args>>
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
        if self.next.is_none() {
            match std::task::ready!(self.inner.poll_next(cx, worker)) {
                Some(Ok(task)) => self.next = Some(task),
                other => return Poll::Ready(other),
            }
        }
        let slot = std::task::ready!(self.poll_slot(cx));
        let Some(mut task) = self.next.take() else {
            return Poll::Pending;
        };
        task.inject_data(Permit(Arc::new(Mutex::new(Some(slot)))));
        Poll::Ready(Some(Ok(task)))
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        // A message still waiting for a slot is dropped unrun: it stays in Redis's in-flight set
        // and is dispatched again by the reconciler.
        self.next = None;
        self.acquiring = None;
        self.inner.poll_close(cx, worker)
    }
}

apalis_core::delegate_config!(Gated<B, T>, inner);
apalis_core::delegate_codec!(Gated<B, T>, inner);

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

/// The running consumers: one supervised apalis worker per queue consumed.
pub(crate) struct Consumers {
    handles: Vec<JoinHandle<()>>,
    current: Vec<Arc<Mutex<Option<WorkerContext>>>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts consuming every tier's queue, at most `worker.config.worker.concurrency` jobs at once,
/// shared by the tiers' weights; and, when a language model is configured, the `ai` queue, at
/// most `ai.concurrency` jobs at once.
pub(crate) fn start(worker: &Arc<Worker>) -> Consumers {
    let concurrency = worker.config.worker.concurrency.max(1);
    let tiers = &worker.config.tiers;
    let weight = |tier| tiers.quota(tier).weight;
    let slots = Slots::new(concurrency, weight);
    let mut gates: Vec<(Queue, Gate, usize)> = Tier::ALL
        .into_iter()
        .map(|tier| {
            let gate = Gate::Slot {
                slots: Arc::clone(&slots),
                tier,
            };
            (tier.into(), gate, fetch_batch(concurrency, weight, tier))
        })
        .collect();
    if worker.ai.is_some() {
        let places = worker.config.ai.concurrency.max(1);
        let gate = Gate::Place(Arc::new(Semaphore::new(places)));
        gates.push((Queue::Ai, gate, places.min(MAX_BATCH)));
    }
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    let mut current = Vec::new();
    for (queue, gate, batch) in gates {
        let slot = Arc::new(Mutex::new(None));
        current.push(Arc::clone(&slot));
        handles.push(tokio::spawn(supervise(
            Arc::clone(worker),
            queue,
            gate,
            batch,
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

/// Messages the tier's consumer takes from Redis per fetch: up to the worker's concurrency for
/// the heaviest tier, the others in proportion to their weight (at least one).
///
/// [`Slots`] starts the tiers' jobs in the proportion of their weights, but only among tiers
/// that hold a message: a heavier tier fetches more per Redis round trip, so it does not run
/// out of messages to start while the lighter ones still have some.
fn fetch_batch(concurrency: usize, weight: impl Fn(Tier) -> u32, tier: Tier) -> usize {
    let most = concurrency.clamp(1, MAX_BATCH) as f64;
    let heaviest = Tier::ALL.map(&weight).into_iter().max().unwrap_or(1).max(1);
    let share = f64::from(weight(tier).max(1)) / f64::from(heaviest);
    ((most * share).round() as usize).max(1)
}

/// Runs the queue's apalis worker, and a fresh one whenever it fails (Redis went away, ...).
async fn supervise(
    worker: Arc<Worker>,
    queue: Queue,
    gate: Gate,
    batch: usize,
    current: Arc<Mutex<Option<WorkerContext>>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    for generation in 0u64.. {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        // A name apalis has not seen: it refuses a name registered moments ago.
        let name = format!("{}-{}-{generation}", worker.id, queue.as_str());
        let context = WorkerContext::new(&name);
        *current.lock().unwrap_or_else(PoisonError::into_inner) = Some(context.clone());
        let storage = worker.queues.storage(queue);
        let config = storage.get_config().clone().batch_size(batch);
        let backend = Gated::new(
            storage.with_config(config).poll_with_interval(POLL_EVERY),
            gate.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(concurrency: usize) -> [usize; 3] {
        let weight = |tier| match tier {
            Tier::Elite => 6,
            Tier::Pro => 3,
            Tier::Basic => 1,
        };
        Tier::ALL.map(|tier| fetch_batch(concurrency, weight, tier))
    }

    #[test]
    fn fetch_batches_follow_the_weights_up_to_the_concurrency() {
        assert_eq!(batches(8), [8, 4, 1]);
        assert_eq!(batches(16), [16, 8, 3]);
        assert_eq!(batches(64), [16, 8, 3]);
        assert_eq!(batches(2), [2, 1, 1]);
        assert_eq!(batches(0), [1, 1, 1]);
        assert_eq!(fetch_batch(8, |_| 1, Tier::Basic), 8);
    }
}
