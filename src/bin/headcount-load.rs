//! `headcount-load`: a load generator for a running Headcount.
//!
//! ```sh
//! cargo run --release --bin headcount-load -- --url http://127.0.0.1:8080 \
//!     --rate 50000 --duration 30s --endpoint mix --sites example.com \
//!     --verify-clickhouse http://127.0.0.1:18123 --database headcount
//! ```
//!
//! The target must list every `--sites` domain under `[[sites]]` and trust
//! the generator's address as a proxy (`trusted_proxies = ["127.0.0.1/32"]`),
//! because each request carries its visitor's address in `X-Forwarded-For`.
//! Exempt it from the per-client rate limit too (`[limits] rate_limit_exempt
//! = ["127.0.0.1/32"]`), or a small `--visitors` at a high rate is measured
//! as 429s.
//!
//! # Traffic
//!
//! Requests look like a real site's: User-Agents from uap-core's test corpus
//! (`benches/data/user_agents.txt`) with a few current browsers taking most
//! of the traffic, `--bot-share` of crawlers and HTTP libraries from the same
//! corpus (classified with Headcount's own parser, so the share is exact),
//! Zipf-distributed paths, referrers from search engines, social networks,
//! other sites, the site itself or none, IPv4 and IPv6 visitors, viewport
//! widths, and on `/api/event` custom, link and engagement events besides
//! page views. Every page URL starts with a per-run marker path,
//! `/hc-load-<run id>/`, so the rows of one run can be counted in ClickHouse.
//!
//! # Why a hand-rolled HTTP/1.1 client
//!
//! The generator shares two cores with the server it measures, so each
//! request must cost it as little as possible. At start it renders a pool
//! of `--distinct` complete requests (bytes, headers and body) from the
//! traffic model; a connection then only copies pool entries into its write
//! buffer and parses status line and headers of each answer (`httparse`).
//! A hyper client would add a `Request` value, a header map, a body type and
//! a per-request future for every request, and hides pipelining, which the
//! open-loop mode needs: a request is written at its intended time even while
//! earlier answers on the same connection are outstanding.
//!
//! # Two modes
//!
//! * `--rate N` — **open loop**: request *k* of a connection is due at
//!   `start + k·connections/N` and is written then whether or not earlier
//!   ones were answered (up to `--max-inflight` per connection). Latency is
//!   measured from the *intended* send time, so a stalled server shows up as
//!   latency instead of silently lowering the rate (the coordinated-omission
//!   correction of wrk2). The generator's own lateness in sending (tokio's
//!   timer ticks at 1 ms) is reported separately as *send lag*; it is part of
//!   the measured latency, so the figures are an upper bound.
//! * `--rate max` — **closed loop** (like `wrk`): every connection keeps
//!   `--pipeline` requests in flight; latency from the actual send.
//!
//! The first `--warmup` is sent but not measured. Afterwards `--verify-clickhouse`
//! waits for the server to flush and compares the rows of this run with the
//! number of `X-Headcount-Event: accepted` answers; `/metrics`'
//! `headcount_queue_depth` is sampled while the run lasts.

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use headcount::enrich::ua::UaParser;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// uap-core 0.18.0's distinct test User-Agents, one per line.
const CORPUS: &str = include_str!("../../benches/data/user_agents.txt");

/// Current browsers, with their share of the non-bot traffic in per mille.
/// The rest of the human traffic draws uniformly from the corpus.
const POPULAR: [(&str, u32); 8] = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        220,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        130,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        110,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        60,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 40),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
        40,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        30,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        30,
    ),
];

/// Referrers by kind; `None` is direct traffic, `Some("")` the site itself.
const SEARCH: [&str; 5] = [
    "https://www.google.com/",
    "https://www.google.com/search?q=privacy+analytics",
    "https://www.bing.com/search?q=web+analytics",
    "https://yandex.ru/search/?text=analytics",
    "https://duckduckgo.com/",
];
const SOCIAL: [&str; 5] = [
    "https://t.co/AbCdEf123",
    "https://www.facebook.com/",
    "https://www.reddit.com/r/rust/comments/abc/",
    "https://vk.com/feed",
    "https://www.linkedin.com/feed/",
];
const OTHER: [&str; 4] = [
    "https://news.ycombinator.com/item?id=1",
    "https://github.com/explore",
    "https://habr.com/ru/articles/1/",
    "https://en.wikipedia.org/wiki/Web_analytics",
];
const WIDTHS: [u16; 7] = [360, 390, 414, 768, 1280, 1440, 1920];
const SECTIONS: [&str; 6] = ["blog", "docs", "products", "news", "help", "pricing"];

