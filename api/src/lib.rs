//! Strata's HTTP API: authentication, validation before anything is queued, datasets, jobs,
//! results, health, metrics and OpenAPI.

pub mod auth;
pub mod context;
pub mod conversion;
pub mod error;
pub mod events;
pub mod middleware;
pub mod quota;
pub mod request_id;
pub mod routes;
pub mod storable;
pub mod submission;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use strata_core::auth::Verifier;
use strata_core::queue::Queues;
use strata_core::{Config, Store};
use tokio::net::TcpListener;

pub use context::ApiContext;

/// Why the api could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// PostgreSQL is unreachable or refused the connection.
    #[error("cannot reach PostgreSQL (DATABASE_URL)")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("cannot migrate the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database lacks migrations this binary needs, and the api is not to apply them: every
    /// request would fail on it.
    #[error(
        "the database is not migrated ({applied} of {known} migrations applied): run `strata \
         migrate` (or start the api with --migrate, api.migrate_on_start)"
    )]
    NotMigrated {
        /// This binary's migrations the database has.
        applied: usize,
        /// The migrations this binary carries.
        known: usize,
    },
    /// Redis is unreachable.
    #[error("cannot reach Redis (REDIS_URL): {0}")]
    Redis(String),
    /// The token key cannot be used.
    #[error(transparent)]
    Auth(#[from] strata_core::auth::AuthError),
    /// The data directory cannot be created.
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    /// Metrics could not be registered.
    #[error("cannot register the metrics")]
    Metrics(#[from] prometheus::Error),
    /// The listener failed.
    #[error("cannot serve")]
    Io(#[from] std::io::Error),
}

impl ApiContext {
    /// Connects to everything the configuration names, checking each.
    pub async fn connect(config: Config) -> Result<ApiContext, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
        let verifier = Verifier::from_config(&config)?;
        let store = Store::connect(config.database_url.expose(), config.api.db_connections).await?;
        if config.api.migrate_on_start {
            store.migrate().await?;
        }
        // A database behind this binary answers every request with an error while health says
        // ok: refuse to start instead. One ahead of it (a newer replica migrated it during a
        // rolling upgrade) is fine.
        let schema = store.schema().await?;
        if !schema.is_current() {
            return Err(StartError::NotMigrated {
                applied: schema.applied,
                known: schema.known,
            });
        }
        let queues = Queues::connect(config.redis_url.expose(), &config.queue_prefix)
            .await
            .map_err(|e| StartError::Redis(e.to_string()))?;
        Ok(ApiContext {
            events: events::Events::start(store.clone()),
            store,
            queues,
            verifier,
            metrics: Arc::new(context::ApiMetrics::new()?),
            bundled: Arc::default(),
            uploads: routes::datasets::Uploads::start(&config),
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            config: Arc::new(config),
        })
    }
}

/// The whole application: routes plus every layer.
pub fn app(ctx: ApiContext) -> Router {
    middleware::layers(routes::router(), &ctx).with_state(ctx)
}

/// Serves the api on `listener` until `shutdown` completes, then finishes in-flight requests
/// (open event streams end).
pub async fn serve(
    ctx: ApiContext,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = Arc::clone(&ctx.closing);
    axum::serve(listener, app(ctx))
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.send_replace(true);
        })
        .await
}
