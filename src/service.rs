//! The service commands: `strata api`, `strata worker`, `strata migrate`, `strata token` and
//! `strata config check`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strata_core::auth::issue_token;
use strata_core::queue::Queues;
use strata_core::{Config, Store, Tier};

/// Where the configuration comes from (every service command takes it).
#[derive(Debug, Args)]
pub struct ConfigFile {
    /// A TOML file over config/default.toml (also STRATA_CONFIG); environment variables win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ConfigFile {
    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref())?)
    }
}

/// Options of `strata api`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Address to listen on (default: api.bind, 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    /// Apply migrations before serving.
    #[arg(long)]
    migrate: bool,
}

/// Options of `strata worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Jobs this process runs at once (default: worker.concurrency).
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Engine threads (default: worker.threads; 0 = one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

/// Options of `strata token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// The user the token is for (its `sub`).
    #[arg(long, value_name = "NAME")]
    sub: String,
    /// The user's tier.
    #[arg(long, value_name = "TIER", value_parser = parse_tier)]
    tier: Tier,
    /// How long it is valid: 3600, 90s, 30m, 24h or 7d.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_ttl)]
    ttl: i64,
    /// An operator token.
    #[arg(long)]
    admin: bool,
}

/// `strata config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, then check PostgreSQL and Redis answer.
    Check(ConfigFile),
}

fn parse_tier(text: &str) -> Result<Tier, String> {
    text.parse()
}

fn parse_ttl(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 3600, 30m, 24h or 7d, got '{text}'"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit '{unit}' in '{text}'; use s, m, h or d"
            ))
        }
    };
    if n <= 0 {
        return Err("the duration must be positive".to_owned());
    }
    Ok(n * seconds)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// `strata api`.
pub fn api(args: ApiArgs) -> anyhow::Result<()> {
    let mut config = args.config.load()?;
    // Only the api checks tokens; a worker starts without their secret.
    config.check_auth()?;
    if let Some(bind) = args.bind {
        config.api.bind = bind;
    }
    config.api.migrate_on_start |= args.migrate;
    crate::telemetry::init(&config.log);
    runtime()?.block_on(async move {
        let bind = config.api.bind;
        let ctx = strata_api::ApiContext::connect(config).await?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        tracing::info!(address = %listener.local_addr()?, "api listening");
        strata_api::serve(ctx, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// `strata worker`.
pub fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let mut config = args.config.load()?;
    if let Some(n) = args.concurrency {
        if n == 0 {
            bail!("--concurrency must be at least 1");
        }
        config.worker.concurrency = n;
    }
    if let Some(n) = args.threads {
        config.worker.threads = n;
    }
    crate::telemetry::init(&config.log);
    runtime()?.block_on(async move {
        strata_worker::run(config, shutdown_signal()).await?;
        Ok(())
    })
}

/// `strata migrate`.
pub fn migrate(args: ConfigFile) -> anyhow::Result<()> {
    let config = args.load()?;
    crate::telemetry::init(&config.log);
    runtime()?.block_on(async move {
        let store = Store::connect(config.database_url.expose(), 1)
            .await
            .context("cannot reach PostgreSQL (DATABASE_URL)")?;
        let migrated = store.migrate().await.context("migration failed")?;
        let version = migrated
            .schema
            .version
            .map_or_else(|| "no migrations".to_owned(), |v| format!("{v:04}"));
        match migrated.applied_now {
            0 => println!("the database is up to date ({version})"),
            1 => println!("applied 1 migration (now at {version})"),
            n => println!("applied {n} migrations (now at {version})"),
        }
        Ok(())
    })
}

/// `strata token`.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    if config.jwt_algorithm != "HS256" {
        bail!(
            "strata token signs HS256 tokens; with {} the tokens come from your identity provider",
            config.jwt_algorithm
        );
    }
    let secret = config
        .jwt_secret
        .as_ref()
        .context("STRATA_JWT_SECRET is not set")?;
    println!(
        "{}",
        issue_token(secret.expose(), &args.sub, args.tier, args.ttl, args.admin)?
    );
    Ok(())
}

/// `strata config check`.
pub fn config(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check(file) = command;
    let config = file.load()?;
    println!("configuration: valid");
    println!("  api.bind       {}", config.api.bind);
    println!("  data_dir       {}", config.data_dir.display());
    println!("  bundled_dir    {}", config.bundled_dir.display());
    match config.check_auth() {
        Ok(()) => println!("  jwt            {}", config.jwt_algorithm),
        // Workers run without the token settings; only `strata api` refuses to start.
        Err(e) => println!(
            "  jwt            {}, not usable: {} (only strata api needs it)",
            config.jwt_algorithm,
            e.0.join("; ")
        ),
    }
    println!("  queue_prefix   {}", config.queue_prefix);
    let problems = runtime()?.block_on(async {
        let mut problems = Vec::new();
        let db = tokio::time::timeout(
            Duration::from_secs(5),
            Store::connect(config.database_url.expose(), 1),
        )
        .await;
        match db {
            Ok(Ok(store)) => match store.ping().await {
                Ok(latency) => println!("  postgres       reachable ({latency:.1?})"),
                Err(e) => problems.push(format!("PostgreSQL (DATABASE_URL): {e}")),
            },
            Ok(Err(e)) => problems.push(format!("PostgreSQL (DATABASE_URL) unreachable: {e}")),
            Err(_) => problems.push("PostgreSQL (DATABASE_URL): no answer in 5 s".to_owned()),
        }
        let redis = tokio::time::timeout(
            Duration::from_secs(5),
            Queues::connect(config.redis_url.expose(), &config.queue_prefix),
        )
        .await;
        match redis {
            Ok(Ok(queues)) => match queues.ping().await {
                Ok(latency) => println!("  redis          reachable ({latency:.1?})"),
                Err(e) => problems.push(format!("Redis (REDIS_URL): {e}")),
            },
            Ok(Err(e)) => problems.push(format!("Redis (REDIS_URL) unreachable: {e}")),
            Err(_) => problems.push("Redis (REDIS_URL): no answer in 5 s".to_owned()),
        }
        problems
    });
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("24h"), Ok(86_400));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert!(parse_ttl("5y").is_err());
        assert!(parse_ttl("0").is_err());
    }
}
