//! Layered configuration: `config/default.toml` < a file (`--config` / `STRATA_CONFIG`) <
//! environment (`STRATA_*`, `DATABASE_URL`, `REDIS_URL`), checked once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// A value that must never reach a log line: it prints as `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything api and worker read from configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// PostgreSQL, the source of truth (`DATABASE_URL`).
    pub database_url: Secret,
    /// Redis, the transport (`REDIS_URL`).
    pub redis_url: Secret,
    /// Where uploaded data sets are stored as Parquet; api and workers must share it.
    pub data_dir: PathBuf,
    /// The bundled example data sets, available to everyone by file stem (GOOG, ...).
    pub bundled_dir: PathBuf,
    /// HS256 secret, at least 32 bytes (`STRATA_JWT_SECRET`).
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    /// PEM public key for RS256 or ES256 tokens instead of the HS256 secret.
    #[serde(default)]
    pub jwt_public_key: Option<PathBuf>,
    /// `HS256`, `RS256` or `ES256`.
    pub jwt_algorithm: String,
    /// The `iss` every token must carry, when set (`STRATA_JWT_ISSUER`): the identity
    /// provider's issuer URL.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// The `aud` every token must name, when set (`STRATA_JWT_AUDIENCE`). Unset, a token that
    /// names any audience is refused: it was meant for another service.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// Prefix of every Redis key, so several deployments (or tests) share one Redis.
    pub queue_prefix: String,
    /// The HTTP server.
    pub api: ApiConfig,
    /// Job execution.
    pub worker: WorkerConfig,
    /// Logging.
    pub log: LogConfig,
    /// What each tier may do.
    pub tiers: Tiers,
    /// The language model behind AI jobs; none configured, AI endpoints answer 503.
    pub ai: AiConfig,
    /// Signed events POSTed when jobs end.
    pub webhooks: WebhooksConfig,
}

/// `[webhooks]`: how the events announcing finished jobs are sent. `STRATA_WEBHOOK_ALLOW` sets
/// `allow` (as does any `STRATA_WEBHOOK_<KEY>`).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhooksConfig {
    /// Hosts and networks webhooks may reach although they are internal (loopback, private,
    /// link-local, ...): names or CIDRs, as a list or one comma-separated string.
    #[serde(default, deserialize_with = "allow_list")]
    pub allow: crate::webhooks::guard::Allow,
    /// An attempt whose receiver has not answered in this many seconds failed.
    pub timeout_secs: u64,
    /// Bytes of a receiver's answer read at most; the rest is not waited for.
    pub max_response_bytes: usize,
    /// First wait after a failed attempt, in milliseconds, doubled at each further one (with
    /// jitter) up to `max_backoff_secs`.
    pub retry_backoff_ms: u64,
    /// Longest wait between two attempts, in seconds.
    pub max_backoff_secs: u64,
    /// An event not delivered this many seconds after the job ended is given up.
    pub retry_for_secs: u64,
    /// Deliveries one worker has under way at once.
    pub concurrency: usize,
}

/// `webhooks.allow` from a list or from one comma-separated string (the environment's form).
fn allow_list<'de, D>(deserializer: D) -> Result<crate::webhooks::guard::Allow, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entries {
        One(String),
        Many(Vec<String>),
    }
    match Entries::deserialize(deserializer)? {
        Entries::One(list) => list.parse(),
        Entries::Many(entries) => {
            crate::webhooks::guard::Allow::parse(entries.iter().map(String::as_str))
        }
    }
    .map_err(serde::de::Error::custom)
}

/// Which API the configured model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiProvider {
    /// The Anthropic Messages API (`POST {base_url}/v1/messages`).
    Anthropic,
    /// Any OpenAI-compatible chat completions endpoint (`POST {base_url}/chat/completions`):
    /// OpenAI itself, or a local vLLM, llama.cpp or Ollama server.
    #[serde(rename = "openai")]
    OpenAi,
}

impl AiProvider {
    /// The name used in configuration and results.
    pub fn as_str(self) -> &'static str {
        match self {
            AiProvider::Anthropic => "anthropic",
            AiProvider::OpenAi => "openai",
        }
    }

    /// Where the provider's own service answers, when `ai.base_url` is not set.
    pub fn default_base_url(self) -> &'static str {
        match self {
            AiProvider::Anthropic => "https://api.anthropic.com",
            AiProvider::OpenAi => "https://api.openai.com/v1",
        }
    }
}

