//! The queues in Redis: one apalis-redis queue per tier, named `{prefix}:{tier}`, and one for AI
//! jobs, `{prefix}:ai`.
//!
//! Redis is only the transport. PostgreSQL holds the backlog and a dispatcher keeps a bounded
//! window of job ids in each queue: apalis-redis 1.0 promotes every due job of a queue in one
//! Lua `unpack` when a worker polls, which fails ("too many results to unpack") once about
//! 8,000 jobs wait at once.

use std::time::{Duration, Instant};

use apalis::prelude::TaskBuilder;
use apalis_redis::{ConnectionManager, RedisStorage};
use redis::aio::ConnectionManagerConfig;

use crate::job::JobMessage;
use crate::tier::Tier;

/// A queue in Redis: each tier's engine jobs, and the AI jobs of every tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Elite's backtests and sweeps.
    Elite,
    /// Pro's.
    Pro,
    /// Basic's.
    Basic,
    /// AI jobs: they wait on the language model, not the engine.
    Ai,
}

impl Queue {
    /// Every queue: the tiers' in the order workers serve them, then `ai`.
    pub const ALL: [Queue; 4] = [Queue::Elite, Queue::Pro, Queue::Basic, Queue::Ai];

    /// The name in queue keys, `jobs.queue` and metrics: the tier's name, or `ai`.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Elite => "elite",
            Queue::Pro => "pro",
            Queue::Basic => "basic",
            Queue::Ai => "ai",
        }
    }

    /// Its place in [`Queue::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl From<Tier> for Queue {
    fn from(tier: Tier) -> Queue {
        match tier {
            Tier::Elite => Queue::Elite,
            Tier::Pro => Queue::Pro,
            Tier::Basic => Queue::Basic,
        }
    }
}

impl std::str::FromStr for Queue {
    type Err = String;

    fn from_str(s: &str) -> Result<Queue, String> {
        Queue::ALL
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or_else(|| format!("unknown queue '{s}'; expected elite, pro, basic or ai"))
    }
}

impl std::fmt::Display for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most jobs pushed to Redis in one Lua call.
const PUSH_CHUNK: usize = 500;

/// How long a connection attempt or a command may take before it counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis error while talking to the tier queues.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis refused or dropped a command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// apalis-redis failed a queue operation.
    #[error("queue: {0}")]
    Queue(#[from] apalis_redis::Error),
    /// A message could not be encoded.
    #[error("encoding a job message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What [`Queues::admit`] decided about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Within the limit, and so counted.
    pub admitted: bool,
    /// Events in the window now, this one included if admitted.
    pub count: u64,
    /// Until the oldest event in the window leaves it and a place frees (zero when the window
    /// is empty).
    pub frees_in: Duration,
}

/// The queues of one deployment (one `queue_prefix`), over one multiplexed connection.
#[derive(Clone)]
pub struct Queues {
    conn: ConnectionManager,
    /// The deployment's `queue_prefix`, which every key starts with.
    prefix: String,
    /// In [`Queue::ALL`] order.
    storages: [RedisStorage<JobMessage>; 4],
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues")
            .field("queues", &Queue::ALL.map(|q| self.name(q)))
            .finish()
    }
}

