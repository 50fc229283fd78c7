//! Wiring: config in, a running Headcount out.
//!
//! [`start`] takes its listener from outside (tests bind `127.0.0.1:0`) and
//! returns a [`Running`] handle; [`Running::shutdown`] stops accepting,
//! lets in-flight requests finish, flushes every queued event to ClickHouse
//! and returns. `main` is a thin shell around this.

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::conn;
use crate::enrich::geo::{GeoDb, GeoLookup};
use crate::enrich::source::Referrers;
use crate::enrich::ua::{UaError, UaParser};
use crate::ingest::{self, Ingest};
use crate::privacy::{MidnightBridge, SaltBook};
use crate::salt_keeper::{self, KeeperError, SaltKeeper};
use crate::spool::Spool;
use crate::store::{self, StoreError, sink::SpoolSink, writer::Writer};
use crate::telemetry::{Health, Metrics};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why Headcount could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error("ClickHouse: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Salt(#[from] KeeperError),
    #[error("User-Agent parser: {0}")]
    Ua(#[from] UaError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
}

/// Things tests (and embedders) may replace.
#[derive(Clone)]
pub struct Options {
    pub clock: SharedClock,
    /// Replaces the `[geo]` databases; `None`: open (and watch) those.
    pub geo: Option<Arc<dyn GeoLookup>>,
    /// Wait after proposing a salt before reading the agreed one.
    pub salt_settle: Duration,
    /// Create the salt key file when it is absent.
    pub create_key: bool,
    /// Longest time the writer keeps retrying at shutdown.
    pub shutdown_retry: Duration,
    /// Longest time in-flight connections get to finish at shutdown.
    pub drain_timeout: Duration,
    /// Replaces the stats engine behind the dashboards and the Stats API.
    pub stats: Option<Arc<dyn crate::dashboard::source::StatsSource>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            geo: None,
            salt_settle: Duration::from_secs(2),
            create_key: true,
            shutdown_retry: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            stats: None,
        }
    }
}

/// A started Headcount.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics: Metrics,
    pub salts: Arc<SaltBook>,
    pub keeper: SaltKeeper,
    /// Accepted events on their way to ClickHouse.
    pub spool: Spool,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    writer: JoinHandle<()>,
    keeper_task: JoinHandle<()>,
}

impl Running {
    /// Stop accepting, drain connections, flush spooled events, return.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        // Every answered request's events are in the spool now; the writer
        // drains it and stops.
        let spool = self.spool.clone();
        let _ = tokio::task::spawn_blocking(move || spool.close()).await;
        let _ = self.writer.await;
        self.spool.release();
        let _ = self.keeper_task.await;
    }
}

/// Migrate ClickHouse, agree today's salt, start the writer and the server.
pub async fn start(listener: TcpListener, config: Config, opts: Options) -> Result<Running, AppError> {
    let config = Arc::new(config);
    let metrics = Metrics::new()?;
    let health = Arc::new(Health::default());

    let server_client = store::server_client(&config.clickhouse);
    let db = store::client(&config.clickhouse);
    // The key is checked before anything else: a missing or unreadable key
    // must stop startup, never lead to a salt nobody else shares.
    let key = salt_keeper::load_or_create_key(&config.privacy.salt_key_file, opts.create_key)?;
    let salts = Arc::new(SaltBook::new());
    let bridge = Arc::new(MidnightBridge::new(500_000));
    let keeper = SaltKeeper {
        db: db.clone(),
        key,
        book: salts.clone(),
        clock: opts.clock.clone(),
        grace: config.privacy.salt_grace,
        settle: opts.salt_settle,
        metrics: metrics.clone(),
        bridge: bridge.clone(),
    };
    // Migrate and agree today's salt. If ClickHouse is unreachable, start
    // anyway — not ready, dropping events as `no_salt` — and keep trying in
    // the background. Anything else (a wrong key, a changed migration, SQL
    // the server refuses) stops startup.
    let bootstrapped = match bootstrap(&server_client, &config.clickhouse.database, &keeper).await {
        Ok(()) => true,
        Err(Bootstrap::Unreachable(e)) => {
            tracing::error!(error = %e, url = %config.clickhouse.url, "ClickHouse unreachable at startup; serving, not ready, retrying");
            false
        }
        Err(Bootstrap::Fatal(e)) => return Err(e),
    };
    health.set_store_reachable(bootstrapped);

    let (stop, stop_rx) = watch::channel(false);
    let spool = Spool::open(config.spool.clone())?;
    spool.observe_fsync(metrics.spool_fsync.clone());
    let writer = Writer {
        // Its own client: the pool's connections are made, and driven, on
        // the writer's runtime (see `spawn_writer`).
        client: store::client(&config.clickhouse),
        table: "events".into(),
        batch_rows: config.clickhouse.batch_rows,
        batch_bytes: config.clickhouse.batch_bytes,
        batch_interval: config.clickhouse.batch_interval,
        shutdown_retry: opts.shutdown_retry,
        dead_letter_dir: config.spool.dir.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
    };
    let writer = spawn_writer(writer, spool.clone())?;
    let keeper_task = {
        let keeper = keeper.clone();
        let (server_client, database, health) =
            (server_client.clone(), config.clickhouse.database.clone(), health.clone());
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            if !bootstrapped {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = stop_rx.changed() => return,
                    }
                    match bootstrap(&server_client, &database, &keeper).await {
                        Ok(()) => {
                            tracing::info!("ClickHouse reachable: migrated and salt agreed");
                            health.set_store_reachable(true);
                            break;
                        }
                        Err(Bootstrap::Unreachable(_)) => continue,
                        Err(Bootstrap::Fatal(e)) => {
                            tracing::error!(error = %e, "cannot start collecting; fix the problem and restart");
                            return;
                        }
                    }
                }
            }
            keeper.run(stop_rx).await
        })
    };

    let geo: Arc<dyn GeoLookup> = match &opts.geo {
        Some(geo) => geo.clone(),
        None => {
            let geo = Arc::new(GeoDb::open(&config.geo, &metrics));
            tokio::spawn(geo.clone().watch(stop_rx.clone()));
            geo
        }
    };
    let ingest = Arc::new(Ingest {
        config: config.clone(),
        ua: Arc::new(UaParser::embedded(10_000)?),
        geo,
        referrers: Arc::new(Referrers::new(&config.referrers.sources, &config.referrers.spam)),
        places: ingest::places::Places::new(4_096),
        salts: salts.clone(),
        bridge,
        sessions: Arc::new(crate::sessions::Sessions::new(200_000)),
        clock: opts.clock.clone(),
        sink: Arc::new(SpoolSink { spool: spool.clone() }),
        metrics: metrics.clone(),
        health,
        limits: ingest::limits::Limits::new(&config.limits),
    });
    let addr = listener.local_addr()?;
    let stats = opts.stats.clone().unwrap_or_else(|| crate::dashboard::source::engine(&db, opts.clock.clone()));
    let dashboard = crate::dashboard::Dashboard::new(config.clone(), db.clone(), opts.clock.clone(), stats)
        .map_err(|e| AppError::Io(std::io::Error::other(e)))?;
    let server = tokio::spawn(serve(listener, ingest, Arc::new(dashboard), stop_rx, opts.drain_timeout));
    tracing::info!(%addr, sites = config.sites.len(), ip_mode = ?config.privacy.ip_mode, "headcount listening");
    Ok(Running { addr, metrics, salts, keeper, spool, stop, server, writer, keeper_task })
}