/// `[ai]`: the language model behind `POST /v1/ai/strategies` and `POST /v1/ai/analyses`.
/// `STRATA_AI_PROVIDER`, `STRATA_AI_BASE_URL`, `STRATA_AI_API_KEY` and `STRATA_AI_MODEL` set the
/// first four (as does any `STRATA_AI_<KEY>`).
#[derive(Debug, Clone, Deserialize)]
pub struct AiConfig {
    /// `anthropic` or `openai`; absent: AI is off and its endpoints answer 503.
    #[serde(default)]
    pub provider: Option<AiProvider>,
    /// The API's address; the provider's own service when absent.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Sent as `x-api-key` (Anthropic) or `Authorization: Bearer` (OpenAI-compatible); a local
    /// server may need none.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The model's name as the provider knows it.
    #[serde(default)]
    pub model: Option<String>,
    /// A call to the model taking longer fails the job.
    pub timeout_secs: u64,
    /// Most tokens the model may write in one reply.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Times a strategy that does not compile is sent back to the model with the error.
    pub repair_rounds: u32,
    /// Times a call answered 429 or 5xx (or not at all) is tried again, with backoff.
    pub max_retries: u32,
    /// First wait before such a retry, in milliseconds, doubled at each further one; a
    /// `retry-after` from the provider wins.
    pub retry_backoff_ms: u64,
    /// A `retry-after` longer than this many seconds fails the job instead of waiting.
    pub max_retry_after_secs: u64,
    /// AI jobs one worker runs at once (they wait on the network, not on the engine).
    pub concurrency: usize,
}

impl AiConfig {
    /// The provider's address: `base_url`, or the provider's own service.
    pub fn base_url(&self) -> Option<String> {
        let provider = self.provider?;
        Some(
            self.base_url
                .clone()
                .unwrap_or_else(|| provider.default_base_url().to_owned())
                .trim_end_matches('/')
                .to_owned(),
        )
    }
}

/// `[tiers.basic]`, `[tiers.pro]`, `[tiers.elite]`: each tier's quotas.
#[derive(Debug, Clone, Deserialize)]
pub struct Tiers {
    /// Quotas of `basic`.
    pub basic: Quota,
    /// Quotas of `pro`.
    pub pro: Quota,
    /// Quotas of `elite`.
    pub elite: Quota,
}

/// One tier's limits; an absent limit is no limit.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Quota {
    /// Jobs queued or running at once, per user.
    #[serde(default)]
    pub active_jobs: Option<u64>,
    /// Parameter sets in one sweep.
    #[serde(default)]
    pub sweep_sets: Option<u64>,
    /// API requests per minute, per user.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Jobs submitted per minute, per user.
    #[serde(default)]
    pub submissions_per_minute: Option<u64>,
    /// Bars in one job's data (after `start`/`end`).
    #[serde(default)]
    pub bars_per_job: Option<u64>,
    /// The precisions a job may ask for (`bar`, `hybrid`, `tick`); absent: all of them.
    #[serde(default)]
    pub precision: Option<Vec<engine::spec::Precision>>,
    /// AI jobs submitted per minute, per user.
    #[serde(default)]
    pub ai_requests_per_minute: Option<u64>,
    /// Model tokens (input and output) per user and UTC day.
    #[serde(default)]
    pub ai_tokens_per_day: Option<u64>,
    /// Ranked parameter sets a sweep's result keeps (`top`); never more than the sets run.
    #[serde(default)]
    pub sweep_top: Option<u64>,
    /// Memory one job may hold, in MiB, as the api estimates it before queueing (bars x
    /// columns, indicator columns, parameter sets run at once, tick events).
    #[serde(default)]
    pub job_memory_mb: Option<u64>,
    /// Wall-clock seconds one run of a job may take; the worker fails it past that.
    #[serde(default)]
    pub max_runtime_secs: Option<u64>,
    /// Bytes of uploaded data sets per user, in MiB.
    #[serde(default)]
    pub storage_mb: Option<u64>,
    /// Uploaded data sets per user.
    #[serde(default)]
    pub datasets: Option<u64>,
    /// Server-sent event streams one user may hold open at once.
    #[serde(default)]
    pub event_streams: Option<u64>,
    /// The tier's share of worker slots while every tier has jobs waiting (elite 6 : pro 3 :
    /// basic 1 by default); at least 1, so no tier starves.
    pub weight: u32,
}

