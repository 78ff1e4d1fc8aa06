//! Live job events for the server-sent event streams. The events live in PostgreSQL (table
//! `job_events`, written by a trigger), so a stream on any replica sees jobs run by any worker
//! and submitted through any replica, and a client that reconnects with `Last-Event-ID` is
//! replayed what it missed. While any stream is open, one task per api process reads the new
//! rows every `POLL_EVERY` and passes them on, in id order, to every stream.
//!
//! The api reads the table rather than `LISTEN`ing: a transaction that has issued `NOTIFY`
//! holds a database-wide lock from its commit until the commit is on disk, so with a `NOTIFY`
//! per change every claim, progress update and result of every worker committed one at a time
//! (migration 0007 has the figures).
//!
//! Reading a table by id has a catch. Ids come from a sequence: a transaction takes its id when
//! it inserts the row, but the row is visible only once it commits, so id 101 can be visible
//! while 100 is still to come (its transaction commits a moment later) or never comes (it
//! rolled back). `Tail` remembers such gaps and holds back the rows above one for a moment,
//! so that streams, which skip ids below the last one they sent, rarely have to skip a late
//! row; see `HOLD` for what is given up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use strata_core::store::{JobEvent, Store, StoreError};
use tokio::sync::broadcast;
use tokio::time::MissedTickBehavior;
use tracing::warn;

/// What the poller passes on to the streams.
#[derive(Debug, Clone)]
pub enum Live {
    /// A new event.
    Event(Arc<JobEvent>),
    /// Events may have passed unpublished (the poller just started, or could not read the
    /// table for a while): streams read what they missed from the table.
    Resync,
}

/// Streams buffered per process before a slow stream is told it lagged (and reads the table).
const BUFFER: usize = 4096;

/// Between two reads of the table while a stream is open. A dashboard sees a change a frame or
/// two after it commits, and one indexed query per 50 ms per api process costs PostgreSQL
/// nothing next to the workers' own traffic.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Rows read per query; a full page is followed at once by the next.
const PAGE: i64 = 1000;

/// How long rows above a gap wait for it to fill before they are published anyway.
///
/// Holding back keeps what streams are sent in id order, so that the last id a client received
/// is a safe point to resume from: a stream never sends 101 before 100 and then skips 100.
/// Usually a gap is two transactions committing in the other order, and it fills at the next
/// read; holding costs those rows one [`POLL_EVERY`]. A gap that never fills is a rolled-back
/// transaction, and every row above it waits the whole `HOLD`, so it is kept short rather than
/// as long as [`GIVE_UP`]. The price: a row whose transaction commits more than `HOLD` after a
/// later row became visible is published after it, and a stream that has already sent a
/// higher id skips it (one that has not, such as a stream following the row's job only, still
/// gets it). Only a transaction that stays open for a second after changing a job does that,
/// and Strata's are a few statements long.
const HOLD: Duration = Duration::from_secs(1);

/// How long a gap is looked for. A transaction that changed a job and has not committed 10 s
/// later has rolled back (its id is never used) far more likely than it is still running; the
/// poller stops asking for the id rather than carry it in every query for ever. A row that
/// commits later still is in the table for clients that resume from below it, but is not
/// published live.
const GIVE_UP: Duration = Duration::from_secs(10);

/// At most this many gaps are looked for. Strata's transactions write an event or two each, so
/// even every connection of every process in flight at once leaves far fewer; a wider jump of
/// ids is the sequence skipping ahead (after a crash PostgreSQL skips up to 32) or a large
/// rolled-back batch, and its lowest ids are given up at once.
const MAX_GAPS: usize = 1000;

/// After a failed read of the table, before the next.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The fan-out of one api process.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<Live>,
    /// The streams each user holds open on this process.
    open: StreamSlots,
}