#[derive(Parser, Debug)]
#[command(
    name = "headcount-load",
    about = "Load generator for Headcount: realistic traffic, open-loop or max rate, HDR latency, ClickHouse row check"
)]
struct Args {
    /// Base URL of the Headcount under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Requests per second (open loop, latency from intended send time), or
    /// `max` (closed loop, as fast as answers come back). `50k` works too.
    #[arg(long, default_value = "max")]
    rate: Rate,
    /// How long to measure, after the warm-up: `30s`, `500ms`, `5m`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Sent at the same rate before measuring; not in the figures.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Threads of the generator's tokio runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Which endpoint: `pixel` (GET /p.gif), `event` (POST /api/event) or
    /// `mix` (three of four requests /api/event).
    #[arg(long, value_enum, default_value_t = Endpoint::Pixel)]
    endpoint: Endpoint,
    /// Site domains, comma-separated; each must be configured in the target.
    #[arg(long, value_delimiter = ',', default_value = "example.com")]
    sites: Vec<String>,
    /// Share of requests from crawlers and HTTP libraries (dropped as `bot`).
    #[arg(long, default_value_t = 0.05)]
    bot_share: f64,
    /// Share of visitors with an IPv6 address.
    #[arg(long, default_value_t = 0.3)]
    ipv6_share: f64,
    /// Distinct visitors (addresses) per site.
    #[arg(long, default_value_t = 50_000)]
    visitors: u32,
    /// Distinct page paths per site, Zipf-distributed.
    #[arg(long, default_value_t = 2000)]
    paths: usize,
    /// Zipf exponent of the path popularity.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Distinct requests rendered in advance and cycled through.
    #[arg(long, default_value_t = 32_768)]
    distinct: usize,
    /// Requests in flight per connection in `--rate max` mode (1 = like wrk).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Most unanswered requests per connection in open-loop mode; beyond it
    /// the schedule waits (and the wait shows up as latency).
    #[arg(long, default_value_t = 1024)]
    max_inflight: usize,
    /// How long to wait for outstanding answers after the run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain: Duration,
    /// Print a progress line this often (0: never).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    report_every: Duration,
    /// After the run, compare the rows of this run in ClickHouse (HTTP
    /// interface URL) with the accepted events.
    #[arg(long)]
    verify_clickhouse: Option<String>,
    /// ClickHouse database of the target.
    #[arg(long, default_value = "headcount")]
    database: String,
    /// Longest wait for the rows to reach ClickHouse.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    verify_timeout: Duration,
    /// Seed of the traffic model (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Marker of this run in page paths (`/hc-load-<run-id>/...`); default random.
    #[arg(long)]
    run_id: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Rate {
    Max,
    PerSecond(f64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let (num, mult) = match s.strip_suffix(['k', 'K']) {
            Some(n) => (n, 1000.0),
            None => (s, 1.0),
        };
        match num.parse::<f64>() {
            Ok(r) if r * mult > 0.0 && (r * mult).is_finite() => Ok(Rate::PerSecond(r * mult)),
            _ => Err(format!("`{s}`: expected requests per second (e.g. 50000, 50k) or `max`")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Endpoint {
    Pixel,
    Event,
    Mix,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("`{s}`: expected a duration like 30s, 500ms, 5m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.threads == 0 || args.pipeline == 0 || args.distinct == 0 {
        bail!("--connections, --threads, --pipeline and --distinct must be at least 1");
    }
    if args.sites.iter().any(|s| s.trim().is_empty()) {
        bail!("--sites: empty domain");
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run(args))
}

/// Where to send requests.
struct Target {
    addr: SocketAddr,
    /// `Host` header value.
    host: String,
    /// Path prefix of the server (`""` when at the root).
    base: String,
}

async fn resolve(raw: &str) -> anyhow::Result<Target> {
    let url = url::Url::parse(raw).with_context(|| format!("--url {raw}"))?;
    if url.scheme() != "http" {
        bail!("--url {raw}: only http:// is supported");
    }
    let host = url.host_str().context("--url has no host")?.to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    Ok(Target { addr, host, base: url.path().trim_end_matches('/').to_owned() })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let target = resolve(&args.url).await?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
    });
    let run_id = match &args.run_id {
        Some(id) if id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !id.is_empty() => id.clone(),
        Some(id) => bail!("--run-id `{id}`: letters, digits and `-` only"),
        None => format!("{:012x}", Rng::new(seed ^ 0x9e37_79b9).next_u64() >> 16),
    };
    let marker = format!("/hc-load-{run_id}");

    let built = Instant::now();
    let mut model = Model::new(&args, seed)?;
    let pool = Arc::new(model.render(&args, &target, &marker));
    eprintln!(
        "headcount-load: run {run_id}: {} requests rendered ({} bytes, {} User-Agents, {} bots) in {:.1?}",
        pool.len(),
        pool.iter().map(Vec::len).sum::<usize>(),
        model.humans.len() + POPULAR.len(),
        model.bots.len(),
        built.elapsed(),
    );

    let start = Instant::now() + Duration::from_millis(200);
    let shared = Arc::new(Shared {
        start,
        measure_from: start + args.warmup,
        end: start + args.warmup + args.duration,
        answered: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    let mode = match args.rate {
        Rate::Max => format!("max rate, {} in flight per connection", args.pipeline),
        Rate::PerSecond(r) => format!("open loop at {r:.0} req/s"),
    };
    eprintln!(
        "headcount-load: {:?} → {} ({}), {mode}, {} connections, {:?} + {:?} warm-up",
        args.endpoint, args.url, target.addr, args.connections, args.duration, args.warmup
    );

    let mut conns = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let stream = TcpStream::connect(target.addr).await.with_context(|| format!("connecting to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let plan = Plan {
            index: i,
            connections: args.connections,
            rate: args.rate,
            pipeline: args.pipeline,
            max_inflight: args.max_inflight,
            drain: args.drain,
            first: (i * pool.len() / args.connections) % pool.len(),
        };
        conns.push(tokio::spawn(connection(stream, plan, pool.clone(), shared.clone())));
    }
    let reporter = tokio::spawn(report(
        shared.clone(),
        target.addr,
        target.host.clone(),
        format!("{}/metrics", target.base),
        args.report_every,
    ));

    let mut total = ConnStats::new();
    for c in conns {
        match c.await {
            Ok(s) => total.merge(s)?,
            Err(e) => total.errors.push(format!("connection task: {e}")),
        }
    }
    shared.done.store(true, Ordering::Relaxed);
    let depth = reporter.await.unwrap_or_default();

    summarize(&args, &total, &depth);
    if let Some(ch) = &args.verify_clickhouse {
        verify(ch, &args.database, &marker, total.accepted, args.verify_timeout).await?;
    }
    if total.answered == 0 {
        bail!("no request was answered");
    }
    Ok(())
}

/// State all connections share.
struct Shared {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    answered: AtomicU64,
    accepted: AtomicU64,
    done: AtomicBool,
}

/// One connection's share of the work.
struct Plan {
    index: usize,
    connections: usize,
    rate: Rate,
    pipeline: usize,
    max_inflight: usize,
    drain: Duration,
    /// Where in the pool this connection starts.
    first: usize,
}

/// When a request was meant to go out, and when it did.
#[derive(Clone, Copy)]
struct Sent {
    intended: Instant,
    actual: Instant,
}

/// What one connection (and, merged, the whole run) saw.
struct ConnStats {
    /// Microseconds from intended send to the end of the answer (measured window only).
    latency: Histogram<u64>,
    /// Microseconds from intended to actual send (open loop only).
    lag: Histogram<u64>,
    sent: u64,
    answered: u64,
    /// Answered requests whose intended time is in the measured window.
    measured: u64,
    status: BTreeMap<u16, u64>,
    accepted: u64,
    dropped: BTreeMap<String, u64>,
    errors: Vec<String>,
    unanswered: u64,
}

impl ConnStats {
    fn new() -> Self {
        // 1 µs to 2 minutes at 3 significant digits: constant, valid bounds.
        let hist = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
        ConnStats {
            latency: hist(),
            lag: hist(),
            sent: 0,
            answered: 0,
            measured: 0,
            status: BTreeMap::new(),
            accepted: 0,
            dropped: BTreeMap::new(),
            errors: Vec::new(),
            unanswered: 0,
        }
    }

    fn merge(&mut self, o: ConnStats) -> anyhow::Result<()> {
        self.latency.add(&o.latency)?;
        self.lag.add(&o.lag)?;
        self.sent += o.sent;
        self.answered += o.answered;
        self.measured += o.measured;
        for (k, v) in o.status {
            *self.status.entry(k).or_default() += v;
        }
        self.accepted += o.accepted;
        for (k, v) in o.dropped {
            *self.dropped.entry(k).or_default() += v;
        }
        self.errors.extend(o.errors);
        self.unanswered += o.unanswered;
        Ok(())
    }
}

async fn connection(stream: TcpStream, plan: Plan, pool: Arc<Vec<Vec<u8>>>, shared: Arc<Shared>) -> ConnStats {
    let mut stats = ConnStats::new();
    // The write half lives until every answer is read: dropping it sends
    // FIN, and a server may then abandon answers still owed.
    let (rd, mut wr) = stream.into_split();
    let cap = match plan.rate {
        Rate::Max => plan.pipeline,
        Rate::PerSecond(_) => plan.max_inflight.max(1),
    };
    // In flight = permits taken; the reader gives one back per answer.
    let inflight = Arc::new(Semaphore::new(cap));
    let (tx, rx) = mpsc::channel::<Sent>(cap);
    let writer = write_loop(&mut wr, &plan, &pool, &shared, &inflight, tx);
    let reader = read_loop(rd, &plan, &shared, &inflight, rx, &mut stats);
    let (written, read) = tokio::join!(writer, reader);
    match written {
        Ok(n) => stats.sent = n,
        Err((n, e)) => {
            stats.sent = n;
            stats.errors.push(format!("write: {e}"));
        }
    }
    if let Err(e) = read {
        stats.errors.push(e);
    }
    stats.unanswered = stats.sent.saturating_sub(stats.answered);
    drop(wr);
    stats
}

/// Write requests on schedule; returns how many were written.
async fn write_loop(
    wr: &mut OwnedWriteHalf,
    plan: &Plan,
    pool: &[Vec<u8>],
    shared: &Shared,
    inflight: &Semaphore,
    tx: mpsc::Sender<Sent>,
) -> Result<u64, (u64, std::io::Error)> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut next = plan.first;
    let mut written = 0u64;
    let mut queued = 0u64;
    // Open loop: this connection's k-th request is due at start + offset + k·interval.
    let interval_ns = match plan.rate {
        Rate::PerSecond(r) => plan.connections as f64 * 1e9 / r,
        Rate::Max => 0.0,
    };
    let offset_ns = interval_ns * plan.index as f64 / plan.connections as f64;
    tokio::time::sleep_until(shared.start).await;
    let mut k: u64 = 0;
    loop {
        let now = Instant::now();
        let intended = match plan.rate {
            Rate::Max => now,
            Rate::PerSecond(_) => {
                let due = shared.start + Duration::from_nanos((offset_ns + k as f64 * interval_ns) as u64);
                if due > now {
                    if due >= shared.end {
                        break;
                    }
                    if !buf.is_empty() {
                        flush(wr, &mut buf, &mut written, &mut queued).await?;
                    }
                    tokio::time::sleep_until(due).await;
                    continue;
                }
                due
            }
        };
        if intended >= shared.end {
            break;
        }
        // Take an in-flight slot; if none is free, send what is buffered
        // first (its answers are what frees slots), then wait.
        match inflight.try_acquire() {
            Ok(p) => p.forget(),
            Err(_) => {
                flush(wr, &mut buf, &mut written, &mut queued).await?;
                match inflight.acquire().await {
                    Ok(p) => p.forget(),
                    Err(_) => break, // the reader gave up
                }
            }
        }
        let sent = Sent { intended, actual: Instant::now() };
        if tx.send(sent).await.is_err() {
            break;
        }
        buf.extend_from_slice(&pool[next]);
        queued += 1;
        next = (next + 1) % pool.len();
        k += 1;
        if buf.len() >= 48 * 1024 {
            flush(wr, &mut buf, &mut written, &mut queued).await?;
        }
    }
    flush(wr, &mut buf, &mut written, &mut queued).await?;
    Ok(written)
}

async fn flush(
    wr: &mut OwnedWriteHalf,
    buf: &mut Vec<u8>,
    written: &mut u64,
    queued: &mut u64,
) -> Result<(), (u64, std::io::Error)> {
    if buf.is_empty() {
        return Ok(());
    }
    wr.write_all(buf).await.map_err(|e| (*written, e))?;
    buf.clear();
    *written += std::mem::take(queued);
    Ok(())
}

/// Read answers in order, one per request the writer announced.
async fn read_loop(
    mut rd: OwnedReadHalf,
    plan: &Plan,
    shared: &Shared,
    inflight: &Semaphore,
    mut rx: mpsc::Receiver<Sent>,
    stats: &mut ConnStats,
) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut pos = 0usize;
    let result = async {
        while let Some(sent) = rx.recv().await {
            let answer = loop {
                match parse_answer(&buf[pos..])? {
                    Some(a) => break a,
                    None => {
                        buf.drain(..pos);
                        pos = 0;
                        let deadline = shared.end.max(Instant::now()) + plan.drain;
                        let n = tokio::time::timeout_at(deadline, rd.read_buf(&mut buf))
                            .await
                            .map_err(|_| "timed out waiting for an answer".to_owned())?
                            .map_err(|e| format!("read: {e}"))?;
                        if n == 0 {
                            return Err("server closed the connection".to_owned());
                        }
                    }
                }
            };
            let done = Instant::now();
            pos += answer.len;
            inflight.add_permits(1);
            stats.answered += 1;
            shared.answered.fetch_add(1, Ordering::Relaxed);
            *stats.status.entry(answer.status).or_default() += 1;
            match answer.event {
                EventHeader::Accepted => {
                    stats.accepted += 1;
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                }
                EventHeader::Dropped(reason) => {
                    *stats.dropped.entry(reason).or_default() += 1;
                }
                EventHeader::None => {}
            }
            if sent.intended >= shared.measure_from {
                stats.measured += 1;
                let us = done.saturating_duration_since(sent.intended).as_micros();
                stats.latency.saturating_record(us.max(1) as u64);
                if matches!(plan.rate, Rate::PerSecond(_)) {
                    let lag = sent.actual.saturating_duration_since(sent.intended).as_micros();
                    stats.lag.saturating_record(lag.max(1) as u64);
                }
            }
        }
        Ok(())
    }
    .await;
    // Let a waiting writer stop.
    inflight.close();
    result
}

enum EventHeader {
    None,
    Accepted,
    Dropped(String),
}

struct Answer {
    /// Bytes of the whole answer, headers and body.
    len: usize,
    status: u16,
    event: EventHeader,
}

/// One complete HTTP/1.1 answer at the start of `buf`, if it is all there.
fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed answer: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut event = EventHeader::None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("x-headcount-event") {
            event = if h.value == b"accepted" {
                EventHeader::Accepted
            } else {
                let v = String::from_utf8_lossy(h.value);
                let reason = v.split_once("reason=").map(|(_, r)| r.trim()).unwrap_or(v.trim());
                EventHeader::Dropped(reason.to_owned())
            };
        }
    }
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        0
    } else if chunked {
        match chunked_len(&buf[head..])? {
            Some(n) => n,
            None => return Ok(None),
        }
    } else {
        length.ok_or("answer without Content-Length (the generator needs keep-alive framing)")?
    };
    if buf.len() < head + body {
        return Ok(None);
    }
    Ok(Some(Answer { len: head + body, status, event }))
}