impl Queues {
    /// Connects to Redis; the queues are named `{prefix}:{tier}` and `{prefix}:ai`.
    pub async fn connect(redis_url: &str, prefix: &str) -> Result<Queues, QueueError> {
        // Fail fast while Redis is down: the api answers (jobs wait in PostgreSQL) and workers
        // retry in their own loops, rather than every call sitting through the client's default
        // of six reconnects with backoff (about 10 s each).
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2);
        let conn = redis::Client::open(redis_url)?
            .get_connection_manager_with_config(manager)
            .await?;
        let storage = |queue: Queue| {
            let config = apalis_redis::Config::default()
                .queue(format!("{prefix}:{}", queue.as_str()))
                // Nobody subscribes to apalis' pub/sub events, and its leases would only
                // duplicate the claim in PostgreSQL, which is the record.
                .emit_events(false)
                .lock_tasks(false)
                // A dead worker's fetched messages go back to the queue after 30 s; the
                // reconciler's stale-heartbeat rule covers the jobs it had started.
                .heartbeat_interval(Duration::from_secs(10))
                .missed_heartbeats(3);
            RedisStorage::new(conn.clone()).with_config(config)
        };
        Ok(Queues {
            storages: Queue::ALL.map(storage),
            conn,
            prefix: prefix.to_owned(),
        })
    }

    /// The queue's name, `{prefix}:{queue}`.
    pub fn name(&self, queue: Queue) -> String {
        self.storages[queue.index()].get_config().queue.to_string()
    }

    /// Pushes `jobs` to the queue in as few round trips as possible.
    ///
    /// Each call makes new messages: pushing a job twice delivers it twice (workers skip a job
    /// that is no longer queued).
    pub async fn push(&self, queue: Queue, jobs: &[JobMessage]) -> Result<(), QueueError> {
        let config = self.storages[queue.index()].get_config();
        let mut conn = self.conn.clone();
        for chunk in jobs.chunks(PUSH_CHUNK) {
            let tasks = chunk
                .iter()
                .map(|job| Ok(TaskBuilder::new(serde_json::to_vec(job)?).build()))
                .collect::<Result<Vec<_>, QueueError>>()?;
            apalis_redis::queries::push_tasks(&mut conn, config, &tasks).await?;
        }
        Ok(())
    }

    /// Jobs waiting in the queue that no worker has fetched yet (including retries scheduled
    /// for later).
    pub async fn ready(&self, queue: Queue) -> Result<u64, QueueError> {
        let config = self.storages[queue.index()].get_config();
        let mut conn = self.conn.clone();
        let (active, scheduled): (u64, u64) = redis::pipe()
            .cmd("LLEN")
            .arg(config.active_jobs_list())
            .cmd("ZCARD")
            .arg(config.scheduled_jobs_set())
            .query_async(&mut conn)
            .await?;
        Ok(active + scheduled)
    }

    /// Round-trip time of a `PING`.
    pub async fn ping(&self) -> Result<Duration, QueueError> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(started.elapsed())
    }

    /// Admits one more event for `counter` if fewer than `limit` were admitted in the last
    /// `window` (a sliding window: any `window`-long span holds at most `limit`, unlike a
    /// calendar minute, across whose boundary twice the limit could pass). A refused event is
    /// not counted. The events are a sorted set by time in Redis, `{prefix}:window:{counter}`,
    /// shared by every api replica; one script trims, counts and adds in one round trip.
    pub async fn admit(
        &self,
        counter: &str,
        limit: u64,
        window: Duration,
    ) -> Result<Admission, QueueError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.admit_at(counter, limit, window, now).await
    }

    /// [`Queues::admit`] at `now` (since the Unix epoch, to the millisecond): the replicas'
    /// clocks place the events, so they are assumed to agree to well within a second.
    pub async fn admit_at(
        &self,
        counter: &str,
        limit: u64,
        window: Duration,
        now: Duration,
    ) -> Result<Admission, QueueError> {
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = format!("{}:window:{counter}", self.prefix);
        // Unique, so two events in one millisecond are two members.
        let member = format!("{now_ms}-{}", uuid::Uuid::new_v4().simple());
        let mut conn = self.conn.clone();
        let (admitted, count, frees_in_ms): (u64, u64, u64) = redis::Script::new(SLIDING_WINDOW)
            .key(key)
            .arg(now_ms)
            .arg(window_ms)
            .arg(limit)
            .arg(member)
            .invoke_async(&mut conn)
            .await?;
        Ok(Admission {
            admitted: admitted == 1,
            count,
            frees_in: Duration::from_millis(frees_in_ms),
        })
    }

    /// Forgets messages the workers have finished with: their payloads and metadata, which
    /// apalis-redis otherwise keeps forever. Returns how many it removed.
    pub async fn vacuum(&self, queue: Queue) -> Result<u64, QueueError> {
        const BATCH: u64 = 1000;
        let config = self.storages[queue.index()].get_config();
        let script = redis::Script::new(VACUUM_DONE);
        let mut conn = self.conn.clone();
        let mut removed = 0;
        loop {
            let n: u64 = script
                .key(config.done_jobs_set())
                .key(config.job_data_hash())
                .key(config.job_meta_hash())
                .arg(BATCH)
                .invoke_async(&mut conn)
                .await?;
            removed += n;
            if n < BATCH {
                return Ok(removed);
            }
        }
    }

    /// Which of `jobs` (queued in PostgreSQL and handed to this queue) no message in Redis
    /// carries to a worker: not waiting in the queue, not scheduled, and not fetched by a
    /// consumer of a live worker. Those are lost (Redis was flushed or restarted, or the worker
    /// that fetched them is gone) and must be dispatched again; any other is on its way to a
    /// worker, and pushing it again would only fill the window with a duplicate.
    ///
    /// `gone` names worker processes that stopped or died (`jobs.worker_id`): their consumers
    /// (`{worker}-{queue}-{n}`) still hold what they fetched until apalis gives it back, after
    /// their missed heartbeats (30 s), which is not waited for.
    pub async fn missing(
        &self,
        queue: Queue,
        jobs: &[uuid::Uuid],
        gone: &[String],
    ) -> Result<Vec<uuid::Uuid>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let config = self.storages[queue.index()].get_config();
        let mut conn = self.conn.clone();
        let script = redis::Script::new(MISSING_JOBS);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(config.active_jobs_list())
            .key(config.scheduled_jobs_set())
            .key(config.workers_set())
            .key(config.inflight_jobs_set())
            .key(config.job_data_hash())
            .arg(gone.len());
        for worker in gone {
            invocation.arg(format!("{worker}-"));
        }
        for id in jobs {
            invocation.arg(id.to_string());
        }
        let missing: Vec<String> = invocation.invoke_async(&mut conn).await?;
        Ok(missing.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// The queue as an apalis backend, for a worker to consume.
    pub fn storage(&self, queue: Queue) -> RedisStorage<JobMessage> {
        self.storages[queue.index()].clone()
    }
}