impl Events {
    /// Starts reading new events from `store` for the life of the process (only while a
    /// stream is subscribed).
    pub fn start(store: Store) -> Events {
        let (sender, _) = broadcast::channel(BUFFER);
        tokio::spawn(poll(store, sender.clone()));
        Events {
            sender,
            open: StreamSlots::default(),
        }
    }

    /// A place for one more stream of `owner`, while they hold fewer than `limit` (none: no
    /// limit); `None` when they hold `limit` already.
    pub fn open_stream(&self, owner: &str, limit: Option<u64>) -> Option<StreamSlot> {
        self.open.take(owner, limit)
    }

    /// Every event from now on. A stream subscribes first and then reads the table for where
    /// it starts, so nothing falls between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.sender.subscribe()
    }
}

/// How many event streams each user holds open on this api process, so that one user cannot
/// take every connection and every broadcast receiver (tier setting `event_streams`).
///
/// Counted per process, not across replicas: what it protects is the process, and a count in
/// Redis would outlive a process that died holding streams. Behind a load balancer a user may
/// hold up to `event_streams` on each replica.
#[derive(Clone, Default)]
struct StreamSlots {
    open: Arc<Mutex<HashMap<String, u64>>>,
}

impl StreamSlots {
    fn take(&self, owner: &str, limit: Option<u64>) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let held = open.entry(owner.to_owned()).or_insert(0);
        if limit.is_some_and(|limit| *held >= limit) {
            return None;
        }
        *held += 1;
        Some(StreamSlot {
            slots: self.clone(),
            owner: owner.to_owned(),
        })
    }

    /// Streams `owner` holds open now.
    #[cfg(test)]
    fn held(&self, owner: &str) -> u64 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(owner).copied().unwrap_or(0)
    }
}

/// One open stream's place in its owner's count; the place is free again when the stream is
/// dropped (it ended, the client went away, or the api shuts down).
pub struct StreamSlot {
    slots: StreamSlots,
    owner: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = open.get_mut(&self.owner) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&self.owner);
            }
        }
    }
}

