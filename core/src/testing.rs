//! Throwaway databases and Redis prefixes for tests: every test gets its own, so tests run in
//! parallel against the machine's real PostgreSQL and Redis.

use std::sync::atomic::{AtomicUsize, Ordering};

use figment::providers::Format;
use sqlx::{Connection, Executor, PgConnection};

use crate::config::{Config, Secret};
use crate::store::Store;

/// The server tests use; override with `STRATA_TEST_DATABASE_URL` (a URL of any database on it).
fn admin_url() -> String {
    std::env::var("STRATA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis tests use; override with `STRATA_TEST_REDIS_URL`.
pub fn redis_url() -> String {
    std::env::var("STRATA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A migrated database of its own and a Redis key prefix of its own.
pub struct TestEnv {
    /// The configuration pointing at them (HS256 secret `TEST_SECRET`).
    pub config: Config,
    /// The migrated store.
    pub store: Store,
    database: String,
}

/// A `strata` process a test started (api or worker), killed when dropped.
pub struct ServiceProcess(pub std::process::Child);

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JWT secret of every test configuration.
pub const TEST_SECRET: &str = "strata-test-secret-at-least-32-bytes-long";

impl TestEnv {
    /// Creates and migrates a fresh database; `data_dir` holds its uploads.
    pub async fn new(data_dir: &std::path::Path) -> TestEnv {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "strata_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..8)
                .unwrap_or_default()
        );
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("tests need PostgreSQL on 127.0.0.1:5432 (see DESIGN.md)");
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .expect("create test database");
        conn.close().await.ok();
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => unreachable!("a database URL has a path"),
        };
        let store = Store::connect(&url, 16)
            .await
            .expect("connect test database");
        store.migrate().await.expect("migrate test database");

        let mut config: Config = figment::Figment::from(figment::providers::Toml::string(
            crate::config::DEFAULT_TOML,
        ))
        .extract()
        .expect("default configuration");
        config.database_url = Secret::new(url);
        config.redis_url = Secret::new(redis_url());
        config.jwt_secret = Some(Secret::new(TEST_SECRET));
        config.queue_prefix = name.clone();
        config.data_dir = data_dir.to_path_buf();
        config.bundled_dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data");
        config.api.bind = "127.0.0.1:0".parse().expect("address");
        config.worker.metrics_bind = None;
        config.worker.heartbeat_secs = 1;
        // Tests submit freely; the quota tests set the limits they check.
        for quota in [
            &mut config.tiers.basic,
            &mut config.tiers.pro,
            &mut config.tiers.elite,
        ] {
            *quota = crate::config::Quota::default();
        }
        TestEnv {
            config,
            store,
            database: name,
        }
    }

    /// `binary` (the built `strata`) with `args`, configured through its environment for this
    /// database, Redis prefix and data directory, with JSON logs, plus `extra` variables.
    pub fn command(
        &self,
        binary: &std::path::Path,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> std::process::Command {
        let c = &self.config;
        let mut command = std::process::Command::new(binary);
        command
            .args(args)
            .env("DATABASE_URL", c.database_url.expose())
            .env("REDIS_URL", c.redis_url.expose())
            .env("STRATA_JWT_SECRET", TEST_SECRET)
            .env("STRATA_QUEUE_PREFIX", &c.queue_prefix)
            .env("STRATA_DATA_DIR", &c.data_dir)
            .env("STRATA_BUNDLED_DIR", &c.bundled_dir)
            .env("STRATA_LOG__FORMAT", "json")
            .env("STRATA_LOG__FILTER", "info")
            .env_remove("RUST_LOG")
            .envs(extra.iter().copied());
        command
    }

    /// Starts `binary api` on a free port; returns the process and its base URL, which it reads
    /// from the api's first log line that carries an address.
    pub fn start_api(
        &self,
        binary: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> (ServiceProcess, String) {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = self
            .command(binary, &["api", "--bind", "127.0.0.1:0"], extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start strata api");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps reading to the end, so the api never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(address) = log["address"].as_str() {
                        let _ = tx.send(address.to_owned());
                    }
                }
            }
        });
        let process = ServiceProcess(child);
        let address = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the api logs its address");
        (process, format!("http://{address}"))
    }

    /// Drops the database and deletes the Redis keys.
    pub async fn cleanup(mut self) {
        self.store.pool.close().await;
        remove(std::mem::take(&mut self.database)).await;
    }
}

/// A test that panicked before `cleanup` still leaves nothing behind.
impl Drop for TestEnv {
    fn drop(&mut self) {
        let database = std::mem::take(&mut self.database);
        if database.is_empty() {
            return;
        }
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(remove(database));
            }
        })
        .join();
    }
}

/// Drops the database `name` (closing its connections) and deletes the keys under its prefix.
async fn remove(name: String) {
    if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await;
    }
    delete_keys(&name).await;
    // A worker's apalis tasks may write once more just after it stopped: sweep again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    delete_keys(&name).await;
}

/// Deletes every Redis key under the prefix `name`.
async fn delete_keys(name: &str) {
    if let Ok(client) = redis::Client::open(redis_url()) {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{name}*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        }
    }
}