/// Length of a chunked body at the start of `buf`, if complete.
fn chunked_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("malformed chunked body".to_owned()),
        };
        at += size_len;
        if size == 0 {
            // Trailers are not expected; the final CRLF ends the body.
            return Ok((buf.len() >= at + 2).then_some(at + 2));
        }
        at += size as usize + 2;
        if buf.len() < at {
            return Ok(None);
        }
    }
}

/// Print progress; sample `headcount_queue_depth` from `/metrics`.
async fn report(
    shared: Arc<Shared>,
    addr: SocketAddr,
    host: String,
    metrics_path: String,
    every: Duration,
) -> Vec<i64> {
    let mut depths = Vec::new();
    let tick = if every.is_zero() { Duration::from_secs(1) } else { every.min(Duration::from_secs(1)) };
    tokio::time::sleep_until(shared.start).await;
    let (mut last_n, mut last_t, mut last_print) = (0u64, Instant::now(), Instant::now());
    while !shared.done.load(Ordering::Relaxed) {
        tokio::time::sleep(tick).await;
        let depth = match simple_request(addr, &host, "GET", &metrics_path, "").await {
            Ok((200, body)) => queue_depth(&body),
            _ => None,
        };
        if let Some(d) = depth {
            depths.push(d);
        }
        if !every.is_zero() && last_print.elapsed() >= every {
            let n = shared.answered.load(Ordering::Relaxed);
            let now = Instant::now();
            eprintln!(
                "  t={:>5.1}s  {:>8.0} req/s  answered {:>9}  accepted {:>9}  queue depth {}",
                now.saturating_duration_since(shared.start).as_secs_f64(),
                (n - last_n) as f64 / now.duration_since(last_t).as_secs_f64(),
                n,
                shared.accepted.load(Ordering::Relaxed),
                depth.map_or("-".to_owned(), |d| d.to_string()),
            );
            (last_n, last_t, last_print) = (n, now, now);
        }
    }
    depths
}