impl Quota {
    /// Whether a job at `precision` is allowed.
    pub fn allows(&self, precision: engine::spec::Precision) -> bool {
        self.precision
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&precision))
    }
}

impl Tiers {
    /// The quotas of `tier`.
    pub fn quota(&self, tier: crate::Tier) -> &Quota {
        match tier {
            crate::Tier::Basic => &self.basic,
            crate::Tier::Pro => &self.pro,
            crate::Tier::Elite => &self.elite,
        }
    }

    /// The first tier above `tier` whose `limit` is higher (absent = unlimited), to tell a user
    /// what would allow more.
    pub fn next_allowing_more(
        &self,
        tier: crate::Tier,
        limit: impl Fn(&Quota) -> Option<u64>,
    ) -> Option<(crate::Tier, Option<u64>)> {
        let current = limit(self.quota(tier));
        [crate::Tier::Basic, crate::Tier::Pro, crate::Tier::Elite]
            .into_iter()
            .filter(|t| *t > tier)
            .map(|t| (t, limit(self.quota(t))))
            .find(|(_, l)| match (l, current) {
                (None, Some(_)) => true,
                (Some(l), Some(c)) => *l > c,
                _ => false,
            })
    }
}

/// The least `api.upload_memory_mb`: below it a converter cannot start its threads (measured:
/// 256 MiB is not enough to convert two bars).
pub const MIN_UPLOAD_MEMORY_MB: u64 = 512;

/// `[api]`: the HTTP server.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiConfig {
    /// Address to listen on (`strata api --bind`).
    pub bind: SocketAddr,
    /// Origins allowed by CORS; empty allows none.
    pub cors_origins: Vec<String>,
    /// Largest JSON body, in bytes.
    pub json_limit_bytes: usize,
    /// Largest data set upload, in bytes.
    pub upload_limit_bytes: usize,
    /// Uploads received and converted at once by one api process; beyond it an upload is
    /// answered 503 `uploads_busy` with `Retry-After`.
    pub upload_concurrency: usize,
    /// Most rows (bars, or trades and book events) an upload may hold, checked against what
    /// the file declares (Parquet metadata, a counting pass over CSV) before it is decoded.
    pub upload_max_rows: u64,
    /// Address space, in MiB, of the child process that converts one upload; a file whose
    /// decoding needs more is answered 413 `dataset_too_large`.
    pub upload_memory_mb: u64,
    /// The strata executable whose `convert-upload` converts uploads; absent, the api's own.
    #[serde(default)]
    pub upload_converter: Option<std::path::PathBuf>,
    /// A request taking longer is answered 408.
    pub request_timeout_secs: u64,
    /// Apply migrations when the api starts.
    pub migrate_on_start: bool,
    /// Connections to PostgreSQL.
    pub db_connections: u32,
    /// Where clients reach the API (`https://strata.example.com`): the links in webhook events
    /// start with it; absent, they are paths.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// `[worker]`: job execution.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerConfig {
    /// Jobs one worker process runs at once (`strata worker --concurrency`).
    pub concurrency: usize,
    /// Threads of the engine's rayon pool; 0 = one per core (`strata worker --threads`).
    pub threads: usize,
    /// Most jobs kept ready in Redis per queue; the rest wait in PostgreSQL.
    pub window: usize,
    /// Seconds between heartbeats of a running job.
    pub heartbeat_secs: u64,
    /// A running job's lease: when its heartbeat is older than this many seconds its worker is
    /// taken for dead and the job is run again (by any worker).
    pub lease_secs: u64,
    /// A job that failed for a passing reason (its worker died, PostgreSQL or Redis hiccuped)
    /// runs again after this many seconds, doubled at each further attempt (at most 5 minutes).
    pub retry_backoff_secs: u64,
    /// On SIGTERM, how long running jobs may go on before they are handed back to the queue.
    pub grace_secs: u64,
    /// A job dispatched this many seconds ago that no worker picked up is dispatched again.
    pub redispatch_after_secs: u64,
    /// Attempts before a job that keeps failing for passing reasons fails for good, with the
    /// last error. A job's own error (bad data) fails it at once.
    pub max_attempts: i32,
    /// A job whose runs ended with their worker process dying (abort, OOM kill, crash) this
    /// many times fails as poison; after the first death it runs alone on its worker.
    pub max_worker_deaths: i32,
    /// Largest result document a job may store, in MiB; a larger one fails the job.
    pub max_result_mb: u64,
    /// Port of the worker's `/metrics` and health endpoints; 0 picks one, absent disables.
    #[serde(default)]
    pub metrics_bind: Option<SocketAddr>,
    /// Connections to PostgreSQL.
    pub db_connections: u32,
}

