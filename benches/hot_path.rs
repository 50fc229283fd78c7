//! Criterion micro-benchmarks of every piece on the ingest hot path, of
//! the whole pipeline (`Ingest::record`: parse → enrich → depersonalize →
//! queue) without HTTP, and of the writer turning spooled rows into a
//! `Native` block. No ClickHouse needed.
//!
//! Run: `cargo bench --bench hot_path`

use criterion::{Criterion, criterion_group, criterion_main};
use headcount::clock::SystemClock;
use headcount::config::{RawConfig, RawSite};
use headcount::enrich::geo::NoGeo;
use headcount::enrich::ua::UaParser;
use headcount::enrich::url;
use headcount::ingest::{Ingest, client_ip::client_ip, payload};
use headcount::privacy::{self, ClientIp, IpMode, Salt, SaltBook};
use headcount::telemetry::{Health, Metrics};
use hyper::HeaderMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

const UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const BODY: &[u8] = br#"{"n":"pageview","u":"https://example.com/blog/some-post?utm_source=newsletter&utm_medium=email","d":"example.com","r":"https://www.google.com/search?q=x","w":1440}"#;

fn pieces(c: &mut Criterion) {
    let peer: SocketAddr = "10.0.0.1:5555".parse().expect("addr");
    let trusted = vec!["10.0.0.0/8".parse().expect("cidr")];
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", "198.51.100.77, 10.0.0.2".parse().expect("hv"));
    c.bench_function("client_ip/xff_trusted", |b| b.iter(|| client_ip(black_box(peer), &headers, &trusted)));
    c.bench_function("client_ip/untrusted_peer", |b| {
        b.iter(|| client_ip(black_box("203.0.113.9:1".parse().expect("addr")), &headers, &trusted))
    });

    let salt = Salt::generate().expect("rng");
    c.bench_function("privacy/depersonalize_hash", |b| {
        b.iter(|| {
            let ip = ClientIp::new(black_box("198.51.100.77".parse().expect("ip")));
            privacy::depersonalize(ip, UA, &["example.com"], &salt, IpMode::Hash, None)
        })
    });
    c.bench_function("privacy/depersonalize_truncate_v6", |b| {
        b.iter(|| {
            let ip = ClientIp::new(black_box("2001:db8:abcd:12::1".parse().expect("ip")));
            privacy::depersonalize(ip, UA, &["example.com"], &salt, IpMode::Truncate, None)
        })
    });
    let book = SaltBook::new();
    let today = time::OffsetDateTime::now_utc().date();
    book.adopt(today, Salt::generate().expect("rng"));
    book.adopt(today.previous_day().expect("day"), Salt::generate().expect("rng"));
    c.bench_function("privacy/salt_lookup", |b| b.iter(|| book.get(black_box(today))));
    c.bench_function("privacy/truncate_v4", |b| {
        b.iter(|| privacy::ip::truncate(black_box("198.51.100.77".parse().expect("ip"))))
    });

    c.bench_function("payload/plausible_json", |b| b.iter(|| payload::from_json(black_box(BODY))));
    c.bench_function("payload/pixel_query", |b| {
        b.iter(|| {
            payload::from_pixel_query(
                black_box(
                    "d=example.com&u=https%3A%2F%2Fexample.com%2Fp%3Futm_source%3Dx&r=https%3A%2F%2Fgoogle.com%2F",
                ),
                None,
            )
        })
    });
    c.bench_function("url/page_url", |b| {
        b.iter(|| {
            url::page_url(
                black_box("https://example.com/blog/some-post?utm_source=newsletter&utm_medium=email&x=1"),
                2000,
                false,
            )
        })
    });
}

fn pipeline(c: &mut Criterion) {
    // Real traffic repeats pages and referrers: with the URL cache (hits
    // here, one body) and without it (every request parses).
    pipeline_with(c, "pipeline/record_plausible_event", 4_096);
    pipeline_with(c, "pipeline/record_plausible_event_uncached", 0);
}

fn pipeline_with(c: &mut Criterion, name: &str, places: usize) {
    let mut raw = RawConfig { sites: vec![RawSite { domain: "example.com".into() }], ..RawConfig::default() };
    raw.privacy.trusted_proxies = vec!["10.0.0.0/8".into()];
    let config = Arc::new(raw.validate(std::path::Path::new("/")).expect("config"));
    let salts = Arc::new(SaltBook::new());
    salts.adopt(time::OffsetDateTime::now_utc().date(), Salt::generate().expect("rng"));
    // The sink as `durability = "memory"` runs it: encode to RowBinary, queue.
    let spool_dir = tempfile::tempdir().expect("tmp");
    let spool =
        headcount::spool::Spool::open(headcount::spool::SpoolConfig::memory(spool_dir.path().to_path_buf(), 1 << 30))
            .expect("spool");
    let mut reader = spool.reader();
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let limits = headcount::ingest::limits::Limits::new(&config.limits);
    let ingest = Ingest {
        config,
        ua: Arc::new(UaParser::embedded(10_000).expect("ua")),
        geo: Arc::new(NoGeo),
        referrers: Arc::new(headcount::enrich::source::Referrers::builtin()),
        places: headcount::ingest::places::Places::new(places),
        salts,
        bridge: Arc::new(headcount::privacy::MidnightBridge::new(1000)),
        sessions: Arc::new(headcount::sessions::Sessions::new(100_000)),
        clock: Arc::new(SystemClock),
        sink: Arc::new(headcount::store::sink::SpoolSink { spool: spool.clone() }),
        metrics: Metrics::new().expect("metrics"),
        health: Arc::new(Health::default()),
        limits,
    };
    let peer: SocketAddr = "10.0.0.1:5555".parse().expect("addr");
    let trusted = ingest.config.privacy.trusted_proxies.clone();
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", "198.51.100.77".parse().expect("hv"));
    c.bench_function(name, |b| {
        b.iter(|| {
            let beacon = payload::from_json(BODY).expect("payload");
            let ip = client_ip(peer, &headers, &trusted);
            let out = rt.block_on(ingest.record(beacon, ip, UA)).expect("recorded");
            let batch = reader.read(64, None);
            spool.commit(batch.span()).expect("commit");
            out
        })
    });
}

/// The writer's work per event: a spooled `RowBinary` row into a `Native`
/// block (1,000 rows with 200 paths, 50 cities, 4 browsers, as a batch has).
fn native_block(c: &mut Criterion) {
    use headcount::store::{native::Block, row::EventRow, row::INSERT_COLUMNS, rowbinary};
    let ts = time::OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("ts");
    let rows: Vec<Vec<u8>> = (0..1_000u32)
        .map(|i| {
            let mut e = headcount::event::Event::example(ts, &format!("/blog/post-{}", i % 200));
            e.location.city = format!("City {}", i % 50);
            e.browser = ["Chrome", "Firefox", "Safari", "Edge"][i as usize % 4].into();
            let mut row = Vec::new();
            rowbinary::encode(&EventRow::from(&e), &mut row).expect("encode");
            row.extend_from_slice(&42u64.to_le_bytes());
            row.extend_from_slice(&i.to_le_bytes());
            row
        })
        .collect();
    let mut block = Block::new(&INSERT_COLUMNS);
    let mut out = Vec::with_capacity(1 << 20);
    c.bench_function("store/native_block_1000_rows", |b| {
        b.iter(|| {
            for row in &rows {
                block.push(&[row]).expect("row");
            }
            out.clear();
            block.write(&mut out);
            out.len()
        })
    });
}

criterion_group!(benches, pieces, pipeline, native_block);
criterion_main!(benches);