fn queue_depth(metrics: &str) -> Option<i64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("headcount_queue_depth "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
}

fn summarize(args: &Args, t: &ConnStats, depth: &[i64]) {
    let window = args.duration.as_secs_f64();
    println!();
    println!("== headcount-load: {:?}, {} connections ==", args.endpoint, args.connections);
    match args.rate {
        Rate::Max => println!("mode        max rate (closed loop, {} in flight per connection)", args.pipeline),
        Rate::PerSecond(r) => println!("mode        open loop, {r:.0} req/s intended"),
    }
    println!(
        "requests    sent {}  answered {}  unanswered {}  connection errors {}",
        t.sent,
        t.answered,
        t.unanswered,
        t.errors.len()
    );
    println!(
        "throughput  {:.0} req/s answered over the {:.1?} measured window",
        t.measured as f64 / window,
        args.duration
    );
    let status: Vec<String> = t.status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("status      {}", status.join("  "));
    let dropped: Vec<String> = t.dropped.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "events      accepted {}  dropped {}",
        t.accepted,
        if dropped.is_empty() { "0".to_owned() } else { dropped.join(" ") }
    );
    let h = &t.latency;
    let ms = |v: u64| v as f64 / 1000.0;
    let origin = match args.rate {
        Rate::Max => "from send",
        Rate::PerSecond(_) => "from intended send, coordinated omission corrected",
    };
    println!(
        "latency     ({origin}) p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    );
    if matches!(args.rate, Rate::PerSecond(_)) {
        println!(
            "send lag    (generator: actual − intended send) p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            ms(t.lag.value_at_quantile(0.50)),
            ms(t.lag.value_at_quantile(0.99)),
            ms(t.lag.max()),
        );
    }
    if let (Some(min), Some(max), Some(last)) = (depth.iter().min(), depth.iter().max(), depth.last()) {
        println!("queue depth (/metrics, {} samples) min {min}  max {max}  last {last}", depth.len());
    }
    for e in t.errors.iter().take(5) {
        println!("error       {e}");
    }
}