/// `[log]`: logging.
#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A `tracing` filter, e.g. `info,strata=debug` (`RUST_LOG` wins when set).
    pub filter: String,
}

/// The defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration that cannot be used, with every reason.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Reads the layers: defaults, then `file` (or `STRATA_CONFIG`), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("STRATA_CONFIG").map(PathBuf::from));
        if let Some(path) = &file {
            if !path.is_file() {
                return Err(ConfigError(vec![format!(
                    "configuration file {} does not exist",
                    path.display()
                )]));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            .merge(
                Env::prefixed("STRATA_")
                    .ignore(&["CONFIG"])
                    .split("__")
                    .lowercase(true)
                    // The fixed names STRATA_AI_PROVIDER, STRATA_AI_MODEL, ... are keys of [ai]
                    // (keys still have their case here).
                    // So are STRATA_WEBHOOK_ALLOW, ... of [webhooks].
                    .map(|key| {
                        let key = key.as_str();
                        let starts = |head: &str| {
                            key.get(..head.len())
                                .is_some_and(|h| h.eq_ignore_ascii_case(head))
                        };
                        if starts("ai_") {
                            format!("ai.{}", &key[3..]).into()
                        } else if starts("webhook_") {
                            format!("webhooks.{}", &key[8..]).into()
                        } else {
                            key.to_owned().into()
                        }
                    }),
            )
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL", "REDIS_URL"])
                    .lowercase(true),
            );
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError(e.into_iter().map(|e| e.to_string()).collect()))?;
        config.check()?;
        Ok(config)
    }

    /// How the api checks tokens: the HS256 secret (at least 32 bytes) or the public key
    /// file. Only the api (and `strata token`) needs them, so [`Config::load`] leaves this
    /// check to them: a worker starts without `STRATA_JWT_SECRET`.
    pub fn check_auth(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        match self.jwt_algorithm.as_str() {
            "HS256" => match &self.jwt_secret {
                None => errors
                    .push("jwt_secret (STRATA_JWT_SECRET) is required for HS256 tokens".to_owned()),
                Some(s) if s.expose().len() < 32 => errors.push(format!(
                    "jwt_secret (STRATA_JWT_SECRET) must be at least 32 bytes, got {}",
                    s.expose().len()
                )),
                Some(_) => {}
            },
            "RS256" | "ES256" => match &self.jwt_public_key {
                None => errors.push(format!(
                    "jwt_public_key (STRATA_JWT_PUBLIC_KEY) is required for {}",
                    self.jwt_algorithm
                )),
                Some(path) if !path.is_file() => {
                    errors.push(format!("jwt_public_key: cannot read {}", path.display()))
                }
                Some(_) => {}
            },
            other => errors.push(format!(
                "jwt_algorithm must be HS256, RS256 or ES256, got '{other}'"
            )),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }

    /// Checks what types alone cannot: URLs, sizes, the worker's limits (token settings are
    /// [`Config::check_auth`]'s).
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        for (name, url, schemes) in [
            (
                "database_url (DATABASE_URL)",
                &self.database_url,
                &["postgres", "postgresql"][..],
            ),
            (
                "redis_url (REDIS_URL)",
                &self.redis_url,
                &["redis", "rediss"][..],
            ),
        ] {
            let scheme = url.expose().split("://").next().unwrap_or_default();
            if !url.expose().contains("://") || !schemes.contains(&scheme) {
                errors.push(format!("{name} must be a {}:// URL", schemes[0]));
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            errors.push(format!(
                "log.format must be text or json, got '{}'",
                self.log.format
            ));
        }
        if self.api.upload_concurrency == 0 || self.api.upload_max_rows == 0 {
            errors.push(
                "api.upload_concurrency and api.upload_max_rows must be at least 1".to_owned(),
            );
        }
        if self.api.upload_memory_mb < MIN_UPLOAD_MEMORY_MB {
            errors.push(format!(
                "api.upload_memory_mb must be at least {MIN_UPLOAD_MEMORY_MB} (a converter \
                 needs that much address space to start); got {}",
                self.api.upload_memory_mb
            ));
        }
        if self.worker.concurrency == 0 {
            errors.push("worker.concurrency must be at least 1".to_owned());
        }
        for tier in crate::Tier::ALL {
            if self.tiers.quota(tier).weight == 0 {
                errors.push(format!(
                    "tiers.{tier}.weight must be at least 1, or the tier would starve"
                ));
            }
        }
        if self.worker.max_attempts < 1 {
            errors.push("worker.max_attempts must be at least 1".to_owned());
        }
        if self.worker.max_worker_deaths < 1 {
            errors.push("worker.max_worker_deaths must be at least 1".to_owned());
        }
        if self.worker.max_result_mb == 0 {
            errors.push("worker.max_result_mb must be at least 1".to_owned());
        }
        if self.worker.lease_secs <= self.worker.heartbeat_secs {
            errors.push(format!(
                "worker.lease_secs ({}) must be longer than worker.heartbeat_secs ({})",
                self.worker.lease_secs, self.worker.heartbeat_secs
            ));
        }
        if self.worker.window == 0 {
            errors.push("worker.window must be at least 1".to_owned());
        }
        errors.extend(self.ai.problems());
        if self.webhooks.concurrency == 0 {
            errors.push("webhooks.concurrency must be at least 1".to_owned());
        }
        if self.webhooks.timeout_secs == 0 || self.webhooks.retry_backoff_ms == 0 {
            errors.push(
                "webhooks.timeout_secs and webhooks.retry_backoff_ms must be above 0".to_owned(),
            );
        }
        if let Some(url) = &self.api.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                errors.push(format!(
                    "api.public_url must be an http:// or https:// address, got '{url}'"
                ));
            }
        }
        if self.queue_prefix.is_empty() || self.queue_prefix.contains(char::is_whitespace) {
            errors.push("queue_prefix must be a non-empty word".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }
}

