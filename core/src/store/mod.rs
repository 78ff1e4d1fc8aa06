//! The PostgreSQL store: the source of truth for data sets, jobs and results.

mod datasets;
mod jobs;
mod worker;

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

pub use datasets::{Dataset, NewDataset};
pub use jobs::{CancelOutcome, JobFilter, NewJob, Page, Submitted};
pub use worker::*;

/// The migrations in `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pool of connections to Strata's database.
#[derive(Clone, Debug)]
pub struct Store {
    /// The pool itself, for queries that live next to their callers.
    pub pool: PgPool,
}

/// A database error, with the statement's context.
pub type StoreError = sqlx::Error;

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
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Store { pool })
    }

    /// Applies every migration not applied yet.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// Round-trip time of a trivial query.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(started.elapsed())
    }
}