/// Poll ClickHouse until the run's rows equal the accepted events.
async fn verify(url: &str, database: &str, marker: &str, accepted: u64, timeout: Duration) -> anyhow::Result<()> {
    let target = resolve(url).await?;
    if !database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        bail!("--database `{database}`: letters, digits and `_` only");
    }
    let query = format!("SELECT count() FROM {database}.events WHERE startsWith(pathname, '{marker}/')");
    let deadline = Instant::now() + timeout;
    let began = Instant::now();
    loop {
        let (status, body) = simple_request(target.addr, &target.host, "POST", &format!("{}/", target.base), &query)
            .await
            .context("querying ClickHouse")?;
        if status != 200 {
            bail!("ClickHouse answered {status}: {}", body.trim());
        }
        let rows: u64 = body.trim().parse().with_context(|| format!("ClickHouse count: `{}`", body.trim()))?;
        if rows == accepted {
            println!(
                "verify      ClickHouse rows for {marker}/: {rows} = accepted {accepted}  OK (after {:.1?})",
                began.elapsed()
            );
            return Ok(());
        }
        if rows > accepted || Instant::now() >= deadline {
            println!("verify      ClickHouse rows for {marker}/: {rows} ≠ accepted {accepted}  MISMATCH");
            bail!("rows in ClickHouse ({rows}) differ from accepted events ({accepted})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One HTTP/1.0 request on its own connection; status and body.
async fn simple_request(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut s =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await.context("connect timed out")??;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.context("answer timed out")??;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(&out)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => bail!("truncated answer"),
    };
    Ok((resp.code.unwrap_or(0), String::from_utf8_lossy(&out[head..]).into_owned()))
}

/// SplitMix64: small, fast, and good enough to shape traffic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The traffic model: who visits what from where.
struct Model {
    rng: Rng,
    humans: Vec<&'static str>,
    bots: Vec<&'static str>,
    /// Cumulative popularity of paths (Zipf).
    path_cdf: Vec<f64>,
    popular_total: u32,
}

impl Model {
    fn new(args: &Args, seed: u64) -> anyhow::Result<Self> {
        // Classify the corpus with Headcount's own parser, uncached, so a
        // "bot" here is exactly what the server drops as one.
        let parser = UaParser::embedded(0).context("User-Agent parser")?;
        let (mut humans, mut bots) = (Vec::new(), Vec::new());
        for ua in CORPUS.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if parser.parse_uncached(ua).is_bot {
                bots.push(ua);
            } else {
                humans.push(ua);
            }
        }
        if bots.is_empty() || humans.is_empty() {
            bail!("the User-Agent corpus has no bots or no browsers");
        }
        let n = args.paths.max(1);
        let mut path_cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for rank in 1..=n {
            acc += 1.0 / (rank as f64).powf(args.zipf);
            path_cdf.push(acc);
        }
        Ok(Model { rng: Rng::new(seed), humans, bots, path_cdf, popular_total: POPULAR.iter().map(|(_, w)| w).sum() })
    }

    fn user_agent(&mut self, bot_share: f64) -> &'static str {
        if self.rng.unit() < bot_share {
            return self.rng.pick::<&'static str>(&self.bots);
        }
        // Popular browsers take `popular_total`‰ of human traffic.
        let roll = self.rng.below(1000) as u32;
        if roll < self.popular_total {
            let mut acc = 0;
            for (ua, w) in POPULAR {
                acc += w;
                if roll < acc {
                    return ua;
                }
            }
        }
        self.rng.pick::<&'static str>(&self.humans)
    }

    fn path(&mut self) -> String {
        let total = self.path_cdf.last().copied().unwrap_or(1.0);
        let x = self.rng.unit() * total;
        let rank = self.path_cdf.partition_point(|&c| c < x);
        match rank {
            0 => "/".to_owned(),
            r => {
                let section = SECTIONS[r % SECTIONS.len()];
                let mut p = format!("/{section}/page-{r}");
                // Some landings carry campaign parameters.
                if r % 17 == 0 {
                    p.push_str("?utm_source=newsletter&utm_medium=email&utm_campaign=spring");
                }
                p
            }
        }
    }

    /// A referrer URL, or `None` for direct traffic.
    fn referrer(&mut self, site: &str, marker: &str) -> Option<String> {
        let roll = self.rng.below(100);
        match roll {
            0..35 => None,
            35..65 => Some((*self.rng.pick(&SEARCH)).to_owned()),
            65..80 => Some((*self.rng.pick(&SOCIAL)).to_owned()),
            80..92 => Some((*self.rng.pick(&OTHER)).to_owned()),
            _ => Some(format!("https://{site}{marker}{}", self.path())),
        }
    }

    fn ip(&mut self, ipv6_share: f64, visitors: u32) -> String {
        // A visitor's address follows from its number, so visitors return.
        let v = self.rng.below(visitors.max(1) as usize) as u64;
        let mut h = Rng::new(v ^ 0xa5a5_5a5a_dead_beef);
        if h.unit() < ipv6_share {
            let a = h.next_u64();
            let b = h.next_u64();
            // Global unicast 2a00::/12-ish, never documentation or ULA space.
            let segs = [
                0x2a00 | (a as u16 & 0x0fff),
                (a >> 16) as u16,
                (a >> 32) as u16,
                (a >> 48) as u16,
                b as u16,
                (b >> 16) as u16,
                (b >> 32) as u16,
                (b >> 48) as u16,
            ];
            Ipv6Addr::from(segs).to_string()
        } else {
            let x = h.next_u64();
            // First octet 11–223 except private and loopback ranges.
            let mut first = 11 + (x % 213) as u8;
            if first == 100 || first == 127 || first == 169 || first == 172 || first == 192 {
                first += 1;
            }
            Ipv4Addr::new(first, (x >> 8) as u8, (x >> 16) as u8, (x >> 24) as u8).to_string()
        }
    }

    /// Render `--distinct` complete requests.
    fn render(&mut self, args: &Args, target: &Target, marker: &str) -> Vec<Vec<u8>> {
        (0..args.distinct)
            .map(|i| {
                let pixel = match args.endpoint {
                    Endpoint::Pixel => true,
                    Endpoint::Event => false,
                    Endpoint::Mix => i % 4 == 3,
                };
                self.request(args, target, marker, pixel)
            })
            .collect()
    }

    fn request(&mut self, args: &Args, target: &Target, marker: &str, pixel: bool) -> Vec<u8> {
        let site = self.rng.pick(&args.sites).trim().to_owned();
        let page = format!("https://{site}{marker}{}", self.path());
        let referrer = self.referrer(&site, marker);
        let ua = self.user_agent(args.bot_share);
        let ip = self.ip(args.ipv6_share, args.visitors);
        let width = *self.rng.pick(&WIDTHS);
        let (host, base) = (&target.host, &target.base);
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        if pixel {
            let mut q = format!("d={}&u={}&w={width}", enc(&site), enc(&page));
            if let Some(r) = &referrer {
                q.push_str("&r=");
                q.push_str(&enc(r));
            }
            if self.rng.below(20) == 0 {
                q.push_str("&n=Newsletter%20Open");
            }
            format!(
                "GET {base}/p.gif?{q} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n\
                 Accept: image/avif,image/webp,*/*\r\nReferer: https://{site}/\r\n\
                 X-Forwarded-For: {ip}\r\n\r\n"
            )
            .into_bytes()
        } else {
            let mut ev = serde_json::json!({ "n": "pageview", "u": page, "d": site, "w": width });
            if let Some(r) = referrer {
                ev["r"] = r.into();
            }
            match self.rng.below(100) {
                0..12 => {
                    ev["n"] = "engagement".into();
                    ev["sd"] = (self.rng.below(101) as u64).into();
                    ev["e"] = (self.rng.below(120_000) as u64).into();
                }
                12..17 => {
                    ev["n"] = "Signup".into();
                    ev["p"] = serde_json::json!({ "plan": *self.rng.pick(&["free", "pro", "team"]) });
                }
                17..20 => {
                    ev["n"] = "Outbound Link: Click".into();
                    ev["p"] = serde_json::json!({ "url": *self.rng.pick(&OTHER) });
                }
                _ => {}
            }
            let body = ev.to_string();
            format!(
                "POST {base}/api/event HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n\
                 Content-Type: text/plain;charset=UTF-8\r\nOrigin: https://{site}\r\n\
                 X-Forwarded-For: {ip}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates_and_durations() {
        assert!(matches!("max".parse::<Rate>(), Ok(Rate::Max)));
        assert!(matches!("50k".parse::<Rate>(), Ok(Rate::PerSecond(r)) if r == 50_000.0));
        assert!("0".parse::<Rate>().is_err());
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2x").is_err());
    }

    #[test]
    fn parses_pipelined_answers() {
        let two = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nx-headcount-event: accepted\r\n\r\nokHTTP/1.1 200 OK\r\nX-Headcount-Event: dropped; reason=bot\r\nContent-Length: 0\r\n\r\n";
        let a = parse_answer(two).expect("ok").expect("complete");
        assert_eq!((a.status, a.len), (202, 75));
        assert!(matches!(a.event, EventHeader::Accepted));
        let b = parse_answer(&two[a.len..]).expect("ok").expect("complete");
        assert!(matches!(b.event, EventHeader::Dropped(ref r) if r == "bot"));
        assert_eq!(a.len + b.len, two.len());
        assert!(parse_answer(&two[..a.len - 1]).expect("ok").is_none());
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let c = parse_answer(chunked).expect("ok").expect("complete");
        assert_eq!(c.len, chunked.len());
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_answer(empty).expect("ok").expect("complete").len, empty.len());
    }

    #[test]
    fn reads_queue_depth() {
        let m = "# HELP x\nheadcount_queue_depth 17\nother 1\n";
        assert_eq!(queue_depth(m), Some(17));
    }
}
