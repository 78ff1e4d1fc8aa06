//! The PostgreSQL store: the source of truth for data sets, jobs and results.

mod admin;
mod ai;
mod datasets;
mod events;
mod jobs;
mod webhooks;
mod worker;

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

pub use admin::{PoisonedJob, QueueLoad, RetryOutcome, RunningJob, WorkerSeen};
pub use ai::{utc_day, AiCall, Subject, Tokens};
pub use datasets::{
    Dataset, DatasetInserted, DatasetKind, NewDataset, StorageLimits, StorageUsage,
};
pub use events::JobEvent;
pub use jobs::{CancelOutcome, JobFilter, NewJob, Page, Submitted, Webhook};
pub use webhooks::{
    AfterAttempt, Attempt, AttemptView, ClaimedDelivery, DeliveryView, WebhookSettings,
};
pub use worker::*;

/// The migrations in `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Where the database's schema stands against the migrations this binary carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// This binary's migrations the database has applied.
    pub applied: usize,
    /// The migrations this binary carries.
    pub known: usize,
    /// The newest version applied (9 for `0009_...`); `None` on a database never migrated.
    pub version: Option<i64>,
}

impl Schema {
    /// Every migration this binary carries is applied (a newer release's may be too).
    pub fn is_current(&self) -> bool {
        self.applied == self.known
    }
}

/// What [`Store::migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Migrations applied by this call (0: the database was up to date).
    pub applied_now: usize,
    /// The schema after.
    pub schema: Schema,
}

/// A pool of connections to Strata's database.
#[derive(Clone, Debug)]
pub struct Store {
    /// The pool itself, for queries that live next to their callers.
    pub pool: PgPool,
}

/// A database error, with the statement's context.
pub type StoreError = sqlx::Error;

/// How long a query waits for a connection. While PostgreSQL is down every new connection is
/// refused and sqlx keeps trying until then: short, so the api answers 503 in seconds rather
/// than holding requests, and recovers as soon as a connection succeeds again.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// True when `error` means PostgreSQL cannot be reached or is not accepting work right now
/// (refused, reset, timed out, shutting down, out of connections): a retry later may succeed.
/// Any other error is the statement's own.
pub fn is_unavailable(error: &StoreError) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P01-03: the server is shutting down or starting;
        // 53300: too many connections.
        sqlx::Error::Database(e) => e.code().is_some_and(|c| {
            c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// `text` as PostgreSQL can store it: a `text` value cannot hold NUL, which becomes U+FFFD
/// (the replacement character), so an error quoting a NUL byte is still recorded.
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Why PostgreSQL refused a statement for good, in words for a job's owner: the kind of
/// refusal, without the driver's text (which may name tables, constraints or servers; the log
/// keeps it).
pub fn refusal(error: &StoreError) -> &'static str {
    let code = match error {
        sqlx::Error::Database(e) => e.code(),
        _ => None,
    };
    match code.as_deref() {
        // program_limit_exceeded: a value over 1 GB, a row or an array too large.
        Some("54000") => "it is larger than PostgreSQL can store in one value (1 GB)",
        Some(c) if c.starts_with("54") => "it exceeds a limit of PostgreSQL",
        // character_not_in_repertoire, untranslatable_character: a NUL byte in text.
        Some("22021" | "22P05") => "it holds text PostgreSQL cannot store (a NUL character)",
        Some(c) if c.starts_with("22") => "PostgreSQL refused its data as invalid",
        Some(c) if c.starts_with("23") => "it breaks a rule of the database (a constraint)",
        _ => "the database refused it",
    }
}

impl Store {
    /// Connects with at most `connections` connections; fails fast when PostgreSQL is down.
    pub async fn connect(url: &str, connections: u32) -> Result<Store, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        // One plain connection first: an unreachable server then fails at once with its real
        // reason (refused, unknown host, bad password) instead of a pool timeout.
        let probe = tokio::time::timeout(Duration::from_secs(5), options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        probe.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Store { pool })
    }

    /// Applies every migration not applied yet; returns how many it applied now and where the
    /// schema is after.
    pub async fn migrate(&self) -> Result<Migrated, sqlx::migrate::MigrateError> {
        let before = self.schema().await?;
        MIGRATOR.run(&self.pool).await?;
        let after = self.schema().await?;
        Ok(Migrated {
            applied_now: after.applied.saturating_sub(before.applied),
            schema: after,
        })
    }

    /// How many of this binary's migrations the database has (none when `_sqlx_migrations`
    /// does not exist: a database never migrated).
    pub async fn schema(&self) -> Result<Schema, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        let known: Vec<i64> = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .collect();
        Ok(Schema {
            applied: known.iter().filter(|v| applied.contains(v)).count(),
            known: known.len(),
            version: applied.iter().copied().max(),
        })
    }

    /// Round-trip time of a trivial query.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(started.elapsed())
    }
}
