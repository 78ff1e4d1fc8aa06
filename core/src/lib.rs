//! What Strata's api and worker share: jobs, tiers, configuration, tokens, metrics, the
//! PostgreSQL store and the Redis queues.

pub mod auth;
pub mod config;
pub mod datasets;
pub mod job;
pub mod metrics;
pub mod queue;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tier;
pub mod webhooks;

pub use config::Config;
pub use store::Store;
pub use tier::Tier;