/// Returns the job ids among ARGV[2 + ARGV[1]..] that no message in the queue carries:
/// messages waiting (KEYS[1] list), scheduled (KEYS[2] sorted set) or fetched by a registered
/// consumer (the sets `KEYS[4]:{consumer}` of the consumers in the KEYS[3] sorted set) whose
/// name does not start with one of the ARGV[1] prefixes that follow it (workers that are gone).
/// A message's payload (KEYS[5] hash, by message id) is the JSON of a `JobMessage`, whose `id`
/// is the job's.
///
/// The window keeps the messages read here to a few hundred per queue.
const MISSING_JOBS: &str = r#"
local carried = {}
local function read(messages)
    for i = 1, #messages, 500 do
        local chunk = {}
        for j = i, math.min(i + 499, #messages) do
            chunk[#chunk + 1] = messages[j]
        end
        local payloads = redis.call('HMGET', KEYS[5], unpack(chunk))
        for _, payload in ipairs(payloads) do
            if payload then
                local ok, message = pcall(cjson.decode, payload)
                if ok and type(message) == 'table' and type(message.id) == 'string' then
                    carried[message.id] = true
                end
            end
        end
    end
end
local gone = tonumber(ARGV[1])
local function live(consumer)
    for i = 2, gone + 1 do
        if string.sub(consumer, 1, #ARGV[i]) == ARGV[i] then
            return false
        end
    end
    return true
end
read(redis.call('LRANGE', KEYS[1], 0, -1))
read(redis.call('ZRANGE', KEYS[2], 0, -1))
for _, consumer in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    if live(consumer) then
        read(redis.call('SMEMBERS', KEYS[4] .. ':' .. consumer))
    end
end
local missing = {}
for i = gone + 2, #ARGV do
    if not carried[ARGV[i]] then
        missing[#missing + 1] = ARGV[i]
    end
end
return missing
"#;

/// Removes up to ARGV[1] finished messages: pops their ids from the `done` set (KEYS[1]) and
/// deletes their payload (KEYS[2] hash) and metadata (`KEYS[3]:{id}`). Unlike apalis' own
/// vacuum it never scans the messages still waiting.
/// The sliding window of [`Queues::admit`]. KEYS[1]: the sorted set of admitted events (score:
/// time in ms); ARGV: now (ms), window (ms), limit, the new event's member. Drops the events
/// that left the window, adds this one if fewer than `limit` remain, and returns
/// {admitted (1 or 0), events in the window, ms until the oldest leaves it (0 if none)}.
const SLIDING_WINDOW: &str = r#"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  count = count + 1
  admitted = 1
end
local frees = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  frees = math.max(0, tonumber(oldest[2]) + window - now)
  redis.call('PEXPIRE', KEYS[1], math.max(1, frees + window))
end
return {admitted, count, frees}
"#;

const VACUUM_DONE: &str = r#"
local ids = redis.call('SPOP', KEYS[1], ARGV[1])
for _, id in ipairs(ids) do
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', KEYS[3] .. ':' .. id)
end
return #ids
"#;
