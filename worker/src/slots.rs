//! The worker's job slots, shared by the tier consumers and handed out by weight.
//!
//! A consumer needs a slot before it fetches a message. While slots are free anyone gets one at
//! once; when they are all taken, a freed slot goes to one of the waiting tiers by smooth
//! weighted round robin (the nginx algorithm): each waiting tier earns its weight in credit,
//! the richest wins and pays the total of the waiting tiers' weights. With elite 6 : pro 3 :
//! basic 1 all waiting, ten slots in a row go E P E B E P E E P E ... — elite six, pro three,
//! basic one, interleaved rather than in bursts. A tier that does not wait earns nothing, so
//! its share goes to the others and nothing sits idle.
//!
//! A consumer asks for a slot only once it holds a message (see `consumer.rs`), so "waiting"
//! means "has a job to start", and fetching the next message overlaps the wait.
//!
//! A consumer that has just been served is usually back within a Redis round trip with its next
//! message. Counting it out for that moment would hand its share to the others whenever jobs
//! are short, so a tier that waited within the last [`GRACE`] still takes part in the pick:
//! when it wins, the slot is held for it for up to [`GRACE`], then goes to the others.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use strata_core::Tier;
use tokio::sync::oneshot;

/// How long a tier that just waited keeps its place in the pick, and how long a slot it won
/// is held for it: a few Redis round trips.
pub(crate) const GRACE: Duration = Duration::from_millis(5);

/// The slots of one worker process.
pub(crate) struct Slots {
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// Per tier, in [`Tier::ALL`] order.
    weights: [i64; 3],
    credit: [i64; 3],
    /// The consumer of each tier waiting for a slot (each tier has one consumer).
    waiting: [Option<oneshot::Sender<Slot>>; 3],
    /// When each tier last waited or was served: it stays in the pick for [`GRACE`] after.
    seen: [Option<Instant>; 3],
    /// A slot held for a tier that won it while between two waits, since when.
    held: [Option<Instant>; 3],
}

/// One job's slot: back to the pool (or straight to a waiting tier) when dropped.
pub(crate) struct Slot {
    slots: Option<Arc<Slots>>,
}

fn index(tier: Tier) -> usize {
    Tier::ALL
        .iter()
        .position(|t| *t == tier)
        .expect("Tier::ALL lists every tier")
}

