//! The worker's job slots, shared by the tier consumers and handed out by weight.
//!
//! A consumer needs a slot before it starts a job, and asks for one only once it holds a
//! message (see `consumer.rs`), so a tier that asks has a job to start. The slots go to the tiers
//! by stride scheduling: each tier has a virtual time that every start moves on by the tier's
//! stride (the weights' least common multiple over its weight: 1 for elite, 2 for pro, 6 for
//! basic with the default 6 : 3 : 1), and a slot goes to the contending tier that is furthest
//! behind (the heavier on a tie). While tiers contend, elite thus starts six jobs for pro's
//! three and basic's one, interleaved, whether every slot is taken or the jobs are so short
//! that free slots are the rule: the proportion holds in both. A tier that stops contending
//! earns nothing meanwhile (it rejoins at the others' virtual time), so its share goes to the
//! others and basic is never starved.
//!
//! A consumer that has just been served is usually back within a Redis round trip with its next
//! message. Counting it out for that moment would hand its share to the others whenever jobs
//! are short, so a tier contends while it waits and for [`GRACE`] after it last asked: a free
//! slot whose next tier in line is between two messages stays free for it that long.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use strata_core::Tier;
use tokio::sync::oneshot;

/// How long a tier that just asked for a slot keeps its place in line: a few Redis round
/// trips.
pub(crate) const GRACE: Duration = Duration::from_millis(5);

/// The slots of one worker process.
pub(crate) struct Slots {
    state: Mutex<State>,
}

/// Per tier arrays are in [`Tier::ALL`] order.
struct State {
    free: usize,
    /// What one start moves a tier's virtual time on by.
    stride: [u128; 3],
    /// Each tier's virtual time.
    pass: [u128; 3],
    /// The consumer of each tier waiting for a slot (each tier has one consumer).
    waiting: [Option<oneshot::Sender<Slot>>; 3],
    /// When each tier last asked or was served: it contends for [`GRACE`] after.
    seen: [Option<Instant>; 3],
}

/// One job's slot: back to the pool, and on to the next tier in line, when dropped.
pub(crate) struct Slot {
    slots: Option<Arc<Slots>>,
}

fn index(tier: Tier) -> usize {
    Tier::ALL
        .iter()
        .position(|t| *t == tier)
        .expect("Tier::ALL lists every tier")
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Slots {
    /// `count` slots, shared by weight (each tier's, in any order).
    pub(crate) fn new(count: usize, weight: impl Fn(Tier) -> u32) -> Arc<Slots> {
        let weights = Tier::ALL.map(|t| u128::from(weight(t).max(1)));
        let lcm = weights.iter().fold(1, |l, &w| l / gcd(l, w) * w);
        Arc::new(Slots {
            state: Mutex::new(State {
                free: count,
                stride: weights.map(|w| lcm / w),
                pass: [0; 3],
                waiting: Default::default(),
                seen: [None; 3],
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for `tier`: at once if one is free and `tier` is next in line, else when it is.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        tier: Tier,
    ) -> impl std::future::Future<Output = Slot> + Send + 'static {
        let slots = Arc::clone(self);
        let waiting = {
            let mut state = self.lock();
            let i = index(tier);
            let now = Instant::now();
            state.join(i, now);
            state.seen[i] = Some(now);
            if state.free > 0 && state.next(now) == Some(i) {
                state.start(i);
                None
            } else {
                let (sender, receiver) = oneshot::channel();
                // A consumer waits for one slot at a time; a stale sender is just replaced.
                state.waiting[i] = Some(sender);
                Some(receiver)
            }
        };
        // Asking moved the line: a waiting tier may be next now.
        self.dispatch();
        async move {
            let Some(mut receiver) = waiting else {
                return Slot { slots: Some(slots) };
            };
            loop {
                // A tier this one gave way to may stop contending without asking again: look
                // at the line again now and then.
                match tokio::time::timeout(GRACE, &mut receiver).await {
                    Ok(Ok(slot)) => return slot,
                    // Never: a sender is dropped only when replaced by the same waiting
                    // consumer, which then awaits the new receiver. Wait for a free slot.
                    Ok(Err(_)) => std::future::pending::<()>().await,
                    Err(_) => slots.dispatch(),
                }
            }
        }
    }

    /// Hands free slots to the waiting tiers in line; stops at a tier next in line that is
    /// between two messages (the slot stays free for it while it contends).
    fn dispatch(self: &Arc<Self>) {
        loop {
            let sender = {
                let mut state = self.lock();
                let now = Instant::now();
                if state.free == 0 {
                    return;
                }
                let Some(i) = state.next(now) else {
                    return;
                };
                let Some(sender) = state.waiting[i].take() else {
                    return;
                };
                state.start(i);
                state.seen[i] = Some(now);
                sender
            };
            let slot = Slot {
                slots: Some(Arc::clone(self)),
            };
            if let Err(mut slot) = sender.send(slot) {
                // The consumer stopped waiting (it is closing): the slot is free again, without
                // letting it hand itself over from its drop.
                slot.slots = None;
                self.lock().free += 1;
            }
        }
    }
}

impl State {
    /// Whether tier `i` contends for slots: it waits, or it asked within [`GRACE`].
    fn contends(&self, i: usize, now: Instant) -> bool {
        self.waiting[i].is_some() || self.seen[i].is_some_and(|at| now.duration_since(at) < GRACE)
    }

    /// The contending tier to serve next: the furthest behind in virtual time, the heavier
    /// on a tie.
    fn next(&self, now: Instant) -> Option<usize> {
        (0..3)
            .filter(|&i| self.contends(i, now))
            .min_by_key(|&i| (self.pass[i], i))
    }

    /// Tier `i` asks: after a pause it rejoins at the virtual time of the tiers contending, so
    /// it cannot save up a share while it had nothing to run.
    fn join(&mut self, i: usize, now: Instant) {
        if self.contends(i, now) {
            return;
        }
        let floor = (0..3)
            .filter(|&j| j != i && self.contends(j, now))
            .map(|j| self.pass[j])
            .min();
        if let Some(floor) = floor {
            self.pass[i] = self.pass[i].max(floor);
        }
    }

    /// Tier `i` takes a free slot.
    fn start(&mut self, i: usize) {
        self.free -= 1;
        self.pass[i] += self.stride[i];
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.lock().free += 1;
            slots.dispatch();
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

    /// Plenty of slots, jobs that end at once: the consumers start jobs as fast as they come
    /// back, and the starts still follow the weights.
    #[tokio::test]
    async fn free_slots_go_by_weight_while_tiers_contend() {
        let slots = Slots::new(8, weights);
        let started = Arc::new(Mutex::new(Vec::new()));
        let consumers: Vec<_> = Tier::ALL
            .into_iter()
            .map(|tier| {
                let (slots, started) = (Arc::clone(&slots), Arc::clone(&started));
                tokio::spawn(async move {
                    loop {
                        let slot = slots.acquire(tier).await;
                        started.lock().unwrap().push(tier);
                        // The job ends at once; the consumer is back with its next message.
                        drop(slot);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        while started.lock().unwrap().len() < 2000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for consumer in consumers {
            consumer.abort();
        }
        let started = started.lock().unwrap();
        let share = |tier| started[..2000].iter().filter(|t| **t == tier).count() as f64 / 2000.0;
        let shares = Tier::ALL.map(share);
        for (share, expected) in shares.iter().zip([0.6, 0.3, 0.1]) {
            assert!((share - expected).abs() < 0.03, "{shares:?}");
        }
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