/// Reads the table every [`POLL_EVERY`] while a stream is subscribed, and publishes what is
/// due.
async fn poll(store: Store, sender: broadcast::Sender<Live>) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tail: Option<Tail> = None;
    let mut failed = false;
    loop {
        tick.tick().await;
        if sender.receiver_count() == 0 {
            // Nobody to tell: no queries. The next stream starts from the latest event.
            tail = None;
            continue;
        }
        let starting = tail.is_none();
        match read(&store, &mut tail).await {
            Ok(due) => {
                // Starting: a stream that subscribed before this read of where to start may have
                // read the table before events at or below that start were visible, and they
                // will never be published; it reads them now. Recovering: gaps may have been
                // given up meanwhile.
                if starting || failed {
                    let _ = sender.send(Live::Resync);
                    failed = false;
                }
                for event in due {
                    let _ = sender.send(Live::Event(event));
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot read job events; retrying in 1 s");
                failed = true;
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// One read of the table: starts following from the latest event when not following yet, then
/// reads every page of new rows and late ones; returns the events due for publishing.
async fn read(store: &Store, tail: &mut Option<Tail>) -> Result<Vec<Arc<JobEvent>>, StoreError> {
    let tail = match tail {
        Some(tail) => tail,
        None => tail.insert(Tail::after(store.last_job_event_id().await?)),
    };
    loop {
        let rows = store
            .job_events_polled(tail.cursor, &tail.gaps(), PAGE)
            .await?;
        let full = rows.len() as i64 == PAGE;
        tail.read(rows, Instant::now());
        if !full {
            break;
        }
    }
    Ok(tail.due(Instant::now()))
}

/// The poller's bookkeeping, apart from the database and the clock: how far it has read
/// `job_events`, which ids below that it has not seen yet (gaps), and which rows it holds back
/// behind them.
#[derive(Debug)]
struct Tail {
    /// The highest id read.
    cursor: i64,
    /// Ids below `cursor` not read yet, each with when it was first found missing.
    gaps: BTreeMap<i64, Instant>,
    /// Rows read and not published yet.
    held: BTreeMap<i64, Arc<JobEvent>>,
    /// The highest id published.
    published: i64,
}

impl Tail {
    /// Following the events after `last`.
    fn after(last: i64) -> Tail {
        Tail {
            cursor: last,
            gaps: BTreeMap::new(),
            held: BTreeMap::new(),
            published: last,
        }
    }

    /// The ids below the cursor still looked for.
    fn gaps(&self) -> Vec<i64> {
        self.gaps.keys().copied().collect()
    }

    /// Takes in rows read at `now`, in any order: new ones (noting the ids skipped below them
    /// as gaps) and those filling a gap. Any other row was read before, or fills a gap given
    /// up; the table is asked for neither, and neither is taken in twice.
    fn read(&mut self, rows: Vec<JobEvent>, now: Instant) {
        for row in rows {
            if row.id > self.cursor {
                let from = (self.cursor + 1).max(row.id - MAX_GAPS as i64);
                self.gaps.extend((from..row.id).map(|id| (id, now)));
                while self.gaps.len() > MAX_GAPS {
                    self.gaps.pop_first();
                }
                self.cursor = row.id;
            } else if self.gaps.remove(&row.id).is_none() {
                continue;
            }
            self.held.insert(row.id, Arc::new(row));
        }
    }

    /// The rows to publish at `now`, in id order: each held row with no gap between it and the
    /// last one published younger than [`HOLD`]. A row filling a gap that was already passed is
    /// published at once, below ids published before it, for the streams that have not passed
    /// it. Gaps older than [`GIVE_UP`] are forgotten.
    fn due(&mut self, now: Instant) -> Vec<Arc<JobEvent>> {
        self.gaps
            .retain(|_, found| now.saturating_duration_since(*found) < GIVE_UP);
        let mut due = Vec::new();
        while let Some(next) = self.held.first_entry() {
            let id = *next.key();
            let waiting = id > self.published
                && self
                    .gaps
                    .range(self.published + 1..id)
                    .any(|(_, found)| now.saturating_duration_since(*found) < HOLD);
            if waiting {
                break;
            }
            due.push(next.remove());
            self.published = self.published.max(id);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> JobEvent {
        JobEvent {
            id,
            job_id: uuid::Uuid::nil(),
            owner: "ann".into(),
            change: "progress".into(),
            kind: "backtest".into(),
            status: "running".into(),
            progress: 0.5,
            at: chrono::Utc::now(),
        }
    }

    fn ids(due: Vec<Arc<JobEvent>>) -> Vec<i64> {
        due.iter().map(|event| event.id).collect()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rows_that_commit_out_of_order_are_published_in_order() {
        let start = Instant::now();
        let mut tail = Tail::after(100);
        tail.read(vec![row(102), row(103)], start);
        assert_eq!(ids(tail.due(start)), Vec::<i64>::new());
        assert_eq!(tail.gaps(), [101]);
        assert_eq!(tail.cursor, 103);

        let next = start + POLL_EVERY;
        tail.read(vec![row(101), row(104)], next);
        assert_eq!(ids(tail.due(next)), [101, 102, 103, 104]);
        assert!(tail.gaps().is_empty());
    }

    #[test]
    fn a_held_row_is_published_once_the_wait_is_over() {
        let start = Instant::now();
        let mut tail = Tail::after(100);
        tail.read(vec![row(102)], start);
        assert!(tail.due(start + HOLD - MS).is_empty());
        assert_eq!(ids(tail.due(start + HOLD)), [102]);
        // Still looked for: a stream that has not passed 101 may yet be sent it.
        assert_eq!(tail.gaps(), [101]);
    }

    #[test]
    fn only_young_gaps_below_a_row_hold_it_back() {
        let start = Instant::now();
        let mut tail = Tail::after(100);
        tail.read(vec![row(102)], start);
        let later = start + HOLD;
        tail.read(vec![row(103), row(104), row(106)], later);
        // 101 has waited long enough; 105 has just been found missing.
        assert_eq!(ids(tail.due(later)), [102, 103, 104]);
        assert!(tail.due(later + POLL_EVERY).is_empty());
        tail.read(vec![row(105)], later + 2 * POLL_EVERY);
        assert_eq!(ids(tail.due(later + 2 * POLL_EVERY)), [105, 106]);
        assert_eq!(tail.gaps(), [101]);
    }

    #[test]
    fn a_row_filling_a_gap_already_passed_is_still_published() {
        let start = Instant::now();
        let mut tail = Tail::after(100);
        tail.read(vec![row(102)], start);
        assert_eq!(ids(tail.due(start + HOLD)), [102]);
        let late = start + 2 * HOLD;
        tail.read(vec![row(101), row(103)], late);
        assert_eq!(ids(tail.due(late)), [101, 103]);
        assert!(tail.gaps().is_empty());
    }

    #[test]
    fn a_gap_given_up_does_not_stall_what_follows() {
        let start = Instant::now();
        let mut tail = Tail::after(100);
        tail.read(vec![row(102)], start);
        let gone = start + GIVE_UP;
        assert_eq!(ids(tail.due(gone)), [102]);
        assert!(tail.gaps().is_empty(), "no longer asked for");
        tail.read(vec![row(103)], gone);
        assert_eq!(ids(tail.due(gone)), [103]);
        // Were the table to return it after all, it is not published (see `read`).
        tail.read(vec![row(101)], gone + MS);
        assert!(tail.due(gone + MS).is_empty());
    }

    #[test]
    fn a_row_read_twice_is_published_once() {
        let start = Instant::now();
        let mut tail = Tail::after(100);
        tail.read(vec![row(101), row(103)], start);
        tail.read(vec![row(103)], start);
        assert_eq!(ids(tail.due(start)), [101]);
        tail.read(vec![row(102), row(103), row(101)], start + MS);
        assert_eq!(ids(tail.due(start + MS)), [102, 103]);
        tail.read(vec![row(101), row(102), row(103)], start + 2 * MS);
        assert!(tail.due(start + 2 * MS).is_empty());
        assert_eq!(tail.cursor, 103);
    }

    #[test]
    fn a_user_holds_at_most_the_limit_of_streams_and_a_dropped_one_frees_its_place() {
        let slots = StreamSlots::default();
        let mut held: Vec<StreamSlot> = (0..3)
            .map(|_| slots.take("ann", Some(3)).unwrap())
            .collect();
        assert!(slots.take("ann", Some(3)).is_none());
        // Others have places of their own; no limit is no limit.
        let bob = slots.take("bob", Some(3)).unwrap();
        assert!(slots.take("ann", None).is_some());
        assert_eq!(
            slots.held("ann"),
            3,
            "the unlimited one was dropped at once"
        );
        held.pop();
        assert_eq!(slots.held("ann"), 2);
        let again = slots.take("ann", Some(3)).unwrap();
        assert!(slots.take("ann", Some(3)).is_none());
        drop((again, bob));
        assert_eq!(slots.held("bob"), 0);
        assert!(
            !slots.open.lock().unwrap().contains_key("bob"),
            "no entry left behind"
        );
    }

    #[test]
    fn a_wide_jump_looks_for_its_highest_ids_only() {
        let start = Instant::now();
        let mut tail = Tail::after(0);
        tail.read(vec![row(5000)], start);
        let gaps = tail.gaps();
        assert_eq!(gaps.len(), MAX_GAPS);
        assert_eq!(gaps[0], 5000 - MAX_GAPS as i64);
        assert_eq!(*gaps.last().unwrap(), 4999);
    }
}
