//! No event lost, none duplicated: ClickHouse outages and restarts,
//! SIGKILL, SIGTERM, a full spool, lost replies and rows ClickHouse rejects.
//!
//! The process tests run the real `headcount` binary against a real
//! ClickHouse: the shared test server, or a private one the test stops and
//! restarts. Every event carries a unique path (`/n/<id>`) so the tests can
//! check that each acknowledged event is stored exactly once.

use crate::common::{Db, Env, Outage, clickhouse_url, fresh_database};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A free port below the kernel's ephemeral range (32768+), for a server
/// that is stopped and started again on the same port: while it is down, an
/// ephemeral port can be handed to any outgoing connection (this test's own
/// load clients included) and the restart would find it taken. Picks start
/// at a per-process offset and never repeat within the process; 28123 and
/// 29000 (`make test`'s ClickHouse) are skipped.
fn restartable_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let offset = std::process::id() * 97;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + ((offset + n) % 12_000) as u16;
        if port != 28_123 && port != 29_000 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A ClickHouse server of this test's own, so it can be stopped.
struct PrivateClickHouse {
    dir: tempfile::TempDir,
    http: u16,
    tcp: u16,
}

impl PrivateClickHouse {
    fn start() -> PrivateClickHouse {
        let ch = PrivateClickHouse {
            dir: tempfile::tempdir().expect("tmp"),
            http: restartable_port(),
            tcp: restartable_port(),
        };
        ch.run("start");
        ch
    }

    fn run(&self, cmd: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/clickhouse.sh");
        let status = Command::new(script)
            .args([cmd, &self.dir.path().display().to_string(), &self.http.to_string(), &self.tcp.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("clickhouse.sh runs");
        assert!(status.success(), "clickhouse.sh {cmd} failed");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        self.run("stop");
    }
}

/// The `headcount` binary, run with a config file of the test's own.
struct Headcount {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Headcount {
    /// Write the config (`extra` is appended TOML) and start the process.
    fn start(dir: &Path, clickhouse: &str, database: &str, extra: &str) -> Headcount {
        let port = free_port();
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
[clickhouse]
url = "{clickhouse}"
database = "{database}"
batch_interval_ms = 50
[privacy]
trusted_proxies = ["127.0.0.1/32"]
[limits]
rate_limit_per_second = 0
[log]
level = "info"
[[sites]]
domain = "example.com"
{extra}
"#
        );
        std::fs::write(dir.join("headcount.toml"), config).expect("config");
        let mut hc = Headcount { dir: dir.to_path_buf(), port, child: None };
        hc.spawn();
        hc
    }

    fn spawn(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("headcount.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_headcount"))
            .args(["--config", &self.dir.join("headcount.toml").display().to_string(), "serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("headcount starts");
        self.child = Some(child);
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base())).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "headcount not ready; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, signal: &str) {
        // The shell's builtin: no dependence on procps being installed.
        let status = Command::new("sh").args(["-c", &format!("kill {signal} {}", self.pid())]).status().expect("kill");
        assert!(status.success());
    }

    /// Wait for the process to exit; its exit status.
    async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "headcount did not exit; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base())).await.expect("metrics").text().await.expect("body");
        text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("headcount.log")).unwrap_or_default()
    }
}

impl Drop for Headcount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Concurrent clients sending uniquely numbered pageviews until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

#[derive(Default)]
struct Tally {
    acked: Vec<u64>,
    /// Status codes of answers that were not `202 accepted`.
    refused: HashMap<u16, u64>,
    retry_after: bool,
}