/// Run the writer on a thread of its own, with its own single-threaded
/// runtime, so it never runs on the request workers.
///
/// Why: sending a batch is bulk work — reading it back from the spool,
/// building `Native` blocks, compressing, writing to the socket — in pieces
/// of milliseconds. On the shared workers the requests that queued behind a
/// piece waited for it. As a thread of its own it is one more task for the
/// kernel's scheduler, which runs a woken request worker promptly. At
/// 22,600 realistic req/s on two cores, p99 went from 5.1–5.9 ms to
/// 2.9–4.3 ms and the maximum rate did not change (BENCHMARKS.md, sixth
/// session). Moving only the block encoding off the workers
/// (`spawn_blocking`, `block_in_place`) had not helped.
fn spawn_writer(writer: Writer, spool: Spool) -> Result<JoinHandle<()>, AppError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new().name("writer".into()).spawn(move || {
        runtime.block_on(writer.run(spool));
        let _ = done.send(());
    })?;
    // Resolves when the writer has stopped (or its thread died).
    Ok(tokio::spawn(async move {
        let _ = finished.await;
    }))
}

/// Start, then run until `shutdown` resolves, then shut down cleanly.
pub async fn run(
    listener: TcpListener,
    config: Config,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AppError> {
    let running = start(listener, config, opts).await?;
    shutdown.await;
    tracing::info!("shutting down: draining connections and flushing events");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

enum Bootstrap {
    /// ClickHouse could not be reached: retry later.
    Unreachable(AppError),
    /// Retrying cannot help.
    Fatal(AppError),
}

/// Apply migrations and agree today's salt.
async fn bootstrap(server: &clickhouse::Client, database: &str, keeper: &SaltKeeper) -> Result<(), Bootstrap> {
    let classify_store = |e: StoreError| {
        let unreachable = matches!(
            &e,
            StoreError::ClickHouse(clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut)
        );
        let e = AppError::Store(e);
        if unreachable { Bootstrap::Unreachable(e) } else { Bootstrap::Fatal(e) }
    };
    store::migrate::run(server, database).await.map_err(classify_store)?;
    match keeper.tick().await {
        Ok(()) => Ok(()),
        Err(KeeperError::Store(e)) => Err(classify_store(e)),
        Err(e) => Err(Bootstrap::Fatal(e.into())),
    }
}

async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    dashboard: Arc<crate::dashboard::Dashboard>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limits = ingest.config.limits.clone();
    let builder = conn::builder(&limits);
    let mut slots = conn::Slots::new(limits.max_connections, ingest.metrics.clone());
    loop {
        // A free connection slot first: at the limit, wait rather than accept.
        let slot = tokio::select! {
            slot = slots.acquire() => slot,
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let slot = slot.occupy();
        let _ = stream.set_nodelay(true);
        let activity = conn::Activity::new();
        let stream = conn::Watched::new(stream, activity.clone());
        let (metrics, idle) = (ingest.metrics.clone(), limits.header_read_timeout);
        let ingest = ingest.clone();
        let dashboard = dashboard.clone();
        let watched = activity.clone();
        let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let ingest = ingest.clone();
            let dashboard = dashboard.clone();
            let busy = watched.request();
            async move {
                let _busy = busy;
                // Ingest routes keep priority; everything else is the web side.
                let resp = if crate::dashboard::is_ingest_path(req.uri().path()) {
                    ingest::routes::handle(ingest, peer, req).await
                } else {
                    crate::dashboard::handle(dashboard, peer, req).await
                };
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _slot = slot;
            let timed_out = tokio::select! {
                ended = conn => ended.is_err_and(|e| conn::is_timeout(&*e)),
                () = activity.idle(idle) => true,
            };
            if timed_out {
                metrics.connections_timed_out.inc();
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections did not finish in time");
    }
}
