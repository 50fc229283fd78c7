//! Shared test harness: a fresh ClickHouse database per test on the server
//! `make test` starts, and a Headcount started in-process on port 0.

use headcount::app::{self, Options, Running};
use headcount::clock::ManualClock;
use headcount::config::{Config, RawConfig, RawSite};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

pub const UA_CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
pub const UA_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
pub const UA_GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

pub fn clickhouse_url() -> String {
    std::env::var("HEADCOUNT_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:28123".into())
}

/// A unique database name for one test.
pub fn fresh_database(tag: &str) -> String {
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).expect("rng");
    format!("hc_test_{tag}_{}", hex::encode(r))
}

/// A test environment: database, key directory, clock.
pub struct Env {
    pub database: String,
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub raw: RawConfig,
    starts: std::sync::atomic::AtomicUsize,
}

impl Env {
    pub fn new(tag: &str) -> Env {
        let database = fresh_database(tag);
        let dir = tempfile::tempdir().expect("tmp");
        let mut raw = RawConfig::default();
        raw.server.listen = "127.0.0.1:0".into();
        raw.clickhouse.url = clickhouse_url();
        raw.clickhouse.database = database.clone();
        raw.clickhouse.batch_interval_ms = 50;
        raw.privacy.salt_key_file = dir.path().join("salt.key").display().to_string();
        raw.sites = vec![RawSite { domain: "example.com".into() }, RawSite { domain: "other.org".into() }];
        raw.log.level = "trace".into();
        let clock = ManualClock::new(OffsetDateTime::now_utc().replace_hour(10).expect("hour"));
        Env { database, dir, clock, raw, starts: Default::default() }
    }

    pub fn config(&self) -> Config {
        self.raw.validate(&PathBuf::from(self.dir.path())).expect("valid test config")
    }

    pub fn options(&self) -> Options {
        Options {
            clock: Arc::new(self.clock.clone()),
            salt_settle: Duration::from_millis(100),
            shutdown_retry: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(2),
            ..Options::default()
        }
    }

    pub async fn start(&self) -> App {
        self.start_with(self.config()).await
    }

    pub async fn start_with(&self, mut config: Config) -> App {
        // Instances started from one Env share its directory; each needs a
        // spool of its own (the first keeps `spool/`).
        let n = self.starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n > 0 {
            config.spool.dir = self.dir.path().join(format!("spool-{n}"));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = app::start(listener, config, self.options()).await.expect("headcount starts");
        App { base: format!("http://{}", running.addr), running, db: self.db() }
    }

    pub fn db(&self) -> Db {
        Db { url: clickhouse_url(), database: self.database.clone(), http: reqwest::Client::new() }
    }
}

pub struct App {
    pub base: String,
    pub running: Running,
    pub db: Db,
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stop Headcount; every queued event is in ClickHouse afterwards.
    pub async fn stop(self) -> Db {
        self.running.shutdown().await;
        self.db
    }
}

/// Raw HTTP access to the test database, for assertions.
#[derive(Clone)]
pub struct Db {
    pub url: String,
    pub database: String,
    pub http: reqwest::Client,
}

impl Db {
    /// Run `sql` with the test database selected; return the raw body.
    pub async fn raw(&self, sql: &str) -> Vec<u8> {
        let resp = self
            .http
            .post(format!("{}/?database={}", self.url, self.database))
            .body(sql.to_string())
            .send()
            .await
            .expect("ClickHouse reachable");
        let status = resp.status();
        let body = resp.bytes().await.expect("body").to_vec();
        assert!(status.is_success(), "ClickHouse error for {sql}: {}", String::from_utf8_lossy(&body));
        body
    }

    pub async fn text(&self, sql: &str) -> String {
        String::from_utf8_lossy(&self.raw(sql).await).into_owned()
    }

    /// Rows as JSON objects.
    pub async fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let text = self.text(&format!("{sql} FORMAT JSONEachRow")).await;
        text.lines().map(|l| serde_json::from_str(l).expect("json row")).collect()
    }

    pub async fn count(&self, sql_where: &str) -> u64 {
        self.text(&format!("SELECT count() FROM events WHERE {sql_where}")).await.trim().parse().expect("count")
    }

    pub async fn tables(&self) -> Vec<String> {
        self.text("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
            .await
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// An HTTP client that connects from a specific loopback address, so a
/// test controls the socket peer address Headcount sees.
pub fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(Some(local.parse().expect("ip"))).build().expect("client")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A TCP forwarder to ClickHouse that a test can cut and restore, to play a
/// ClickHouse outage without stopping the shared test server.
pub struct Outage {
    pub url: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Outage {
    pub async fn start(up: bool) -> Outage {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let target = clickhouse_url().trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let flag = Arc::new(AtomicBool::new(up));
        let generation = Arc::new(AtomicU64::new(0));
        let (f, g) = (flag.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !f.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let (f, g) = (f.clone(), g.clone());
                let born = g.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };

                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while f.load(Ordering::SeqCst) && g.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = cut => {} }
                });
            }
        });
        Outage { url, up: flag, generation }
    }

    /// ClickHouse "goes down": new connections are refused, open ones cut
    /// (returns once they are).
    pub async fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Send one pageview for example.com with a given UA and forwarded client IP
/// (the app must trust 127.0.0.1); returns the `X-Headcount-Event` header.
pub async fn pageview(app: &App, ua: &str, forwarded_ip: &str) -> String {
    let r = client_from("127.0.0.1")
        .post(app.url("/api/event"))
        .header("user-agent", ua)
        .header("x-forwarded-for", forwarded_ip)
        .body(r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#)
        .send()
        .await
        .expect("request");
    r.headers().get("x-headcount-event").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}