impl AiConfig {
    fn problems(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.concurrency == 0 {
            errors.push("ai.concurrency must be at least 1".to_owned());
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            errors.push(format!(
                "ai.temperature must be between 0 and 2, got {}",
                self.temperature
            ));
        }
        let Some(provider) = self.provider else {
            return errors;
        };
        if self.model.as_deref().is_none_or(str::is_empty) {
            errors.push(format!(
                "ai.model (STRATA_AI_MODEL) is required with ai.provider = '{}'",
                provider.as_str()
            ));
        }
        if provider == AiProvider::Anthropic
            && self.api_key.as_ref().is_none_or(|k| k.expose().is_empty())
        {
            errors.push("ai.api_key (STRATA_AI_API_KEY) is required for anthropic".to_owned());
        }
        if let Some(url) = &self.base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                errors.push(format!(
                    "ai.base_url (STRATA_AI_BASE_URL) must be an http:// or https:// URL, got '{url}'"
                ));
            }
        }
        if self.timeout_secs == 0 || self.max_tokens == 0 {
            errors.push("ai.timeout_secs and ai.max_tokens must be at least 1".to_owned());
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        let mut config: Config = Figment::from(Toml::string(DEFAULT_TOML)).extract().unwrap();
        config.jwt_secret = Some(Secret::new("x".repeat(32)));
        config
    }

    #[test]
    fn the_defaults_are_complete() {
        base().check().unwrap();
        base().check_auth().unwrap();
    }

    #[test]
    fn a_worker_needs_no_token_secret() {
        let mut config = base();
        config.jwt_secret = None;
        config.check().unwrap();
        let err = config.check_auth().unwrap_err().to_string();
        assert!(err.contains("STRATA_JWT_SECRET"), "{err}");
    }

    #[test]
    fn default_quotas_and_the_tier_that_allows_more() {
        let tiers = base().tiers;
        let active = |q: &Quota| q.active_jobs;
        assert_eq!(tiers.basic.active_jobs, Some(3));
        assert_eq!(tiers.elite.sweep_sets, Some(1_000_000));
        assert_eq!(
            tiers.next_allowing_more(crate::Tier::Basic, active),
            Some((crate::Tier::Pro, Some(10)))
        );
        assert_eq!(tiers.next_allowing_more(crate::Tier::Elite, active), None);
    }

    #[test]
    fn a_short_secret_is_refused_by_name() {
        let mut config = base();
        config.jwt_secret = Some(Secret::new("short"));
        let err = config.check_auth().unwrap_err().to_string();
        assert!(
            err.contains("STRATA_JWT_SECRET") && err.contains("32 bytes"),
            "{err}"
        );
    }

    #[test]
    fn ai_is_off_by_default_and_a_provider_needs_a_model() {
        let mut config = base();
        assert_eq!(config.ai.provider, None);
        assert_eq!(config.tiers.basic.ai_requests_per_minute, Some(10));
        assert_eq!(config.tiers.elite.ai_requests_per_minute, Some(120));
        config.ai.provider = Some(AiProvider::Anthropic);
        let err = config.check().unwrap_err().to_string();
        assert!(
            err.contains("STRATA_AI_MODEL") && err.contains("STRATA_AI_API_KEY"),
            "{err}"
        );
        config.ai.provider = Some(AiProvider::OpenAi);
        config.ai.model = Some("llama3".into());
        config.check().unwrap();
        assert_eq!(
            config.ai.base_url().as_deref(),
            Some("https://api.openai.com/v1")
        );
    }

    #[test]
    fn the_webhook_allow_list_reads_as_a_list_or_a_comma_separated_string() {
        use std::net::IpAddr;
        let read = |allow: &str| {
            Figment::from(Toml::string(DEFAULT_TOML))
                .merge(Toml::string(&format!("[webhooks]\nallow = {allow}")))
                .extract::<Config>()
                .map_err(|e| e.to_string())
        };
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!base().webhooks.allow.allows_ip(loopback));
        for allow in [
            r#""127.0.0.0/8, hooks.internal""#,
            r#"["127.0.0.0/8", "hooks.internal"]"#,
        ] {
            let config = read(allow).unwrap();
            assert!(config.webhooks.allow.allows_ip(loopback), "{allow}");
            assert!(
                config.webhooks.allow.allows_host("hooks.internal"),
                "{allow}"
            );
        }
        let err = read(r#""10.0.0.0/33""#).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }

    /// The only test that reads the environment (tests run in parallel in one process).
    #[test]
    fn strata_webhook_allow_and_the_ai_names_map_to_their_sections() {
        std::env::set_var("STRATA_JWT_SECRET", "x".repeat(32));
        std::env::set_var("STRATA_WEBHOOK_ALLOW", "127.0.0.0/8,hooks.internal");
        std::env::set_var("STRATA_WEBHOOK_TIMEOUT_SECS", "3");
        std::env::set_var("STRATA_AI_MODEL", "llama3");
        let config = Config::load(None);
        for name in [
            "STRATA_JWT_SECRET",
            "STRATA_WEBHOOK_ALLOW",
            "STRATA_WEBHOOK_TIMEOUT_SECS",
            "STRATA_AI_MODEL",
        ] {
            std::env::remove_var(name);
        }
        let config = config.unwrap();
        assert!(config.webhooks.allow.allows_host("hooks.internal"));
        assert!(config
            .webhooks
            .allow
            .allows_ip("127.0.0.1".parse().unwrap()));
        assert_eq!(config.webhooks.timeout_secs, 3);
        assert_eq!(config.ai.model.as_deref(), Some("llama3"));
    }

    #[test]
    fn secrets_do_not_print() {
        let config = base();
        let text = format!("{config:?}");
        assert!(!text.contains(&"x".repeat(32)), "{text}");
        assert!(text.contains("[redacted]"));
    }
}