impl Slots {
    /// `count` slots, shared by weight (each tier's, in any order).
    pub(crate) fn new(count: usize, weight: impl Fn(Tier) -> u32) -> Arc<Slots> {
        Arc::new(Slots {
            state: Mutex::new(State {
                free: count,
                weights: Tier::ALL.map(|t| i64::from(weight(t).max(1))),
                credit: [0; 3],
                waiting: Default::default(),
                seen: [None; 3],
                held: [None; 3],
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for `tier`: at once if one is free, else when the weights pick `tier`.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        tier: Tier,
    ) -> impl std::future::Future<Output = Slot> + Send + 'static {
        let slots = Arc::clone(self);
        self.reclaim();
        let waiting = {
            let mut state = self.lock();
            let i = index(tier);
            state.seen[i] = Some(Instant::now());
            if state.held[i].take().is_some() {
                None
            } else if state.free > 0 {
                state.free -= 1;
                None
            } else {
                let (sender, receiver) = oneshot::channel();
                // A consumer waits for one slot at a time; a stale sender is just replaced.
                state.waiting[i] = Some(sender);
                Some(receiver)
            }
        };
        async move {
            let Some(mut receiver) = waiting else {
                return Slot { slots: Some(slots) };
            };
            loop {
                // While it waits, a slot held for a tier that did not come back in time is
                // passed on (perhaps to this one).
                match tokio::time::timeout(GRACE, &mut receiver).await {
                    Ok(Ok(slot)) => return slot,
                    // Never: a sender is dropped only when replaced by the same waiting
                    // consumer, which then awaits the new receiver. Wait for a free slot.
                    Ok(Err(_)) => std::future::pending::<()>().await,
                    Err(_) => slots.reclaim(),
                }
            }
        }
    }

    /// Passes on the slots held longer than [`GRACE`] for tiers that did not come back.
    fn reclaim(self: &Arc<Self>) {
        let now = Instant::now();
        let expired = {
            let mut state = self.lock();
            let mut expired = 0;
            for held in &mut state.held {
                if held.is_some_and(|since| now.duration_since(since) >= GRACE) {
                    *held = None;
                    expired += 1;
                }
            }
            expired
        };
        for _ in 0..expired {
            self.hand_over();
        }
    }

    /// A freed slot: to the waiting tier the weights pick, or back to the pool.
    fn hand_over(self: &Arc<Self>) {
        loop {
            let sender = {
                let mut state = self.lock();
                let now = Instant::now();
                let Some(i) = state.pick(now) else {
                    state.free += 1;
                    return;
                };
                match state.waiting[i].take() {
                    Some(sender) => {
                        state.seen[i] = Some(now);
                        sender
                    }
                    // Between two waits: hold the slot for it a moment.
                    None => {
                        state.held[i] = Some(now);
                        return;
                    }
                }
            };
            let slot = Slot {
                slots: Some(Arc::clone(self)),
            };
            match sender.send(slot) {
                Ok(()) => return,
                // The consumer stopped waiting (it is closing): try the next tier, without
                // letting the returned slot hand itself over a second time.
                Err(mut slot) => {
                    slot.slots = None;
                }
            }
        }
    }
}

impl State {
    /// Smooth weighted round robin over the tiers waiting, or that waited within [`GRACE`] and
    /// hold no slot already.
    fn pick(&mut self, now: Instant) -> Option<usize> {
        let waiting: Vec<usize> = (0..3)
            .filter(|&i| {
                self.waiting[i].is_some()
                    || (self.held[i].is_none()
                        && self.seen[i].is_some_and(|at| now.duration_since(at) < GRACE))
            })
            .collect();
        let total: i64 = waiting.iter().map(|&i| self.weights[i]).sum();
        for &i in &waiting {
            self.credit[i] += self.weights[i];
        }
        let best = waiting
            .into_iter()
            .max_by_key(|&i| (self.credit[i], -(i as i64)))?;
        self.credit[best] -= total;
        Some(best)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.hand_over();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(tier: Tier) -> u32 {
        match tier {
            Tier::Elite => 6,
            Tier::Pro => 3,
            Tier::Basic => 1,
        }
    }

    /// One slot, all three tiers always waiting: who gets the next 1,000 slots.
    #[tokio::test]
    async fn all_waiting_tiers_share_slots_by_weight() {
        let slots = Slots::new(1, weights);
        let mut held = slots.acquire(Tier::Basic).await;
        let mut served = std::collections::HashMap::new();
        let mut pending: Vec<(Tier, tokio::task::JoinHandle<Slot>)> = Tier::ALL
            .into_iter()
            .map(|t| (t, tokio::spawn(slots.acquire(t))))
            .collect();
        for _ in 0..1000 {
            // Let every tier register its wait.
            tokio::task::yield_now().await;
            drop(held);
            let mut winner = None;
            while winner.is_none() {
                tokio::task::yield_now().await;
                winner = pending.iter().position(|(_, h)| h.is_finished());
            }
            let (tier, handle) = pending.swap_remove(winner.unwrap());
            held = handle.await.unwrap();
            *served.entry(tier).or_insert(0) += 1;
            pending.push((tier, tokio::spawn(slots.acquire(tier))));
        }
        assert_eq!(served[&Tier::Elite], 600, "{served:?}");
        assert_eq!(served[&Tier::Pro], 300, "{served:?}");
        assert_eq!(served[&Tier::Basic], 100, "{served:?}");
    }

    /// Elite, served and back with its next message within the grace period, keeps its turn;
    /// once it stays away, the held slot goes to the tier that waits.
    #[tokio::test]
    async fn a_tier_back_within_the_grace_period_keeps_its_turn() {
        let slots = Slots::new(1, weights);
        let elite = slots.acquire(Tier::Elite).await;
        let pro = tokio::spawn(slots.acquire(Tier::Pro));
        tokio::task::yield_now().await;
        drop(elite);
        // Elite is not waiting at this instant, but it won the slot by weight: it is held.
        let elite = slots.acquire(Tier::Elite).await;
        tokio::task::yield_now().await;
        assert!(
            !pro.is_finished(),
            "pro must wait while elite keeps its turn"
        );
        drop(elite);
        // Elite does not come back: after the grace period pro is served.
        let started = std::time::Instant::now();
        let _pro = pro.await.unwrap();
        assert!(started.elapsed() < GRACE * 20, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_tier_alone_gets_every_slot_and_free_slots_come_at_once() {
        let slots = Slots::new(2, weights);
        let a = slots.acquire(Tier::Basic).await;
        let b = slots.acquire(Tier::Basic).await;
        let third = tokio::spawn(slots.acquire(Tier::Basic));
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        drop(a);
        let c = third.await.unwrap();
        drop((b, c));
        // Both back in the pool.
        let _x = slots.acquire(Tier::Elite).await;
        let _y = slots.acquire(Tier::Pro).await;
    }

    #[tokio::test]
    async fn a_slot_offered_to_a_consumer_that_stopped_waiting_is_not_lost() {
        let slots = Slots::new(1, weights);
        let held = slots.acquire(Tier::Pro).await;
        let gone = tokio::spawn(slots.acquire(Tier::Elite));
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        // The slot went back to the pool, not into the aborted wait.
        let _again = slots.acquire(Tier::Basic).await;
    }
}