impl Load {
    /// `base` may change (a restarted process keeps its port), so it is read per request.
    fn start(base: String, workers: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|w| {
                let (stop, acked, base) = (stop.clone(), acked.clone(), base.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
                    let mut tally = Tally::default();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let id = w * 10_000_000 + i;
                        let body = format!(r#"{{"n":"pageview","u":"https://example.com/n/{id}","d":"example.com"}}"#);
                        let sent = client
                            .post(format!("{base}/api/event"))
                            .header("user-agent", crate::common::UA_CHROME)
                            .header("x-forwarded-for", format!("198.51.{}.{}", w, i % 250))
                            .body(body)
                            .send()
                            .await;
                        match sent {
                            Ok(r) => {
                                let header = r.headers().get("x-headcount-event").and_then(|v| v.to_str().ok());
                                if r.status() == 202 && header == Some("accepted") {
                                    tally.acked.push(id);
                                    acked.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    *tally.refused.entry(r.status().as_u16()).or_default() += 1;
                                    tally.retry_after |= r.headers().contains_key("retry-after");
                                    tokio::time::sleep(Duration::from_millis(5)).await;
                                }
                            }
                            // Killed or restarting: try again shortly.
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                    tally
                })
            })
            .collect();
        Load { stop, acked, tasks }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.tasks {
            let tally = t.await.expect("load task");
            all.acked.extend(tally.acked);
            for (status, n) in tally.refused {
                *all.refused.entry(status).or_default() += n;
            }
            all.retry_after |= tally.retry_after;
        }
        all
    }
}

fn db_at(url: &str, database: &str) -> Db {
    Db { url: url.to_string(), database: database.to_string(), http: reqwest::Client::new() }
}

