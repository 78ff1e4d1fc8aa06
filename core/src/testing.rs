//! Throwaway databases and Redis prefixes for tests: every test gets its own, so tests run in
//! parallel against the machine's real PostgreSQL and Redis.

pub mod mock_llm;

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

/// The strata executable cargo builds beside the test binaries (`target/<profile>/strata`):
/// an api running inside a test converts uploads with it, as `strata api` uses itself. A test
/// that uploads needs the workspace built (`cargo test --workspace` builds it).
pub fn strata_executable() -> std::path::PathBuf {
    let test_binary = std::env::current_exe().expect("the test's executable");
    // target/<profile>/deps/<test> -> target/<profile>/strata
    let profile_dir = test_binary
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    profile_dir.join(format!("strata{}", std::env::consts::EXE_SUFFIX))
}

/// The JWT secret of every test configuration.
pub const TEST_SECRET: &str = "strata-test-secret-at-least-32-bytes-long";

impl TestEnv {
    /// Creates and migrates a fresh database; `data_dir` holds its uploads.
    pub async fn new(data_dir: &std::path::Path) -> TestEnv {
        let env = TestEnv::unmigrated(data_dir).await;
        env.store.migrate().await.expect("migrate test database");
        env
    }

    /// Applies only the first `n` of the binary's migrations, as an older release left the
    /// database.
    pub async fn migrate_first(&self, n: usize) {
        let older = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(crate::store::MIGRATOR.migrations[..n].to_vec()),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        older
            .run(&self.store.pool)
            .await
            .expect("migrate test database");
    }

    /// A fresh database that was never migrated (as a newcomer's before `strata migrate`).
    pub async fn unmigrated(data_dir: &std::path::Path) -> TestEnv {
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
        config.api.upload_converter = Some(strata_executable());
        config.worker.metrics_bind = None;
        config.worker.heartbeat_secs = 1;
        // Tests submit freely; the quota tests set the limits they check.
        for quota in [
            &mut config.tiers.basic,
            &mut config.tiers.pro,
            &mut config.tiers.elite,
        ] {
            *quota = crate::config::Quota {
                weight: quota.weight,
                ..crate::config::Quota::default()
            };
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

/// A TCP proxy in front of a server (PostgreSQL, in tests): [`TcpProxy::cut`] drops every
/// connection through it and refuses new ones, as a server that went down; [`TcpProxy::restore`]
/// lets connections through again on the same address, as the server coming back.
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    target: std::net::SocketAddr,
    /// Bumped by every cut: each piped connection ends when it changes.
    cuts: tokio::sync::watch::Sender<u64>,
    /// The task accepting connections; `None` while cut.
    accepting: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and pipes every connection to `target`.
    pub async fn start(target: std::net::SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cuts, _) = tokio::sync::watch::channel(0);
        let accepting = tokio::spawn(Self::accept(listener, target, cuts.subscribe()));
        TcpProxy {
            addr,
            target,
            cuts,
            accepting: std::sync::Mutex::new(Some(accepting)),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// `url` (e.g. `postgres://user@host:port/db`) with its host and port replaced by the
    /// proxy's: same user, database and options, through the proxy.
    pub fn url_through(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let user = authority.rsplit_once('@').map(|(user, _)| user);
        match user {
            Some(user) => format!("{scheme}://{user}@{}{path}", self.addr),
            None => format!("{scheme}://{}{path}", self.addr),
        }
    }

    /// Drops every connection through the proxy and refuses new ones until [`Self::restore`].
    pub async fn cut(&self) {
        let accepting = self.accepting.lock().expect("proxy lock").take();
        if let Some(task) = accepting {
            task.abort();
            // Once the aborted task is gone, so is its listener: connections are refused.
            let _ = task.await;
        }
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Accepts connections again, on the same address.
    pub async fn restore(&self) {
        if self.accepting.lock().expect("proxy lock").is_some() {
            return;
        }
        // The port was ours a moment ago; SO_REUSEADDR (set by tokio) lets it be bound again
        // despite the cut connections lingering in TIME_WAIT.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!(error = %e, "proxy port not free yet");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        let task = tokio::spawn(Self::accept(listener, self.target, self.cuts.subscribe()));
        *self.accepting.lock().expect("proxy lock") = Some(task);
    }

    async fn accept(
        listener: tokio::net::TcpListener,
        target: std::net::SocketAddr,
        cuts: tokio::sync::watch::Receiver<u64>,
    ) {
        loop {
            let client = match listener.accept().await {
                Ok((client, _)) => client,
                Err(_) => {
                    // Out of file descriptors or the like: wait rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let mut cut = cuts.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let mut client = client;
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = cut.changed() => {}
                }
                // Both streams are dropped here: each side sees its connection close.
            });
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Ok(mut accepting) = self.accepting.lock() {
            if let Some(task) = accepting.take() {
                task.abort();
            }
        }
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// The address of the PostgreSQL server tests use (from `STRATA_TEST_DATABASE_URL`).
pub fn postgres_addr() -> std::net::SocketAddr {
    let url = admin_url();
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    let host = match options.get_host() {
        "localhost" => "127.0.0.1",
        other => other,
    };
    format!("{host}:{}", options.get_port())
        .parse()
        .expect("tests reach PostgreSQL over TCP at an IP address")
}

#[cfg(test)]
mod tests {
    use super::TcpProxy;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server on a free port.
    async fn echo() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut tokio::net::TcpStream) -> std::io::Result<[u8; 4]> {
        stream.write_all(b"ping").await?;
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn the_proxy_pipes_cuts_and_restores() {
        let proxy = TcpProxy::start(echo().await).await;
        let mut live = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(&round_trip(&mut live).await.unwrap(), b"ping");

        proxy.cut().await;
        // The live connection is closed, and new ones are refused.
        assert!(round_trip(&mut live).await.is_err());
        assert!(tokio::net::TcpStream::connect(proxy.addr()).await.is_err());

        proxy.restore().await;
        let mut again = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(&round_trip(&mut again).await.unwrap(), b"ping");
    }

    #[test]
    fn urls_are_rewritten_to_the_proxy() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let proxy = runtime.block_on(TcpProxy::start("127.0.0.1:9".parse().unwrap()));
        let port = proxy.addr().port();
        assert_eq!(
            proxy.url_through("postgres://postgres@127.0.0.1:5432/strata_x?sslmode=disable"),
            format!("postgres://postgres@127.0.0.1:{port}/strata_x?sslmode=disable")
        );
        assert_eq!(
            proxy.url_through("postgres://localhost/db"),
            format!("postgres://127.0.0.1:{port}/db")
        );
        drop(proxy);
    }
}