/// Wait until at least `n` rows are stored and the count holds still.
async fn wait_rows(db: &Db, n: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut last = u64::MAX;
    loop {
        let now: u64 = db.text("SELECT count() FROM events").await.trim().parse().unwrap_or(0);
        if now >= n && now == last {
            return now;
        }
        last = now;
        assert!(Instant::now() < deadline, "only {now} of {n} rows stored in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every acknowledged event is stored exactly once, and nothing is stored twice.
async fn assert_exactly_once(db: &Db, acked: &[u64]) {
    let dupes = db.text("SELECT pathname, count() AS c FROM events GROUP BY pathname HAVING c > 1 LIMIT 5").await;
    assert!(dupes.trim().is_empty(), "events stored twice:\n{dupes}");
    let stored: HashSet<String> = db.text("SELECT pathname FROM events").await.lines().map(str::to_string).collect();
    let missing: Vec<&u64> = acked.iter().filter(|id| !stored.contains(&format!("/n/{id}"))).take(5).collect();
    assert!(missing.is_empty(), "acknowledged but not stored (first 5): {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_stopped_for_ten_seconds_under_load_loses_nothing() {
    let ch = PrivateClickHouse::start();
    let dir = tempfile::tempdir().expect("tmp");
    let database = fresh_database("outage");
    let hc = Headcount::start(dir.path(), &ch.url(), &database, "");
    hc.wait_ready().await;
    let load = Load::start(hc.base(), 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ch.run("stop");
    let at_stop = load.acked();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = load.acked() - at_stop;
    assert!(hc.metric("headcount_queue_depth").await > 0.0, "events wait in the spool while ClickHouse is down");
    ch.run("start");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tally = load.finish().await;
    assert!(during > 100, "ingest kept accepting while ClickHouse was down ({during} events)");
    let db = db_at(&ch.url(), &database);
    let rows = wait_rows(&db, tally.acked.len() as u64, Duration::from_secs(60)).await;
    assert_eq!(rows, tally.acked.len() as u64, "exactly the acknowledged events; refused: {:?}", tally.refused);
    assert_exactly_once(&db, &tally.acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_then_restart_stores_every_acknowledged_event_once() {
    sigkill_mid_load_then_restart("sigkill", "").await;
}

/// `spool.ack = "write"` answers before the fsync: a crash of the process
/// (not of the machine) still loses nothing it acknowledged, because the
/// record is in the file (the page cache) before the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ack_on_write_sigkill_mid_load_loses_no_acknowledged_event() {
    sigkill_mid_load_then_restart("sigkill_write", "[spool]\nack = \"write\"\n").await;
}

async fn sigkill_mid_load_then_restart(name: &str, extra: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let database = fresh_database(name);
    let mut hc = Headcount::start(dir.path(), &clickhouse_url(), &database, extra);
    hc.wait_ready().await;
    let load = Load::start(hc.base(), 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    hc.signal("-KILL");
    let status = hc.wait_exit(Duration::from_secs(5)).await;
    assert!(!status.success(), "killed");
    let tally = load.finish().await;
    assert!(tally.acked.len() > 200, "load ran ({} acknowledged)", tally.acked.len());
    hc.spawn();
    hc.wait_ready().await;
    let db = db_at(&clickhouse_url(), &database);
    // Events in flight at the kill may be stored too (at most once); every
    // acknowledged one must be.
    let rows = wait_rows(&db, tally.acked.len() as u64, Duration::from_secs(60)).await;
    assert_exactly_once(&db, &tally.acked).await;
    assert!(rows <= tally.acked.len() as u64 + 8 * 2, "at most the in-flight requests beyond the acknowledged");
    hc.signal("-TERM");
    assert!(hc.wait_exit(Duration::from_secs(30)).await.success(), "clean exit after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_drains_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let database = fresh_database("sigterm");
    let mut hc = Headcount::start(dir.path(), &clickhouse_url(), &database, "");
    hc.wait_ready().await;
    let load = Load::start(hc.base(), 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hc.signal("-TERM");
    let status = hc.wait_exit(Duration::from_secs(30)).await;
    let tally = load.finish().await;
    assert!(status.success(), "exit 0 after SIGTERM; log:\n{}", hc.log());
    assert!(tally.acked.len() > 100, "load ran");
    // No restart: the shutdown itself wrote everything.
    let db = db_at(&clickhouse_url(), &database);
    let rows = wait_rows(&db, tally.acked.len() as u64, Duration::from_secs(10)).await;
    assert_eq!(rows, tally.acked.len() as u64);
    assert_exactly_once(&db, &tally.acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_with_503_keeps_memory_bounded_and_drains_later() {
    let ch = PrivateClickHouse::start();
    let dir = tempfile::tempdir().expect("tmp");
    let database = fresh_database("full");
    let hc = Headcount::start(dir.path(), &ch.url(), &database, "[spool]\nmax_bytes = 262144\n");
    hc.wait_ready().await;
    ch.run("stop");
    let load = Load::start(hc.base(), 8);
    // ~400 bytes an event: the cap holds ~650. Keep pushing well past it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hc.metric("headcount_events_dropped_total{reason=\"queue_full\"}").await < 2000.0 {
        assert!(Instant::now() < deadline, "the spool never filled; log:\n{}", hc.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_mib = hc.rss_kib() / 1024;
    let spool_bytes = hc.metric("headcount_spool_bytes").await;
    assert!(spool_bytes <= 262_144.0, "the cap holds: {spool_bytes} bytes");
    assert!(rss_mib < 150, "memory stays bounded while refusing: {rss_mib} MiB");
    ch.run("start");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tally = load.finish().await;
    assert!(tally.refused.get(&503).copied().unwrap_or(0) >= 2000, "refused with 503: {:?}", tally.refused);
    assert!(tally.retry_after, "503 carries Retry-After");
    let db = db_at(&ch.url(), &database);
    let rows = wait_rows(&db, tally.acked.len() as u64, Duration::from_secs(60)).await;
    assert_eq!(rows, tally.acked.len() as u64);
    assert_exactly_once(&db, &tally.acked).await;
}

/// A pageview with a unique path through the in-process app.
async fn send(base: &str, id: u64) -> (u16, String) {
    let r = crate::common::client_from("127.0.0.1")
        .post(format!("{base}/api/event"))
        .header("user-agent", crate::common::UA_CHROME)
        .body(format!(r#"{{"n":"pageview","u":"https://example.com/n/{id}","d":"example.com"}}"#))
        .send()
        .await
        .expect("request");
    let header = r.headers().get("x-headcount-event").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (r.status().as_u16(), header)
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pageview for `/n/<id>`, as ingest would build it.
fn event(id: u64) -> headcount::event::Event {
    headcount::event::Event::example(time::OffsetDateTime::now_utc(), &format!("/n/{id}"))
}

/// A previous run spooled `events` events, noted them as batch `id` in
/// flight, sent `inserted` of its rows to ClickHouse, and was killed before
/// it could note success. The next start, whose batches stop at
/// `batch_bytes`, must store each event exactly once.
async fn interrupted_batch_is_settled_with(events: u64, inserted: u32, batch_bytes: usize) {
    let env = Env::new("inflight");
    let config = env.config();
    headcount::store::migrate::run(&headcount::store::server_client(&config.clickhouse), &env.database)
        .await
        .expect("migrate");
    let spool = headcount::spool::Spool::open(config.spool.clone()).expect("spool");
    let mut entry = headcount::spool::Entry::default();
    for id in 0..events {
        let mut event = event(id);
        // Long paths make a batch of hundreds of KiB when asked for.
        event.pathname.push_str(&"/x".repeat(if batch_bytes < 1 << 20 { 200 } else { 0 }));
        headcount::store::sink::encode_event(&event, &mut entry).expect("encode");
    }
    spool.append(entry).expect("append").wait().await.expect("durable");
    let batch = spool.reader().read(100_000, None);
    assert_eq!(batch.len() as u64, events);
    assert!(batch_bytes > 1 << 20 || batch.bytes() > 3 * batch_bytes, "the batch outgrows the new limit");
    let batch_id = 0x00C0_FFEE;
    spool.begin(batch_id, batch.span()).expect("begin");
    // What the writer sends: each row, then batch_id and batch_row.
    let mut body = Vec::new();
    for row in 0..inserted {
        body.extend_from_slice(batch.get(row as usize).expect("record").payload);
        body.extend_from_slice(&u64::to_le_bytes(batch_id));
        body.extend_from_slice(&row.to_le_bytes());
    }
    let cols = <headcount::store::row::EventRow<'static> as clickhouse::Row>::COLUMN_NAMES.join(",");
    let db = headcount::store::client(&config.clickhouse);
    let mut insert =
        db.insert_formatted_with(format!("INSERT INTO events ({cols}, batch_id, batch_row) FORMAT RowBinary"));
    insert.send(body.into()).await.expect("send");
    insert.end().await.expect("insert");
    // "Killed": no commit.
    spool.close();
    spool.release();
    drop(spool);

    let mut config = env.config();
    config.clickhouse.batch_bytes = batch_bytes;
    let app = env.start_with(config).await;
    let running = &app.running;
    wait_for("the interrupted batch settled", Duration::from_secs(20), async || running.spool.unstored_records() == 0)
        .await;
    assert_eq!(running.metrics.rows_deduplicated.get(), u64::from(inserted), "rows already stored were not re-sent");
    assert_eq!(running.metrics.rows_written.get(), events - u64::from(inserted), "only the missing rows were sent");
    let db = app.stop().await;
    assert_eq!(db.count("1").await, events);
    assert_eq!(
        db.text("SELECT uniqExact(pathname), uniqExact(batch_row), uniqExact(batch_id) FROM events FORMAT TSV").await,
        format!("{events}\t{events}\t1\n"),
        "one batch, as the previous run noted it"
    );
}

async fn interrupted_batch_is_settled(inserted: u32) {
    interrupted_batch_is_settled_with(20, inserted, 10 << 20).await;
}

#[tokio::test]
async fn an_interrupted_batch_larger_than_batch_bytes_is_settled_whole() {
    interrupted_batch_is_settled_with(600, 250, 64 << 10).await;
}

#[tokio::test]
async fn a_batch_stored_before_a_crash_is_not_written_again() {
    interrupted_batch_is_settled(20).await;
}

#[tokio::test]
async fn a_batch_half_stored_before_a_crash_gets_only_its_missing_rows() {
    interrupted_batch_is_settled(12).await;
}

#[tokio::test]
async fn a_batch_never_sent_before_a_crash_is_sent_once() {
    interrupted_batch_is_settled(0).await;
}

#[tokio::test]
async fn rows_clickhouse_rejects_go_to_the_dead_letter_file_and_the_rest_are_stored() {
    let env = Env::new("deadletter");
    let app = env.start().await;
    // Two good events, then a record no ClickHouse can parse, then more.
    for id in 0..2 {
        assert_eq!(send(&app.base, id).await.0, 202);
    }
    let mut entry = headcount::spool::Entry::default();
    entry
        .record::<()>(1_800_000_000, |b| {
            b.extend_from_slice(&[200, 1, b'x']); // a string that claims 200 bytes
            Ok(())
        })
        .expect("record");
    app.running.spool.append(entry).expect("append").wait().await.expect("durable");
    for id in 2..5 {
        assert_eq!(send(&app.base, id).await.0, 202);
    }
    let metrics = app.running.metrics.clone();
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 5, "every good row is stored");
    assert_eq!(metrics.dead_lettered.get(), 1);
    let dead = std::fs::read(env.dir.path().join("spool/dead-letter.rowbinary")).expect("dead-letter file");
    assert_eq!(&dead[..3], &[200, 1, b'x'], "the rejected row, as it was sent");
    assert_eq!(dead.len(), 3 + 12, "one row plus its batch columns");
    let log = std::fs::read_to_string(env.dir.path().join("spool/dead-letter.log")).expect("dead-letter log");
    assert_eq!(log.lines().count(), 1, "{log}");
    // The writer turns rows into Native columns, so it is the one to find
    // that this row cannot be read, and says where.
    assert!(
        log.contains("does not fit the events table: the row ends inside column `site`"),
        "the error is kept: {log}"
    );
    let sql = std::fs::read_to_string(env.dir.path().join("spool/dead-letter.sql")).expect("dead-letter sql");
    assert!(
        sql.starts_with("INSERT INTO events (site, ts,")
            && sql.trim_end().ends_with("batch_id, batch_row) FORMAT RowBinary"),
        "{sql}"
    );
}

#[tokio::test]
async fn drop_newest_answers_202_dropped_when_full_and_keeps_what_it_took() {
    let proxy = Outage::start(true).await;
    let mut env = Env::new("dropnewest");
    env.raw.clickhouse.url = proxy.url.clone();
    env.raw.spool.max_bytes = 65_536;
    env.raw.spool.overflow = "drop_newest".into();
    env.raw.limits.rate_limit_per_second = 0;
    let app = env.start().await;
    proxy.cut().await;
    let mut accepted = 0;
    let mut dropped = 0;
    for id in 0..1000 {
        match send(&app.base, id).await {
            (202, h) if h == "accepted" => accepted += 1,
            (202, h) if h == "dropped; reason=queue_full" => dropped += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(accepted > 50 && dropped > 50, "accepted {accepted}, dropped {dropped}");
    assert_eq!(app.running.metrics.dropped_count(headcount::telemetry::DropReason::QueueFull), dropped);
    proxy.restore();
    let db = app.stop().await;
    assert_eq!(db.count("1").await, accepted);
}

#[tokio::test]
async fn memory_durability_stores_events_too() {
    let mut env = Env::new("memory");
    env.raw.spool.durability = "memory".into();
    let app = env.start().await;
    for id in 0..10 {
        assert_eq!(send(&app.base, id).await, (202, "accepted".to_string()));
    }
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 10);
    assert!(!env.dir.path().join("spool/checkpoint").exists(), "nothing written to disk in memory mode");
}

/// A 1 MiB tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` where mounting is not permitted (not root, no CAP_SYS_ADMIN).
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tmp");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs", &dir.path().display().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_with_503_and_recovers_when_space_returns() {
    let Some(disk) = SmallDisk::mount(1 << 20) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let proxy = Outage::start(true).await;
    let mut env = Env::new("diskfull");
    env.raw.clickhouse.url = proxy.url.clone();
    env.raw.spool.dir = disk.dir.path().join("spool").display().to_string();
    env.raw.spool.segment_bytes = 128 * 1024;
    env.raw.limits.rate_limit_per_second = 0;
    let app = env.start().await;
    proxy.cut().await;
    // The spool cap (1 GiB) is far away: the disk fills first.
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for id in 0..20_000 {
        match send(&app.base, id).await {
            (202, h) if h == "accepted" => accepted.push(id),
            (503, h) if h == "dropped; reason=queue_full" => {
                refused += 1;
                if refused >= 50 {
                    break;
                }
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(refused >= 50, "the full disk was reported ({} accepted)", accepted.len());
    assert!(accepted.len() > 500, "the disk held events before it filled: {}", accepted.len());
    assert_eq!(app.running.metrics.dropped_count(headcount::telemetry::DropReason::QueueFull), refused);
    // ClickHouse returns: the spool drains, segments are deleted, space
    // comes back and new events are accepted again.
    proxy.restore();
    let running = &app.running;
    wait_for("the spool drained", Duration::from_secs(60), async || running.spool.unstored_records() == 0).await;
    let mut later = 0;
    for id in 100_000..100_050 {
        if send(&app.base, id).await == (202, "accepted".to_string()) {
            later += 1;
        }
    }
    assert_eq!(later, 50, "accepting again once the disk has room");
    let db = app.stop().await;
    assert_eq!(db.count("1").await, accepted.len() as u64 + 50, "every acknowledged event stored, once");
    assert_eq!(db.text("SELECT count() - uniqExact(pathname) FROM events").await.trim(), "0");
}
